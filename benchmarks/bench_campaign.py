"""Points per second of the power-cut campaign on the twin, with the goal (≥ 5) beside it.

Runs ``rig.campaign.run`` (a twin of its own, the dry run, the covered points plus a sample)
on the reference bootloader and prints: the points/s over all points, and split by what the
board did after the cut — a point where it booted an application costs a boot and a probe
readback; a point where it asked for the update again costs the whole re-download (the
reference bootloader restarts every interrupted update from the beginning), which no
snapshot can skip. Also the dry run's duration and a replay's cost in the twin.

Run: ``.venv/bin/python benchmarks/bench_campaign.py [--image firmware/build/app-v1-16k.bin]
[--points 40] [--bootloader ...] [--seed N]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from rig.campaign import BUILD, Settings, run

GOAL = 5.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bootloader", type=Path, default=BUILD / "bootloader.bin")
    ap.add_argument("--image", type=Path, default=BUILD / "app-v1-16k.bin")
    ap.add_argument("--points", type=int, default=40)
    ap.add_argument("--multi", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(
            bootloader=args.bootloader,
            image=args.image,
            seed=args.seed,
            points=args.points,
            multi=args.multi,
            out_dir=Path(tmp),
        )
        camp = run(s, say=lambda line: None, progress=False)
    by: dict[str, list[float]] = {}
    for r in camp.results:
        by.setdefault(r.outcome, []).append(r.seconds)
    rate = camp.points_per_second
    print(f"image {args.image.name}: {len(camp.ops)} flash operations, dry run {camp.dry_run_seconds:.1f} s")
    print(
        f"campaign: {len(camp.results)} points in {camp.seconds:.1f} s = {rate:.2f} points/s "
        f"(goal >= {GOAL:g}: {'met' if rate >= GOAL else 'NOT met'})"
    )
    for outcome, secs in sorted(by.items()):
        per = statistics.median(secs)
        print(f"  {outcome:14s} {len(secs):4d} points, median {per:.3f} s = {1 / per:.1f} points/s")
    print(f"bricked: {len(camp.bricked)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
