"""How the WINC3400 module is wired to the MCU: which SPI and which GPIO pins carry chip
select, IRQN, RESET_N and CHIP_EN (``python -m twin --winc-wiring``; the rig passes a board
file's ``winc:``). The default is the thread's shield: SPI1, CS PD14, IRQN PB1
(EXTI1), RESET_N PF12, CHIP_EN PF13. SCK/MISO/MOSI are not checked (the SPI model does not
look at its pins' alternate functions).

Owns: parsing and checking a wiring. Must not touch: the module or the SPI (they take it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from twin.net.spi import INSTANCES
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

    def text(self) -> str:
        """The ``--winc-wiring`` form."""
        parts = [f"spi={self.spi}"] + [f"{k}=P{p[-1].upper()}{n}" for k, (p, n) in self.pins.items()]
        return ",".join(parts)


def parse_wiring(text: str) -> WincWiring:
    """``spi=3,cs=PA4,irqn=PC7,...`` (any subset, the rest the default); an
    ``argparse.ArgumentTypeError`` says what is wrong."""
    spi, pins = 1, dict(DEFAULT_PINS)
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
            else:
                raise ValueError(f"unknown key {key!r}: spi, {', '.join(DEFAULT_PINS)}")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    used: dict[tuple[str, int], str] = {}
    for key, pin in pins.items():
        if pin in used:
            name = f"P{pin[0][-1].upper()}{pin[1]}"
            raise argparse.ArgumentTypeError(f"{used[pin]} and {key} are both on {name}: one pin each")
        used[pin] = key
    return WincWiring(spi, pins)
