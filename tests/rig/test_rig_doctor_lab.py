"""``rig doctor`` and the board lock against a twin reached like a lab board (issue 20: 2, 3).

The twin sits behind its pyOCD probe server (``remote:127.0.0.1:PORT``) as a board on another
host would, and the board file's ``targets.nucleo.listen`` puts the OTA server on a loopback
port. ``rig doctor --probe-uid remote:...`` reads the option bytes through that probe and
checks them against the board file; while another job holds the board's lock it says who
does instead, and a ``pytest tests_hil --board nucleo`` run for the same board gives up at
start-up, naming the holder, before any board is touched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rig.board import default_board_path
from rig.targets.twin import TwinTarget, free_port

REPO = Path(__file__).resolve().parents[2]

HOLD = """
import sys, time
from rig import probe_lock
probe_lock.acquire(sys.argv[1], timeout=0)
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    environ["OTA_RIG_LOCK_DIR"] = str(tmp_path / "locks")
    return environ


def _board_file(tmp_path: Path, port: int, **option_bytes: int) -> Path:
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"]["listen"] = f"127.0.0.1:{port}"
    doc["option_bytes"].update(option_bytes)
    path = tmp_path / f"lab-{len(option_bytes)}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _doctor(twin: TwinTarget, board_file: Path, env: dict[str, str]) -> tuple[int, dict]:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "rig.cli", "doctor", "--json"),
            *("--probe-uid", twin.probe_uid, "--board-file", str(board_file)),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _messages(doc: dict, check: str) -> list[tuple[str, str]]:
    return [(f["level"], f["message"]) for f in doc["findings"] if f["check"] == check]


def test_doctor_reads_the_option_bytes_of_a_board_behind_a_probe_server(
    twin: TwinTarget, tmp_path: Path, env: dict[str, str]
) -> None:
    port = free_port()
    code, doc = _doctor(twin, _board_file(tmp_path, port), env)
    assert code == 0 and doc["ok"] and doc["blocking"] == [], doc
    assert _messages(doc, "probe") == [
        ("info", f"{twin.probe_uid}: a pyOCD probe server, not a USB probe (USB checks are informative)")
    ]
    ob = _messages(doc, "option bytes")
    assert [level for level, _ in ob] == ["ok", "ok", "ok"], ob
    assert "RDP level 0" in ob[0][1] and "single-bank" in ob[1][1] and "BOOT_ADD0 0x0080" in ob[2][1]
    net = _messages(doc, "network")
    held = f"lo holds 127.0.0.1:{port} (targets.nucleo.listen), where the lab network carries the board's"
    assert ("ok", f"{held} connections to 192.168.1.10:5000 and is up") in net, net
    assert ("ok", f"the OTA port 127.0.0.1:{port} is free to listen on") in net

    # a board file that expects the chip to boot from 0x08000000: the doctor blocks, naming it
    code, doc = _doctor(twin, _board_file(tmp_path, port, BOOT_ADD0=0x2000), env)
    assert code == 1 and doc["blocking"] == ["option bytes"], doc
    assert any("the board file expects 0x2000" in m for _, m in _messages(doc, "option bytes"))


def test_a_held_board_is_named_by_the_doctor_and_refused_to_a_second_run(
    twin: TwinTarget, tmp_path: Path, env: dict[str, str]
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, twin.probe_uid], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        port = free_port()
        board_file = _board_file(tmp_path, port)
        _, doc = _doctor(twin, board_file, env)
        (ob,) = _messages(doc, "option bytes")
        assert ob[0] == "warn" and f"in use by pid {holder.pid}" in ob[1], doc

        run = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
                *("--board-file", str(board_file), "--probe-uid", twin.probe_uid),
                *("--serial-port", twin.serial_port, "-k", "update and 16k and eth"),
                *("--report-dir", str(tmp_path / "reports")),
            ],
            cwd=REPO,
            env={**env, "OTA_RIG_LOCK_TIMEOUT": "2"},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        out = run.stdout + run.stderr
        assert run.returncode == 4, out[-3000:]  # pytest's usage error: the run never started
        assert f"is in use by pid {holder.pid}" in out and "gave up after waiting 2 s" in out, out[-3000:]
        assert "waiting (up to" in out  # the waiting job said who holds the board
        assert not (tmp_path / "reports" / "backups").exists()  # nothing read, nothing written
    finally:
        holder.kill()
        holder.wait(10)
