"""Control `power.cut {"after_ms": T}`: a power cut at a virtual time (a relay pulse)."""

from __future__ import annotations

import time
from pathlib import Path

from rig.targets.twin import start_twin

REPO = Path(__file__).resolve().parents[2]


def _power_resets(t) -> list:
    return [r for r in t.control("status")["resets"] if r["kind"] == "power"]


def test_timed_power_cut_fires_once_and_can_be_cancelled(tmp_path: Path) -> None:
    # a running firmware: virtual time only advances while the core runs
    boot = REPO / "firmware" / "build" / "bootloader.bin"
    t = start_twin(extra_args=["--load", f"{boot}@0x08000000"], log_path=tmp_path / "twin.log")
    try:
        before = len(_power_resets(t))
        armed = t.control("power.cut", after_ms=50)
        assert armed["armed"] is True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_power_resets(t)) == before:
            time.sleep(0.05)
        after = _power_resets(t)
        assert len(after) == before + 1, "the armed power cut did not happen"
        cut = t.control("flash")["cuts"][-1]
        assert cut["kind"] == "time" and cut["time_ns"] >= armed["at_ns"]
        # armed and cancelled: nothing happens
        t.control("power.cut", after_ms=100)
        t.control("power.cut", cancel=True)
        time.sleep(0.5)
        assert len(_power_resets(t)) == before + 1
    finally:
        t.stop()
