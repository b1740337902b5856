"""What a twin costs the host while its firmware waits (issue 18: `make test` is CPU-bound).

A twin's firmware spends most of a HIL test waiting: for the OTA server's data, for a retry
pause, for console input. Each wake-up of such a wait (the twin lets a waiting firmware run
every 2 ms so it sees its own timeouts; SysTick every 1 ms) runs the polling loop until the
twin recognises the wait again, and every device read on the way is a Python call. This
prints the host CPU per wall second of one in-process twin running, for a few seconds each:

- the reference bootloader with no app, dialling an OTA server nobody answers over Ethernet
  (its lwIP loop polls DMASR and CYCCNT);
- the same bootloader with the core halted (as the HIL plugin parks the board between tests).

Each case runs ``--runs`` times; the median and every run are printed. Goal (set here, not in
the issue): a waiting firmware costs at most 10 % of a core, a parked one about nothing.
Figures on 2026-12-06 (this 2-core machine, medians of 3 runs side by side): dialling 13.2 %
before the wait detectors counted the gap between reads in executed cycles, 7.5 % after
(5.9 % in a quieter run); parked 0.4 %.

Run: ``.venv/bin/python benchmarks/bench_idle.py [--seconds S] [--runs N]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from twin.board import Board, BoardOptions  # noqa: E402
from twin.loader import read_image  # noqa: E402

BOOTLOADER = REPO / "firmware" / "build" / "bootloader.elf"


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one(seconds: float, halted: bool) -> float:
    """Host CPU seconds per wall second of one twin, measured after a 1 s start."""
    board = Board(BoardOptions(pty=False))
    try:
        board.power_on(read_image(str(BOOTLOADER)))
        board.machine.start()
        time.sleep(1.0)  # past the bootloader's start-up and the PHY's negotiation
        if halted:
            with board.machine.host():
                board.machine.halt("debugger")
        c0, t0 = _cpu(), time.monotonic()
        time.sleep(seconds)
        return (_cpu() - c0) / (time.monotonic() - t0)
    finally:
        board.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=4.0, help="wall seconds measured per run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if not BOOTLOADER.is_file():
        sys.exit(f"{BOOTLOADER} missing: run `make -C firmware` (or `make setup`)")
    print("bench_idle: host CPU of one twin whose firmware waits (share of one core)")
    for name, halted, goal in (
        ("bootloader dialling, nobody answers", False, "<= 10 %"),
        ("same, core halted (parked)", True, "about 0"),
    ):
        runs = [one(args.seconds, halted) for _ in range(args.runs)]
        shown = ", ".join(f"{100 * r:.1f}" for r in runs)
        print(f"  {name:38s} median {100 * statistics.median(runs):5.1f} %  (runs: {shown})  goal {goal}")


if __name__ == "__main__":
    main()
