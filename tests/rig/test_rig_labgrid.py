"""Boards in a labgrid farm (issue 20 §4, §5), simulated on this machine.

Two "lab hosts", each a twin behind its own pyOCD probe server and an RFC 2217 console server
(lab_hosts.py), each exported by its own ``labgrid-exporter`` (lab1, lab2) to a
``labgrid-coordinator`` started by the test (labgrid 26, gRPC), with a place per host. The
rig reaches them only as the places' resources say: ``PyOCDServer`` (remote:HOST:PORT),
``NetworkSerialPort`` (rfc2217://HOST:PORT) and ``OtaListen``.
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
from lab_hosts import BUILD, Farm, LabHost, start_farm, start_lab_host

from rig import probe_lock
from rig.probe import Probe
from rig.targets.twin import free_port

REPO = Path(__file__).resolve().parents[2]
PLACES = ["nucleo-a", "nucleo-b"]


@pytest.fixture
def farm(tmp_path: Path) -> Iterator[tuple[Farm, list[LabHost]]]:
    for f in ("bootloader.bin", "app-v1-16k.bin"):
        if not (BUILD / f).is_file():
            pytest.skip(f"{f} not built (make -C firmware)")
    hosts: list[LabHost] = []
    try:
        hosts += [start_lab_host(tmp_path / f"twin{i}.log") for i in range(2)]
        lab = start_farm(tmp_path / "farm", hosts, PLACES)
        try:
            yield lab, hosts
        finally:
            lab.stop()
    finally:
        for h in hosts:
            h.stop()


def _rig(farm_address: str, tmp_path: Path, name: str, *args: str) -> subprocess.Popen:
    """``pytest tests_hil --board nucleo`` against the farm, its reports under tmp_path/name."""
    reports = tmp_path / name
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.update(LG_COORDINATOR=farm_address, OTA_RIG_LOCK_DIR=str(tmp_path / "locks"))
    env.pop("OTA_RIG_PROBE_UID", None)
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
            *("--report-dir", str(reports), "--junitxml", str(reports / "junit.xml"), *args),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _finish(proc: subprocess.Popen, timeout: float = 1200) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def _released(lab: Farm, place: str) -> None:
    shown = lab.client("-p", place, "show")
    assert "acquired: None" in shown, shown
    assert "Reservation" not in lab.client("reservations"), "a reservation was left behind"


@pytest.mark.timeout(1800)  # whole pytest runs against two lab hosts, on a loaded CI machine
def test_two_places_one_per_worker(farm: tuple[Farm, list[LabHost]], tmp_path: Path) -> None:
    """``pytest tests_hil -n 2 --lg-place A,B -k "update and 16k"``: worker gw0 acquires place A,
    gw1 place B; both boards updated through their own place's probe server and console;
    both places released after the run."""
    lab, hosts = farm
    proc = _rig(
        lab.address,
        tmp_path,
        "run",
        *("--lg-place", ",".join(PLACES), "-n", "2", "--dist", "each", "-k", "update and 16k"),
    )
    out = _finish(proc)
    assert proc.returncode == 0 and "4 passed" in out, out[-5000:]
    for host in hosts:
        with Probe(host.twin.probe_uid) as p:
            assert p.read(0x08040000, 16384) == (BUILD / "app-v1-16k.bin").read_bytes()
    for worker in ("gw0", "gw1"):  # each worker's console came over its place's RFC 2217 server
        assert "BL:" in (tmp_path / "run" / "artifacts" / worker / "console.log").read_text()
    for place in PLACES:
        _released(lab, place)


@pytest.mark.timeout(1800)  # whole pytest runs against two lab hosts, on a loaded CI machine
def test_a_board_killed_mid_test_fails_that_phase_and_frees_place_and_lock(
    farm: tuple[Farm, list[LabHost]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The board host of place A dies as the OTA session starts (its twin killed: probe server
    and console gone at once): the test fails naming its phase and the lost probe server, the
    run ends, place A and the board lock are free again, and the next run (place B) passes."""
    lab, hosts = farm
    proc = _rig(lab.address, tmp_path, "killed", "--lg-place", PLACES[0], "-k", "update and 16k and eth")
    console = tmp_path / "killed" / "artifacts" / "main" / "console.log"
    deadline = time.monotonic() + 600
    while not (console.exists() and "BL: OTA over" in console.read_text(errors="replace")):
        assert proc.poll() is None and time.monotonic() < deadline, _finish(proc)[-5000:]
        time.sleep(0.2)
    os.kill(hosts[0].twin.proc.pid, signal.SIGKILL)
    t0 = time.monotonic()
    out = _finish(proc, timeout=600)
    assert proc.returncode == 1, out[-5000:]
    assert time.monotonic() - t0 < 300, "the run took too long to end after the board died"
    # the test's failure (the end-of-run boot check may add an error at teardown: the board is gone)
    results = [
        (case.get("name"), child.tag, child.get("message") or "")
        for case in ET.parse(tmp_path / "killed" / "junit.xml").getroot().iter("testcase")
        for child in case
    ]
    failures = [m for name, tag, m in results if tag == "failure" and name.endswith("[eth-16k]")]
    assert failures, results
    # the phase it was in (the kill lands once the console says "BL: OTA over": a 16 KiB update
    # may be past its transfer by then, so boot to jump), and why: the probe server went away
    phases = ("boot", "transfer", "write", "copy", "jump")
    assert any(f"[{phase}]" in failures[0] for phase in phases), results
    assert "the probe server closed the connection" in failures[0] or "went away" in failures[0], results
    _released(lab, PLACES[0])
    monkeypatch.setenv("OTA_RIG_LOCK_DIR", str(tmp_path / "locks"))
    probe_lock.acquire(hosts[0].twin.probe_uid, timeout=0)  # the board's lock is free at once
    probe_lock.release(hosts[0].twin.probe_uid)
    nxt = _rig(lab.address, tmp_path, "next", "--lg-place", PLACES[1], "-k", "update and 16k and eth")
    out = _finish(nxt)
    assert nxt.returncode == 0 and "1 passed" in out, out[-5000:]
    _released(lab, PLACES[1])


def test_an_unreachable_coordinator_stops_the_run_before_any_test(tmp_path: Path) -> None:
    proc = _rig(
        f"127.0.0.1:{free_port()}", tmp_path, "nocoord", "--lg-place", "nucleo-a", "-k", "update and 16k"
    )
    out = _finish(proc, timeout=300)
    assert proc.returncode == 4, out[-3000:]
    assert "--board nucleo: labgrid coordinator 127.0.0.1:" in out and "cannot be reached" in out, out[-3000:]
