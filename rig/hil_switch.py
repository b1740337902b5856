"""A power cut by the board's power switch during an update, on the twin or a real board.

The twin can cut power at one chosen flash operation (rig/hil_power.py); a relay or a USB
hub port (``power:`` in the board file, :mod:`rig.power`) cuts at a moment. Here the moment
comes from the update itself: ``transfer`` cuts when half the image has been sent, ``install``
a short delay after the board acknowledged it (while it erases and copies: a 256 KiB sector
erase takes about 2 s on silicon, and on the twin with datasheet timing). Then, as after any
power cut, the rig does not ask for the update again behind the bootloader's back: the
probe and the console are reopened (an ST-LINK powered by the same USB port goes down with
the board), the entry breakpoints are re-armed, and the board must either ask for the update
again and install it, or come back with an intact application — the new one if the update
had finished, else the old one.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from rig.errors import PhaseFailure, RigError
from rig.ota.transcript import SessionResult

if TYPE_CHECKING:
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image
    from rig.power import PowerSwitch

#: the moments a switch can cut at
MOMENTS = ("transfer", "install")
#: seconds after the board's ACK when ``install`` cuts (into the erase of the app slot)
INSTALL_DELAY = 0.3
POLL = 0.25


class _Cutter:
    """Cuts the power once, from a thread of its own (a switch takes seconds; the OTA server's
    thread must not wait for it)."""

    def __init__(self, switch: PowerSwitch) -> None:
        self.switch = switch
        self.started = threading.Event()
        self.done = threading.Event()
        self.at: float | None = None
        self.error: BaseException | None = None

    def cut(self) -> None:
        if self.started.is_set():
            return
        self.started.set()
        self.at = time.monotonic()

        def run() -> None:
            try:
                self.switch.cycle()
            except BaseException as exc:  # reported by the scenario
                self.error = exc
            finally:
                self.done.set()

        threading.Thread(target=run, name="power-cut", daemon=True).start()


def update_through_switched_cut(
    bench: Bench, image: Image, ev: Evidence, *, transport: str, moment: str, previous: Image | None = None
) -> None:
    """Update to ``image`` and cut the power at ``moment`` (``transfer`` or ``install``) with
    the target's power switch; require recovery without the rig asking again."""
    from rig.hil import install_timeout

    if moment not in MOMENTS:
        raise ValueError(f"moment must be one of {MOMENTS}, not {moment!r}")
    switch = bench.target.power_switch()
    if switch is None:
        raise PhaseFailure(
            "boot",
            f"{bench.target.kind}: no power switch to cut power with",
            hint="give the board file a power: section (uhubctl or command)",
        )
    if previous is not None:
        bench.install_app_direct(previous, transport)
    prior = bench.installed
    ev.scenario.update(transport=transport, image_size=image.size, power_switch=switch.name)
    ev.layout = bench.layout
    bench.request_update(transport)
    bench.guard_flash()
    bench.update_mark = bench.console.mark()
    entry = image.reset_handler & ~1
    bench.clear_breakpoint()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    t0 = time.monotonic()
    sessions, what = _update_and_cut(bench, image, ev, switch, moment)
    old_entry = prior.reset_handler & ~1 if prior is not None and prior.size >= 8 else None
    outcome = _after_power(bench, switch, image, entry, old_entry, sessions)
    bench._timed(ev, "transfer", t0)
    ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
    if outcome == "session":
        if not sessions[-1].ok:
            raise bench._fail(
                ev,
                "boot",
                f"after the {what} the board did not complete a new update: "
                f"{sessions[-1].outcome}: {sessions[-1].reason}",
            )
        bench.await_app_entry(image, ev, timeout=install_timeout(image.size), previous=prior)
    elif outcome == "halted":
        _booted_without_asking(bench, image, prior, ev, what)
    else:
        _neither(bench, image, ev, what)


