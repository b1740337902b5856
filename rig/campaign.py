"""``rig campaign power-cut``: cut power at every flash operation of an update, check recovery.

1. Set-up on a twin: the bootloader flashed, the old application installed, the update
   requested the board file's way; the non-volatile state saved (``snapshot.save``).
2. Dry run: the update served once with the twin recording every flash operation
   (``flash.record``); the count and the operations by class are printed.
3. The single-cut points (rig/campaign_points.py: every class and sector boundary, the
   rest sampled with the seed, or ``--exhaustive``), then the seeded multi-cut runs, each
   judged by rig/campaign_run.py (recovered-old, recovered-new, re-asked or bricked).
4. The result as JSON (``--json``) and as an HTML matrix (``--html``,
   rig/campaign_report.py); exit 1 if any point bricked the board.

Here the target is a twin: the cuts are its ``snapshot.restore`` (docs/twin.md). On a real
board (``--board nucleo``, rig/campaign_lab.py) the dry run stays on a twin and each point is
a real update cut with the board file's power switch once the probe has stopped the core at
the operation (rig/campaign_locate.py): slower and approximate (docs/power-cut-campaign.md).

Owns: the campaign's set-up, loop, summary and its command line. Must not touch: the twin's
internals (it uses the control port, the probe, the console and the OTA server).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.campaign_points import MultiCut, Op, Point, multi_cuts, ops_from_columns, plan
from rig.campaign_run import OUTCOMES, Board, PointResult, run_point
from rig.errors import RigError

if TYPE_CHECKING:
    from rig.hil import Bench

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "firmware" / "build"


@dataclass
class Settings:
    """What one campaign runs (the command line's options)."""

    bootloader: Path
    image: Path
    old: Path | None = None
    seed: int | None = None
    points: int | None = 1000
    exhaustive: bool = False
    multi: int = 10
    transport: str = "eth"
    board_file: Path | None = None
    timeout: float | None = None
    out_dir: Path = REPO / "reports" / "campaign"


@dataclass
class Campaign:
    """The campaign's result."""

    settings: dict[str, Any]
    seed: int
    ops: list[Op]
    space: int
    results: list[PointResult] = field(default_factory=list)
    seconds: float = 0.0
    dry_run_seconds: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.outcome for r in self.results)  # + "not-reached" on a real board
        return {k: c.get(k, 0) for k in OUTCOMES} | {k: n for k, n in c.items() if k not in OUTCOMES}

    @property
    def bricked(self) -> list[PointResult]:
        return [r for r in self.results if r.outcome == "bricked"]

    @property
    def points_per_second(self) -> float:
        return len(self.results) / self.seconds if self.seconds else 0.0

    def classes(self) -> dict[str, int]:
        return dict(Counter(o.op_class for o in self.ops))

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "seed": self.seed,
            "operations": len(self.ops),
            "classes": self.classes(),
            "space": self.space,
            "points": len(self.results),
            "counts": self.counts,
            "seconds": round(self.seconds, 2),
            "dry_run_seconds": round(self.dry_run_seconds, 2),
            "points_per_second": round(self.points_per_second, 2),
            "bricked": [r.to_dict() for r in self.bricked],
            "results": [r.to_dict() for r in self.results],
        }


def default_old(image: Path) -> Path:
    """The application installed before the update: another reference app."""
    for name in ("app-v4-64k.bin", "app-v1-16k.bin"):
        if (BUILD / name).resolve() != image.resolve():
            return BUILD / name
    raise RigError("no other reference app to install first", hint="pass --old")


@contextmanager
def own_twin(s: Settings) -> Iterator[Bench]:
    """A twin of its own (instant flash, idle skipped) with its probe, console and bench."""
    from rig.board import load_board
    from rig.console import Console
    from rig.hil import Bench
    from rig.probe import Probe
    from rig.targets.twin import board_args, start_twin

    spec = load_board(s.board_file)
    s.out_dir.mkdir(parents=True, exist_ok=True)
    tspec = spec.targets.get("twin")
    lan = tspec.forward if tspec and tspec.forward else spec.ota.server
    extra = ["--timing", "fast", "--idle", "skip", *board_args(spec)]
    with ExitStack() as stack:
        target = start_twin(ota_lan=(lan.ip, lan.port), extra_args=extra, log_path=s.out_dir / "twin.log")
        stack.callback(target.stop)
        probe = stack.enter_context(Probe(target.probe_uid))
        baud = tspec.baudrate if tspec else 115200
        console = stack.enter_context(
            Console(target.serial_port, baudrate=baud, log_path=s.out_dir / "console.log")
        )
        yield Bench(spec, target, probe, console, s.out_dir)


@contextmanager
def prepared(bench: Bench, s: Settings, say: Callable[[str], None], *, flash: bool = True) -> Iterator[Board]:
    """The bench ready for cuts: the bootloader flashed (unless ``flash`` is False: already
    there), the old app installed, the update requested the board file's way, the state
    saved (``snapshot.save``), an OTA server serving the new image, and the dry run done
    (``Board.ops``). The twin's flash runs instant meanwhile; its timing, the snapshot and
    the server are put back or released at the end."""
    from rig.campaign_report import banner_of
    from rig.evidence import Evidence
    from rig.image import load_image

    spec = bench.spec
    app_base = spec.region(spec.ota.app_region).base
    new = load_image(s.image, base=app_base)
    old = load_image(s.old or default_old(s.image), base=app_base)
    target = bench.target
    was = str(target.control("flash.timing", timing="fast")["was"])
    sid: int | None = None
    board: Board | None = None
    try:
        if flash:
            bench.flash_bootloader(load_image(s.bootloader, base=spec.region("bootloader").base), Evidence())
        bench.install_app_direct(old, s.transport)
        bench.request_update(s.transport)
        sid = int(str(target.control("snapshot.save")["id"]))

        server = bench.ota_server(new.data, policy="natural", max_size=spec.max_image_size).start()
        timeout = s.timeout or 20.0 + new.size / 1024 * 0.05
        board = Board(bench, server, new, old, banner_of(new), banner_of(old), sid, [], timeout)
        board.ops = dry_run(board, say)
        yield board
    finally:
        if board is not None:
            board.server.close()
        if sid is not None:
            if board is not None and board.ops:  # leave the board as after the update
                target.control("snapshot.restore", id=sid, ops=len(board.ops))
                bench.installed = bench.staged = new
            target.control("snapshot.drop", id=sid)
        target.control("flash.timing", timing=was)
        bench._breakpoint = None  # the cuts reset the debug logic: pyOCD starts afresh
        bench.probe.reconnect()


def dry_run(board: Board, say: Callable[[str], None]) -> list[Op]:
    """The update once, every flash operation recorded; the board must end in the new app."""
    bench = board.bench
    t0 = time.monotonic()
    bench.target.control("flash.record", on=True)
    mark = bench.console.mark()
    bench.reset_board()
    result = board.server.wait_session(timeout=board.timeout)
    if not result.ok:
        raise RigError(f"dry run: the update did not complete: {result.outcome}: {result.reason}")
    bench.console.expect(board.new_banner, timeout=board.timeout, since=mark, what="the new app's banner")
    bench.target.control("flash.record", on=False)
    ops: list[Op] = []
    while True:
        page = bench.target.control("flash.ops", first=len(ops), count=50_000)
        ops += ops_from_columns(page, bench.layout)
        if len(ops) >= int(str(page["count"])) or not page["kind"]:
            break
    if not ops:
        raise RigError("dry run: the update did no flash operation the twin saw")
    board.dry_run_seconds = time.monotonic() - t0
    say(f"dry run: {len(ops)} flash operations in {board.dry_run_seconds:.1f} s")
    return ops


def run(s: Settings, say: Callable[[str], None] = print, progress: bool = True) -> Campaign:
    """The whole campaign on a twin of its own (see the module docstring)."""
    seed = s.seed if s.seed is not None else random.SystemRandom().randrange(1 << 32)
    say(f"seed {seed} (replay with --seed {seed})")
    with own_twin(s) as bench, prepared(bench, s, say) as board:
        return cut_all(board, s, seed, say, progress)


def cut_all(board: Board, s: Settings, seed: int, say: Callable[[str], None], progress: bool) -> Campaign:
    """Every point of the plan and the multi-cut runs on a prepared board."""
    preserved = [r.name for r in board.bench.spec.preserved()]
    layout = board.bench.layout
    points, space = plan(
        board.ops, layout, seed=seed, points=s.points, exhaustive=s.exhaustive, preserved=preserved
    )
    multis = multi_cuts(board.ops, seed=seed, runs=s.multi)
    camp = Campaign(_settings_dict(s), seed, board.ops, space, dry_run_seconds=board.dry_run_seconds)
    for name, n in camp.classes().items():
        say(f"  {name}: {n} operations")
    say(
        f"{len(points)} single-cut points of {space} (every class and sector boundary, the rest sampled "
        f"with seed {seed}) + {len(multis)} multi-cut runs"
    )
    t0 = time.monotonic()
    for res in _iterate(board, points, multis, progress):
        camp.results.append(res)
        camp.seconds = time.monotonic() - t0
    say(summary(camp))
    return camp


def _iterate(
    board: Board, points: list[Point], multis: list[MultiCut], progress: bool
) -> Iterator[PointResult]:
    """Run every point and multi-cut run, with a rich progress bar (points/s) on a terminal."""
    from rig.campaign_report import progress_bar

    jobs: list[tuple[Point, tuple[tuple[int, str], ...]]] = [(p, ()) for p in points]
    jobs += [(m.first, m.then) for m in multis]
    with progress_bar(len(jobs), enabled=progress) as advance:
        for point, then in jobs:
            res = run_point(board, point, then)
            advance(res.outcome)
            yield res


