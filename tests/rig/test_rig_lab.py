"""One OTA address per board (issue 15: 3, 4, 10): where a real board dials is where its server
listens, ``--ota-bind`` is checked against it at start-up (a host name resolved first), several
boards each get their own address, and the server accepts only the board's own address."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rig.board import Endpoint, default_board_path, load_board
from rig.errors import ConfigError
from rig.hil import Bench
from rig.lab import boards_for_run, resolve_endpoint
from rig.targets.base import Target

REPO = Path(__file__).resolve().parents[2]
A, B = "066DFF485151717867114355", "0670FF534955857867204521"


def _spec(tmp_path: Path, edit=None):
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    if edit:
        edit(doc)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_board(path)


def _two(doc: dict) -> None:
    doc["targets"]["nucleo"]["boards"] = [
        {"probe_uid": A, "board_ip": "192.168.1.100"},
        {"probe_uid": B, "host": "192.168.1.10:5001", "board_ip": "192.168.1.101"},
    ]


def test_one_board_listens_where_it_dials() -> None:
    (board,) = boards_for_run(load_board(), probe_uids=[A])
    assert board.probe_uid == A and board.host == Endpoint("192.168.1.10", 5000)
    # --ota-bind naming the same address is accepted
    assert boards_for_run(load_board(), ota_binds=["192.168.1.10:5000"])[0].host.port == 5000


def test_ota_bind_elsewhere_is_an_error_naming_both() -> None:
    with pytest.raises(ConfigError) as err:
        boards_for_run(load_board(), probe_uids=[A], ota_binds=["192.168.1.20:6000"])
    text = str(err.value)
    assert "--ota-bind 192.168.1.20:6000" in text and f"the board {A} dials 192.168.1.10:5000" in text
    assert "targets.nucleo.host" in text and "stm32f767.yaml" in text


def test_a_host_name_is_resolved_before_it_is_compared(tmp_path: Path) -> None:
    spec = _spec(
        tmp_path,
        lambda d: (
            d["ota"].update(server="127.0.0.1:5000"),
            d["targets"]["twin"].update(forward="127.0.0.1:5000"),
            d["targets"]["nucleo"].update(host="127.0.0.1:5000"),
        ),
    )
    assert boards_for_run(spec, ota_binds=["localhost:5000"])[0].host == Endpoint("127.0.0.1", 5000)
    with pytest.raises(ConfigError) as err:
        boards_for_run(spec, ota_binds=["localhost:5001"])
    assert "--ota-bind localhost:5001 (= 127.0.0.1:5001)" in str(err.value)
    with pytest.raises(ConfigError) as err:
        resolve_endpoint("no-such-host.invalid:5000")
    assert "'no-such-host.invalid' does not resolve" in str(err.value)
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        resolve_endpoint("192.168.1.10")


def test_two_probes_on_one_address_are_refused() -> None:
    with pytest.raises(ConfigError) as err:
        boards_for_run(load_board(), probe_uids=[A, B])
    text = str(err.value)
    assert f"{A} and {B} would share the OTA server address 192.168.1.10:5000" in text
    assert "targets.nucleo.boards" in text


def test_several_boards_each_serve_their_own(tmp_path: Path) -> None:
    spec = _spec(tmp_path, _two)
    a, b = boards_for_run(spec, probe_uids=[B.lower(), A])  # worker order = --probe-uid order
    assert (a.probe_uid, a.host.port, a.board_ip) == (B, 5001, "192.168.1.101")
    assert (b.probe_uid, b.host.port, b.board_ip) == (A, 5000, "192.168.1.100")
    assert [x.probe_uid for x in boards_for_run(spec)] == [A, B]  # no UID given: the list
    with pytest.raises(ConfigError, match=r"not one of targets\.nucleo\.boards"):
        boards_for_run(spec, probe_uids=["DEADBEEF"])
    with pytest.raises(ConfigError, match="gives 1 address"):
        boards_for_run(spec, ota_binds=["192.168.1.10:5000"])
    with pytest.raises(ConfigError, match=f"the board {B} dials 192.168.1.10:5001"):
        boards_for_run(spec, ota_binds=["192.168.1.10:5000", "192.168.1.10:5002"])


def test_the_server_accepts_only_the_boards_own_address(tmp_path: Path) -> None:
    """Bench.ota_server listens where the board dials and refuses any other peer (a real
    socket from 127.0.0.1 to a server that expects the board at 127.0.0.2)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    target = Target("nucleo", "X", "/dev/null", ("127.0.0.1", port), board_ip="127.0.0.2")
    bench = Bench(load_board(), target, probe=None, console=None, artifacts=tmp_path)  # type: ignore[arg-type]
    with bench.ota_server(b"\x00" * 64) as server:
        assert server.allow == {"127.0.0.2"}
        with socket.create_connection(("127.0.0.1", port), timeout=5) as c:
            c.settimeout(5)
            client = f"127.0.0.1:{c.getsockname()[1]}"
            assert c.recv(100) in (b"", b"BUSY\n")  # refused: closed at once
        result = server.wait_session(timeout=1.0)
    assert server.refused == [client] and not result.ok
    # and where the board dials is what the rig tells a bootloader that reads it from its record
    assert bench.boot_config("eth", update=True, app=None).server_port == port


