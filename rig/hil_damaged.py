"""A damaged application at reset: the bootloader must never enter it and must fall back to
asking for an update (:func:`boot_damaged_app`, the scenario of tests_hil/test_boot_decision.py).

A bootloader that enters the damaged app stops at the rig's breakpoint on its reset handler;
from then on it will never ask, so the wait for its request ends there rather than at the
time-out (:func:`stopped_at_breakpoint`): the failure costs what the board needs.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from rig.hil_evidence import entered_damaged_app
from rig.update import install_via_ota

if TYPE_CHECKING:
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image
    from rig.ota.transcript import SessionResult


def stopped_at_breakpoint(bench: Bench, entry: int) -> str | None:
    """Why a board halted at the breakpoint ``entry`` will not connect any more, or None."""
    if not bench.probe.is_halted() or bench.probe.registers(["pc"])["pc"] != entry:
        return None
    return f"no board connected: the core halted at the breakpoint 0x{entry:08X} (the app's entry) first"


def boot_damaged_app(
    bench: Bench, image: Image, ev: Evidence, *, offset: int, transport: str = "eth", wait: float = 8.0
) -> SessionResult:
    """Leave the board as after an update of ``image`` (staging area and record hold the
    good image), then damage one byte of the app slot and reset: the bootloader must
    never enter it (phase ``jump`` if it does) and must fall back to asking for an update
    (phase ``boot`` if it does not: a bootloader that hangs or never runs is no fallback).

    The evidence of the fallback is the board's ``REQ_FW`` to the OTA server
    (:meth:`rig.hil.Bench.reset_and_refuse`, so nothing is installed). Returns that session."""
    bad = bytearray(image.data)
    bad[offset] ^= 0x5A
    app_base = bench.spec.region(bench.spec.ota.app_region).base
    if bench.trigger.install == "ota":  # the bootloader records the good image its own way
        install_via_ota(bench, image, transport)
    else:
        bench.write_flash("staging", bench.spec.region(bench.spec.ota.staging_region).base, image.data)
        bench.staged = image
    bench.write_flash("app (damaged)", app_base, bytes(bad))
    if bench.trigger.install != "ota":
        bench.trigger.withdraw(bench, transport, image)
    bench.installed = None
    ev.scenario.setdefault("transport", transport)
    entry = image.reset_handler & ~1
    bench.clear_breakpoint()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    mark = bench.console.mark()
    result = bench.reset_and_refuse(ev, wait=wait, give_up_if=lambda: stopped_at_breakpoint(bench, entry))
    # a bootloader that enters the app after asking (or instead of asking) is caught here
    entered = bench.probe.wait_halted(2.0 if result.phase != "connect" else 0.0)
    if not entered:
        bench.probe.halt()
    pc = bench.probe.registers(["pc"])["pc"]
    bench.clear_breakpoint()
    ev.uart = bench.console.text()[-20000:]
    fallback = re.search(r"BL: no valid app: [^\r\n]*", bench.console.text(mark))
    if fallback:
        ev.notes.append(f"console: {fallback.group(0)}")
    if entered and pc == entry:
        checked = entered_damaged_app(bench, image, ev, offset)
        raise bench._fail(
            ev,
            "jump",
            f"the bootloader entered an application whose byte at "
            f"0x{app_base + offset:08X} is damaged (its CRC no longer matches the "
            f"record): an invalid app must never be started; {checked}",
        )
    if result.phase in ("connect", "request"):
        ev.fault = bench._fault_info(pc)
        asked = "connected but never sent REQ_FW" if result.phase == "request" else "never connected"
        raise bench._fail(
            ev,
            "boot",
            f"the bootloader did not enter the damaged app, but it did not fall back to "
            f"asking for an update either: within {wait:g} s it {asked} "
            f"({result.reason}); the core is at PC=0x{pc:08X}, state {ev.fault.state} "
            "(a bootloader that hangs or never runs)",
            hint="after rejecting the app the bootloader must request an update (REQ_FW)",
        )
    ev.notes.append(
        f"fallback: the board asked for an update (REQ_FW); the session ended {result.outcome}: "
        f"{result.reason}"
    )
    bench.probe.resume()
    return result
