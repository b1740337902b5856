"""Flash an update must not change: everything outside the OTA-writable regions.

Before an update the rig reads every such byte back (:func:`snapshot`); afterwards it
compares the same bytes again. Comparing with a readback, not with the bootloader's .bin,
covers the whole bootloader region (the sectors past the end of the image included) and any
flash no region claims, whatever was there before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig.board import BoardSpec


@dataclass(frozen=True)
class GuardedRange:
    """A span of flash an update must leave alone, with what it held before."""

    name: str  #: the board region it belongs to, or "flash" for bytes no region claims
    base: int
    before: bytes


def protected_ranges(spec: BoardSpec) -> list[tuple[str, int, int]]:
    """``(name, base, size)`` of every flash span outside the OTA-writable regions, in
    address order: the non-writable regions, and flash that no region covers."""
    flash = spec.flash
    lo, hi = flash.base, flash.base + flash.size
    regions = sorted(
        (r for r in spec.regions.values() if r.base < hi and r.base + r.size > lo), key=lambda r: r.base
    )
    out: list[tuple[str, int, int]] = []
    pos = lo
    for r in regions:
        start, end = max(r.base, lo), min(r.base + r.size, hi)
        if start > pos:
            out.append(("flash", pos, start - pos))
        if not r.ota_writable:
            out.append((r.name, start, end - start))
        pos = max(pos, end)
    if pos < hi:
        out.append(("flash", pos, hi - pos))
    return out


def snapshot(read: Callable[[int, int], bytes], spec: BoardSpec) -> list[GuardedRange]:
    """Read every protected span (``read(base, length)``, e.g. the probe's)."""
    return [GuardedRange(name, base, read(base, size)) for name, base, size in protected_ranges(spec)]