def test_ota_bind_mismatch_stops_pytest_at_start_up(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--collect-only", "-q"),
            *("--report-dir", str(tmp_path), "--board", "nucleo", "--ota-bind", "192.168.1.20:5000"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--ota-bind 192.168.1.20:5000, but the board dials 192.168.1.10:5000" in proc.stderr


def test_behind_a_nat_the_server_listens_where_the_board_file_says(tmp_path: Path) -> None:
    """The lab network carries the board's connections to ota.server elsewhere (a NAT, a port
    forward, the twin's --forward): ``listen`` says where, and --ota-bind must name it."""
    spec = _spec(tmp_path, lambda d: d["targets"]["nucleo"].update(listen="127.0.0.1:47000"))
    (board,) = boards_for_run(spec, ota_binds=["localhost:47000"])
    assert board.host == Endpoint("192.168.1.10", 5000) and board.bind == Endpoint("127.0.0.1", 47000)
    with pytest.raises(ConfigError) as err:
        boards_for_run(spec, ota_binds=["192.168.1.10:5000"])
    text = str(err.value)
    assert "--ota-bind 192.168.1.10:5000, but the board's server listens on 127.0.0.1:47000" in text
    assert "targets.nucleo.listen" in text and "carries the board's connections to 192.168.1.10:5000" in text


def test_two_boards_may_dial_one_address_behind_their_own_forwards(tmp_path: Path) -> None:
    def edit(doc: dict) -> None:
        doc["targets"]["nucleo"]["boards"] = [
            {"probe_uid": A, "listen": "127.0.0.1:47001"},
            {"probe_uid": B, "listen": "127.0.0.1:47002"},
        ]

    a, b = boards_for_run(_spec(tmp_path, edit), probe_uids=[A, B])
    assert a.host == b.host and (a.bind.port, b.bind.port) == (47001, 47002)

    def clash(doc: dict) -> None:
        edit(doc)
        doc["targets"]["nucleo"]["boards"][1]["listen"] = "127.0.0.1:47001"

    with pytest.raises(ConfigError, match=r"boards\[1\]\.listen.*share listen 127\.0\.0\.1:47001"):
        _spec(tmp_path, clash)


def test_the_target_listens_on_bind_and_tells_the_board_its_dial_address(tmp_path: Path) -> None:
    from rig.targets.nucleo import nucleo_target

    t = nucleo_target(
        probe_uid="remote:127.0.0.1:1",
        serial_port="/dev/null",
        usb_serial=None,
        ota_bind=("127.0.0.1", 47000),
        ota_dial=("192.168.1.10", 5000),
        board_ip="127.0.0.1",
    )
    bench = Bench(load_board(), t, probe=None, console=None, artifacts=tmp_path)  # type: ignore[arg-type]
    cfg = bench.boot_config("eth", update=True, app=None)
    assert (cfg.server_ip, cfg.server_port) == ("192.168.1.10", 5000) and t.ota_allow == ["127.0.0.1"]
