"""rig.labgrid_place against a real labgrid coordinator and exporter (no board: the exported
resources name addresses nobody serves): reserve, acquire, read the resources, release; a
place another user holds is waited for and given up on naming the holder; the resources the
rig needs are checked; --lg-place's rules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "rig"))
from lab_hosts import Farm, labgrid_tool, start_coordinator

from rig.board import LabBoard, default_board_path
from rig.board_spec import Endpoint
from rig.errors import ConfigError, TargetError
from rig.labgrid_place import LabgridPlace, board_of_place, places_for_run, resources_of

EXPORTS = """
board:
  NetworkSerialPort: {host: 127.0.0.1, port: 4001, speed: 115200, protocol: rfc2217}
  PyOCDServer: {host: 127.0.0.1, port: 5555}
  OtaListen: {host: 127.0.0.1, port: 6000}
  NetworkPowerPort: {model: gude, host: 127.0.0.1, index: 1}
"""


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[Farm]:
    import subprocess
    import time

    proc, address = start_coordinator(tmp_path)
    lab = Farm(address, [proc], tmp_path)
    try:
        (tmp_path / "lab1.yaml").write_text(EXPORTS)
        lab.procs.append(
            subprocess.Popen(
                [
                    labgrid_tool("labgrid-exporter"),
                    "-c",
                    address,
                    "--name",
                    "lab1",
                    str(tmp_path / "lab1.yaml"),
                ],
                cwd=tmp_path,
                stdout=(tmp_path / "exporter.log").open("w"),
                stderr=subprocess.STDOUT,
            )
        )
        deadline = time.monotonic() + 60
        while "lab1/board/PyOCDServer" not in lab.client("resources", check=False):
            assert time.monotonic() < deadline, (tmp_path / "exporter.log").read_text()
            time.sleep(0.3)
        lab.client("-p", "nucleo-a", "create")
        lab.client("-p", "nucleo-a", "add-match", "lab1/board/*")
        yield lab
    finally:
        lab.stop()


def test_acquire_read_the_resources_release(farm: Farm) -> None:
    place = LabgridPlace("nucleo-a", coordinator=farm.address, timeout=10)
    res = place.acquire()
    try:
        assert res.probe_uid == "remote:127.0.0.1:5555"
        assert res.serial_port == "rfc2217://127.0.0.1:4001"
        assert res.ota_listen == ("127.0.0.1", 6000)
        assert res.power is not None and res.power["cls"] == "NetworkPowerPort"
        assert "acquired: None" not in farm.client("-p", "nucleo-a", "show")
    finally:
        place.release()
    assert "acquired: None" in farm.client("-p", "nucleo-a", "show")
    assert "Reservation" not in farm.client("reservations")
    place.release()  # idempotent


def test_a_place_held_by_another_user_is_waited_for_then_given_up(farm: Farm, monkeypatch) -> None:
    monkeypatch.setenv("LG_USERNAME", "alice")
    farm.client("-p", "nucleo-a", "acquire")
    monkeypatch.delenv("LG_USERNAME")
    said: list[str] = []
    place = LabgridPlace("nucleo-a", coordinator=farm.address, timeout=2, say=said.append)
    with pytest.raises(TargetError) as err:
        place.acquire()
    assert (
        "is held by" in str(err.value)
        and "/alice" in str(err.value)
        and "gave up after 2 s" in str(err.value)
    )
    assert said and "/alice" in said[0]
    assert "Reservation" not in farm.client("reservations"), "the reservation was left behind"


def test_an_unknown_place_is_named(farm: Farm) -> None:
    with pytest.raises(TargetError, match=r"labgrid has no place nucleo-z \(places: nucleo-a\)"):
        LabgridPlace("nucleo-z", coordinator=farm.address, timeout=2).acquire()


def test_the_resources_the_rig_needs() -> None:
    with pytest.raises(TargetError, match="has no PyOCDServer resource") as err:
        resources_of("p", {"NetworkSerialPort": {"host": "h", "port": 1}})
    assert "pyocd server" in (err.value.hint or "")
    with pytest.raises(TargetError, match="speaks raw, not rfc2217"):
        resources_of(
            "p",
            {
                "NetworkSerialPort": {"host": "h", "port": 1, "protocol": "raw"},
                "PyOCDServer": {"host": "h", "port": 2},
            },
        )
    res = resources_of(
        "p", {"NetworkSerialPort": {"host": "h", "port": 1}, "PyOCDServer": {"host": "g", "port": 2}}
    )
    template = LabBoard(
        probe_uid=None, host=Endpoint("192.168.1.10", 5000), usb_serial="X", listen=Endpoint("10.0.0.1", 7)
    )
    board = board_of_place(template, res)
    assert (board.probe_uid, board.serial_port, board.usb_serial) == ("remote:g:2", "rfc2217://h:1", None)
    assert board.bind == Endpoint("10.0.0.1", 7)  # no OtaListen: the board file's listen


def test_lg_place_rules() -> None:
    board_file = Path(default_board_path())
    assert places_for_run("a, b", board_file, board="nucleo", probe_uid=None) == ("a", "b")
    assert places_for_run(None, board_file, board="nucleo", probe_uid=None) == ()
    with pytest.raises(ConfigError, match="add --board nucleo"):
        places_for_run("a", board_file, board="twin", probe_uid=None)
    with pytest.raises(ConfigError, match="give one of them"):
        places_for_run("a", board_file, board="nucleo", probe_uid="066DFF")


def test_an_unreachable_coordinator() -> None:
    from rig.targets.twin import free_port

    with pytest.raises(TargetError, match="cannot be reached") as err:
        LabgridPlace("p", coordinator=f"127.0.0.1:{free_port()}", timeout=2).acquire()
    assert "LG_COORDINATOR" in (err.value.hint or "")
