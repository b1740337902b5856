"""Evidence the HIL steps add to a failure beyond the flash diff (used by :mod:`rig.hil`):
what each CRC the board printed must have covered; when a bootloader entered a damaged
application, where the core stands and which area the boot check really read; what the
config record holds after a power cut; when the app's reset handler was never reached, what
the bootloader left behind that explains it (an interrupt taken before the app's first
instruction)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from rig.bootcfg import SIZE as RECORD_SIZE
from rig.bootcfg import SLOT, current
from rig.crc_diagnosis import explain_reported, reported_crcs
from rig.evidence import Evidence
from rig.image import Image
from rig.jump import JumpState, check_jump
from rig.ota.transcript import SessionResult

if TYPE_CHECKING:
    from rig.hil import Bench


def crc_sentences(
    bench: Bench,
    image: Image,
    ev: Evidence,
    result: SessionResult | None,
    readbacks: dict[str, tuple[int, bytes]],
) -> list[str]:
    """A sentence for each CRC the board printed since the update started that is not the
    image's, the announced FILE_CRC or the installed app's (also added to the notes)."""
    known = {bench.installed.crc32} if bench.installed else set()
    if result is not None:
        known |= {v for v, _ in reported_crcs("\n".join(result.transcript.messages("tx")))}
    text = bench.console.text(bench.update_mark)
    found = explain_reported(text, image.data, known=known, readbacks=readbacks)
    ev.notes.extend(f"CRC: {s}" for s in found)
    return found


def entered_damaged_app(bench: Bench, image: Image, ev: Evidence, offset: int) -> str:
    """The core stopped at the entry of an app the rig damaged at ``offset``: record the
    jump state, the app slot's readback (the damaged byte in the diff) and the staging
    region's; return what the bootloader's check must have covered instead."""
    spec, probe = bench.spec, bench.probe
    app_base = spec.region(spec.ota.app_region).base
    ev.jump_state = JumpState.collect(lambda n: probe.registers([n])[n], probe.read32)
    ev.jump = check_jump(ev.jump_state, image, spec.contract, app_base, board=spec)
    app = bench.check_region(ev, spec.ota.app_region, image.data, phase="copy")
    staged = bench.check_region(ev, spec.ota.staging_region, image.data, phase="write")
    record = image.crc32
    areas = {
        spec.ota.app_region: (app.base, zlib.crc32(app.actual)),
        spec.ota.staging_region: (staged.base, zlib.crc32(staged.actual)),
    }
    matching = [f"{name} (0x{base:08X})" for name, (base, c) in areas.items() if c == record]
    slot_crc = areas[spec.ota.app_region][1]
    where = (
        f"which is the CRC of {' and '.join(matching)}: the bootloader checked that instead of the app slot"
        if matching
        else "which no area read back gives"
    )
    return (
        f"the app slot's CRC-32 over {image.size} bytes is 0x{slot_crc:08X}, the record's 0x{record:08X}, "
        f"{where}"
    )


def config_record_note(bench: Bench) -> str:
    """What the reference config log holds now: the record in force and any torn record
    before it (after a power cut a torn record shows)."""
    base = bench.spec.region("config").base if "config" in bench.spec.regions else None
    if base is None:
        return "no config region in the board file"
    bench.probe.halt()
    region = bench.spec.region("config")
    raw = bench.readback(base, region.size)
    slot, cfg, skipped = current(raw)
    parts = []
    for i in skipped:
        rec = raw[i * SLOT : i * SLOT + RECORD_SIZE]
        parts.append(
            f"slot {i} at 0x{base + i * SLOT:08X} is not a valid record (erased, torn or foreign): "
            f"{rec.hex(' ', 4)} — a bootloader must skip it, never trust its fields"
        )
    if cfg is not None and slot is not None:
        parts.insert(0, f"the config record in force is slot {slot} at 0x{base + slot * SLOT:08X}: {cfg}")
    else:
        parts.insert(
            0,
            f"the config log at 0x{base:08X} holds no valid record (erased, torn or foreign): "
            f"{raw[:RECORD_SIZE].hex(' ', 4)} — the bootloader must fall back to its defaults",
        )
    return "; ".join(parts)


def left_over_state(bench: Bench, image: Image) -> list[str]:
    """When the app's first instruction was never reached: the jump-contract items that are
    broken *now* and that code running since the jump does not change on its own (an
    interrupt left enabled and taken before the reset handler ran is the usual cause; it
    depends on timing on silicon too). The core's own position (PC, MSP, mode) is left out."""
    try:
        late = JumpState.collect(lambda n: bench.probe.registers([n])[n], bench.probe.read32)
    except Exception:  # a probe that cannot read more must not hide the jump failure itself
        return []
    verdict = check_jump(
        late, image, bench.spec.contract, bench.spec.region(bench.spec.ota.app_region).base, board=bench.spec
    )
    moving = {"pc", "msp", "thumb", "thread_mode", "control"}
    broken = [r for r in verdict.rows if r.checked and not r.ok and r.name not in moving]
    out = []
    if late.ipsr:
        irq = f" (IRQ {late.ipsr - 16})" if late.ipsr >= 16 else ""
        out.append(f"the core is in exception {late.ipsr}{irq}: it was taken before or instead of the app")
    if broken:
        out.append(
            "left over from the bootloader: "
            + ", ".join(f"{r.name} {r.actual} (expected {r.expected})" for r in broken)
        )
    return out
