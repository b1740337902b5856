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
from rig.hil_recovery import await_recovery, judge_recovery, start_update
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
    if moment not in MOMENTS:
        raise ValueError(f"moment must be one of {MOMENTS}, not {moment!r}")
    switch = bench.target.power_switch()
    if switch is None:
        raise PhaseFailure(
            "boot",
            f"{bench.target.kind}: no power switch to cut power with",
            hint="give the board file a power: section (uhubctl or command)",
        )
    prior = start_update(bench, image, ev, transport, previous, power_switch=switch.name)
    t0 = time.monotonic()
    sessions, what = _update_and_cut(bench, image, ev, switch, moment)

    def reconnect() -> None:
        reconnect_after_power(bench, switch)
        bench.probe.halt()

    outcome = await_recovery(bench, image, prior, sessions, reconnect)
    bench._timed(ev, "transfer", t0)
    ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
    judge_recovery(bench, image, ev, outcome, what, sessions, prior)


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
