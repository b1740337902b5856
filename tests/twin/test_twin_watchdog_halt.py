"""The watchdogs keep counting while the core is halted, unless DBGMCU freezes them.

End to end: a twin process, stock pyOCD through the rig's Probe, the IWDG started by
debugger writes while the core is halted, wall time waited with the core still halted.
"""

from __future__ import annotations

import time
from pathlib import Path

from rig.probe import DBG_IWDG_STOP, DBG_WWDG_STOP, DBGMCU_APB1_FZ, Probe
from rig.targets.twin import start_twin

REPO = Path(__file__).resolve().parents[2]
IWDG_KR, IWDG_PR, IWDG_RLR = 0x40003000, 0x40003004, 0x40003008


def _iwdg_resets(t) -> int:
    return sum(1 for r in t.control("status")["resets"] if r["cause"] == "iwdg")


def _start_iwdg_100ms(p: Probe) -> None:
    p.write32(IWDG_KR, 0x5555)
    p.write32(IWDG_PR, 0)  # LSI/4: 125 µs per tick
    p.write32(IWDG_RLR, 799)  # 800 ticks = 100 ms
    p.write32(IWDG_KR, 0xCCCC)


def _wait_for(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def test_iwdg_resets_a_halted_core_unless_the_probe_freezes_it(tmp_path: Path) -> None:
    boot = REPO / "firmware" / "build" / "bootloader.bin"
    t = start_twin(extra_args=["--load", f"{boot}@0x08000000"], log_path=tmp_path / "twin.log")
    try:
        # 1. no freeze (stock pyOCD leaves DBGMCU_APB1_FZ at 0): the halted board resets
        with Probe(t.probe_uid, freeze_watchdogs=False) as p:
            assert p.is_halted()
            assert p.read32(DBGMCU_APB1_FZ) & DBG_IWDG_STOP == 0
            before = _iwdg_resets(t)
            _start_iwdg_100ms(p)
            assert _wait_for(lambda: _iwdg_resets(t) > before, 5.0), (
                "the IWDG did not reset the board during a 100 ms+ debug halt"
            )
        assert "core halted: DBGMCU_APB1_FZ.DBG_IWDG_STOP is clear" in (tmp_path / "twin.log").read_text()

        # 2. the rig's default: both watchdogs frozen while halted
        with Probe(t.probe_uid) as p:
            assert p.is_halted() and p.watchdogs_frozen()
            assert p.read32(DBGMCU_APB1_FZ) & (DBG_IWDG_STOP | DBG_WWDG_STOP) == DBG_IWDG_STOP | DBG_WWDG_STOP
            before = _iwdg_resets(t)
            _start_iwdg_100ms(p)
            time.sleep(0.6)  # six timeouts, core halted
            assert _iwdg_resets(t) == before and p.is_halted()
            p.resume()  # the bootloader never feeds it
            assert _wait_for(lambda: _iwdg_resets(t) > before, 5.0), (
                "the IWDG did not count again after the core resumed"
            )
    finally:
        t.stop()


def test_tim6_counts_during_a_halt_until_dbgmcu_stops_it(tmp_path: Path) -> None:
    boot = REPO / "firmware" / "build" / "bootloader.bin"
    t = start_twin(extra_args=["--load", f"{boot}@0x08000000"], log_path=tmp_path / "twin.log")
    tim6 = 0x40001000
    try:
        with Probe(t.probe_uid, freeze_watchdogs=False) as p:
            assert p.is_halted()  # halted at reset: HSI 16 MHz
            p.write32(0x40023840, p.read32(0x40023840) | 1 << 4)  # RCC_APB1ENR.TIM6EN
            p.write32(tim6 + 0x28, 15_999)  # PSC: 1 kHz
            p.write32(tim6 + 0x2C, 0xFFFF)  # ARR
            p.write32(tim6 + 0x14, 1)  # UG loads PSC
            p.write32(tim6 + 0x00, 1)  # CEN
            first = p.read32(tim6 + 0x24)
            time.sleep(0.3)
            moved = p.read32(tim6 + 0x24) - first
            assert 200 <= moved <= 2000, f"TIM6 moved {moved} ms-ticks in 300 ms of halt"
            p.write32(DBGMCU_APB1_FZ, p.read32(DBGMCU_APB1_FZ) | 1 << 4)  # DBG_TIM6_STOP
            held = p.read32(tim6 + 0x24)
            time.sleep(0.3)
            assert p.read32(tim6 + 0x24) == held and p.is_halted()
    finally:
        t.stop()
