"""The board file's wiring keys: ``winc:`` (the WINC3400's SPI and pins), ``console:`` (the
console's U(S)ART and pins) and ``eth:`` (the Ethernet PHY's RMII transmit pins and MDIO
address), pydantic models with the pin type they share. Re-exported by
:mod:`rig.board_schema`, whose :class:`~rig.board_schema.BoardFile` holds them; the spec
dataclasses they become are in :mod:`rig.board_wiring`.

Owns: the keys of those three sections and the rules inside each (pins written ``PD14``, one
pin per signal, pins and their alternate function given together, the F767's pins for each
RMII transmit signal). Must not touch: files, the spec dataclasses, the board.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, model_validator

from rig.board_types import IntIn, _Strict, got, invalid
from rig.board_wiring import RMII_TX_CHOICES


def _pin(value: Any) -> Any:
    """A GPIO pin written ``PD14`` (port A..K, pin 0..15), upper-cased."""
    if isinstance(value, str) and re.fullmatch(r"P[A-K](1[0-5]|[0-9])", value.strip().upper()):
        return value.strip().upper()
    raise invalid(got(value), "a pin such as PD14 (PA0..PK15)")


Pin = Annotated[str, BeforeValidator(_pin)]
#: a pin's alternate function number (GPIOx_AFRL/AFRH, RM0410)
AltFunction = Annotated[int, IntIn(0, 15)]


def _f767_pin(signal: str, pins: tuple[str, str]) -> AfterValidator:
    """A check that a pin is one of the two the F767 carries the RMII ``signal`` on (AF11,
    its datasheet's alternate function table)."""

    def check(value: str) -> str:
        if value not in pins:
            raise invalid(got(value), f"{pins[0]} or {pins[1]}: the F767's pins for RMII {signal} in AF11")
        return value

    return AfterValidator(check)


def _together(model: _Strict, keys: tuple[str, ...], expected: str) -> None:
    """Refuse some of ``keys`` given without the others (``expected`` says what goes together)."""
    given = [k for k in keys if getattr(model, k) is not None]
    if given and len(given) < len(keys):
        missing = [k for k in keys if k not in given]
        raise invalid(f"{_and(given)} without {_and(missing)}", expected)


def _and(keys: list[str]) -> str:
    """``["sck", "miso", "af"]`` → ``"sck, miso and af"``."""
    return keys[0] if len(keys) == 1 else f"{', '.join(keys[:-1])} and {keys[-1]}"


class WincWiring(_Strict):
    """``winc``: how the WINC3400 is wired on the user's board (the twin is wired the same way,
    the rig's hints read those pins); every key defaults to the thread's shield. ``sck``,
    ``miso``, ``mosi`` and ``af`` (together): the SPI's pins and their alternate function;
    without them SPI1's PA5/PA6/PB5 AF5 (the shield's) are checked, other SPIs' pins are not."""

    spi: Annotated[int, IntIn(1, 6)] = 1
    cs: Pin = "PD14"
    irqn: Pin = "PB1"
    reset_n: Pin = "PF12"
    chip_en: Pin = "PF13"
    sck: Pin | None = None
    miso: Pin | None = None
    mosi: Pin | None = None
    af: AltFunction | None = None

    @model_validator(mode="after")
    def _pins_together(self) -> WincWiring:
        _together(
            self,
            ("sck", "miso", "mosi", "af"),
            "sck, miso, mosi and af together (the SPI's pins and their alternate function)",
        )
        return self

    @model_validator(mode="after")
    def _one_pin_each(self) -> WincWiring:
        seen: dict[str, str] = {}
        for key in ("cs", "irqn", "reset_n", "chip_en", "sck", "miso", "mosi"):
            pin = getattr(self, key)
            if pin is None:
                continue
            if pin in seen:
                raise invalid(f"{seen[pin]} and {key} are both {pin}", "one pin for each signal")
            seen[pin] = key
        return self


class ConsoleWiring(_Strict):
    """``console``: the U(S)ART the board's console is on (1, 2, 3, 6: USARTn; 4, 5, 7, 8:
    UARTn); USART3, the NUCLEO's ST-LINK virtual COM port, by default. ``tx``, ``rx`` and
    ``af`` (together): the pins the host's serial line meets and their alternate function
    (the datasheet's table); without them USART3's PD8/PD9 AF7 and USART6's PG14/PG9 AF8 are
    checked, other instances' pins are not."""

    uart: Annotated[int, IntIn(1, 8)] = 3
    tx: Pin | None = None
    rx: Pin | None = None
    af: AltFunction | None = None

    @model_validator(mode="after")
    def _pins_together(self) -> ConsoleWiring:
        _together(
            self,
            ("tx", "rx", "af"),
            "tx, rx and af together (the console's pins and their alternate function)",
        )
        if self.tx is not None and self.tx == self.rx:
            raise invalid(f"tx and rx are both {self.tx}", "two pins")
        return self


class EthWiring(_Strict):
    """``eth``: how the Ethernet PHY is wired on the user's board (the twin is wired the same
    way, the rig's Ethernet hint reads those pins); every key defaults to the NUCLEO-F767ZI's
    LAN8742A. ``tx_en``, ``txd0``, ``txd1``: the RMII transmit pins, the only RMII signals
    with a choice of pin on the F767 (TX_EN PB11 or PG11, TXD0 PB12 or PG13, TXD1 PB13 or
    PG14); ``phy_address``: the PHY's MDIO address (its PHYAD strap)."""

    tx_en: Annotated[Pin, _f767_pin("TX_EN", RMII_TX_CHOICES["TX_EN"])] = "PG11"
    txd0: Annotated[Pin, _f767_pin("TXD0", RMII_TX_CHOICES["TXD0"])] = "PG13"
    txd1: Annotated[Pin, _f767_pin("TXD1", RMII_TX_CHOICES["TXD1"])] = "PB13"
    phy_address: Annotated[int, IntIn(0, 31)] = 0
