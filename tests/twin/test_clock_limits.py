"""The clock configuration checked against the F767's limits (twin/clock_limits.py): too few
flash wait states for HCLK fault the core at once (on the board the core reads wrong
instructions from flash); HCLK over the voltage scale's limit, APB clocks over theirs and a
PLL outside its input and VCO ranges are logged once, the core runs on. Real Thumb-2 programs
set the clocks as ST's SystemClock_Config does (PLL to 216 MHz, over-drive, LATENCY 7)."""

from __future__ import annotations

import time

import pytest
from test_exc_bus_errors import FAULT_REC
from test_mpu_machine import DONE, record, word
from test_mpu_machine import run as run  # the fixture, shared with the MPU tests

from twin.clock_limits import ClockLimits, wait_states_needed
from twin.periph.pwr import Pwr
from twin.periph.rcc import Rcc

RCC_CR, RCC_PLLCFGR, RCC_CFGR, RCC_APB1ENR = 0x40023800, 0x40023804, 0x40023808, 0x40023840
#: HSI 16 MHz / M 8 = 2 MHz, x N 216 = VCO 432 MHz, / P 2 = 216 MHz (Q 9, R 2)
PLL_216 = 8 | (216 << 6) | (9 << 24) | (2 << 28)
APB_DIVS = (5 << 10) | (4 << 13)  # APB1 / 4 = 54 MHz, APB2 / 2 = 108 MHz


def clocks(latency: int, overdrive: bool = True, cfgr: int = APB_DIVS | 2, pllcfgr: int = PLL_216) -> str:
    """SystemClock_Config's steps: PWR clock, over-drive, LATENCY, PLL on, switch (``cfgr``)."""
    od = (
        """
    ldr r0, =0x40007000       @ PWR_CR1: ODEN, then ODSWEN
    ldr r1, [r0]
    orr r1, r1, #0x10000
    str r1, [r0]
    orr r1, r1, #0x20000
    str r1, [r0]
"""
        if overdrive
        else ""
    )
    return f"""
    ldr r0, =0x{RCC_APB1ENR:08X}
    ldr r1, [r0]
    orr r1, r1, #0x10000000   @ PWREN
    str r1, [r0]
{od}
    ldr r0, =0x40023C00       @ FLASH_ACR
    movs r1, #{latency}
    str r1, [r0]
    ldr r0, =0x{RCC_PLLCFGR:08X}
    ldr r1, =0x{pllcfgr:08X}
    str r1, [r0]
    ldr r0, =0x{RCC_CR:08X}
    ldr r1, [r0]
    orr r1, r1, #0x1000000    @ PLLON
    str r1, [r0]
    ldr r0, =0x{RCC_CFGR:08X}
    ldr r1, =0x{cfgr:08X}
    str r1, [r0]              @ SW = PLL
    movs r7, #7
"""


def settled(b, capsys) -> str:
    """The twin's log once 3 ms of board time have passed (the limits other than the wait
    states are looked at 1 ms after a change)."""
    clock = b.machine.clock
    with b.machine.host():
        until = clock.now_ns() + 3_000_000
    deadline = time.monotonic() + 10
    while True:
        with b.machine.host():
            if clock.now_ns() >= until:
                break
        assert time.monotonic() < deadline, "board time stood still"
        time.sleep(0.01)
    return capsys.readouterr().err


def test_216_mhz_with_too_few_wait_states_faults_the_next_fetch(run, capsys) -> None:
    b = run(clocks(latency=5), handlers={3: "fault_rec", 5: "fault_rec"}, extra=FAULT_REC)
    cfsr, hfsr, pc = record(b)[:3]
    assert cfsr & (1 << 8) and not cfsr & (1 << 15), hex(cfsr)  # IBUSERR, no BFAR
    assert hfsr & (1 << 30), hex(hfsr)  # FORCED: BusFault is not enabled
    with b.machine.host() as m:
        assert m.bus_read(pc, 2) == bytes.fromhex("0727")  # the movs after the switch
    err = settled(b, capsys)
    assert "HCLK is 216 MHz with FLASH_ACR.LATENCY = 5 wait state(s): flash needs 7" in err
    assert "FLASH_LATENCY_7" in err
    assert "above the" not in err  # over-drive on, APB1 54 MHz, APB2 108 MHz: in specification


