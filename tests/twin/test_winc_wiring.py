"""``python -m twin --winc-wiring``: the WiFi module on another SPI and other pins (what a
board file's ``targets.twin.winc`` asks for): parsed and checked, the SPI at its own
address with its own IRQ and DMA controller, the module watching the pins given."""

from __future__ import annotations

import argparse

import pytest

from twin.net import devices
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
        ("sck=PA5", "unknown key"),
    ],
)
def test_a_bad_wiring_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_wiring(text)


def test_the_module_sits_on_the_spi_and_pins_given() -> None:
    args = argparse.Namespace(winc_wiring=parse_wiring("spi=3,cs=PA4,irqn=PG2,reset_n=PG3,chip_en=PE2"))
    spi = next(d for d in devices(args) if isinstance(d, Stm32Spi))
    assert (spi.name, spi.base, spi.irq, spi.dma_name) == ("spi3", 0x40003C00, 51, "dma1")
    assert isinstance(spi.slave, Winc3400)
    assert spi.slave.pins == {
        "cs": ("gpioa", 4),
        "irqn": ("gpiog", 2),
        "reset_n": ("gpiog", 3),
        "chip_en": ("gpioe", 2),
    }
    default = next(d for d in devices(argparse.Namespace()) if isinstance(d, Stm32Spi))
    assert (default.name, default.base, default.irq, default.dma_name) == ("spi1", 0x40013000, 35, "dma2")
