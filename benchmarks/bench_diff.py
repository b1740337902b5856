"""Time diff + diagnosis of 2 MiB against ``cmp -l`` on the same files. Prints figures only.

Cases: clean (identical), 1% scattered single-bit errors, one lost 1 KiB chunk (everything
after it shifted), 32-byte stale lines (an image received by DMA in 1 KiB packets into one
cached buffer: 2% of the 32-byte lines of each packet read back with the previous packet's
bytes). For each: ``rig.diff.analyze`` in process and ``cmp -l`` writing every differing byte
to a file (not to /dev/null: GNU cmp then stops at the first difference), run in turns, N
times each, and the median of each (the brief: side by side in one run, medians; best-of
figures flattered ``cmp -l``'s process start-up, whose spread is 2x on this machine), and
``rig diff --json`` as a process (which adds Python start-up), its median.
Each figure is printed beside its goal (issue 18): analyze() under a tenth of ``cmp -l``
on every case, and ``rig diff`` on the clean pair within 150 ms.

Run: ``.venv/bin/python benchmarks/bench_diff.py [--repeat N]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from rig.board import load_board
from rig.diff import analyze
from rig.image import padding_pattern

SIZE = 2 * 1024 * 1024
BASE = 0x08000000
#: goals (issue 18): analyze() / cmp -l, and rig diff on the clean pair (seconds)
RATIO_GOAL = 0.10
CLI_CLEAN_GOAL = 0.150


def make_cases() -> dict[str, tuple[bytes, bytes]]:
    """Expected and actual bytes for each case (deterministic)."""
    exp = padding_pattern(0, SIZE, seed=2024)
    rng = np.random.default_rng(1)
    flips = np.frombuffer(exp, np.uint8).copy()
    pos = rng.choice(SIZE, SIZE // 100, replace=False)
    flips[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)
    off, k = 0x50000 + 123, 1024
    shifted = exp[:off] + exp[off + k :] + b"\xff" * k
    return {
        "clean": (exp, exp),
        "1% scattered": (exp, flips.tobytes()),
        "one shifted chunk": (exp, shifted),
        "32-byte stale lines": (exp, stale_lines(exp, packet=1024, rate=0.02, seed=3)),
    }


def stale_lines(image: bytes, packet: int, rate: float, seed: int) -> bytes:
    """``image`` as a CPU reads it from a receive buffer a DMA refills with each ``packet``
    (32-byte aligned) without invalidating the D-cache: a ``rate`` of the buffer's 32-byte
    lines are still cached from the previous packet and give its bytes."""
    rng = np.random.default_rng(seed)
    act = np.frombuffer(image, np.uint8).copy()
    lines = np.flatnonzero(rng.random(len(image) // 32) < rate)
    lines = lines[lines * 32 >= packet]  # the first packet has no previous one
    for line in lines.tolist():
        act[32 * line : 32 * line + 32] = np.frombuffer(image, np.uint8)[
            32 * line - packet : 32 * line - packet + 32
        ]
    return act.tobytes()


def _met(value: float, goal: float) -> str:
    return "met" if value <= goal else "NOT met"


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def medians(n: int, *fns: Callable[[], object]) -> list[float]:
    """The median wall time (s) of each of ``fns``, run in turns ``n`` times (one noisy
    stretch of the machine slows all of them, not one)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for out, fn in zip(times, fns, strict=True):
            out.append(_timed(fn))
    return [statistics.median(t) for t in times]


def _run_to_file(cmd: list[str], path: Path) -> None:
    with open(path, "wb") as out:
        subprocess.run(cmd, stdout=out, timeout=300, check=False)


def main(argv: list[str] | None = None) -> int:
    """Print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15, help="runs per figure (the median is printed)")
    args = ap.parse_args(argv)
    layout = load_board().layout(False)
    cmp = shutil.which("cmp")
    rig_cmd = [sys.executable, "-m", "rig.cli", "diff"]
    print(f"diff + diagnose of {SIZE // 1024} KiB, medians of {args.repeat} runs in turns (ms)")
    print(
        f"{'case':<21}{'differing':>10}{'analyze()':>11}{'cmp -l':>9}{'analyze/cmp':>13}{'goal':>6}{'':<9}"
        f"{'rig diff':>10}  diagnosis"
    )
    with tempfile.TemporaryDirectory(prefix="bench_diff_") as tmp:
        for name, (exp, act) in make_cases().items():
            e_path, a_path = Path(tmp) / "e.bin", Path(tmp) / "a.bin"
            e_path.write_bytes(exp)
            a_path.write_bytes(act)
            res = analyze(exp, act, BASE, layout)
            run_analyze = partial(analyze, exp, act, BASE, layout)
            cli = [*rig_cmd, str(e_path), str(a_path), "--base", hex(BASE), "--json"]
            (t_cli,) = medians(
                args.repeat if name == "clean" else max(1, args.repeat // 3),
                partial(subprocess.run, cli, stdout=subprocess.DEVNULL, timeout=300, check=False),
            )
            cli_txt = f"{t_cli * 1e3:.1f}"
            if name == "clean":
                cli_txt += f" (goal {CLI_CLEAN_GOAL * 1e3:.0f}: {_met(t_cli, CLI_CLEAN_GOAL)})"
            if cmp:
                # to a real file: GNU cmp stops at the first difference when stdout is /dev/null
                cmp_cmd = [cmp, "-l", str(e_path), str(a_path)]
                run_cmp = partial(_run_to_file, cmp_cmd, Path(tmp) / "cmp.txt")
                t_an, t_cmp = medians(args.repeat, run_analyze, run_cmp)
                ratio = f"{t_an / t_cmp:.3f}"
                met = _met(t_an / t_cmp, RATIO_GOAL)
                cmp_txt = f"{t_cmp * 1e3:.1f}"
            else:
                (t_an,) = medians(args.repeat, run_analyze)
                cmp_txt, ratio, met = "n/a", "n/a", "n/a"
            print(
                f"{name:<21}{res.diff.differing:>10}{t_an * 1e3:>11.2f}{cmp_txt:>9}{ratio:>13}"
                f"{RATIO_GOAL:>6.2f} {met:<8}{cli_txt:>10}  [{', '.join(res.kinds()) or 'no diagnosis'}]"
            )
    print(
        f"goals: analyze() at most {RATIO_GOAL:.2f} x cmp -l on every case; 'rig diff' (a process, with "
        f"Python start-up) on the clean pair at most {CLI_CLEAN_GOAL * 1e3:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
