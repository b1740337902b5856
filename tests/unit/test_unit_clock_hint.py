"""rig/clock_hint.py: HCLK from RCC's registers and the flash wait states it needs (RM0410),
and the sentence rig/crash_hint.py adds to a crash when FLASH_ACR.LATENCY is too low."""

from __future__ import annotations

import pytest
from test_unit_crash_hint import MSP, FakeProbe, frame

from rig.clock_hint import (
    FLASH_ACR,
    RCC_CFGR,
    RCC_PLLCFGR,
    hclk,
    too_few_wait_states,
    wait_states_needed,
)
from rig.crash_hint import crashed

#: ST's NUCLEO-F767ZI SystemClock_Config: HSE bypass 8 MHz / M 4 x N 216 / P 2 = 216 MHz
PLL_HSE_216 = 4 | (216 << 6) | (1 << 22) | (9 << 24) | (2 << 28)
#: the reference firmware's board_clock_set(32 MHz): HSI / M 8 x N 32 / P 4 (PLLP code 1)
PLL_HSI_32 = 8 | (64 << 6) | (1 << 16) | (4 << 24) | (2 << 28)


@pytest.mark.parametrize(
    ("pllcfgr", "cfgr", "hz"),
    [
        (0x24003010, 0x0, 16_000_000),  # reset: HSI
        (PLL_HSE_216, 0x8 | (5 << 10) | (4 << 13), 216_000_000),  # SWS = PLL, APB dividers
        (PLL_HSE_216, 0x8 | (0xB << 4), 13_500_000),  # AHB / 16 while switching
        (PLL_HSI_32, 0x8, 32_000_000),
        (0x24003000, 0x8, 0),  # PLLM 0: no clock
        (0, 0x4, 8_000_000),  # HSE straight
    ],
)
def test_hclk_follows_the_clock_tree(pllcfgr: int, cfgr: int, hz: int) -> None:
    assert hclk(pllcfgr, cfgr)[0] == hz


def test_wait_states_are_one_per_30_mhz() -> None:
    assert [wait_states_needed(m * 1_000_000) for m in (16, 30, 31, 180, 181, 216)] == [0, 0, 1, 5, 6, 7]


def words(latency: int, cfgr: int = 0x8, pllcfgr: int = PLL_HSE_216) -> dict[int, int]:
    return {RCC_PLLCFGR: pllcfgr, RCC_CFGR: cfgr, FLASH_ACR: latency}


def test_enough_wait_states_say_nothing() -> None:
    assert too_few_wait_states(words(7).__getitem__) is None
    assert too_few_wait_states(words(0, cfgr=0).__getitem__) is None  # HSI 16 MHz needs none


def test_too_few_name_the_clock_and_the_fix() -> None:
    text = too_few_wait_states(words(5).__getitem__)
    assert text is not None
    assert "FLASH_ACR.LATENCY is 5 wait state(s) at HCLK 216 MHz" in text
    assert (
        "the PLL from the HSE (8 MHz as on a NUCLEO / M 4 x N 216 / P 2)" in text
        and "FLASH_LATENCY_7" in text
    )
    # a board with a 25 MHz crystal and PLLM 25: 216 MHz, not the 69 MHz the NUCLEO's HSE gives
    pll25 = 25 | (432 << 6) | (1 << 22) | (9 << 24)
    assert too_few_wait_states(words(2, pllcfgr=pll25).__getitem__) is None
    other = too_few_wait_states(words(2, pllcfgr=pll25).__getitem__, hse_hz=25_000_000)
    assert other is not None and "HCLK 216 MHz (the PLL from the HSE (25 MHz given / M 25" in other
    # those registers with the NUCLEO's HSE assumed on a 4 MHz board: 432 MHz cannot be, nothing said
    assert too_few_wait_states(words(7, pllcfgr=2 | (216 << 6) | (1 << 22)).__getitem__) is None


def test_a_crash_with_too_few_wait_states_says_so() -> None:
    regs = {"xpsr": 0x01000003, "pc": 0x08000200, "lr": 0xFFFFFFF9, "msp": MSP}
    probe = FakeProbe(regs, {0xE000ED28: 1 << 8, 0xE000ED2C: 1 << 30, **words(0)}, frame(0x08000300))
    text, _ = crashed(probe)
    assert "IBUSERR" in text and "FLASH_ACR.LATENCY is 0 wait state(s) at HCLK 216 MHz" in text
    probe = FakeProbe(regs, {0xE000ED28: 1 << 8, **words(7)}, frame(0x08000300))
    assert "LATENCY" not in crashed(probe)[0]
