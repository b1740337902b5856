"""How the WINC3400 module is wired to the MCU: which SPI and which GPIO pins carry chip
select, IRQN, RESET_N and CHIP_EN (``python -m twin --winc-wiring``; the rig passes a board
file's ``winc:``). The default is the thread's shield: SPI1, CS PD14, IRQN PB1
(EXTI1), RESET_N PF12, CHIP_EN PF13, and the SPI's SCK PA5, MISO PA6, MOSI PB5 in AF5. Another
SPI's SCK/MISO/MOSI are known only where given (``sck=PC10,miso=PC11,mosi=PC12,af=6``,
all four together); twin/net/spi_pins.py checks them.

Owns: parsing and checking a wiring. Must not touch: the module or the SPI (they take it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from twin.net.spi import INSTANCES
from twin.net.spi_pins import SHIELD_AF, SHIELD_PINS
from twin.periph.gpio import parse_pin

#: the thread's shield
DEFAULT_PINS: dict[str, tuple[str, int]] = {
    "cs": ("gpiod", 14),
    "irqn": ("gpiob", 1),
    "reset_n": ("gpiof", 12),
    "chip_en": ("gpiof", 13),
}


@dataclass(frozen=True)
class WincWiring:
    """SPI instance and the module's four GPIO lines (port device name, pin)."""

    spi: int = 1
    pins: dict[str, tuple[str, int]] = field(default_factory=lambda: dict(DEFAULT_PINS))
    #: the SPI's SCK/MISO/MOSI as given (``sck``, ``miso``, ``mosi``) and their alternate function
    spi_pins: dict[str, tuple[str, int]] | None = None
    af: int | None = None

    def text(self) -> str:
        """The ``--winc-wiring`` form."""
        given = {**self.pins, **(self.spi_pins or {})}
        parts = [f"spi={self.spi}"] + [f"{k}=P{p[-1].upper()}{n}" for k, (p, n) in given.items()]
        return ",".join(parts + ([f"af={self.af}"] if self.af is not None else []))

    def checked_pins(self) -> tuple[dict[str, tuple[str, int]], int] | None:
        """The SPI's pins to check and their alternate function: as given, else the shield's on
        SPI1; None for another SPI without them."""
        if self.spi_pins is not None and self.af is not None:
            return self.spi_pins, self.af
        return (dict(SHIELD_PINS), SHIELD_AF) if self.spi == 1 else None


def parse_wiring(text: str) -> WincWiring:
    """``spi=3,cs=PA4,irqn=PC7,...`` (any subset, the rest the default; ``sck``, ``miso``,
    ``mosi`` and ``af`` together or not at all); an ``argparse.ArgumentTypeError`` says what
    is wrong."""
    spi, pins = 1, dict(DEFAULT_PINS)
    spi_pins: dict[str, tuple[str, int]] = {}
    af: int | None = None
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        try:
            if not sep:
                raise ValueError(f"{item!r}: write key=value")
            if key == "spi":
                spi = int(value.strip().upper().removeprefix("SPI"))
                if spi not in INSTANCES:
                    raise ValueError(f"spi={value}: SPI1..SPI6")
            elif key in DEFAULT_PINS:
                pins[key] = parse_pin(value)
            elif key in SHIELD_PINS:
                spi_pins[key] = parse_pin(value)
            elif key == "af":
                if not value.strip().isdigit() or int(value) > 15:
                    raise ValueError(f"af={value}: an alternate function number 0..15")
                af = int(value)
            else:
                keys = ", ".join(["spi", *DEFAULT_PINS, *SHIELD_PINS, "af"])
                raise ValueError(f"unknown key {key!r}: {keys}")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    if (spi_pins or af is not None) and (len(spi_pins) < len(SHIELD_PINS) or af is None):
        raise argparse.ArgumentTypeError(
            "sck, miso, mosi and af together (the SPI's pins and their alternate function)"
        )
    used: dict[tuple[str, int], str] = {}
    for key, pin in {**pins, **spi_pins}.items():
        if pin in used:
            name = f"P{pin[0][-1].upper()}{pin[1]}"
            raise argparse.ArgumentTypeError(f"{used[pin]} and {key} are both on {name}: one pin each")
        used[pin] = key
    return WincWiring(spi, pins, spi_pins or None, af)
