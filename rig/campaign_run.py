"""One cut point of a power-cut campaign on a board: cut, power back, judge the recovery.

The cut itself is the twin's ``snapshot.restore`` (the non-volatile state before the update,
the dry run's first ``op`` operations replayed, the interrupted one left as the cut leaves
it, a power-on reset: docs/twin.md) — the lab's relay. Everything after it goes through the
board's real interfaces: the console (the application's banner, the bootloader's lines),
the OTA server (the bootloader asking for the update again) and the probe (the CRC of the
application slot read back). Within ``timeout`` the board must

* run a verified application: the old one's or the new one's banner on the console *and*
  the slot read through the probe equal to that image (``recovered-old``/``recovered-new``);
* or ask for the update again and complete it: a session that ends in ACK, then the new
  banner and the new image in the slot (``re-asked``);

anything else is ``bricked``, with the operation, both flash diffs (:func:`rig.diff.analyze`
of the slot against the new and the old image) and the console log since the cut.

Owns: one point's run and verdict. Must not touch: the choice of points
(rig/campaign_points.py) or the campaign's set-up and report (rig/campaign.py).
"""

from __future__ import annotations

import re
import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rig.campaign_points import Op, Point
from rig.diff import analyze
from rig.errors import RigError

if TYPE_CHECKING:
    from rig.hil import Bench
    from rig.image import Image
    from rig.ota.server import OtaServer

OUTCOMES = ("recovered-old", "recovered-new", "re-asked", "bricked")
POLL = 0.01


@dataclass
class Board:
    """What every point of one campaign shares."""

    bench: Bench
    server: OtaServer
    new: Image
    old: Image
    new_banner: str
    old_banner: str
    snapshot: int
    ops: list[Op]
    timeout: float
    dry_run_seconds: float = 0.0

    @property
    def slot_base(self) -> int:
        return self.bench.spec.region(self.bench.spec.ota.app_region).base


@dataclass
class PointResult:
    """A point's verdict (JSON-ready with :meth:`to_dict`)."""

    op: int
    mode: str
    why: str
    outcome: str
    seconds: float
    kind: str = "after-last"
    address: int = 0
    length: int = 0
    region: str = "-"
    detail: str = ""
    then: list[list[Any]] = field(default_factory=list)
    diagnosis: dict[str, Any] | None = None
    console: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["address"] = f"0x{self.address:08X}"
        return out


def run_point(board: Board, point: Point, then: tuple[tuple[int, str], ...] = ()) -> PointResult:
    """Cut at ``point`` (and then at each ``(nth, mode)`` of ``then`` after power came back),
    then judge what the board does."""
    t0 = time.monotonic()
    bench, server = board.bench, board.server
    settle(server)
    mark = bench.console.mark()
    sessions = server.sessions_started
    req: dict[str, Any] = {"id": board.snapshot, "ops": point.op, "cut": point.mode}
    if then:
        req["arm"] = {"nth": then[0][0], "mode": then[0][1]}
    cuts_before = _cut_count(bench)
    bench.target.control("snapshot.restore", **req)
    outcome, detail = _watch(board, mark, sessions, list(then), cuts_before)
    res = PointResult(point.op, point.mode, point.why, outcome, 0.0, detail=detail)
    res.then = [list(t) for t in then]
    if point.op < len(board.ops):
        op = board.ops[point.op]
        res.kind, res.address, res.length, res.region = op.kind, op.address, op.length, op.region
    if outcome == "bricked":
        res.diagnosis = diagnose(board)
        res.console = bench.console.text(mark)[-6000:]
    res.seconds = round(time.monotonic() - t0, 3)
    return res


def settle(server: OtaServer, limit: float = 5.0) -> None:
    """Let a session of the previous point end (its board was reset under it)."""
    deadline = time.monotonic() + limit
    while server.sessions_started > len(server.results) and time.monotonic() < deadline:
        time.sleep(POLL)


def _cut_count(bench: Bench) -> int:
    cuts = bench.target.control("flash")["cuts"]
    return len(cuts) if isinstance(cuts, list) else 0


def _watch(board: Board, mark: int, sessions: int, then: list, cuts_seen: int) -> tuple[str, str]:
    """Wait for the verdict (see the module docstring); ``then``: live cuts still to come."""
    bench = board.bench
    deadline = time.monotonic() + board.timeout
    asked = False
    new_rx, old_rx = re.compile(board.new_banner), re.compile(board.old_banner)
    cuts_seen += 1  # the replayed cut
    while time.monotonic() < deadline:
        if then and _cut_count(bench) > cuts_seen:  # a live cut came; power is back
            cuts_seen += 1
            then.pop(0)
            if then:
                bench.target.control("flash.cut", nth=then[0][0], mode=then[0][1])
            board.server.abandon()  # its session died with the board's TCP stack
            sessions, asked = board.server.sessions_started, False
            mark, deadline = bench.console.mark(), time.monotonic() + board.timeout
            continue
        asked = asked or board.server.sessions_started > sessions  # it asked for the update
        verdict = judge(board, bench.console.text(mark), new_rx, old_rx, asked)
        if verdict is not None:
            if then:  # the recovery did fewer flash operations than the next cut waits for
                bench.target.control("flash.cut", cancel=True)
                verdict = (
                    verdict[0],
                    f"{len(then)} later cut(s) never came: the recovery did fewer operations",
                )
            return verdict
        time.sleep(POLL)
    if then:
        bench.target.control("flash.cut", cancel=True)
    what = "asked again but never completed the update" if asked else "neither an app nor a request"
    return "bricked", f"within {board.timeout:g} s: {what}"


def judge(
    board: Board, text: str, new_rx: re.Pattern, old_rx: re.Pattern, asked: bool
) -> tuple[str, str] | None:
    """A banner on the console, checked against the slot read through the probe; None: none yet."""
    if new_rx.search(text):
        if _slot_holds(board, board.new):
            return ("re-asked" if asked else "recovered-new"), ""
        return "bricked", "the new app's banner, but the slot read back is not the new image (CRC differs)"
    if old_rx.search(text):
        if _slot_holds(board, board.old):
            return "recovered-old", ""
        return "bricked", "the old app's banner, but the slot read back is not the old image (CRC differs)"
    return None


def _slot_holds(board: Board, image: Image) -> bool:
    """The slot's CRC-32 read through the probe equals the image's."""
    try:
        data = board.bench.probe.read(board.slot_base, image.size)
    except RigError:
        return False
    return zlib.crc32(data) == zlib.crc32(image.data)


def diagnose(board: Board) -> dict[str, Any]:
    """The slot against both images, and the board's state, for a bricked point."""
    bench = board.bench
    size = max(board.new.size, board.old.size)
    out: dict[str, Any] = {}
    try:
        slot = bench.probe.read(board.slot_base, size)
    except RigError as exc:
        return {"error": f"the slot could not be read back: {exc}"}
    for name, img, other in (("vs_new", board.new, board.old), ("vs_old", board.old, board.new)):
        a = analyze(img.data, slot[: img.size], board.slot_base, bench.layout, previous=other.data)
        out[name] = {"ok": a.ok, "summary": a.summary(), "diagnoses": a.kinds()}
    state, dhcsr = bench.probe.core_state()
    out["core"] = {"state": state, "dhcsr": None if dhcsr is None else f"0x{dhcsr:08X}"}
    return out
