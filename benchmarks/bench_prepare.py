"""What the ``prepare`` step costs (issue 18): installing the previous image through the probe
before an update (:meth:`rig.hil.Bench.install_app_direct`, verify-before-write with the rig's
CRC-32 routine on the target, rig/flash_verify.py), and flashing the bootloader.

For each case it prints the median and every run, with the bytes skipped / written / read back
from the evidence note:

- unchanged: the app slot already holds the 512 KiB previous image (the common case between
  two update tests) — goal < 0.3 s on the twin;
- changed: the slot holds another 512 KiB image, so every sector is written and checked;
- the 512 KiB image written with plain pyOCD (smart flash, no CRC routine), as before;
- the bootloader, unchanged.

Run: .venv/bin/python benchmarks/bench_prepare.py [--runs N] [--timing datasheet|fast].
The twin runs with datasheet flash timing by default, like the HIL suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BUILD = REPO / "firmware" / "build"


def timed(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def line(what: str, runs: list[float], goal: str = "", note: str = "") -> None:
    all_runs = ", ".join(f"{x:.3f}" for x in runs)
    print(f"{what}: median {statistics.median(runs):.3f} s (runs: {all_runs}){goal}")
    if note:
        print(f"    last: {note}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--timing", default="datasheet", choices=("datasheet", "fast"))
    args = p.parse_args()

    from rig.board import load_board
    from rig.console import Console
    from rig.evidence import Evidence
    from rig.hil import Bench
    from rig.image import Image, load_image
    from rig.probe import Probe
    from rig.targets.twin import start_twin

    spec = load_board()
    base = spec.region(spec.ota.app_region).base
    prev = load_image(BUILD / "app-v3-512k.bin", base)
    other = load_image(BUILD / "app-v2-300k.bin", base)
    other = Image(other.data + prev.data[other.size :], base)  # 512 KiB, differs from byte 0
    bootloader = load_image(BUILD / "bootloader.bin", spec.region("bootloader").base)
    twin = start_twin(extra_args=["--timing", args.timing])
    try:
        with Probe(twin.probe_uid) as probe, Console(twin.serial_port) as con:
            bench = Bench(spec, twin, probe, con, Path(tempfile.mkdtemp(prefix="bench-prepare-")))
            bench.flash_bootloader(bootloader, Evidence())
            bench.evidence = ev = Evidence()

            def last_note() -> str:
                return next((n for n in reversed(ev.notes) if "app_slot" in n), "")

            bench.install_app_direct(prev)
            unchanged = timed(lambda: bench.install_app_direct(prev), args.runs)
            line(
                "prepare, previous 512 KiB image unchanged",
                unchanged,
                "   [goal < 0.3 s on the twin]",
                last_note(),
            )
            images = [prev, other]

            def alternate() -> Image:
                images.reverse()
                return images[0]

            changed = timed(lambda: bench.install_app_direct(alternate()), args.runs)
            line("prepare, previous 512 KiB image changed (all written)", changed, "", last_note())

            def plain(image: Image) -> None:
                probe.reset(halt=True)
                probe.flash(base, image.data)

            same = timed(lambda: plain(images[0]), args.runs)
            line("before: plain pyOCD write (smart flash) of the image already there", same)
            swapped = timed(lambda: plain(alternate()), args.runs)
            line("before: plain pyOCD write (smart flash) of another 512 KiB image", swapped)
            boot = timed(lambda: bench.flash_bootloader(bootloader, Evidence()), args.runs)
            line("flash_bootloader, unchanged", boot)
    finally:
        twin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
