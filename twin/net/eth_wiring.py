"""How the Ethernet PHY is wired to the MCU (``python -m twin --eth-wiring``; the rig passes a
board file's ``eth:``): the three RMII transmit pins, the only ones with a choice on the
F767 (its datasheet's alternate function table, AF11: TX_EN PB11 or PG11, TXD0 PB12 or PG13,
TXD1 PB13 or PG14; REF_CLK PA1, MDIO PA2, MDC PC1, CRS_DV PA7, RXD0 PC4, RXD1 PC5 have one
pin each), and the PHY's MDIO address (its PHYAD strap). The default is the
NUCLEO-F767ZI's: TX_EN PG11, TXD0 PG13, TXD1 PB13, LAN8742A at address 0 (UM1974).

Owns: parsing and checking an Ethernet wiring. Must not touch: the MAC or the PHY (they take it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from twin.periph.gpio import parse_pin, pin_name

#: transmit signal → the F767 pins that carry it in AF11
TX_CANDIDATES = {
    "tx_en": (("gpiob", 11), ("gpiog", 11)),
    "txd0": (("gpiob", 12), ("gpiog", 13)),
    "txd1": (("gpiob", 13), ("gpiog", 14)),
}
#: the signals with one pin on the F767
FIXED = {
    "REF_CLK": ("gpioa", 1),
    "MDIO": ("gpioa", 2),
    "MDC": ("gpioc", 1),
    "CRS_DV": ("gpioa", 7),
    "RXD0": ("gpioc", 4),
    "RXD1": ("gpioc", 5),
}


@dataclass(frozen=True)
class EthWiring:
    """The transmit pins (port device name, pin) and the PHY's MDIO address."""

    tx_en: tuple[str, int] = ("gpiog", 11)
    txd0: tuple[str, int] = ("gpiog", 13)
    txd1: tuple[str, int] = ("gpiob", 13)
    phy: int = 0

    def groups(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """The pins by the group the MAC checks together (ethmac_path's warnings name them)."""
        return {
            "REF_CLK": (FIXED["REF_CLK"],),
            "MDIO/MDC": (FIXED["MDIO"], FIXED["MDC"]),
            "receive (CRS_DV, RXD0, RXD1)": (FIXED["CRS_DV"], FIXED["RXD0"], FIXED["RXD1"]),
            "transmit (TX_EN, TXD0, TXD1)": (self.tx_en, self.txd0, self.txd1),
        }

    def text(self) -> str:
        """The ``--eth-wiring`` form."""
        pins = ",".join(f"{k}={pin_name(*getattr(self, k))}" for k in TX_CANDIDATES)
        return f"{pins},phy={self.phy}"


def parse_eth_wiring(text: str) -> EthWiring:
    """``tx_en=PB11,txd0=PB12,txd1=PG14,phy=1`` (any subset, the rest the NUCLEO's); an
    ``argparse.ArgumentTypeError`` says what is wrong."""
    fields: dict[str, object] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        try:
            if not sep:
                raise ValueError(f"{item!r}: write key=value")
            if key == "phy":
                if not value.isdigit() or int(value) > 31:
                    raise ValueError(f"phy={value}: an MDIO address 0..31")
                fields["phy"] = int(value)
            elif key in TX_CANDIDATES:
                pin = parse_pin(value)
                if pin not in TX_CANDIDATES[key]:
                    allowed = " or ".join(pin_name(*p) for p in TX_CANDIDATES[key])
                    raise ValueError(f"{key}={value}: the F767 carries {key.upper()} on {allowed} (AF11)")
                fields[key] = pin
            else:
                raise ValueError(f"unknown key {key!r}: {', '.join(TX_CANDIDATES)}, phy")
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    return EthWiring(**fields)  # type: ignore[arg-type]
