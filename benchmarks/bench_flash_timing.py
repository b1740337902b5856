"""What datasheet flash timing costs on the twin (issue 15: 8).

The HIL suite runs the twin with ``--timing datasheet`` by default: a 256 KiB sector erase
holds BSY ~2 s, 32 KiB ~0.25 s, a word program 16 us (twin/flash.py), so the rig's timeouts
(install 20 s + 0.05 s/KiB, ready 60 s) meet silicon-like durations. ``--twin-timing fast``
makes flash instant (development). This prints, for both timings:

- stock pyOCD programming through the probe: the 128 KiB bootloader, a 512 KiB app;
- the wall time and outcome of HIL update scenarios (default ``-k "update and (16k or 300k)"``
  over both transports), each in its own pytest run.

Run: .venv/bin/python benchmarks/bench_flash_timing.py [--select EXPR] [--transport both]
     [--no-suite]. Figures vary with the machine's load (2 shared cores here).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TIMINGS = ("fast", "datasheet")


def probe_figures(timing: str) -> dict[str, float]:
    """Seconds to program the bootloader (128 KiB region) and a 512 KiB app through pyOCD."""
    from rig.probe import Probe
    from rig.targets.twin import start_twin

    build = REPO / "firmware" / "build"
    twin = start_twin(extra_args=["--timing", timing])
    out: dict[str, float] = {}
    try:
        with Probe(twin.probe_uid) as p:
            p.reset(halt=True)
            for name, address, data in (
                ("bootloader 128 KiB region", 0x08000000, (build / "bootloader.bin").read_bytes()),
                ("app 512 KiB", 0x08040000, (build / "app-v3-512k.bin").read_bytes()),
            ):
                t0 = time.monotonic()
                p.flash(address, data)
                out[f"pyOCD flash {name}"] = time.monotonic() - t0
    finally:
        twin.stop()
    return out


def suite_figures(timing: str, select: str, transport: str) -> tuple[float, str]:
    """(seconds, pytest's last line) of one HIL run."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.monotonic()
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "-q"),
                *("-k", select, "--transport", transport, "--twin-timing", timing),
                *("--report-dir", tmp, "--html", f"{tmp}/r.html", "--junitxml", f"{tmp}/j.xml"),
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        seconds = time.monotonic() - t0
    last = [ln for ln in proc.stdout.splitlines() if re.search(r"\d+ (passed|failed|error)", ln)]
    return seconds, (last[-1].strip("= ") if last else f"exit {proc.returncode}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--select", default="update and (16k or 300k)", help="pytest -k of the HIL scenarios")
    ap.add_argument("--transport", default="both", choices=("eth", "wifi", "both"))
    ap.add_argument("--no-suite", action="store_true", help="only the probe figures")
    args = ap.parse_args()
    probe = {t: probe_figures(t) for t in TIMINGS}
    for name in probe["fast"]:
        fast, ds = probe["fast"][name], probe["datasheet"][name]
        print(f"{name:<40} fast {fast:6.1f} s   datasheet {ds:6.1f} s   (x{ds / fast:.1f})")
    if args.no_suite:
        return 0
    results = {t: suite_figures(t, args.select, args.transport) for t in TIMINGS}
    for t in TIMINGS:
        seconds, last = results[t]
        print(
            f"HIL -k {args.select!r} --transport {args.transport} --twin-timing {t:<9} {seconds:6.1f} s  ({last})"
        )
    fast, ds = results["fast"][0], results["datasheet"][0]
    print(f"datasheet timing costs {ds - fast:+.1f} s ({(ds / fast - 1) * 100:+.0f} %) on this selection")
    return 0


if __name__ == "__main__":
    sys.exit(main())
