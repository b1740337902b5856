"""Array and text helpers shared by the flash diff (:mod:`rig.diff`) and the diagnosis
(:mod:`rig.diagnosis`, :mod:`rig.diagnosis_sectors`): bytes-like → numpy, runs of True,
bit counts, per-sector slices, number and sector-list formatting. No results, no findings.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rig.diff_base import Buffer, num, sector_slices, span_text

__all__ = [
    "POPCOUNT",
    "Buffer",
    "as_array",
    "bit_counts",
    "first_last",
    "num",
    "popcount_sum",
    "prepare",
    "runs",
    "sector_slices",
    "span_text",
]

POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def as_array(buf: Buffer) -> np.ndarray:
    """The bytes of ``buf`` (an :class:`~rig.image.Image` gives its ``data``) as a uint8 array, not copied."""
    data: Any = (
        getattr(buf, "data", buf) if not isinstance(buf, (bytes, bytearray, memoryview, np.ndarray)) else buf
    )
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).ravel()
    return np.frombuffer(data, dtype=np.uint8)


def popcount_sum(x: np.ndarray) -> int:
    """Total number of set bits in a uint8 array."""
    if _HAS_BITCOUNT:
        m = x.size - x.size % 8
        if m and x.flags.c_contiguous:  # eight bytes a word: the same bits, an eighth of the counts
            head = int(np.bitwise_count(x[:m].view(np.uint64)).sum(dtype=np.int64))
            return head + int(np.bitwise_count(x[m:]).sum(dtype=np.int64))
        return int(np.bitwise_count(x).sum(dtype=np.int64))
    return int(POPCOUNT[x].sum(dtype=np.int64))


_HAS_BITCOUNT = hasattr(np, "bitwise_count")


def bit_counts(x: np.ndarray) -> np.ndarray:
    """The number of set bits of each byte of a uint8 array (uint8)."""
    return np.bitwise_count(x) if _HAS_BITCOUNT else POPCOUNT[x]


def runs(mask: np.ndarray, gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of runs of True, merging runs separated by <= gap False."""
    if mask.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    m = mask.view(np.int8)
    edges = np.flatnonzero(m[1:] != m[:-1]) + 1
    if m[0]:
        edges = np.concatenate(([0], edges))
    if m[-1]:
        edges = np.concatenate((edges, [mask.size]))
    starts, ends = edges[0::2], edges[1::2]
    if gap > 0 and starts.size > 1:
        keep = np.concatenate(([True], starts[1:] - ends[:-1] > gap))
        starts = starts[keep]
        ends = np.concatenate((ends[:-1][keep[1:]], [ends[-1]]))
    return starts, ends


def prepare(expected: Buffer, actual: Buffer) -> tuple[np.ndarray, np.ndarray, int]:
    a, b = as_array(expected), as_array(actual)
    n = min(a.size, b.size)
    return a[:n], b[:n], a.size - n


def first_last(mask: np.ndarray) -> tuple[int, int] | None:
    """First and last True index of a bool array, or None."""
    if mask.size == 0 or not mask.any():
        return None
    return int(np.argmax(mask)), int(mask.size - 1 - np.argmax(mask[::-1]))
