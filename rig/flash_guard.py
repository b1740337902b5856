"""Flash an update must not change: everything outside the OTA-writable regions, and the
regions the board file marks ``preserve`` (settings, identity, calibration).

Before an update the rig reads every such byte back (:func:`snapshot`,
:func:`snapshot_preserved`); afterwards (and after a power cut) it compares the same bytes
again. Comparing with a readback, not with the bootloader's .bin, covers the whole
bootloader region (the sectors past the end of the image included) and any flash no region
claims, whatever was there before.

A preserved region is compared by its mode: ``exact`` — every byte as before; ``append`` —
every byte that was programmed (not 0xFF) as before, erased bytes may have been programmed
since (a log of records the bootloader appends to). :func:`expected_after` gives what the
readback must equal, so the ordinary diff names the bytes that changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig.board import BoardSpec
from rig.image import Image
from rig.probe import OptionBytes

#: how to get out of a write-protected sector (the rig never changes option bytes)
WRP_HINT = (
    "clear the write protection with STM32CubeProgrammer (-ob nWRP...) if this board may be "
    "reprogrammed; the rig never changes option bytes"
)


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
        if not r.ota_writable and not r.preserve:  # a preserved region has its own check
            out.append((r.name, start, end - start))
        pos = max(pos, end)
    if pos < hi:
        out.append(("flash", pos, hi - pos))
    return out


def snapshot(read: Callable[[int, int], bytes], spec: BoardSpec) -> list[GuardedRange]:
    """Read every protected span (``read(base, length)``, e.g. the probe's)."""
    return [GuardedRange(name, base, read(base, size)) for name, base, size in protected_ranges(spec)]


@dataclass(frozen=True)
class PreservedRange:
    """A region marked ``preserve`` with what it held before and how it must compare."""

    name: str
    base: int
    mode: str  #: "exact" or "append"
    before: bytes


def snapshot_preserved(read: Callable[[int, int], bytes], spec: BoardSpec) -> list[PreservedRange]:
    """Read every region marked ``preserve`` (``read(base, length)``, e.g. the probe's)."""
    return [
        PreservedRange(r.name, r.base, r.preserve or "exact", read(r.base, r.size)) for r in spec.preserved()
    ]


def expected_after(kept: PreservedRange, after: bytes) -> bytes:
    """What the region must hold now: ``before`` (exact), or ``before`` with its erased bytes
    taken from ``after`` (append: only what was programmed must be unchanged)."""
    if kept.mode != "append":
        return kept.before
    return bytes(b if b != 0xFF else a for b, a in zip(kept.before, after, strict=True))


def preserved_changed(kept: PreservedRange, now: bytes, summary: str) -> str:
    """The sentence for a preserved region that changed: the rule, how many of the bytes
    programmed before now read erased (0xFF) or hold another value, and the diff's summary."""
    programmed = [i for i, b in enumerate(kept.before) if b != 0xFF]
    erased = sum(1 for i in programmed if now[i] == 0xFF)
    other = sum(1 for i in programmed if now[i] not in (0xFF, kept.before[i]))
    rule = (
        "every byte programmed before must stay as it was (preserve: append)"
        if kept.mode == "append"
        else "every byte must stay as it was (preserve: exact)"
    )
    what = []
    if erased:
        what.append(f"{erased} of the {len(programmed)} bytes programmed before read 0xFF now (erased)")
    if other:
        what.append(f"{other} hold another value (rewritten)")
    if kept.mode == "exact":
        added = sum(1 for i, b in enumerate(kept.before) if b == 0xFF and now[i] != 0xFF)
        if added:
            what.append(f"{added} erased byte(s) were programmed")
    return (
        f"the preserved region {kept.name} (0x{kept.base:08X}+{len(kept.before)}) changed: {rule}; "
        + ", ".join(what)
        + ("; " if what else "")
        + summary
    )


def write_protected_note(ob: OptionBytes, spec: BoardSpec, image: Image) -> str | None:
    """Why ``image`` cannot be programmed if nWRP protects a sector it needs (checked before
    anything is erased: pyOCD would fail half-way with a bare "erase sector failure"); None if
    every sector it needs is writable."""
    hit = [s for s in spec.layout().sectors_for_span(image.base, image.size) if ob.write_protected(s.index)]
    if not hit:
        return None
    names = ", ".join(f"{s.index} (0x{s.base:08X})" for s in hit)
    return (
        f"sector {names} of the image at 0x{image.base:08X} is write-protected: nWRP in "
        f"FLASH_OPTCR (0x{ob.optcr:08X}) has its bit cleared, so no probe can erase it; nothing was written"
    )
