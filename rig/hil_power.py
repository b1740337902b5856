"""A power cut in the middle of an update, and what the bootloader must do about it.

:func:`update_through_power_cut` arms a cut at one flash operation of the update (the
twin's ``flash.cut``; a lab does it with a relay), lets power come back, and then does
**not** ask for the update again: whatever asked for it (a config record, a backup
register, a RAM word, a held button...) is the bootloader's business now. The board must
either

* resume on its own — it asks for the update again (its own record says so, or it has no
  valid application left), installs it and jumps into it; or
* come back bootable — it starts the old application, intact, without asking (the request
  did not survive the cut, e.g. a backup register or RAM word, and the cut came before the
  application was touched).

Either way the regions the board file marks ``preserve`` (settings, identity,
calibration) must be unchanged, and the flash outside the OTA regions too
(:meth:`rig.hil.Bench.check_guarded`). Anything else fails: ``boot`` (it neither asked nor
started an application), ``copy``/``jump`` (it started something that is not an intact
application), ``write`` (a preserved region changed).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rig.errors import PhaseFailure, TargetError
from rig.hil_evidence import config_record_note
from rig.ota.transcript import SessionResult

if TYPE_CHECKING:
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image

#: how often the rig looks whether the board connected or halted at an application's entry
POLL = 0.25


def update_through_power_cut(
    bench: Bench, image: Image, ev: Evidence, *, transport: str, cut: dict, previous: Image | None = None
) -> None:
    """Cut power at a flash operation during an update of ``image``; require recovery.

    ``cut`` is the twin control request ``flash.cut`` (e.g. ``{"kind": "erase",
    "address": A, "length": L, "nth": 1, "mode": "half"}``). After the cut the target's
    debug logic has lost its state (breakpoints), so the OTA server stays closed until the
    probe has reconnected and re-armed the application-entry breakpoints; the board retries
    meanwhile (or boots).
    """
    if not bench.target.has_control:
        raise PhaseFailure(
            "boot",
            f"{bench.target.kind}: no power switch to cut power with",
            hint="power-cut scenarios need the twin or a relay",
        )
    if previous is not None:
        bench.install_app_direct(previous, transport)
    prior = bench.installed
    ev.scenario.update(transport=transport, image_size=image.size)
    ev.layout = bench.layout
    bench.request_update(transport)
    bench.guard_flash()
    bench.update_mark = bench.console.mark()
    entry = image.reset_handler & ~1
    bench.clear_breakpoint()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    t0 = time.monotonic()
    sessions: list[SessionResult] = []
    cut_info = _update_until_cut(bench, image, cut, sessions)
    if cut_info is None:
        bench.target.control("flash.cut", cancel=True)
        ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
        raise bench._fail(
            ev,
            "write",
            f"the armed power cut {cut} never happened: the bootloader did no such flash operation",
            hint="check the cut's kind/address against the bootloader's flash layout",
        )
    what = (
        f"power cut during flash {cut_info.get('kind')} #{cut_info.get('op')} at "
        f"0x{int(cut_info.get('address', 0)):08X} ({cut_info.get('mode')})"
    )
    ev.notes.append(f"{what}; first session: {sessions[0].outcome}")
    old_entry = prior.reset_handler & ~1 if prior is not None and prior.size >= 8 else None
    outcome = _after_power(bench, image, entry, old_entry, sessions)
    bench._timed(ev, "transfer", t0)
    ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
    _judge_recovery(bench, image, ev, outcome, what, sessions, prior)


def _update_until_cut(bench: Bench, image: Image, cut: dict, sessions: list[SessionResult]) -> dict | None:
    """Arm ``cut``, serve one update (its session appended to ``sessions``) and wait until the
    cut has happened; return the twin's record of it, or None if it never came."""
    from rig.hil import install_timeout, transfer_timeout

    cuts_before = len(_flash_cuts(bench))
    bench.target.control("flash.cut", **cut)

    def cut_seen() -> dict | None:
        cuts = _flash_cuts(bench)
        return cuts[-1] if len(cuts) > cuts_before else None

    with bench.ota_server(image.data, policy="natural", max_size=bench.spec.max_image_size) as server:
        bench.reset_board()
        # after the cut that session's board is gone for good: no FIN or RST will end it
        timeout = transfer_timeout(image.size)
        sessions.append(server.wait_session(timeout=timeout, abandon_if=lambda: cut_seen() is not None))
    cut_info = cut_seen()
    deadline = time.monotonic() + install_timeout(image.size)
    while cut_info is None and sessions[0].ok and time.monotonic() < deadline:
        if bench.probe.is_halted():  # reached the app: the cut never came
            break
        time.sleep(0.1)
        cut_info = cut_seen()
    return cut_info


def _flash_cuts(bench: Bench) -> list[dict]:
    """The twin's record of the power cuts so far (its ``flash`` control answer's ``cuts``)."""
    cuts = bench.target.control("flash")["cuts"]
    if not isinstance(cuts, list):
        raise TargetError(f"the twin's flash state holds no list of cuts: {cuts!r}")
    return cuts


def _judge_recovery(
    bench: Bench,
    image: Image,
    ev: Evidence,
    outcome: str,
    what: str,
    sessions: list[SessionResult],
    prior: Image | None,
) -> None:
    """Pass if the board resumed the update (``session``) or booted an intact app (``halted``);
    otherwise fail with where the core is."""

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
        f"for the update again "
        f"({sessions[-1].reason}) and never reached an application's reset handler; the core "
        f"is at PC=0x{pc:08X}, state {ev.fault.state}; {_state_note(bench)}",
        hint="after a power cut the bootloader must resume the update on its own or boot an "
        "intact application; the rig does not ask again (a bootloader that needs longer to "
        "come back, e.g. a slow DHCP, says so with ota.ask_within)",
    )


def _after_power(
    bench: Bench, image: Image, entry: int, old_entry: int | None, sessions: list[SessionResult]
) -> str:
    """Reconnect, re-arm the entry breakpoints (new and old application) and wait for the
    board to ask for an update (``"session"``, appended to ``sessions``) or to stop at an
    application's entry without asking (``"halted"``); ``"nothing"`` after the timeout."""

    bench._breakpoint = None
    bench.probe.reconnect()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    extra = old_entry if old_entry is not None and old_entry != entry else None
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
    assert prior is not None
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
