"""The board file's lab keys (issue 15): one OTA address per board (3, 4), several boards
(``targets.nucleo.boards``), the board's own address, pyOCD options (9) and the power switch
(12). Loaded with rig.board.load_board from real files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rig.board import Endpoint, default_board_path, load_board
from rig.errors import ConfigError


def _board(tmp_path: Path, edit) -> Path:
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    edit(doc)
    path = tmp_path / "lab" / "board.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _error(tmp_path: Path, edit) -> str:
    with pytest.raises(ConfigError) as err:
        load_board(_board(tmp_path, edit))
    return str(err.value)


def test_the_shipped_file_describes_one_board_dialling_ota_server() -> None:
    (board,) = load_board().lab_boards()
    assert board.host == Endpoint("192.168.1.10", 5000) and board.board_ip is None
    assert board.probe_uid is None and board.power is None


def test_nucleo_host_must_be_where_the_board_dials(tmp_path: Path) -> None:
    text = _error(tmp_path, lambda d: d["targets"]["nucleo"].update(host="192.168.1.10:5001"))
    assert "targets.nucleo.host" in text and "192.168.1.10:5001" in text and "192.168.1.10:5000" in text
    assert "ota.server" in text


def test_twin_forward_must_be_where_the_board_dials(tmp_path: Path) -> None:
    text = _error(tmp_path, lambda d: d["targets"]["twin"].update(forward="10.0.0.1:5000"))
    assert (
        "targets.twin.forward" in text and "10.0.0.1:5000" in text and "ota.server 192.168.1.10:5000" in text
    )


def _two_boards(doc: dict, **second: object) -> None:
    doc["targets"]["nucleo"]["boards"] = [
        {"probe_uid": "066DFF485151717867114355", "board_ip": "192.168.1.100"},
        {
            "probe_uid": "0670FF534955857867204521",
            "host": "192.168.1.10:5001",
            "board_ip": "192.168.1.101",
            **second,
        },
    ]


def test_several_boards_each_with_its_own_address(tmp_path: Path) -> None:
    spec = load_board(_board(tmp_path, _two_boards))
    a, b = spec.lab_boards()
    assert (a.host, a.board_ip, a.host_key) == (Endpoint("192.168.1.10", 5000), "192.168.1.100", "ota.server")
    assert (b.host, b.board_ip) == (Endpoint("192.168.1.10", 5001), "192.168.1.101")
    assert b.host_key == "targets.nucleo.boards[1].host"


@pytest.mark.parametrize(
    "second, key, words",
    [
        ({"host": "192.168.1.10:5000"}, "host", ["boards 0 and 1 share host 192.168.1.10:5000"]),
        ({"board_ip": "192.168.1.100"}, "board_ip", ["share board_ip 192.168.1.100"]),
        ({"probe_uid": "066dff485151717867114355"}, "probe_uid", ["share probe_uid"]),
    ],
)
def test_two_boards_never_share_an_address_or_a_probe(
    tmp_path: Path, second: dict, key: str, words: list[str]
) -> None:
    text = _error(tmp_path, lambda d: _two_boards(d, **second))
    assert f"targets.nucleo.boards[1].{key}" in text and all(w in text for w in words), text


@pytest.mark.parametrize(
    "edit, path",
    [
        (lambda d: d["targets"]["nucleo"].update(board_ip="192.168.1.300"), "targets.nucleo.board_ip"),
        (lambda d: d["targets"]["nucleo"].update(boards=[{"host": "1.2.3.4:5"}]), "probe_uid"),
        (lambda d: d.update(power={"off_time": 1}), "power"),
        (
            lambda d: d.update(
                power={"uhubctl": {"location": "1-1", "port": 2}, "command": {"off": "a", "on": "b"}}
            ),
            "power",
        ),
        (lambda d: d.update(power={"uhubctl": {"location": "1-1", "port": 0}}), "power.uhubctl.port"),
        (lambda d: d["targets"]["nucleo"].update(pyocd_options={"frequency": [1]}), "pyocd_options"),
    ],
)
def test_bad_lab_keys_are_named(tmp_path: Path, edit, path: str) -> None:
    assert path in _error(tmp_path, edit)


def test_power_switch_and_pyocd_files_are_taken_from_the_board_files_folder(tmp_path: Path) -> None:
    def edit(doc: dict) -> None:
        doc["power"] = {"command": {"off": "./relay.sh off", "on": "./relay.sh on"}, "off_time": 1}
        doc["targets"]["nucleo"].update(pyocd_config="pyocd.yaml", pyocd_options={"frequency": 4_000_000})

    path = _board(tmp_path, edit)
    spec = load_board(path)
    assert spec.power is not None and spec.power.command == ("./relay.sh off", "./relay.sh on")
    assert spec.power.off_time == 1.0 and spec.power.base_dir == str(path.parent.resolve())
    nucleo = spec.targets["nucleo"]
    assert nucleo.pyocd_config == str(path.parent.resolve() / "pyocd.yaml")
    assert dict(nucleo.pyocd_options) == {"frequency": 4_000_000}
    (board,) = spec.lab_boards()
    assert board.power == spec.power  # the single board is switched by power:


def test_a_board_of_the_list_without_its_own_switch_uses_power(tmp_path: Path) -> None:
    def edit(doc: dict) -> None:
        _two_boards(doc, power={"uhubctl": {"location": "1-1.4", "port": 3}})
        doc["power"] = {"uhubctl": {"location": "1-1.4", "port": 2}}

    a, b = load_board(_board(tmp_path, edit)).lab_boards()
    assert a.power is not None and a.power.uhubctl == ("1-1.4", 2)
    assert b.power is not None and b.power.uhubctl == ("1-1.4", 3)
