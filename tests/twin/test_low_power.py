"""Stop mode (twin/low_power.py): firmware/progs/lowpower enters it the way HAL_PWR_EnterSTOPMode
does, at 40 MHz with SysTick at 1 kHz. Without DBGMCU_CR.DBG_STOP the core, SysTick and
CYCCNT stand still until the RTC's wake-up timer (EXTI line 22) wakes it, on the HSI with
the PLL off; with DBG_STOP (pyOCD's setting) it sleeps on the HSI and SysTick wakes it.
Before session 23 the twin treated SLEEPDEEP as a plain sleep: SysTick woke it at once and
the clock stayed at 40 MHz."""

from __future__ import annotations

import re
import time

import pytest
from fw_progs import boot, wait_for

from twin.board import Board, BoardOptions
from twin.periph import Iwdg, Rcc, Rtc, press_button
from twin.periph.timers import all_timers

ROUND = re.compile(
    r"LP: ([ABC]) sws=(\d+) pll=(\d+) ticks=(\d+) cycles=(\d+) rtc=(\d+) button=(\d+) (PASS|FAIL)"
)


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def test_stop_mode_stops_the_core_until_an_exti_line_wakes_it_on_the_hsi(board: Board) -> None:
    boot(board, "lowpower")
    m = board.machine
    m.start()
    wait_for(board, b"LP: C waiting for the button")
    deadline = time.monotonic() + 10
    while not m.runner.deep_stop:  # it enters Stop once the line has left the USART
        assert time.monotonic() < deadline, "never entered Stop"
        time.sleep(0.01)
    before = m.now_ns()
    time.sleep(0.3)  # the board stays in Stop: no output, no board time
    assert m.runner.deep_stop and b"LP: C sws" not in bytes(board.usart.tx_log)
    assert m.now_ns() == before
    m.post(lambda: press_button(m.device, True))
    m.post(lambda: press_button(m.device, False))
    text = wait_for(board, b"LP: reset by the IWDG")
    rounds = {r[0]: r for r in ROUND.findall(text)}
    assert set(rounds) == {"A", "B", "C"}, text
    _, sws, pll, ticks, cycles, rtc, button, verdict = rounds["A"]  # the RTC woke it
    assert (sws, pll, rtc, button, verdict) == ("0", "0", "1", "0", "PASS"), text
    assert int(ticks) <= 1 and int(cycles) < 1000  # the core and SysTick stood still
    _, sws, pll, ticks, _cycles, rtc, button, verdict = rounds["B"]  # SysTick woke it first
    assert (sws, pll, rtc, button, verdict) == ("0", "0", "0", "0", "PASS"), text
    _, sws, pll, ticks, cycles, rtc, button, verdict = rounds["C"]  # the button woke it
    assert (sws, pll, rtc, button, verdict) == ("0", "0", "0", "1", "PASS"), text
    assert int(cycles) < 1000
    # D: Stop with nothing to wake it but the IWDG, which counts on the LSI and resets
    assert "LP: D stop with the IWDG running" in text and "woke up without a reset" not in text
    assert m.device("rcc").last_reset_cause() == "iwdg"
    assert m.low_power.entries == 3  # A, C and D; B only slept


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