def summary(camp: Campaign) -> str:
    """What the campaign found, in a few lines."""
    c = camp.counts
    lines = [
        f"{len(camp.results)} points (of {camp.space} single-cut points; seed {camp.seed}) in "
        f"{camp.seconds:.1f} s = {camp.points_per_second:.1f} points/s: "
        + ", ".join(f"{k} {n}" for k, n in c.items())
    ]
    for r in camp.bricked[:20]:
        lines.append(
            f"  BRICKED at op {r.op} ({r.mode}) {r.kind} 0x{r.address:08X}+{r.length} [{r.region}]"
            f"{' then ' + str(r.then) if r.then else ''}: {r.detail}"
        )
    return "\n".join(lines)


def _settings_dict(s: Settings) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, Path) else v for k, v in s.__dict__.items()}


# ---------------------------------------------------------------------------------- CLI
def register(sub: argparse._SubParsersAction) -> None:
    """``rig campaign power-cut ...``"""
    p = sub.add_parser("campaign", help="campaigns over a bootloader on the twin (power-cut)")
    csub = p.add_subparsers(dest="campaign", metavar="CAMPAIGN", required=True, parser_class=type(p))
    c = csub.add_parser(
        "power-cut",
        help="cut power at every flash operation of an update and check the board recovers",
        description="Dry-run one update on a twin, then cut power before, in the middle of and after "
        "its flash operations (every class and sector boundary, the rest sampled with the seed), "
        "plus seeded multi-cut runs; each cut must end in a verified app or a completed update.",
    )
    c.add_argument("--bootloader", type=Path, default=BUILD / "bootloader.bin")
    c.add_argument("--image", type=Path, default=BUILD / "app-v2-300k.bin", help="the update")
    c.add_argument("--old", type=Path, help="the app installed before (default: another reference app)")
    c.add_argument(
        "--seed", type=int, help="seed of the sampled points and multi-cuts (default: random, printed)"
    )
    c.add_argument(
        "--points", type=int, help="single-cut points in all (default 1000; 12 with --board nucleo)"
    )
    c.add_argument("--exhaustive", action="store_true", help="every operation, before and interrupted")
    c.add_argument("--multi", type=int, default=10, help="seeded multi-cut runs (3 cuts each; default 10)")
    c.add_argument("--transport", choices=("eth", "wifi"), default="eth")
    c.add_argument("--board-file", type=Path)
    c.add_argument("--timeout", type=float, help="seconds a board has to recover after a cut")
    c.add_argument("--out", type=Path, default=REPO / "reports" / "campaign", help="JSON, HTML, logs")
    lab = c.add_argument_group(
        "a real board (--board nucleo: slower and approximate; docs/power-cut-campaign.md)"
    )
    lab.add_argument(
        "--board", choices=("twin", "nucleo"), default="twin", help="where to cut (default twin)"
    )
    lab.add_argument("--probe-uid", help="the board's probe (default: the board file's, or the only one)")
    lab.add_argument("--serial-port", help="its console (default: found by the ST-LINK's USB serial)")
    lab.add_argument(
        "--ota-bind", help="HOST:PORT the OTA server listens on (checked against the board file)"
    )
    lab.add_argument(
        "--cut-at",
        default="halted",
        help="when to cut after reaching an operation: 'halted' (at once) and/or milliseconds after "
        "resuming, comma-separated (default halted)",
    )
    lab.add_argument("--allow-destructive", action="store_true", help="required with --board nucleo")
    lab.add_argument("--restore-after", action="store_true", help="put the board's flash back at the end")
    c.set_defaults(func=_cmd_power_cut)


def _cmd_power_cut(args: argparse.Namespace) -> int:
    from rig.campaign_report import write_reports

    s = Settings(
        bootloader=args.bootloader,
        image=args.image,
        old=args.old,
        seed=args.seed,
        points=None if args.exhaustive else (args.points or (12 if args.board == "nucleo" else 1000)),
        exhaustive=args.exhaustive,
        multi=args.multi,
        transport=args.transport,
        board_file=args.board_file,
        timeout=args.timeout,
        out_dir=args.out,
    )
    camp = _real_board(args, s) if args.board == "nucleo" else run(s)
    for path in write_reports(camp, s.out_dir):
        print(f"wrote {path}")
    return 1 if camp.bricked else 0


def _real_board(args: argparse.Namespace, s: Settings) -> Campaign:
    """``--board nucleo``: the campaign with the board file's power switch (rig/campaign_lab.py);
    single cuts only (the multi-cut runs are the twin's)."""
    from rig.campaign_lab import Lab, parse_offsets, run_lab

    if not args.allow_destructive:
        raise RigError(
            "a power-cut campaign on a real board erases and rewrites its flash and cuts its power "
            "hundreds of times; nothing was touched",
            hint="add --allow-destructive (the flash is saved first; --restore-after puts it back)",
        )
    if args.exhaustive:
        raise RigError(
            "--exhaustive is for the twin: on a real board every point is a real update and power cycle",
            hint="pass --points N (the seeded sample after the covered operations)",
        )
    lab = Lab(args.probe_uid, args.serial_port, args.ota_bind, parse_offsets(args.cut_at), args.restore_after)
    camp, _backup = run_lab(s, lab)
    print(summary(camp))
    return camp
