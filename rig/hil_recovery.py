"""After a power cut during an update: the board, not the rig, must recover.

Shared by the twin's cut at one flash operation (:mod:`rig.hil_power`) and a power switch's
cut at a moment of the update (:mod:`rig.hil_switch`): how such an update is started, how the
rig waits once power is back (entry breakpoints on the new and the old application, the OTA
server open, never asking for the update again) and how it judges what the board did. The
board must either ask for the update again and install it, or stop at an application's
entry without asking: the new one if the update had finished, else the old one, intact
(flash, guarded and preserved regions, the jump contract). Anything else fails ``boot``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from rig.hil_evidence import config_record_note

if TYPE_CHECKING:
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image
    from rig.ota.transcript import SessionResult

#: how often the rig looks whether the board connected or halted at an application's entry
POLL = 0.25


def start_update(
    bench: Bench, image: Image, ev: Evidence, transport: str, previous: Image | None, **scenario: object
) -> Image | None:
    """What both cuts do before the update: install ``previous`` if given, ask for the
    update, guard the flash outside the OTA regions, mark the console and arm the new
    application's entry breakpoint. Returns the application installed before (or None)."""
    if previous is not None:
        bench.install_app_direct(previous, transport)
    prior = bench.installed
    ev.scenario.update(transport=transport, image_size=image.size, **scenario)
    ev.layout = bench.layout
    bench.request_update(transport)
    bench.guard_flash()
    bench.update_mark = bench.console.mark()
    entry = image.reset_handler & ~1
    bench.clear_breakpoint()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    return prior


def await_recovery(
    bench: Bench,
    image: Image,
    prior: Image | None,
    sessions: list[SessionResult],
    reconnect: Callable[[], object],
) -> str:
    """Once power is back: ``reconnect`` (the probe, and the console if it went down), re-arm
    the entry breakpoints (new and old application), let the board run and wait for it to
    ask for an update (``"session"``, appended to ``sessions``) or to stop at an
    application's entry without asking (``"halted"``); ``"nothing"`` (the last wait's result
    appended) after the board file's ``ota.ask_within``. The rig never asks again."""
    entry = image.reset_handler & ~1
    bench._breakpoint = None
    reconnect()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    old = prior.reset_handler & ~1 if prior is not None and prior.size >= 8 else None
    extra = old if old is not None and old != entry else None
    if extra is not None:
        bench.probe.set_breakpoint(extra)
    try:
        bench.probe.resume()
        deadline = time.monotonic() + bench.spec.ota.ask_within
        with bench.ota_server(image.data, policy="natural", max_size=bench.spec.max_image_size) as server:
            while True:
                result = server.wait_session(timeout=POLL)
                if not (result.outcome == "timeout" and result.phase == "connect"):
                    sessions.append(result)
                    return "session"
                if bench.probe.is_halted():
                    return "halted"
                if time.monotonic() > deadline:
                    sessions.append(result)
                    return "nothing"
    finally:
        if extra is not None:
            bench.probe.remove_breakpoint(extra)


def judge_recovery(
    bench: Bench,
    image: Image,
    ev: Evidence,
    outcome: str,
    what: str,
    sessions: list[SessionResult],
    prior: Image | None,
) -> None:
    """Pass if the board completed a new update (``session``) or booted an intact application
    (``halted``) after ``what`` (the cut, in words); otherwise fail ``boot`` with where the
    core is and what the bootloader's record holds."""
    if outcome == "session":
        if not sessions[-1].ok:
            raise bench._fail(
                ev,
                "boot",
                f"after the {what} the board did not complete a new update: "
                f"{sessions[-1].outcome}: {sessions[-1].reason}; {_state_note(bench)}",
            )
        bench.await_app_entry(image, ev, previous=prior)
        return
    if outcome == "halted":
        _booted_without_asking(bench, image, prior, ev, what)
        return
    bench.probe.halt()
    pc = bench.probe.registers(["pc"])["pc"]
    ev.fault = bench._fault_info(pc)
    raise bench._fail(
        ev,
        "boot",
        f"after the {what} the board did not complete a new update, nor start an application: "
        f"within {bench.spec.ota.ask_within:g} s (the board file's ota.ask_within) it never asked "
        f"for the update again ({sessions[-1].reason}) and never reached an application's reset "
        f"handler; the core is at PC=0x{pc:08X}, state {ev.fault.state}; {_state_note(bench)}",
        hint="after a power cut the bootloader must resume the update on its own or boot an "
        "intact application; the rig does not ask again (a bootloader that needs longer to "
        "come back, e.g. a slow DHCP, says so with ota.ask_within)",
    )


def _booted_without_asking(bench: Bench, image: Image, prior: Image | None, ev: Evidence, what: str) -> None:
    """The board stopped at an application's entry without asking again: the new image if
    the update had finished before the cut, else it must be the old one, intact."""
    from rig.hil import app_header

    pc = bench.probe.registers(["pc"])["pc"]
    app_base = bench.spec.region(bench.spec.ota.app_region).base
    holds_new = bench.readback(app_base, image.size) == image.data
    if pc == image.reset_handler & ~1 and (holds_new or prior is None):
        ev.notes.append(f"after the {what} the board booted the new image without asking again")
        bench.await_app_entry(image, ev, timeout=0.0)
        return
    if prior is None:
        raise bench._fail(ev, "jump", f"after the {what} the board entered PC=0x{pc:08X}, no application")
    ev.notes.append(
        f"after the {what} the board did not resume the update: it came back with the old "
        f"application ({prior.size} bytes), which must be intact, its settings too"
    )
    bench.await_app_entry(prior, ev, timeout=0.0)  # flash, guarded and preserved regions, jump
    hdr = app_header(prior)
    if hdr is not None:
        bench.expect_app(ev, hdr.banner)
    else:
        bench.probe.resume()


def _state_note(bench: Bench) -> str:
    """What the bootloader's own record holds now (the reference record, or the preserved
    regions' state)."""
    if bench.trigger.writes_config:
        return config_record_note(bench)
    names = ", ".join(r.name for r in bench.spec.preserved()) or "none"
    return f"update.method {bench.trigger.describe()} (the rig did not ask again); preserved regions: {names}"
