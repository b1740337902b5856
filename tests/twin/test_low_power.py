"""Stop mode (twin/low_power.py): firmware/progs/lowpower enters it the way HAL_PWR_EnterSTOPMode
does, at 48 MHz with SysTick at 1 kHz. Without DBGMCU_CR.DBG_STOP the core, SysTick and
CYCCNT stand still until the RTC's wake-up timer (EXTI line 22) wakes it, on the HSI with
the PLL off; with DBG_STOP (pyOCD's setting) it sleeps on the HSI and SysTick wakes it.
Before session 23 the twin treated SLEEPDEEP as a plain sleep: SysTick woke it at once and
the clock stayed at 48 MHz."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from twin.board import Board, BoardOptions
from twin.loader import read_image
from twin.periph import Iwdg, Rcc, Rtc
from twin.periph.timers import all_timers

FW = Path(__file__).resolve().parents[2] / "firmware"
ROUND = re.compile(r"LP: ([AB]) sws=(\d+) pll=(\d+) ticks=(\d+) cycles=(\d+) rtc=(\d+) (PASS|FAIL)")


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def test_stop_mode_stops_the_core_until_the_rtc_wakes_it_and_returns_on_the_hsi(board: Board) -> None:
    proc = subprocess.run(
        ["make", "-C", str(FW), "build/lowpower.elf"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    board.power_on(read_image(str(FW / "build" / "lowpower.elf")))
    m = board.machine
    m.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and b"LP: DONE" not in bytes(board.usart.tx_log):
        assert not m.is_locked_up(), m.lockup_reason
        time.sleep(0.01)
    text = bytes(board.usart.tx_log).decode("latin-1")
    rounds = {r[0]: r for r in ROUND.findall(text)}
    assert set(rounds) == {"A", "B"}, text
    _, sws, pll, ticks, cycles, rtc, verdict = rounds["A"]
    assert (sws, pll, rtc, verdict) == ("0", "0", "1", "PASS"), text
    assert int(ticks) <= 1 and int(cycles) < 1000  # the core and SysTick stood still
    _, sws, pll, ticks, _cycles, rtc, verdict = rounds["B"]
    assert (sws, pll, rtc, verdict) == ("0", "0", "0", "PASS"), text  # SysTick woke it first
    assert m.low_power.entries == 1  # round B only slept


def test_in_stop_the_rtc_and_iwdg_count_wall_time_and_the_timers_do_not() -> None:
    for dev in (Rtc(), Iwdg(), *all_timers()):
        dev.stopped.update("stop")
        assert dev.stopped.counting == isinstance(dev, (Rtc, Iwdg)), dev.name
        dev.stopped.update(None)


def test_stop_exit_gives_the_reset_clock_configuration() -> None:
    from twin.testing import ServicesDouble

    s = ServicesDouble()
    rcc = Rcc()
    s.add(rcc)
    rcc.write(0x00, 4, rcc.read(0x00, 4) | 1 << 16 | 1 << 24)  # HSEON, PLLON
    rcc.write(0x04, 4, 1 << 22 | 8 | 216 << 6 | 2 << 16)  # PLL from HSE
    rcc.write(0x08, 4, (9 << 4) | (5 << 10) | (4 << 13) | 2)  # prescalers, SW = PLL
    assert rcc.read(0x08, 4) >> 2 & 3 == 2
    rcc.stop_exit()
    cr, cfgr = rcc.read(0x00, 4), rcc.read(0x08, 4)
    assert cfgr & 0xF == 0 and cr & 3 == 3  # SW = SWS = HSI, HSION and HSIRDY
    assert not cr & (1 << 16 | 1 << 17 | 1 << 24 | 1 << 25)  # HSE and PLL off, not ready
    assert cfgr >> 4 == (9 | 5 << 6 | 4 << 9)  # the prescalers stay
    assert s.core_hz == 16_000_000 // 4  # HPRE /4 of the HSI
