"""``winc:``: the WiFi module's wiring in the board file, checked there, and handed to the
twin as ``--winc-wiring`` (rig.targets.twin.board_args). The twin's side:
tests/twin/test_winc_wiring.py; both together: tests/firmware/test_fw_wiring.py."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from rig.board import default_board_path, parse_board
from rig.errors import ConfigError
from rig.targets.twin import board_args


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_board_path().read_text())


def _with(raw: dict[str, Any], winc: Any) -> Any:
    doc = copy.deepcopy(raw)
    doc["winc"] = winc
    return parse_board(yaml.safe_dump(doc))


def test_no_wiring_is_the_shield_and_adds_no_twin_option(raw: dict[str, Any]) -> None:
    spec = parse_board(yaml.safe_dump(raw))
    assert spec.winc is None
    assert "--winc-wiring" not in board_args(spec)


def test_a_wiring_reaches_the_twin_with_defaults_for_what_is_left_out(raw: dict[str, Any]) -> None:
    spec = _with(raw, {"spi": 3, "cs": "pa4", "irqn": "PG2", "reset_n": "PG3", "chip_en": "PE2"})
    assert spec.winc is not None
    wiring = spec.winc.twin_arg()
    assert wiring == "spi=3,cs=PA4,irqn=PG2,reset_n=PG3,chip_en=PE2"
    args = board_args(spec)
    assert args[args.index("--winc-wiring") + 1] == wiring
    only_cs = _with(raw, {"cs": "PA15"}).winc
    assert only_cs is not None and only_cs.twin_arg() == "spi=1,cs=PA15,irqn=PB1,reset_n=PF12,chip_en=PF13"


#: SPI3 on PC10/PC11/PC12 in AF6 (a custom board's wiring)
SPI3_PINS = {"spi": 3, "sck": "PC10", "miso": "PC11", "mosi": "PC12", "af": 6}


def test_the_spi_pins_reach_the_twin_only_when_given(raw: dict[str, Any]) -> None:
    spec = _with(raw, {**SPI3_PINS, "sck": "pc10"})
    assert spec.winc is not None and spec.winc.pins == ("PC10", "PC11", "PC12", 6)
    assert spec.winc.spi_pins == ("PC10", "PC11", "PC12", 6)
    wiring = spec.winc.twin_arg()
    assert wiring == "spi=3,cs=PD14,irqn=PB1,reset_n=PF12,chip_en=PF13,sck=PC10,miso=PC11,mosi=PC12,af=6"
    args = board_args(spec)
    assert args[args.index("--winc-wiring") + 1] == wiring
    without = _with(raw, {"spi": 3}).winc
    assert without is not None and without.pins is None and without.spi_pins is None  # not checked
    assert "sck=" not in without.twin_arg() and "af=" not in without.twin_arg()
    shield = _with(raw, {}).winc
    assert shield is not None and shield.pins is None and "sck=" not in shield.twin_arg()
    assert shield.spi_pins == ("PA5", "PA6", "PB5", 5)  # SPI1: the shield's, checked by the hint


@pytest.mark.parametrize(
    "winc,key,text",
    [
        ({"spi": 7}, "winc.spi", "1..6"),
        ({"cs": "PD16"}, "winc.cs", "a pin such as PD14"),
        ({"irqn": "B1"}, "winc.irqn", "a pin such as PD14"),
        ({"cs": "PB1"}, "winc", "cs and irqn are both PB1"),
        ({"miso_pin": "PA6"}, "winc.miso_pin", "unknown key"),
        ({"mosi": "PB5"}, "winc", "mosi without sck, miso and af"),
        ({"sck": "PA5", "miso": "PA6", "mosi": "PB5"}, "winc", "sck, miso and mosi without af"),
        ({"af": 5}, "winc", "af without sck, miso and mosi"),
        ({**SPI3_PINS, "af": 16}, "winc.af", "0..15"),
        ({**SPI3_PINS, "sck": "PC16"}, "winc.sck", "a pin such as PD14"),
        ({**SPI3_PINS, "miso": "PC10"}, "winc", "sck and miso are both PC10"),
        ({**SPI3_PINS, "mosi": "PD14"}, "winc", "cs and mosi are both PD14"),
        ({**SPI3_PINS, "cs": "PC12"}, "winc", "cs and mosi are both PC12"),
        ({"sck": "PB1", "miso": "PA6", "mosi": "PB5", "af": 5}, "winc", "irqn and sck are both PB1"),
    ],
)
def test_a_bad_wiring_names_the_key(raw: dict[str, Any], winc: Any, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        _with(raw, winc)
    assert err.value.key_path == key and text in str(err.value)
