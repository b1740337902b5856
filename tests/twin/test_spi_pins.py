"""The SPI's own pins and clock rate between SPI1 and the WiFi module (twin/net/spi_pins.py):
SCK, MISO and MOSI reach the module only through pins in the SPI's alternate function, as on
the board; an SCK over the ATWINC3400's 48 MHz is said once per boot. Real GPIO ports and RCC
models, a module that records what it is clocked."""

from __future__ import annotations

import argparse

import pytest

from twin.net import devices, winc_of
from twin.net.spi import CR1, CR1_MSTR, CR1_SPE, CR1_SSI, CR1_SSM, CR2, CR2_FRXTH, DR, Stm32Spi
from twin.net.spi_pins import SpiPins
from twin.net.winc_wiring import parse_wiring
from twin.periph.gpio import Gpio
from twin.periph.rcc import Rcc
from twin.testing import ServicesDouble

MODER, AFRL = 0x00, 0x20
RCC_CR, RCC_PLLCFGR, RCC_CFGR, RCC_AHB1ENR, RCC_APB2ENR = 0x00, 0x04, 0x08, 0x30, 0x44
#: HSI 16 MHz / M 8 x N 216 / P 2 = 216 MHz; APB2 / 2 = 108 MHz, APB1 / 4 = 54 MHz
PLL_216 = 8 | (216 << 6) | (9 << 24) | (2 << 28)
CFGR_216 = 2 | (5 << 10) | (4 << 13)
SHIELD = {"sck": ("gpioa", 5), "miso": ("gpioa", 6), "mosi": ("gpiob", 5)}


class Module:
    """Records the bytes it is clocked; answers each with its complement."""

    def __init__(self) -> None:
        self.seen = bytearray()
        self.resets: list[str] = []

    def exchange(self, mosi: int) -> int:
        self.seen.append(mosi)
        return mosi ^ 0xFF

    def exchange2(self, first: int, second: int) -> int:
        return self.exchange(first) | self.exchange(second) << 8

    def exchange_block(self, mosi: bytes) -> bytes:
        return bytes(self.exchange(b) for b in mosi)

    def mcu_reset(self, kind: str) -> None:
        self.resets.append(kind)


def board(number: int = 1, pins=SHIELD, af: int = 5):
    sv = ServicesDouble()
    rcc = Rcc()
    sv.add(rcc, *(Gpio(p) for p in "abc"))
    rcc.write(RCC_AHB1ENR, 4, 0x7)  # GPIOA..C clocks
    rcc.write(RCC_APB2ENR, 4, 1 << 12)
    rcc.write(0x40, 4, 1 << 15)  # APB1ENR.SPI3EN
    spi, module = Stm32Spi(number=number), Module()
    checker = SpiPins(spi, module, pins, af)
    sv.add(spi)
    spi.write(CR2, 4, 0x0700 | CR2_FRXTH)
    spi.write(CR1, 4, CR1_MSTR | CR1_SSM | CR1_SSI | CR1_SPE | (1 << 3))
    return sv, spi, module, checker


