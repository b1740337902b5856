"""A board on another host (issue 20 §4, §5): its console through RFC 2217 and its probe through
a pyOCD probe server (``remote:HOST:PORT``), and what the rig says when either goes away.

The "lab host" is a twin (its probe server is stock pyOCD's) with an RFC 2217 server in front
of its console PTY (rfc2217_server.py, pyserial's port manager, as ser2net would be): the rig
reaches both only over TCP, exactly as it would a NUCLEO on another machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_hosts import BUILD, LabHost, start_lab_host

from rig.console import Console
from rig.errors import ConsoleError
from rig.probe import Probe
from rig.targets.twin import free_port

HERE = Path(__file__).resolve().parent


@pytest.fixture
def lab_host(tmp_path: Path) -> Iterator[LabHost]:
    if not (BUILD / "bootloader.bin").is_file():
        pytest.skip("bootloader.bin not built (make -C firmware)")
    host = start_lab_host(
        tmp_path / "twin.log", ["--load", f"{BUILD / 'bootloader.bin'}@0x08000000", "--timing", "fast"]
    )
    try:
        yield host
    finally:
        host.stop()


def test_the_console_over_rfc2217_and_the_probe_over_its_server(lab_host: LabHost) -> None:
    with Console(lab_host.url) as con, Probe(lab_host.twin.probe_uid) as probe:
        assert con.is_url
        mark = con.mark()
        probe.reset()
        line = con.expect(r"BL: [^\r\n]+", timeout=30, since=mark, what="the bootloader's banner")
        assert line.group(0).startswith("BL:")


def test_a_console_server_that_goes_away_ends_the_wait_at_once(lab_host: LabHost) -> None:
    with Console(lab_host.url) as con:
        time.sleep(0.5)
        os.kill(lab_host.rfc2217.pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(ConsoleError) as err:
            con.expect(r"never printed", timeout=60, what="the application's banner")
        assert time.monotonic() - t0 < 10, "the wait ran to its timeout"
    text = str(err.value)
    assert f"the console {lab_host.url} went away while waiting for the application's banner" in text
    assert "RFC 2217" in (err.value.hint or "")


def test_a_console_that_comes_back_is_opened_again(lab_host: LabHost) -> None:
    """What the plugin does before every test: a console lost earlier is opened again (the
    log kept); one that does not come back is named with what was lost."""
    from lab_hosts import start_rfc2217

    port = int(lab_host.url.rpartition(":")[2])
    with Console(lab_host.url) as con, Probe(lab_host.twin.probe_uid) as probe:
        before = con.mark()
        lab_host.rfc2217.kill()
        lab_host.rfc2217.wait(5)
        with pytest.raises(ConsoleError, match="went away"):
            con.expect("never printed", timeout=30)
        lab_host.rfc2217, _ = start_rfc2217(lab_host.twin.serial_port, port)
        con.recover()
        assert con.lost is None and con.mark() >= before
        mark = con.mark()
        probe.reset()
        con.expect(r"BL: [^\r\n]+", timeout=30, since=mark, what="the bootloader's banner")
        lab_host.rfc2217.kill()
        lab_host.rfc2217.wait(5)
        with pytest.raises(ConsoleError, match="went away"):
            con.expect("never printed", timeout=30)
        with pytest.raises(ConsoleError, match=r"went away earlier .* and did not come back"):
            con.recover(timeout=1)


def test_a_probe_server_gone_is_named_not_an_assertion(lab_host: LabHost) -> None:
    """pyOCD's locking wrapper unlocks in a ``finally`` even when the lock request failed; with
    the server gone that used to replace the ProbeDisconnected by a bare AssertionError."""
    from pyocd.core.exceptions import ProbeDisconnected

    with Probe(lab_host.twin.probe_uid) as probe:
        os.kill(lab_host.twin.proc.pid, signal.SIGKILL)
        lab_host.twin.proc.wait(10)
        with pytest.raises(ProbeDisconnected, match=r"remote probe 127\.0\.0\.1:"):
            probe.target.halt()  # a raw pyOCD call, as removing a breakpoint is
        with pytest.raises(ProbeDisconnected):  # and every later one
            probe.target.read_core_register("pc")


def test_a_console_server_that_is_not_there_is_named_at_open() -> None:
    url = f"rfc2217://127.0.0.1:{free_port()}"
    with pytest.raises(ConsoleError) as err:
        Console(url).open()
    assert f"cannot open serial port {url}" in str(err.value)
    assert "RFC 2217 server" in (err.value.hint or "")


@pytest.mark.timeout(1800)  # whole pytest runs against two lab hosts, on a loaded CI machine
def test_two_boards_on_other_hosts_through_the_board_file(tmp_path: Path) -> None:
    """``pytest tests_hil -n 2 --board nucleo`` with a board file whose two boards are on other
    hosts: ``probe_uid: remote:HOST:PORT`` and ``serial_port: rfc2217://HOST:PORT``, without
    labgrid; each worker updates its own board through its own server."""
    import json

    import yaml

    from rig.board import default_board_path

    for f in ("bootloader.bin", "app-v1-16k.bin"):
        if not (BUILD / f).is_file():
            pytest.skip(f"{f} not built (make -C firmware)")
    hosts = [start_lab_host(tmp_path / f"twin{i}.log") for i in range(2)]
    try:
        doc = yaml.safe_load(Path(default_board_path()).read_text())
        doc["targets"]["nucleo"]["boards"] = [
            {"probe_uid": h.twin.probe_uid, "listen": f"127.0.0.1:{h.twin.ota_bind[1]}", "serial_port": h.url}
            for h in hosts
        ]
        board_file = tmp_path / "remote-boards.yaml"
        board_file.write_text(yaml.safe_dump(doc))
        reports = tmp_path / "reports"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
        env["OTA_RIG_LOCK_DIR"] = str(tmp_path / "locks")
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
                *("--board-file", str(board_file), "--probe-uid", ",".join(h.twin.probe_uid for h in hosts)),
                *("-n", "2", "--dist", "each", "-k", "update and 16k and eth"),
                *("--report-dir", str(reports), "--junitxml", str(reports / "junit.xml")),
            ],
            cwd=HERE.parents[1],
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "2 passed" in out, out[-5000:]
        for worker, host in zip(("gw0", "gw1"), hosts, strict=True):
            record = json.loads((reports / "artifacts" / worker / "board-safety.json").read_text())
            assert record["probe_uid"] == host.twin.probe_uid
            with Probe(host.twin.probe_uid) as p:  # each board got its update from its own worker
                assert p.read(0x08040000, 16384) == (BUILD / "app-v1-16k.bin").read_bytes()
        consoles = [(reports / "artifacts" / w / "console.log").read_text() for w in ("gw0", "gw1")]
        assert all("BL:" in text for text in consoles), consoles  # the console came over RFC 2217
    finally:
        for h in hosts:
            h.stop()


@pytest.mark.timeout(1800)  # whole pytest runs against two lab hosts, on a loaded CI machine
def test_the_console_server_gone_mid_test_fails_that_test_only(lab_host: LabHost, tmp_path: Path) -> None:
    """The board host's RFC 2217 server dies during the eth update (the network and the probe
    carry on): that test fails in the phase that waited on the console, saying the console went
    away; the server is back before the next test, which reopens the console and passes."""
    from lab_hosts import start_rfc2217

    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["OTA_RIG_LOCK_DIR"] = str(tmp_path / "locks")
    board_file = tmp_path / "board.yaml"
    _write_board_file(board_file, lab_host)
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
            *("--board-file", str(board_file), "--probe-uid", lab_host.twin.probe_uid),
            *("--serial-port", lab_host.url, "-k", "update and 16k"),
            *("--report-dir", str(reports), "--junitxml", str(reports / "junit.xml")),
        ],
        cwd=HERE.parents[1],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    log = reports / "artifacts" / "main" / "console.log"
    deadline = time.monotonic() + 600
    while not (log.exists() and "BL: OTA over eth" in log.read_text(errors="replace")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0][-5000:]
        time.sleep(0.1)
    lab_host.rfc2217.kill()
    lab_host.rfc2217.wait(5)
    lab_host.rfc2217, _ = start_rfc2217(lab_host.twin.serial_port, int(lab_host.url.rpartition(":")[2]))
    out, _ = proc.communicate(timeout=900)
    cases = {c.get("name"): list(c) for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    eth, wifi = (
        cases["test_update_jumps_into_new_app[eth-16k]"],
        cases["test_update_jumps_into_new_app[wifi-16k]"],
    )
    assert eth and eth[0].tag == "failure", out[-5000:]
    assert "went away" in (eth[0].get("message") or "") + (eth[0].text or ""), out[-5000:]
    assert not wifi, out[-5000:]  # the next test: the console reopened, the update passed


def _write_board_file(path: Path, host: LabHost) -> None:
    import yaml

    from rig.board import default_board_path

    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"].update(listen=f"127.0.0.1:{host.twin.ota_bind[1]}", board_ip="127.0.0.1")
    path.write_text(yaml.safe_dump(doc))
