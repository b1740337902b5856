"""``python -m twin --winc-wiring``: the WiFi module on another SPI and other pins (what a
board file's ``winc:`` asks for): parsed and checked, the SPI at its own
address with its own IRQ and DMA controller, the module watching the pins given."""

from __future__ import annotations

import argparse

import pytest

from twin.net import devices, winc_of
from twin.net.spi import Stm32Spi
from twin.net.winc3400 import Winc3400
from twin.net.winc_wiring import parse_wiring


def test_a_wiring_text_becomes_spi_and_pins() -> None:
    w = parse_wiring("spi=SPI3, cs=pa4,irqn=PG2")
    assert w.spi == 3
    assert w.pins == {
        "cs": ("gpioa", 4),
        "irqn": ("gpiog", 2),
        "reset_n": ("gpiof", 12),
        "chip_en": ("gpiof", 13),
    }
    assert parse_wiring(w.text()) == w


@pytest.mark.parametrize(
    "text,why",
    [
        ("spi=9", "SPI1..SPI6"),
        ("cs=PZ1", "PA0..PK15"),
        ("cs=PA16", "PA0..PK15"),
        ("cs", "key=value"),
        ("cs=PB1", "both on PB1"),
        ("sck=PA5", "sck, miso, mosi and af together"),
        ("sck=PA5,miso=PA6,mosi=PB5", "together"),
        ("sck=PA5,miso=PA6,mosi=PB5,af=16", "0..15"),
        ("cs=PA5,sck=PA5,miso=PA6,mosi=PB5,af=5", "both on PA5"),
        ("nss=PA4", "unknown key"),
    ],
)
def test_a_bad_wiring_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_wiring(text)


def test_the_module_sits_on_the_spi_and_pins_given() -> None:
    args = argparse.Namespace(winc_wiring=parse_wiring("spi=3,cs=PA4,irqn=PG2,reset_n=PG3,chip_en=PE2"))
    spi = next(d for d in devices(args) if isinstance(d, Stm32Spi))
    assert (spi.name, spi.base, spi.irq, spi.dma_name) == ("spi3", 0x40003C00, 51, "dma1")
    winc = winc_of(spi)
    assert isinstance(winc, Winc3400)
    assert winc.pins == {
        "cs": ("gpioa", 4),
        "irqn": ("gpiog", 2),
        "reset_n": ("gpiog", 3),
        "chip_en": ("gpioe", 2),
    }
    default = next(d for d in devices(argparse.Namespace()) if isinstance(d, Stm32Spi))
    assert (default.name, default.base, default.irq, default.dma_name) == ("spi1", 0x40013000, 35, "dma2")


def test_frames_on_an_spi_with_nothing_wired_are_said_once_with_where_the_module_is() -> None:
    from twin.testing import ServicesDouble

    s = ServicesDouble()
    spi = Stm32Spi(number=3, unwired="the WINC3400 is on SPI1")
    s.add(spi)
    spi.write(0x04, 4, 0x1700)  # CR2: 8-bit frames, FRXTH
    spi.write(0x00, 4, 0x0344)  # CR1: SSM, SSI, SPE, MSTR
    for i in range(40):
        spi.write(0x0C, 1, i)
        assert spi.read(0x0C, 1) == 0xFF  # MISO not driven: pulled high
    said = [line for line in s.logs if "nothing wired" in line]
    assert len(said) == 1 and "SPI3" in said[0] and "winc.spi: 3" in said[0] and "on SPI1" in said[0]


def test_bytes_past_the_modules_cs_are_said_once_with_its_pins() -> None:
    from twin.net.stack import NetStack

    winc = Winc3400(NetStack([]))
    logs: list[str] = []
    winc.log = logs.append  # type: ignore[method-assign]
    winc.power = "on"
    winc._hooked, winc._cs_high = True, True  # as its GPIO listener has it: CS (PD14) high
    for _ in range(100):
        assert winc.exchange(0x55) == 0xFF  # not selected: MISO not driven
    said = [line for line in logs if "past the module" in line]
    assert len(said) == 1 and "CS PD14" in said[0] and "winc.cs" in said[0], logs