def route(sv: ServicesDouble, port: str, pin: int, af: int, mode: int = 2) -> None:
    gpio = sv.devices[f"gpio{port}"]
    moder = gpio.read(MODER, 4) & ~(3 << 2 * pin) | mode << 2 * pin
    gpio.write(MODER, 4, moder)
    reg = AFRL + 4 * (pin // 8)
    gpio.write(reg, 4, gpio.read(reg, 4) & ~(0xF << 4 * (pin % 8)) | af << 4 * (pin % 8))


def clock(spi: Stm32Spi, byte: int) -> int:
    spi.write(DR, 1, byte)
    return spi.read(DR, 1)


def test_pins_at_reset_cut_the_clock_and_it_is_said_once_with_the_fix() -> None:
    sv, spi, module, _ = board()
    assert [clock(spi, b) for b in (0x12, 0x34)] == [0xFF, 0xFF]
    assert module.seen == b""  # no SCK: the module sees nothing
    said = [line for line in sv.logs if "SPI1 SCK" in line]
    assert len(said) == 1, sv.logs
    assert (
        "SPI1 SCK is PA5, which is an input, not alternate function 5: the WINC3400 sees no clock" in said[0]
    )
    assert "GPIO_AF5_SPI1" in said[0] and "(board file: winc.sck" in said[0]


def test_routed_pins_put_the_module_itself_on_the_bus() -> None:
    sv, spi, module, _ = board()
    for port, pin in SHIELD.values():
        route(sv, port[-1], pin, 5)
    assert spi.slave is module  # nothing in between while routed
    assert clock(spi, 0x5A) == 0xA5 and module.seen == b"\x5a"
    assert not any("alternate function" in line for line in sv.logs)


def test_spi3s_alternate_function_on_mosi_cuts_what_the_module_receives() -> None:
    sv, spi, module, _ = board()
    route(sv, "a", 5, 5)
    route(sv, "a", 6, 5)
    route(sv, "b", 5, 6)  # GPIO_AF6_SPI3, kept from a driver written for SPI3
    assert clock(spi, 0x11) == 0xFF and module.seen == b""
    assert any(
        "SPI1 MOSI is PB5, which is alternate function 6, not alternate function 5: the WINC3400 receives nothing"
        in line
        for line in sv.logs
    ), sv.logs
    route(sv, "b", 5, 5)
    assert clock(spi, 0x11) == 0xEE


def test_without_miso_the_module_is_clocked_but_its_answer_is_lost() -> None:
    sv, spi, module, checker = board()
    route(sv, "a", 5, 5)
    route(sv, "b", 5, 5)
    route(sv, "a", 6, 0, mode=1)  # an output
    assert checker.unrouted == ["miso"]
    assert clock(spi, 0x42) == 0xFF and module.seen == b"\x42"
    assert checker.exchange_block(b"\x01\x02") == b"\xff\xff" and module.seen == b"\x42\x01\x02"
    assert any("SPI1 MISO is PA6, which is an output" in line and "DR reads 0xFF" in line for line in sv.logs)


def test_a_gpio_reset_cuts_the_pins_again_and_resets_reach_the_module() -> None:
    sv, spi, module, _ = board()
    for port, pin in SHIELD.values():
        route(sv, port[-1], pin, 5)
    assert spi.slave is module
    for name in ("gpioa", "gpiob"):
        sv.devices[name].reset("system")
    spi.reset("system")
    assert spi.slave is not module and module.resets[-1] == "system"


def test_the_board_files_pins_are_checked_on_another_spi_and_none_means_unchecked() -> None:
    pins = {"sck": ("gpioc", 10), "miso": ("gpioc", 11), "mosi": ("gpioc", 12)}
    sv, spi, module, _ = board(3, pins, 6)
    assert clock(spi, 0x01) == 0xFF
    assert any("SPI3 SCK is PC10" in line and "GPIO_AF6_SPI3" in line for line in sv.logs)
    for pin in (10, 11, 12):
        route(sv, "c", pin, 6)
    assert clock(spi, 0x01) == 0xFE
    _, spi, module, _ = board(3, None)
    assert spi.slave is module and clock(spi, 0x02) == 0xFD


def test_the_wiring_checks_the_shields_pins_on_spi1_only_unless_given() -> None:
    assert parse_wiring("").checked_pins() == (SHIELD, 5)
    assert parse_wiring("spi=3").checked_pins() is None
    given = parse_wiring("spi=3,sck=PC10,miso=PC11,mosi=PC12,af=6")
    assert given.checked_pins() == ({"sck": ("gpioc", 10), "miso": ("gpioc", 11), "mosi": ("gpioc", 12)}, 6)
    assert parse_wiring(given.text()) == given
    spi = next(d for d in devices(argparse.Namespace(winc_wiring=given)) if isinstance(d, Stm32Spi))
    assert winc_of(spi) is not None and spi.name == "spi3"


def _to_216(rcc: Rcc) -> None:
    rcc.write(RCC_PLLCFGR, 4, PLL_216)
    rcc.write(RCC_CR, 4, rcc.read(RCC_CR, 4) | 1 << 24)
    rcc.write(RCC_CFGR, 4, CFGR_216)


@pytest.mark.parametrize(("br", "said"), [(0, True), (1, False)])
def test_an_sck_over_48_mhz_is_said_once_per_boot(br: int, said: bool) -> None:
    sv, spi, _, _ = board()
    rcc = sv.devices["rcc"]
    _to_216(rcc)
    spi.write(CR1, 4, CR1_MSTR | CR1_SSM | CR1_SSI | CR1_SPE | br << 3)
    spi.write(CR1, 4, CR1_MSTR | CR1_SSM | CR1_SSI | CR1_SPE | br << 3)
    lines = [line for line in sv.logs if "clocks the WINC3400" in line]
    if not said:
        assert lines == []  # 27 MHz
        return
    assert len(lines) == 1, lines
    assert "SPI1 clocks the WINC3400 at 54 MHz (PCLK2 108 MHz / 2, CR1.BR 0)" in lines[0]
    assert "specified to 48 MHz" in lines[0]
    rcc.reset("system")  # a new boot may say it again
    _to_216(rcc)
    assert len([line for line in sv.logs if "clocks the WINC3400" in line]) == 2


def test_a_clock_raised_under_a_running_spi_is_checked_too() -> None:
    sv, spi, _, _ = board()
    spi.write(CR1, 4, CR1_MSTR | CR1_SSM | CR1_SSI | CR1_SPE)  # BR 0 at the HSI: 8 MHz
    assert not any("clocks the WINC3400" in line for line in sv.logs)
    _to_216(sv.devices["rcc"])
    assert any("at 54 MHz" in line for line in sv.logs)
