"""``rig campaign power-cut --board nucleo``: the campaign on a real board, with its power switch.

Slower and approximate, never the default (docs/power-cut-campaign.md "On a real board"):

1. The dry run on a twin running the same bootloader and images (rig/campaign.py): the
   update's flash operations in order. A real board cannot record them; the twin runs the
   same binary and sees every store the flash controller gets.
2. The real board, resolved from the board file like ``pytest --board nucleo`` does (probe
   UID, console, the address it dials and the one the server listens on, its power switch:
   ``power:`` is required), locked for the run; its whole flash saved first (rig/backup.py),
   put back at the end with ``--restore-after`` (else the ``rig restore`` command is printed).
3. Per point (rig/campaign_lab_points.py chooses them): the old application installed and the
   update requested through the probe, the board reset with the watches armed, run to the
   operation's start (rig/campaign_locate.py), then cut with the board file's switch: at
   once with the core still halted (``halted``), or ``+N ms`` after resuming it. The switch's
   own latency (milliseconds) comes on top: an erase (1-2 s on silicon) is cut inside, a
   program (16 us) some operations later.
4. Power back, the probe and the console reopened; then the same verdict as on the twin
   (rig/campaign_run.py): a verified application (banner + slot CRC read through the probe)
   or the update asked for again and completed; else bricked. ``not-reached``: the board
   never did the operation (it is not the dry run's update); not counted as bricked.

Owns: the real-board loop and its set-up. Must not touch: the twin (it only starts one for
the dry run, as rig/campaign.py does), the choice of watches (rig/campaign_locate.py).
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rig.campaign_lab_points import lab_plan
from rig.campaign_locate import NotReached, Runner, watches_for
from rig.campaign_run import Board, PointResult, diagnose, judge, settle
from rig.errors import ConfigError, RigError

if TYPE_CHECKING:
    from rig.board import BoardSpec
    from rig.campaign import Campaign, Settings
    from rig.campaign_points import Op, Point
    from rig.hil import Bench
    from rig.image import Image
    from rig.ota.server import OtaServer
    from rig.power import PowerSwitch
    from rig.targets.nucleo import NucleoTarget

POLL = 0.05


@dataclass
class Lab:
    """How the real board is reached (the command line's lab options)."""

    probe_uid: str | None = None
    serial_port: str | None = None
    ota_bind: str | None = None
    #: cut moments: "halted" (at once, the core stopped at the operation) or milliseconds
    #: after resuming it
    offsets: list[str] = field(default_factory=lambda: ["halted"])
    restore_after: bool = False
    lock_timeout: float | None = None


def parse_offsets(text: str) -> list[str]:
    """``halted,0,250`` -> ``["halted", "+0ms", "+250ms"]`` (a ConfigError names a bad one)."""
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "halted":
            out.append(part)
            continue
        try:
            ms = float(part.removesuffix("ms"))
        except ValueError:
            ms = -1.0
        if not 0 <= ms <= 60_000:
            raise ConfigError(
                f"--cut-at {part!r}: expected 'halted' or milliseconds 0..60000, e.g. halted,0,250"
            )
        out.append(f"+{ms:g}ms")
    if not out:
        raise ConfigError("--cut-at: give at least one moment, e.g. halted")
    return out


def run_lab(
    s: Settings, lab: Lab, say: Callable[[str], None] = print, progress: bool = True
) -> tuple[Campaign, str]:
    """The campaign on the board file's real board (see the module docstring); the campaign
    and the path of the flash backup taken before the first write."""
    seed = s.seed if s.seed is not None else random.SystemRandom().randrange(1 << 32)
    say(f"seed {seed} (replay with --seed {seed})")
    spec, target, switch = resolve_board(s, lab)
    ops = twin_dry_run(s, say)
    with real_board(spec, target, s, lab, say) as (bench, backup):
        camp = campaign_on(bench, switch, s, ops, seed, lab.offsets, say, progress=progress)
        camp.settings["backup"] = backup
    return camp, backup


def twin_dry_run(s: Settings, say: Callable[[str], None]) -> list[Op]:
    """The update's flash operations, recorded on a twin running the same binaries."""
    from rig.campaign import own_twin, prepared

    say("dry run on a twin running the same binaries (the operations the board will do) ...")
    with own_twin(s) as twin_bench, prepared(twin_bench, s, say) as twin_board:
        return twin_board.ops


def campaign_on(
    bench: Bench,
    switch: PowerSwitch,
    s: Settings,
    ops: list[Op],
    seed: int,
    offsets: list[str],
    say: Callable[[str], None],
    *,
    flash: bool = True,
    progress: bool = True,
) -> Campaign:
    """Every point on a real board's ``bench`` (the bootloader flashed first unless ``flash``
    is False: already there), cut with ``switch``."""
    from rig.campaign import Campaign, _settings_dict

    board = _prepare(bench, s, ops, flash=flash)
    preserved = [r.name for r in bench.spec.preserved()]
    points, space = lab_plan(
        ops, bench.layout, seed=seed, points=s.points, offsets=offsets, preserved=preserved
    )
    settings = {**_settings_dict(s), "board": "nucleo", "switch": switch.name, "cut_at": offsets}
    camp = Campaign(settings, seed, ops, space)
    say(
        f"{len(points)} points on the real board (of {space}: every erase, the first and last of "
        f"each class, the sector boundaries, the rest sampled with seed {seed}); power switch: "
        f"{switch.name}"
    )
    t0 = time.monotonic()
    try:
        for res in _iterate(board, switch, points, progress, s.transport):
            camp.results.append(res)
            camp.seconds = time.monotonic() - t0
    finally:
        board.server.close()
    return camp


def _iterate(
    board: Board, switch: PowerSwitch, points: list[Point], progress: bool, transport: str
) -> Iterator[PointResult]:
    from rig.campaign_report import progress_bar

    with progress_bar(len(points), enabled=progress) as advance:
        for p in points:
            res = run_lab_point(board, switch, p, transport)
            advance(res.outcome)
            yield res


def resolve_board(s: Settings, lab: Lab) -> tuple[BoardSpec, NucleoTarget, PowerSwitch]:
    """The board file's real board and its power switch, checked before anything runs."""
    from rig.board import load_board
    from rig.lab import boards_for_run, split_list
    from rig.targets.nucleo import nucleo_target

    spec = load_board(s.board_file)
    boards = boards_for_run(spec, probe_uids=split_list(lab.probe_uid), ota_binds=split_list(lab.ota_bind))
    if len(boards) != 1:
        raise ConfigError(
            f"a campaign runs on one board; {len(boards)} are selected", hint="pass --probe-uid of one"
        )
    b = boards[0]
    target = nucleo_target(
        probe_uid=b.probe_uid,
        serial_port=lab.serial_port or b.serial_port,
        usb_serial=b.usb_serial,
        ota_bind=(b.bind.ip, b.bind.port),
        ota_dial=(b.host.ip, b.host.port),
        board_ip=b.board_ip,
        power=b.power,
    )
    switch = target.power_switch()
    if switch is None:
        raise ConfigError(
            f"{spec.source}: no power switch for this board: a campaign cuts the power",
            hint="add a power: section (uhubctl: {location, port} or command: {off, on}): docs/lab.md §7",
        )
    return spec, target, switch


@contextmanager
def real_board(
    spec: BoardSpec, target: NucleoTarget, s: Settings, lab: Lab, say: Callable[[str], None]
) -> Iterator[tuple[Bench, str]]:
    """The board locked, its flash saved; put back on the way out with ``lab.restore_after``."""
    from rig import probe_lock, progress
    from rig.backup import boot_check, restore_backup, take_backup
    from rig.console import Console
    from rig.hil import Bench
    from rig.probe_options import probe_for

    tspec = spec.targets.get("nucleo")
    s.out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(probe_lock.board_lock(target.probe_uid, timeout=lab.lock_timeout, say=say))
        stack.callback(target.stop)
        probe = stack.enter_context(probe_for(target, spec))
        bars = progress.for_run()  # the backup, the installs and the restore: minutes on an ST-LINK
        if bars is not None:
            stack.callback(bars.close)
            probe.progress = bars.probe_callback()
        baud = tspec.baudrate if tspec else 115200
        console = stack.enter_context(
            Console(target.serial_port, baudrate=baud, log_path=s.out_dir / "console.log")
        )
        bench = Bench(spec, target, probe, console, s.out_dir)
        say(
            f"saving the board's flash ({spec.flash.size // 1024} KiB, read twice) before the first write ..."
        )
        backup = take_backup(probe, spec, s.out_dir / "backups", probe_uid=target.probe_uid)
        say(f"flash saved: {backup.directory} (put back with: rig restore {backup.directory})")
        try:
            yield bench, str(backup.directory)
        finally:  # also after a failure or Ctrl-C: the user's flash comes back when asked
            if lab.restore_after:
                say("putting the board's flash back (--restore-after) ...")
                bench.probe.reconnect()
                say(restore_backup(bench.probe, backup).summary())
                banner = tspec.banner if tspec else None
                check = boot_check(
                    bench.probe, bench.console, banner=banner, console_uart=bench.spec.console.uart
                )
                say(check.summary())


def _prepare(bench: Bench, s: Settings, ops: list[Op], *, flash: bool = True) -> Board:
    """The bootloader flashed (unless ``flash`` is False), an OTA server serving the new image."""
    from rig.campaign import default_old
    from rig.campaign_report import banner_of
    from rig.evidence import Evidence
    from rig.image import load_image

    spec = bench.spec
    app_base = spec.region(spec.ota.app_region).base
    new = load_image(s.image, base=app_base)
    old = load_image(s.old or default_old(s.image), base=app_base)
    if flash:
        bench.flash_bootloader(load_image(s.bootloader, base=spec.region("bootloader").base), Evidence())
    server = _serve(bench, new)
    # a real update per point: erases at datasheet speed, the transfer, the board's own checks
    timeout = s.timeout or 40.0 + new.size / 1024 * 0.1
    return Board(bench, server, new, old, banner_of(new), banner_of(old), -1, ops, timeout)


def _serve(bench: Bench, new: Image) -> OtaServer:
    return bench.ota_server(new.data, policy="natural", max_size=bench.spec.max_image_size).start()


def run_lab_point(board: Board, switch: PowerSwitch, point: Point, transport: str = "eth") -> PointResult:
    """Old app in, update requested, run to ``point``, cut with ``switch``, judge."""
    t0 = time.monotonic()
    bench, server = board.bench, board.server
    res = PointResult(point.op, point.mode, point.why, "bricked", 0.0)
    if point.op < len(board.ops):
        op = board.ops[point.op]
        res.kind, res.address, res.length, res.region = op.kind, op.address, op.length, op.region
    settle(server)
    server.close()  # installing may run an update of its own (update.install: ota)
    bench.install_app_direct(board.old, transport)  # the core held at reset meanwhile
    bench.request_update(transport)
    board.server = server = _serve(bench, board.new)
    bench.probe.reset(halt=True)
    bench.sessions_at_reset = server.sessions_started
    runner = Runner(bench.probe, board.timeout)
    try:
        where = runner.run(
            watches_for(board.ops, point.op, board.new.reset_handler),
            lambda: bench.trigger.after_reset(bench),
        )
    except NotReached as exc:
        res.outcome, res.detail = "not-reached", str(exc)
        bench.probe.halt()
        res.seconds = round(time.monotonic() - t0, 3)
        return res
    if point.mode != "halted":
        bench.probe.resume()
        time.sleep(float(point.mode.strip("+ms")) / 1000)
    mark = bench.console.mark()
    _cycle(switch)
    # its session died with the board's TCP stack; a new server once the probe is back (the
    # reconnect may reset the board again: a session begun before it would hang as well)
    server.close()
    _back(bench, switch)
    board.server = _serve(bench, board.new)
    res.outcome, detail = _watch(board, mark, 0)
    res.detail = f"{where}; {detail}" if detail else where
    if res.outcome == "bricked":
        res.diagnosis = diagnose(board)
        res.console = bench.console.text(mark)[-6000:]
    res.seconds = round(time.monotonic() - t0, 3)
    return res


def _cycle(switch: PowerSwitch) -> None:
    switch.off()
    time.sleep(switch.off_time)
    switch.on()


def _back(bench: Bench, switch: PowerSwitch) -> None:
    """The probe and the console back after power returned; the core left running."""
    from rig.hil_switch import reconnect_after_power

    bench._breakpoint = None
    reconnect_after_power(bench, switch)
    if bench.probe.is_halted():
        bench.probe.resume()


def _watch(board: Board, mark: int, sessions: int) -> tuple[str, str]:
    """The verdict within the board's timeout (rig/campaign_run.py's rules)."""
    bench = board.bench
    new_rx, old_rx = re.compile(board.new_banner), re.compile(board.old_banner)
    deadline = time.monotonic() + board.timeout
    while time.monotonic() < deadline:
        asked = board.server.sessions_started > sessions
        try:
            verdict = judge(board, bench.console.text(mark), new_rx, old_rx, asked)
        except RigError:
            verdict = None
        if verdict is not None:
            return verdict
        time.sleep(POLL)
    asked = board.server.sessions_started > sessions
    what = "asked again but never completed the update" if asked else "neither an app nor a request"
    return "bricked", f"within {board.timeout:g} s: {what}"
