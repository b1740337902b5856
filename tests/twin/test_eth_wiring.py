"""Another board's Ethernet wiring (twin/net/eth_wiring.py, ``--eth-wiring``; the board
file's ``eth:``): the MAC takes its transmit pins from it and the LAN8742A answers at its
MDIO address; a pin the F767 cannot carry that signal on is refused with the ones it can."""

from __future__ import annotations

import argparse

import pytest
from ethmac_harness import Rig

from twin.net import devices
from twin.net.eth_wiring import EthWiring, parse_eth_wiring
from twin.net.ethmac import EthMac
from twin.periph import Rcc, Syscfg
from twin.periph.gpio import all_ports

TRANSMIT = "transmit (TX_EN, TXD0, TXD1)"
PHYID1 = 2  # LAN8742A: 0x0007


def test_the_default_is_the_nucleos_and_a_subset_keeps_the_rest() -> None:
    assert parse_eth_wiring("") == EthWiring(("gpiog", 11), ("gpiog", 13), ("gpiob", 13), 0)
    w = parse_eth_wiring("txd1=PG14, phy=1")
    assert (w.tx_en, w.txd0, w.txd1, w.phy) == (("gpiog", 11), ("gpiog", 13), ("gpiog", 14), 1)
    assert parse_eth_wiring(w.text()) == w


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("tx_en=PA3", "TX_EN on PB11 or PG11"),
        ("txd1=PB12", "TXD1 on PB13 or PG14"),
        ("phy=32", "0..31"),
        ("phy", "key=value"),
        ("rxd0=PC4", "unknown key"),
        ("txd0=PZ1", "not a pin"),
    ],
)
def test_a_bad_wiring_is_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=why):
        parse_eth_wiring(text)


def _af11(rig: Rig, *pins: tuple[str, int]) -> None:
    for port, pin in pins:
        gpio = rig.s.devices[port]
        gpio.write(0x00, 4, gpio.read(0x00, 4) & ~(3 << 2 * pin) | 2 << 2 * pin)
        reg = 0x20 + 4 * (pin // 8)
        gpio.write(reg, 4, gpio.read(reg, 4) & ~(0xF << 4 * (pin % 8)) | 11 << 4 * (pin % 8))


def test_the_mac_sends_through_the_wired_pins_only() -> None:
    rig = Rig([Rcc(), Syscfg(), *all_ports()], wiring=parse_eth_wiring("txd1=PG14"))
    rig.s.devices["rcc"].write(0x30, 4, 0x7F)  # GPIOA..G
    _af11(rig, ("gpiog", 11), ("gpiog", 13), ("gpiob", 13))  # the NUCLEO's TXD1, not this board's
    assert rig.mac.path.pins_missing(TRANSMIT) == ["PG14"]
    _af11(rig, ("gpiog", 14))
    assert rig.mac.path.pins_missing(TRANSMIT) == []
    nucleo = Rig([Rcc(), Syscfg(), *all_ports()])
    nucleo.s.devices["rcc"].write(0x30, 4, 0x7F)
    _af11(nucleo, ("gpiog", 11), ("gpiog", 13), ("gpiog", 14))
    assert nucleo.mac.path.pins_missing(TRANSMIT) == ["PB13"]


def test_the_phy_answers_at_its_strapped_address_and_keeps_it_across_a_reset() -> None:
    rig = Rig(wiring=parse_eth_wiring("phy=1"))
    assert rig.mdio(PHYID1, phy=1) == 0x0007
    assert rig.mdio(PHYID1, phy=0) != 0x0007  # nobody at the NUCLEO's address
    rig.mac.phy.hard_reset()
    assert rig.mdio(PHYID1, phy=1) == 0x0007


def test_the_twins_command_line_reaches_the_mac() -> None:
    args = argparse.Namespace(eth_wiring=parse_eth_wiring("tx_en=PB11,txd0=PB12,phy=3"))
    mac = next(d for d in devices(args, None, frames=object()) if isinstance(d, EthMac))  # type: ignore[arg-type]
    assert mac.path.pins[TRANSMIT] == (("gpiob", 11), ("gpiob", 12), ("gpiob", 13))
    assert mac.phy.address == 3
