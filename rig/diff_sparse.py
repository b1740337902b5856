"""The differing bytes as sorted offsets rather than masks over the whole image: 2 MiB with 1%
scattered errors has 21 000 of them, and every count, run and sector lookup on those is far
cheaper than on 2 million booleans. Helpers of :mod:`rig.diff` and the diagnosis.
"""

from __future__ import annotations

import numpy as np

from rig.diff_arrays import runs

#: above this share of words differing the byte offsets come from one byte-level comparison
_DENSE_WORDS = 0.25


def differing(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Sorted offsets (int64) where the equal-length uint8 arrays ``a`` and ``b`` differ:
    compared 8 bytes at a time, then byte by byte only inside the words that differ; and
    the byte-level mask if most words differ (it was needed, and its runs are cheaper
    found on it), else None."""
    n = a.size
    m = n - n % 8
    a64, b64 = a[:m].view(np.uint64), b[:m].view(np.uint64)
    ne = a64 != b64
    if m == 0 or np.count_nonzero(ne) > _DENSE_WORDS * a64.size:
        neq = a != b
        return np.flatnonzero(neq).astype(np.int64, copy=False), neq
    words = true_at(ne)
    k = true_at((a64[words] ^ b64[words]).view(np.uint8) != 0)
    out = (words[k >> 3] << 3) + (k & 7)
    if m < n:
        out = np.concatenate((out, np.flatnonzero(a[m:] != b[m:]) + m))
    return out.astype(np.int64, copy=False), None


def true_at(mask: np.ndarray) -> np.ndarray:
    """``np.flatnonzero`` of a bool array. numpy's nonzero is several times slower on a mask
    with one True in 12 to 50 (0.29 ms for 256 Ki at 8 %) than on a denser or sparser one,
    so below one True in ten the 64-bit words holding a True are found first (about half of
    them at 8 %), then the Trues inside those (0.10 ms)."""
    m = mask.size - mask.size % 8
    if m < 64 or not mask.flags.c_contiguous or 10 * np.count_nonzero(mask) > mask.size:
        return np.flatnonzero(mask)
    words = np.flatnonzero(mask[:m].view(np.uint64) != 0)
    k = np.flatnonzero(mask[:m].view(np.uint64)[words].view(np.bool_))
    out = (words[k >> 3] << 3) + (k & 7)
    if m < mask.size:
        out = np.concatenate((out, np.flatnonzero(mask[m:]) + m))
    return out


def mask_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`idx_runs` of the offsets where ``mask`` is True, found on the mask (cheaper
    when most of it is True)."""
    starts, ends = runs(mask)
    first = np.concatenate(([0], np.cumsum(ends - starts)))
    return starts.astype(np.int64), ends.astype(np.int64), first.astype(np.int64)


def idx_runs(offsets: np.ndarray, gap: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Runs of the sorted ``offsets`` as :func:`rig.diff_arrays.runs` gives them for the mask
    that is True there (runs separated by at most ``gap`` absent offsets merged): (starts,
    ends, first) with ``first[i]`` the position in ``offsets`` where run i begins (and a last
    entry ``offsets.size``)."""
    if offsets.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(1, dtype=np.int64)
    brk = np.flatnonzero(np.diff(offsets) > gap + 1) + 1
    first = np.concatenate(([0], brk, [offsets.size]))
    starts = offsets[first[:-1]]
    ends = offsets[first[1:] - 1] + 1
    return starts, ends, first


def count_in(offsets: np.ndarray, lo: int, hi: int) -> int:
    """How many of the sorted ``offsets`` lie in [lo, hi)."""
    i0, i1 = np.searchsorted(offsets, (lo, hi))
    return int(i1 - i0)


def spans_in(offsets: np.ndarray, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """For each [lo, hi) of ``spans`` the positions (i0, i1) in the sorted ``offsets`` of
    those inside it: one ``searchsorted`` for all of them."""
    at = np.searchsorted(offsets, [x for span in spans for x in span]).tolist()
    return list(zip(at[0::2], at[1::2], strict=True))


def merge_runs(
    runs: tuple[np.ndarray, np.ndarray, np.ndarray], gap: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`idx_runs` with ``gap`` from the runs with gap 0 (far fewer than the offsets)."""
    starts, ends, first = runs
    if gap == 0 or starts.size < 2:
        return runs
    brk = np.flatnonzero(starts[1:] - ends[:-1] > gap)  # run brk[i] ends a merged run
    head = np.empty(brk.size + 1, dtype=np.int64)  # the first run of each merged one
    head[0], head[1:] = 0, brk + 1
    tail = np.empty(brk.size + 1, dtype=np.int64)  # its last
    tail[:-1], tail[-1] = brk, starts.size - 1
    return starts[head], ends[tail], np.append(first[head], first[-1])


def block_counts(mask: np.ndarray, block: int) -> np.ndarray:
    """How many of each ``block`` (a multiple of 8, at most 2040: a byte lane holds 255)
    consecutive booleans are True, for ``mask.size // block`` whole blocks: eight at a time
    in 64-bit words."""
    if block % 8 or not 0 < block <= 2040:
        raise ValueError(f"block {block}: a multiple of 8 up to 2040")
    nb = mask.size // block
    words = np.ascontiguousarray(mask[: nb * block]).view(np.uint64).reshape(nb, block // 8)
    s = words.sum(axis=1, dtype=np.uint64)  # eight byte lanes of at most block/8 each
    s = (s & np.uint64(0x00FF00FF00FF00FF)) + ((s >> np.uint64(8)) & np.uint64(0x00FF00FF00FF00FF))
    s = (s & np.uint64(0x0000FFFF0000FFFF)) + ((s >> np.uint64(16)) & np.uint64(0x0000FFFF0000FFFF))
    return ((s & np.uint64(0xFFFFFFFF)) + (s >> np.uint64(32))).astype(np.int64)


def last_true(mask: np.ndarray) -> int:
    """Index of the last True of a bool array, -1 if none."""
    if mask.size == 0 or not mask.any():
        return -1
    return int(mask.size - 1 - np.argmax(mask[::-1]))
