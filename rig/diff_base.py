"""The parts of the flash diff that need no numpy: the :class:`Diagnosis` record, the kinds,
the default protocol tokens, the buffer type, number and sector-list formatting and the
per-sector slices. ``rig diff`` on two identical images imports only these (numpy's import
alone costs a tenth of a second); :mod:`rig.diff_arrays` and :mod:`rig.diagnosis` re-export them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    import numpy as np

    from rig.board import FlashLayout
    from rig.image import Image

#: what the diff accepts as expected / actual data
Buffer = Union[bytes, bytearray, memoryview, "np.ndarray", "Image"]

KINDS = (
    "never_erased",
    "erased_not_written",
    "shifted",
    "repeated_block",
    "stale_cache_lines",
    "foreign_text",
    "bit_flips",
    "sector_aligned",
    "region_touched",
)
#: Protocol control tokens that must never appear in flash data (see docs/protocol.md).
DEFAULT_TOKENS: tuple[bytes, ...] = (
    b"FILE_SIZE:",
    b"FILE_CRC:",
    b"OTA_UPDATE",
    b"OTA_DONE",
    b"OTA_READY",
    b"REQ_FW",
    b"NACK:",
)
#: Cap on per-item lists in the evidence (the counts stay exact).
MAX_LIST = 64


@dataclass(frozen=True)
class Diagnosis:
    """A likely cause: ``kind`` (one of :data:`KINDS`), where, a human ``detail`` and the ``evidence``."""

    kind: str
    address: int
    length: int
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One human sentence."""
        return self.detail

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "address": self.address,
            "length": self.length,
            "detail": self.detail,
            "evidence": self.evidence,
        }


def num(n: int) -> str:
    """Group digits with spaces: 41203 -> '41 203'."""
    return f"{n:,}".replace(",", " ")


def sector_slices(base: int, n: int, layout: FlashLayout) -> list[tuple[Any, int, int]]:
    """(sector, lo, hi) with lo/hi offsets of the part of each sector inside [base, base+n)."""
    out = []
    for sec in layout.sectors:
        lo, hi = max(sec.base - base, 0), min(sec.end - base, n)
        if hi > lo:
            out.append((sec, lo, hi))
    return out


def span_text(indices: Sequence[int]) -> str:
    parts: list[str] = []
    for i in indices:
        if parts and isinstance(parts[-1], str) and parts[-1].split("-")[-1] == str(i - 1):
            head = parts[-1].split("-")[0]
            parts[-1] = f"{head}-{i}"
        else:
            parts.append(str(i))
    return ", ".join(parts)


def plain_bytes(buf: Buffer) -> bytes | bytearray | None:
    """``buf`` (or an :class:`~rig.image.Image`'s ``data``) if it is bytes or a bytearray, else
    None (memoryviews and arrays go through numpy)."""
    if isinstance(buf, (bytes, bytearray)):
        return buf
    if isinstance(buf, memoryview):
        return None
    data = getattr(buf, "data", None)
    return data if isinstance(data, (bytes, bytearray)) else None


def equal_prefix(expected: Buffer, actual: Buffer) -> tuple[int, int] | None:
    """``(compared, missing)`` if the bytes both buffers have match (a memcmp, no copy), the
    same numbers :func:`rig.diff_arrays.prepare` gives; None if they differ or either buffer
    is not plain bytes."""
    e, a = plain_bytes(expected), plain_bytes(actual)
    if e is None or a is None:
        return None
    n = min(len(e), len(a))
    same = a.startswith(e) if len(e) <= len(a) else e.startswith(a)
    return (n, len(e) - n) if same else None