def _update_and_cut(
    bench: Bench, image: Image, ev: Evidence, switch: PowerSwitch, moment: str
) -> tuple[list[SessionResult], str]:
    """Reset the board, serve the update and cut the power at ``moment``; the first session
    and what happened, in words. Fails if the update ended before the cut could come."""
    from rig.hil import transfer_timeout

    cutter = _Cutter(switch)

    def on_progress(phase: str, sent: int, total: int) -> None:
        if moment == "transfer" and phase != "end" and total and sent * 2 >= total:
            cutter.cut()

    sessions: list[SessionResult] = []
    with bench.ota_server(
        image.data, policy="natural", max_size=bench.spec.max_image_size, on_progress=on_progress
    ) as server:
        # the bench's own reset when it has one (an update method may hold a button through it)
        getattr(bench, "reset_board", bench.probe.reset)()
        # once power went off and came back, that session's board is gone for good
        sessions.append(
            server.wait_session(timeout=transfer_timeout(image.size), abandon_if=cutter.done.is_set)
        )
    first = sessions[0]
    if moment == "install" and first.ok:
        time.sleep(INSTALL_DELAY)
        cutter.cut()
    if not cutter.started.is_set():
        ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
        raise bench._fail(
            ev,
            "transfer" if first.phase != "connect" else "boot",
            f"the update ended before the power cut at '{moment}' could come: {first.outcome}: {first.reason}",
        )
    if not cutter.done.wait(60.0):
        raise bench._fail(ev, "boot", f"{switch.name}: switching the power did not finish within 60 s")
    if cutter.error is not None:
        raise bench._fail(ev, "boot", f"{switch.name}: the power cut failed: {cutter.error}")
    when = (
        "with half the image sent"
        if moment == "transfer"
        else f"{INSTALL_DELAY:g} s after the board acknowledged the image (while it installs)"
    )
    what = f"power cut by {switch.name} {when}"
    ev.notes.append(f"{what}; first session: {first.outcome}")
    return sessions, what


def _neither(bench: Bench, image: Image, ev: Evidence, what: str) -> None:
    """The board neither asked again nor reached an application: fail ``boot`` with where it is."""

    bench.probe.halt()
    pc = bench.probe.registers(["pc"])["pc"]
    ev.fault = bench._fault_info(pc)
    raise bench._fail(
        ev,
        "boot",
        f"after the {what} the board neither asked for the update again nor started an "
        f"application within {bench.spec.ota.ask_within:g} s (the board file's ota.ask_within); "
        f"the core is at PC=0x{pc:08X}, "
        f"state {ev.fault.state}",
        hint="after a power cut the bootloader must resume the update on its own or boot an "
        "intact application; the rig does not ask again (a bootloader that needs longer to "
        "come back, e.g. a slow DHCP, says so with ota.ask_within)",
    )


def reconnect_after_power(bench: Bench, switch: PowerSwitch) -> None:
    """The probe and the console back after the power came back: at once on the twin, after
    the ST-LINK re-enumerated on a real board (up to the switch's ``settle`` s)."""
    deadline = time.monotonic() + max(switch.settle, 1.0)
    while True:
        try:
            bench.probe.reconnect()
            break
        except RigError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    if switch.takes_probe_down:
        left = max(1.0, deadline - time.monotonic())
        bench.console.reopen(bench.target.reopen_console_path, timeout=left)


def _after_power(
    bench: Bench,
    switch: PowerSwitch,
    image: Image,
    entry: int,
    old_entry: int | None,
    sessions: list[SessionResult],
) -> str:
    """Reconnect, re-arm the entry breakpoints (new and old application), let the board run
    and wait for it to ask for an update (``"session"``) or stop at an application's entry
    (``"halted"``); ``"nothing"`` after the timeout. The rig never asks again."""

    bench._breakpoint = None
    reconnect_after_power(bench, switch)
    bench.probe.halt()
    bench.probe.set_breakpoint(entry)
    bench._breakpoint = entry
    extra = old_entry if old_entry is not None and old_entry != entry else None
    if extra is not None:
        bench.probe.set_breakpoint(extra)
    try:
        if bench.probe.is_halted():
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
    the update had finished before the cut, else the old one, which must be intact."""
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
        f"application ({prior.size} bytes), which must be intact"
    )
    bench.await_app_entry(prior, ev, timeout=0.0)
    hdr = app_header(prior)
    if hdr is not None:
        bench.expect_app(ev, hdr.banner)
    else:
        bench.probe.resume()