def test_st_order_latency_first_runs_without_a_word(run, capsys) -> None:
    b = run(clocks(latency=7), handlers={3: "fault_rec", 5: "fault_rec"}, extra=FAULT_REC)
    assert word(b, DONE) == 0xD0DE and record(b)[0] == 0
    assert b.machine.core_hz == 216_000_000
    err = settled(b, capsys)
    assert "wait state" not in err and "above the" not in err and "PLL" not in err


def test_lowering_latency_under_the_clock_faults(run, capsys) -> None:
    body = (
        clocks(latency=7)
        + """
    ldr r0, =0x40023C00
    movs r1, #6
    str r1, [r0]              @ LATENCY 6 at 216 MHz
    movs r6, #6
"""
    )
    b = run(body, handlers={3: "fault_rec"}, extra=FAULT_REC)
    cfsr, _, pc = record(b)[:3]
    assert cfsr & (1 << 8), hex(cfsr)
    with b.machine.host() as m:
        assert m.bus_read(pc, 2) == bytes.fromhex("0626")  # movs r6, #6
    assert "LATENCY = 6 wait state(s): flash needs 7" in capsys.readouterr().err


def test_hpre_divides_hclk_for_the_wait_states(run, capsys) -> None:
    """HAL_RCC_ClockConfig switches with AHB / 16 (13.5 MHz: 0 wait states are enough), then
    sets AHB / 1: only that store makes HCLK 216 MHz."""
    body = (
        clocks(latency=0, cfgr=APB_DIVS | (0xB << 4) | 2)
        + f"""
    ldr r0, =0x{RCC_CFGR:08X}
    ldr r1, =0x{APB_DIVS | 2:08X}
    str r1, [r0]              @ HPRE / 1
    movs r5, #5
"""
    )
    b = run(body, handlers={3: "fault_rec"}, extra=FAULT_REC)
    cfsr, _, pc = record(b)[:3]
    assert cfsr & (1 << 8), hex(cfsr)
    with b.machine.host() as m:
        assert m.bus_read(pc, 2) == bytes.fromhex("0525")  # after the HPRE store, not the switch
    assert "HCLK is 216 MHz with FLASH_ACR.LATENCY = 0" in capsys.readouterr().err


def test_216_mhz_without_over_drive_is_logged_once_and_runs(run, capsys) -> None:
    body = (
        clocks(latency=7, overdrive=False)
        + f"""
    ldr r0, =0x{RCC_CFGR:08X}
    ldr r1, [r0]
    str r1, [r0]              @ the same configuration again: said once
"""
    )
    b = run(body, handlers={3: "fault_rec"}, extra=FAULT_REC)
    assert word(b, DONE) == 0xD0DE and record(b)[0] == 0
    err = settled(b, capsys)
    assert err.count("HCLK is 216 MHz, above the 180 MHz voltage scale 1 allows without over-drive") == 1
    assert "HAL_PWREx_EnableOverDrive" in err
    assert err.count("APB1 (PCLK1) is 54 MHz, above the 45 MHz") == 1
    assert "APB2 (PCLK2) is 108 MHz, above the 90 MHz" in err and "RCC_HCLK_DIV4" in err


