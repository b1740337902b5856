"""rig/wifi_hint.py: what the SPI and GPIO registers say against the board file's ``winc:``
wiring, read as a probe reads them (a register map here; the addresses and bits are RM0410's,
written out)."""

from __future__ import annotations

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
    base = {
        f"a{RCC_APB2ENR:x}": 1 << 12,
        f"a{SPI1_CR1:x}": MASTER_ON,
        f"a{RCC_AHB1ENR:x}": (1 << 3) | (1 << 5),
    }
    said = wiring_mismatch(regs(**base), None)  # PD14 left an input
    assert said is not None and "CS PD14 is not an output" in said and "input" in said and "winc.cs" in said
    cs_out = {**base, f"a{GPIOD_MODER:x}": 1 << 28}
    reset_low = {**cs_out, f"a{GPIOF_MODER:x}": (1 << 24) | (1 << 26), f"a{GPIOF_ODR:x}": 1 << 13}
    said = wiring_mismatch(regs(**reset_low), None)
    assert said is not None and "RESET_N PF12 is driven low" in said
    fine = {**reset_low, f"a{GPIOF_ODR:x}": (1 << 12) | (1 << 13)}
    assert wiring_mismatch(regs(**fine), None) is None
