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
from rig.hil_recovery import await_recovery, judge_recovery, start_update
from rig.ota.transcript import SessionResult

if TYPE_CHECKING:
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image


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
    prior = start_update(bench, image, ev, transport, previous)
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
    outcome = await_recovery(bench, image, prior, sessions, bench.probe.reconnect)
    bench._timed(ev, "transfer", t0)
    ev.transcript = {"sessions": [r.to_dict() for r in sessions]}
    judge_recovery(bench, image, ev, outcome, what, sessions, prior)


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
