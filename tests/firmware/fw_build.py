"""Build helpers shared by the firmware tests (tests/firmware/test_fw_*.py)."""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware"
BUILD = FIRMWARE / "build"

VARIANTS = (
    "erase-first-sector-only",
    "token-at-chunk-start",
    "nul-past-buffer",
    "no-app-erase",
    "malloc-whole-image",
    "entry-from-stack",
    "jump-from-irq",
    "irq-left-enabled",
    "no-vtor",
    "crc-wrong-area",
    "size-unparsed",
    "mpu-left-on",
    "primask-left-set",
    "iwdg-left-on",
    "sector-count-on-boundary",
    "crc-tail-ignored",
    "size-check-after-erase",
    "writes-own-sector",
    "config-magic-only",
)
APPS = {1: 16, 2: 300, 3: 512, 4: 64}  # version -> KiB


def make(*goals: str, timeout: float = 900.0, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run ``make -C firmware <goals>``; raise with the compiler output if it fails.

    Raises:
        RuntimeError: the toolchain is missing or the build failed.
    """
    for tool in ("make", "arm-none-eabi-gcc", "gcc"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} not found: install it (Debian: apt-get install "
                "gcc-arm-none-eabi make gcc) to build firmware/"
            )
    # one make at a time in the tree (xdist workers, parallel runs): two would write the
    # same objects at once and one could link a half-written file
    with open(FIRMWARE / ".make.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(
            # the Makefile's helper scripts run with this interpreter, not whatever python3 is on PATH
            ["make", "-C", str(FIRMWARE), "-j2", f"PYTHON={sys.executable}", *extra, *goals],
            check=False,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"make {' '.join(goals)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc
