"""rig/wifi_hint.py: what the SPI and GPIO registers say against the board file's ``winc:``
wiring, read as a probe reads them (a register map here; the addresses and bits are RM0410's,
written out)."""

from __future__ import annotations

from typing import Any

from rig.board_spec import WincSpec
from rig.wifi_hint import wiring_mismatch

RCC_AHB1ENR, RCC_APB1ENR, RCC_APB2ENR = 0x40023830, 0x40023840, 0x40023844
SPI1_CR1, SPI3_CR1 = 0x40013000, 0x40003C00
GPIOD_MODER, GPIOF_MODER, GPIOF_ODR = 0x40020C00, 0x40021400, 0x40021414
MASTER_ON = 0x44  # CR1: SPE | MSTR


def regs(**values: int):
    table = {int(k[1:], 16): v for k, v in values.items()}
    return lambda address: table.get(address, 0)


def test_another_spi_running_names_it_and_the_key() -> None:
    read = regs(**{f"a{RCC_APB1ENR:x}": 1 << 15, f"a{SPI3_CR1:x}": MASTER_ON})
    said = wiring_mismatch(read, None)
    assert said is not None and "runs SPI3" in said and "to SPI1" in said and "winc.spi" in said
    assert "no winc:" in said  # the shield was assumed: the board file has no winc:
    assert wiring_mismatch(read, WincSpec(spi=3)) is None  # the wiring says SPI3: nothing wrong seen


def test_an_spi_with_its_clock_off_or_not_master_does_not_count() -> None:
    assert wiring_mismatch(regs(**{f"a{SPI3_CR1:x}": MASTER_ON}), None) is None  # SPI3EN clear
    assert wiring_mismatch(regs(**{f"a{RCC_APB1ENR:x}": 1 << 15, f"a{SPI3_CR1:x}": 0x40}), None) is None


def test_the_wired_spi_runs_but_cs_is_no_output_or_the_module_is_in_reset() -> None:
    base = {**SHIELD_FINE, GPIOD_MODER: 0, GPIOF_MODER: 0, GPIOF_ODR: 0}  # SPI1's pins in AF5
    said = wiring_mismatch(regs_at(base), None)  # PD14 left an input
    assert said is not None and "CS PD14 is not an output" in said and "input" in said and "winc.cs" in said
    cs_out = {**base, GPIOD_MODER: 1 << 28}
    reset_low = {**cs_out, GPIOF_MODER: (1 << 24) | (1 << 26), GPIOF_ODR: 1 << 13}
    said = wiring_mismatch(regs_at(reset_low), None)
    assert said is not None and "RESET_N PF12 is driven low" in said
    fine = {**reset_low, GPIOF_ODR: (1 << 12) | (1 << 13)}
    assert wiring_mismatch(regs_at(fine), None) is None


# --------------------------------------------------------------------------- SCK, MISO, MOSI and SCK's rate

GPIOA, GPIOB, GPIOC = 0x40020000, 0x40020400, 0x40020800
AFRL, AFRH = 0x20, 0x24
RCC_PLLCFGR, RCC_CFGR = 0x40023804, 0x40023808
#: SPI1 master on the shield, every pin as the reference firmware sets it: PA5/PA6/PB5 in AF5,
#: CS PD14 an output, RESET_N PF12 and CHIP_EN PF13 outputs driven high (ports A, B, D, F clocked)
SHIELD_FINE = {
    RCC_APB2ENR: 1 << 12,
    SPI1_CR1: MASTER_ON,
    RCC_AHB1ENR: 0b101011,
    GPIOA: 2 << 10 | 2 << 12,
    GPIOA + AFRL: 5 << 20 | 5 << 24,
    GPIOB: 2 << 10,
    GPIOB + AFRL: 5 << 20,
    GPIOD_MODER: 1 << 28,
    GPIOF_MODER: 1 << 24 | 1 << 26,
    GPIOF_ODR: 1 << 12 | 1 << 13,
}
#: HCLK 216 MHz: the PLL from the 8 MHz HSE / M 4 x N 216 / P 2 (SWS = PLL), APB1 / 4, APB2 / 2
PLL_216 = {RCC_PLLCFGR: 4 | 216 << 6 | 1 << 22, RCC_CFGR: 2 << 2 | 5 << 10 | 4 << 13}


def regs_at(table: dict[int, int]):
    return regs(**{f"a{address:x}": value for address, value in table.items()})


def test_the_shield_pins_in_af5_and_a_slow_sck_say_nothing() -> None:
    assert wiring_mismatch(regs_at(SHIELD_FINE), None) is None  # the HSI's 16 MHz / 2
    assert wiring_mismatch(regs_at(SHIELD_FINE), WincSpec()) is None


def test_sck_left_an_input_names_the_pin_its_af_and_the_keys() -> None:
    table = {**SHIELD_FINE, GPIOA: 2 << 12}  # PA5 back to an input
    assert wiring_mismatch(regs_at(table), None) == (
        "SPI1 runs but its SCK PA5 is an input, not alternate function 5: the module sees no clock "
        "(set PA5 to AF5, GPIO_AF5_SPI1, or winc.sck and winc.af to the pins your firmware uses)"
    )


def test_mosi_in_another_af_and_miso_an_output_say_what_the_module_misses() -> None:
    mosi_af6 = {**SHIELD_FINE, GPIOB + AFRL: 6 << 20}
    said = wiring_mismatch(regs_at(mosi_af6), None)
    assert said is not None and said.startswith(
        "SPI1 runs but its MOSI PB5 is in alternate function 6, not alternate function 5: the module "
        "receives nothing (set PB5 to AF5, GPIO_AF5_SPI1, or winc.mosi and winc.af"
    )
    miso_out = {**SHIELD_FINE, GPIOA: 2 << 10 | 1 << 12}
    said = wiring_mismatch(regs_at(miso_out), None)
    assert said is not None and "MISO PA6 is an output, not alternate function 5" in said
    assert "nothing the module answers reaches the SPI" in said


def test_pins_come_before_cs_and_an_unclocked_port_is_named() -> None:
    table = {**SHIELD_FINE, GPIOA: 0, GPIOD_MODER: 0}  # SCK, MISO and CS all inputs
    said = wiring_mismatch(regs_at(table), None)
    assert said is not None and "its SCK PA5 is an input" in said
    unclocked = {**table, RCC_AHB1ENR: 0b101010}  # GPIOA's clock off: PA5 was never configured
    said = wiring_mismatch(regs_at(unclocked), None)
    assert said is not None and "GPIOA's clock is off (RCC_AHB1ENR.GPIOAEN)" in said, said
    assert "SCK PA5 was never set to alternate function 5" in said and "__HAL_RCC_GPIOA_CLK_ENABLE()" in said


def test_a_pclk_over_216_mhz_says_nothing_of_the_sck() -> None:
    from rig.wifi_hint import sck_too_fast

    # the PLL from the HSE / M 4 x N 216 / P 2: 216 MHz with the NUCLEO's 8 MHz HSE, 675 with 25 MHz
    pll = 4 | (216 << 6) | (1 << 22)
    read = regs_at({0x40023804: pll, 0x40023808: 0b1000, SPI1_CR1: MASTER_ON})
    assert sck_too_fast(read, 1) is not None  # 216 MHz / 2 = 108: over 48
    assert sck_too_fast(read, 1, hse_hz=25_000_000) is None


def test_another_spi_without_pins_in_the_board_file_leaves_its_pins_unchecked() -> None:
    spi3 = {
        **SHIELD_FINE,
        RCC_APB2ENR: 0,
        SPI1_CR1: 0,
        RCC_APB1ENR: 1 << 15,
        SPI3_CR1: MASTER_ON,
        RCC_AHB1ENR: 0b101111,  # GPIOC clocked too, PC10..PC12 left inputs
        GPIOA: 0,  # (and the shield's SPI1 pins unrouted: not SPI3's)
    }
    assert WincSpec(spi=3).spi_pins is None
    assert wiring_mismatch(regs_at(spi3), WincSpec(spi=3)) is None


def test_the_board_files_pins_are_checked_on_any_spi() -> None:
    wired = WincSpec(spi=3, pins=("PC10", "PC11", "PC12", 6))
    spi3 = {
        **SHIELD_FINE,
        RCC_APB2ENR: 0,
        SPI1_CR1: 0,
        RCC_APB1ENR: 1 << 15,
        SPI3_CR1: MASTER_ON,
        RCC_AHB1ENR: 0b101111,
        GPIOA: 0,
        GPIOC: 2 << 20 | 2 << 22 | 2 << 24,
        GPIOC + AFRH: 6 << 8 | 6 << 12 | 6 << 16,
    }
    assert wired.spi_pins == ("PC10", "PC11", "PC12", 6)
    assert wiring_mismatch(regs_at(spi3), wired) is None
    said = wiring_mismatch(regs_at({**spi3, GPIOC + AFRH: 6 << 8 | 6 << 12 | 5 << 16}), wired)
    assert said is not None and said.startswith(
        "SPI3 runs but its MOSI PC12 is in alternate function 5, not alternate function 6"
    )
    assert "(set PC12 to AF6, GPIO_AF6_SPI3, or winc.mosi and winc.af" in said


def test_sck_over_the_modules_48_mhz_names_the_rate_and_br() -> None:
    fast = {**SHIELD_FINE, **PLL_216}  # PCLK2 108 MHz, CR1.BR 0: 54 MHz
    assert wiring_mismatch(regs_at(fast), None) == (
        "SPI1 clocks the WINC3400 at 54 MHz (PCLK2 108 MHz / 2, CR1.BR 0): the module's SPI is "
        "specified to 48 MHz; set BR so SCK stays at or below it"
    )
    assert wiring_mismatch(regs_at({**fast, SPI1_CR1: MASTER_ON | 1 << 3}), None) is None  # BR 1: 27 MHz
    pins_first = {**fast, GPIOA: 2 << 12}
    said = wiring_mismatch(regs_at(pins_first), None)
    assert said is not None and "SCK PA5 is an input" in said


def test_sck_at_48_mhz_or_under_says_nothing() -> None:
    at_48 = {**SHIELD_FINE, RCC_PLLCFGR: 4 | 192 << 6 | 1 << 22, RCC_CFGR: PLL_216[RCC_CFGR]}
    assert wiring_mismatch(regs_at(at_48), None) is None  # HCLK 192 MHz, PCLK2 96 MHz / 2
    # the board's own HSE: 4 MHz instead of the NUCLEO's 8 halves every clock (27 MHz)
    assert wiring_mismatch(regs_at({**SHIELD_FINE, **PLL_216}), None, hse_hz=4_000_000) is None


def test_spi2_and_spi3_run_on_pclk1() -> None:
    wired = WincSpec(spi=3)
    spi3 = {
        **SHIELD_FINE,
        **PLL_216,
        RCC_APB2ENR: 0,
        SPI1_CR1: 0,
        RCC_APB1ENR: 1 << 15,
        SPI3_CR1: MASTER_ON,
    }
    assert wiring_mismatch(regs_at(spi3), wired) is None  # PCLK1 54 MHz / 2
    apb1_undivided = {**spi3, RCC_CFGR: 2 << 2 | 4 << 13}  # out of spec, as registers allow
    said = wiring_mismatch(regs_at(apb1_undivided), wired)
    assert said is not None and said.startswith("SPI3 clocks the WINC3400 at 108 MHz (PCLK1 216 MHz / 2")


def test_the_failure_passes_the_boards_hse_to_the_hint() -> None:
    from types import SimpleNamespace

    from rig.hil_failure import no_connection_hint

    probe: Any = SimpleNamespace(read32=regs_at({**SHIELD_FINE, **PLL_216}))
    assert "at 54 MHz" in no_connection_hint(probe, "wifi", None, WincSpec())
    assert no_connection_hint(probe, "wifi", None, WincSpec(), hse_hz=4_000_000) == ""
