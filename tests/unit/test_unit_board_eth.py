"""``eth:``: the Ethernet PHY's wiring in the board file (the three RMII transmit pins and the
PHY's MDIO address), checked there, handed to the twin as ``--eth-wiring``
(rig.targets.twin.board_args) and to the rig's Ethernet hint (tests/unit/test_eth_bringup.py).
The twin's side: twin/net/eth_wiring.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rig.board import EthSpec, default_board_path, parse_board
from rig.errors import ConfigError
from rig.targets.twin import board_args


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_board_path().read_text())


def _with(raw: dict[str, Any], eth: Any) -> Any:
    doc = copy.deepcopy(raw)
    doc["eth"] = eth
    return parse_board(yaml.safe_dump(doc))


def test_the_defaults_are_the_nucleos_wiring() -> None:
    nucleo = EthSpec()
    assert nucleo.twin_arg() == "tx_en=PG11,txd0=PG13,txd1=PB13,phy=0"
    assert nucleo.rmii_pins == {
        "REF_CLK": "PA1",
        "MDIO": "PA2",
        "MDC": "PC1",
        "CRS_DV": "PA7",
        "RXD0": "PC4",
        "RXD1": "PC5",
        "TX_EN": "PG11",
        "TXD0": "PG13",
        "TXD1": "PB13",
    }


def test_no_wiring_is_the_nucleos_and_adds_no_twin_option(raw: dict[str, Any]) -> None:
    spec = parse_board(yaml.safe_dump(raw))
    assert spec.eth is None
    assert "--eth-wiring" not in board_args(spec)
    empty = _with(raw, {})
    assert empty.eth == EthSpec()
    args = board_args(empty)
    assert args[args.index("--eth-wiring") + 1] == "tx_en=PG11,txd0=PG13,txd1=PB13,phy=0"


def test_a_wiring_reaches_the_twin_with_defaults_for_what_is_left_out(raw: dict[str, Any]) -> None:
    spec = _with(raw, {"tx_en": "pb11", "txd0": "PB12", "txd1": "PG14", "phy_address": 1})
    assert spec.eth == EthSpec(tx_en="PB11", txd0="PB12", txd1="PG14", phy_address=1)
    assert spec.eth.rmii_pins["TX_EN"] == "PB11" and spec.eth.rmii_pins["TXD1"] == "PG14"
    args = board_args(spec)
    assert args[args.index("--eth-wiring") + 1] == "tx_en=PB11,txd0=PB12,txd1=PG14,phy=1"
    only_txd1 = _with(raw, {"txd1": "PG14"}).eth
    assert only_txd1 is not None and only_txd1.twin_arg() == "tx_en=PG11,txd0=PG13,txd1=PG14,phy=0"
    assert _with(raw, {"phy_address": "0x1f"}).eth.phy_address == 31


@pytest.mark.parametrize(
    "eth,key,text",
    [
        ({"tx_en": "PA3"}, "eth.tx_en", "PB11 or PG11"),
        ({"txd0": "PG11"}, "eth.txd0", "PB12 or PG13"),
        ({"txd1": "PB12"}, "eth.txd1", "PB13 or PG14"),
        ({"txd1": "PG16"}, "eth.txd1", "a pin such as PD14"),
        ({"phy_address": 32}, "eth.phy_address", "0..31"),
        ({"phy_address": -1}, "eth.phy_address", "0..31"),
        ({"phy": 1}, "eth.phy", "unknown key"),
        ("PG11", "eth", "a mapping"),
    ],
)
def test_a_bad_wiring_names_the_key(raw: dict[str, Any], eth: Any, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        _with(raw, eth)
    assert err.value.key_path == key and text in str(err.value), str(err.value)
