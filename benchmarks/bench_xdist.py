"""pytest-xdist on the HIL suite (issue 18): a subset of tests_hil at ``-n 0`` and at ``-n 2``
(each worker drives its own twin), wall time of each run and the speed-up, goal >= 1.7x
(Espressif's published figure for pytest-embedded is 1.76x).

Run: .venv/bin/python benchmarks/bench_xdist.py [--select EXPR] [--workers 2] [--runs 1].
The default subset has six short scenarios over both transports. Figures vary with the
machine's load (2 shared cores here: two twins plus two pytest processes compete for them).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT = "(test_ota_update and 16k) or (test_edge_sizes and (one_byte or oversize))"


def run(select: str, workers: int) -> tuple[float, str]:
    """Wall seconds of one pytest run of the subset and its summary line."""
    with tempfile.TemporaryDirectory(prefix="bench-xdist-") as d:
        cmd = [sys.executable, "-m", "pytest", "tests_hil", "-k", select, "-q", "-p", "no:cacheprovider"]
        cmd += ["-n", str(workers), "--report-dir", d]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=3600, check=False)
        wall = time.perf_counter() - t0
    lines = [ln for ln in proc.stdout.splitlines() if " in " in ln and ("passed" in ln or "failed" in ln)]
    summary = lines[-1].strip("= ") if lines else f"exit {proc.returncode}"
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
    return wall, summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--select", default=DEFAULT, help="pytest -k expression (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--runs", type=int, default=1)
    args = p.parse_args()
    serial, parallel = [], []
    for _ in range(args.runs):  # interleaved, so a change of load hits both alike
        wall, summary = run(args.select, 0)
        serial.append(wall)
        print(f"-n 0: {wall:.1f} s ({summary})", flush=True)
        wall, summary = run(args.select, args.workers)
        parallel.append(wall)
        print(f"-n {args.workers}: {wall:.1f} s ({summary})", flush=True)
    s, q = statistics.median(serial), statistics.median(parallel)
    print(f"HIL subset -k {args.select!r}: -n 0 {s:.1f} s, -n {args.workers} {q:.1f} s (medians)")
    print(f"speed-up {s / q:.2f}x   [goal >= 1.7x]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