def test_pll_input_and_vco_out_of_range_are_logged(run, capsys) -> None:
    # HSI / M 4 = 4 MHz in (over 2.1); x N 120 = VCO 480 MHz (over 432), / P 8 = 60 MHz
    pll = 4 | (120 << 6) | (3 << 16) | (9 << 24) | (2 << 28)
    b = run(clocks(latency=1, pllcfgr=pll, cfgr=2), handlers={3: "fault_rec"}, extra=FAULT_REC)
    assert word(b, DONE) == 0xD0DE and b.machine.core_hz == 60_000_000
    err = settled(b, capsys)
    assert "the PLL's input is 4 MHz (16 MHz / PLLM 4), outside 0.95-2.1 MHz" in err
    assert "the PLL's VCO runs at 480 MHz (input x PLLN 120), outside 100-432 MHz" in err
    assert "APB1 (PCLK1) is 60 MHz" in err  # no APB divider at 60 MHz


def test_a_debugger_write_only_logs(run, capsys) -> None:
    b = run(clocks(latency=7), handlers={3: "fault_rec"}, extra=FAULT_REC)
    with b.machine.host() as m:
        m.bus_write(0x40023C00, (0).to_bytes(4, "little"))  # the probe lowers LATENCY
    assert record(b)[0] == 0
    err = capsys.readouterr().err
    assert "LATENCY = 0 wait state(s): flash needs 7" in err and "a debugger's write" in err


# ------------------------------------------------------------------ the rules alone


class _Flash:
    def __init__(self) -> None:
        self.acr = 0
        self.config_listeners: list = []


class _Services:
    """The log, and a scheduler whose events the test runs (``due``)."""

    core_hz = 16_000_000

    def __init__(self) -> None:
        self.logs: list[str] = []
        self.events: list = []

    def log(self, message: str) -> None:
        self.logs.append(message)

    def schedule(self, delay: int, callback) -> object:
        self.events.append(callback)
        return callback

    def due(self) -> None:
        events, self.events = self.events, []
        for callback in events:
            callback()


@pytest.mark.parametrize(
    ("mhz", "ws"),
    [(16, 0), (30, 0), (31, 1), (60, 1), (90, 2), (120, 3), (150, 4), (180, 5), (210, 6), (216, 7)],
)
def test_wait_states_follow_rm0410_at_3v3(mhz: int, ws: int) -> None:
    assert wait_states_needed(mhz * 1_000_000) == ws


def test_a_reset_forgets_what_was_said_and_faults_again() -> None:
    rcc, pwr, flash, sv = Rcc(), Pwr(), _Flash(), _Services()
    faults: list[object] = []
    ClockLimits(rcc, pwr, flash, sv, lambda *a: faults.append(a) or True)

    def to_216() -> None:
        rcc.write(0x04, 4, PLL_216)
        rcc.write(0x00, 4, rcc.read(0x00, 4) | 1 << 24)
        rcc.write(0x08, 4, 2)  # no APB dividers, no over-drive: three findings

    to_216()
    assert len(faults) == 1 and len(sv.logs) == 1 and len(sv.events) == 1  # the rest: 1 ms later
    sv.due()
    assert len(sv.logs) == 4
    rcc.write(0x08, 4, 2)
    sv.due()
    assert len(faults) == 1 and len(sv.logs) == 4  # still the same: nothing more
    rcc.reset("system")
    to_216()
    sv.due()
    assert len(faults) == 2 and len(sv.logs) == 8


def test_apb_clocks_divided_soon_after_the_switch_are_not_reported() -> None:
    """ST's LL SystemClock_Config: SYSCLK to the PLL with APB1 = APB2 = HCLK, then the
    dividers; the look 1 ms later finds them in specification."""
    rcc, pwr, flash, sv = Rcc(), Pwr(), _Flash(), _Services()
    ClockLimits(rcc, pwr, flash, sv, lambda *a: True)
    pwr.write(0x00, 4, pwr.read(0x00, 4) | 0x30000)  # over-drive
    flash.acr = 7
    rcc.write(0x04, 4, PLL_216)
    rcc.write(0x00, 4, rcc.read(0x00, 4) | 1 << 24)
    rcc.write(0x08, 4, 2)
    rcc.write(0x08, 4, 2 | APB_DIVS)
    sv.due()
    assert sv.logs == []
