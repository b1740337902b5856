"""The HIL steps that write flash through the probe: the bootloader (phase ``flash``) and an
app installed the way a lived-in board has it (the ``prepare`` part of a scenario).

Both write with :func:`rig.flash_verify.sync_flash`: sectors that already hold the wanted
bytes are skipped (CRC-32 on the target), the others written and checked by CRC again, bytes
read back only where a CRC differs; what that cost (bytes skipped, written, read) is a note
of the test's evidence. Called by :class:`rig.hil.Bench`'s methods of the same names.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rig.bootcfg import SLOT, BootConfig, log_end
from rig.diff import analyze
from rig.errors import PhaseFailure, ProbeError
from rig.evidence import Evidence
from rig.flash_guard import WRP_HINT, snapshot_preserved, write_protected_note
from rig.flash_verify import (
    CHUNK,
    SyncResult,
    TargetCrc,
    TargetCrcError,
    parked,
    sync_flash,
    written_end,
)
from rig.image import Image

if TYPE_CHECKING:
    from rig.hil import Bench


def write_region(bench: Bench, name: str, base: int, data: bytes, crc: TargetCrc | None = None) -> SyncResult:
    """Make flash at ``base`` hold ``data`` (region ``name``), the evidence noting the cost."""
    result = sync_flash(bench.probe, bench.layout, base, data, crc=crc)
    note = result.stats.note(f"flash {name} 0x{base:08X}+{len(data)}")
    if bench.evidence is not None:
        bench.evidence.notes.append(note)
    return result


def write_checked(
    bench: Bench, name: str, base: int, data: bytes, crc: TargetCrc | None = None, *, doing: str = "writing"
) -> None:
    """:func:`write_region` of ``data`` at ``base`` (``name``: what it is); flash that does not
    hold ``data`` afterwards fails phase ``flash`` ("{doing} {name} through the probe failed")."""
    result = write_region(bench, name, base, data, crc)
    if result.actual != data:
        analysis = analyze(data, result.actual, base, bench.layout)
        message = f"{doing} {name} through the probe failed: {analysis.summary()}"
        if bench.evidence is None:
            raise PhaseFailure("flash", message)
        raise bench._fail(bench.evidence, "flash", message)


def flash_bootloader(bench: Bench, image: Image, ev: Evidence) -> None:
    """Program the bootloader region and verify it (phase ``flash``): the region check of the
    report gets flash as it is (the image where the target's CRC matched, bytes read back
    where it did not), so a wrong write is diagnosed as before."""
    region = bench.spec.region("bootloader")
    if image.base != region.base or image.size > region.size:
        raise bench._fail(
            ev,
            "flash",
            f"the bootloader image spans 0x{image.base:08X}..0x{image.end:08X}, "
            f"outside the bootloader region 0x{region.base:08X}+{region.size}",
            hint="link the bootloader at the region base or fix regions.bootloader",
        )
    t0 = time.monotonic()
    evidence, bench.evidence = bench.evidence, ev
    try:
        bench.probe.reset(halt=True)
        if protected := write_protected_note(bench.probe.option_bytes(), bench.spec, image):
            raise bench._fail(ev, "flash", protected, hint=WRP_HINT)
        result = write_region(bench, "bootloader", image.base, image.data)
    except ProbeError as exc:
        raise bench._fail(ev, "flash", str(exc)) from exc
    finally:
        bench.evidence = evidence
    check = bench.check_region(ev, "bootloader", image.data, phase="flash", actual=result.actual)
    bench._timed(ev, "flash", t0)
    if not check.analysis.ok:
        raise bench._fail(
            ev, "flash", "bootloader readback differs from the image: " + check.analysis.summary()
        )
    bench.bootloader = image


def install_app_direct(bench: Bench, image: Image, transport: str, *, staged: bool) -> None:
    """Put ``image`` into the app slot (and with ``staged`` the staging region) through the
    probe, skipping what is already there, and withdraw any update request; a write that does
    not take fails phase ``flash``. The core is held at the reset vector while flash is
    written (:meth:`rig.hil.Bench.install_app_direct`)."""
    bench.probe.reset(halt=True)
    crc = TargetCrc(bench.probe)
    regions = [bench.spec.ota.app_region] + ([bench.spec.ota.staging_region] if staged else [])
    for name in regions:
        write_checked(bench, name, bench.spec.region(name).base, image.data, crc, doing="installing")
    if staged:
        bench.staged = image
    bench.trigger.withdraw(bench, transport, image)
    bench.installed = image


def write_config(bench: Bench, cfg: BootConfig) -> None:
    """Program the reference config record as the log's only record (slot 0; the slots the
    bootloader appended since are erased again), skipped when flash holds it already. Where
    the log ends is found by CRC on the target (the last chunk that is not erased, then only
    that chunk read), not by reading the whole region (:meth:`rig.hil.Bench.write_config`)."""
    region = bench.spec.region("config")
    if not parked(bench.probe):  # (right after install_app_direct it is: no second reset)
        bench.probe.reset(halt=True)
    crc = TargetCrc(bench.probe)
    try:
        end = written_end(crc, region.base, region.size)
        start = max(0, end - CHUNK)
        used = log_end(b"\xff" * start + bench.readback(region.base + start, end - start))
    except (TargetCrcError, ProbeError):  # the routine failed: read the region, as before
        used = log_end(bench.readback(region.base, region.size))
    # a record ends with its own CRC-32, so it is compared byte for byte (flash_verify.EXACT)
    write_region(bench, "config", region.base, cfg.pack().ljust(max(used, SLOT), b"\xff"), crc)
    if bench._preserved is not None:  # the rig's own write is the new "before"
        bench._preserved = snapshot_preserved(bench.readback, bench.spec)
