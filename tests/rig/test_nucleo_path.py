"""The ``nucleo`` target's own code path, end to end, in CI (issue 15: acceptance).

A twin is started the way a lab board sits on a runner, and pytest drives it with
``--board nucleo``: the probe is a pyOCD ``remote:`` probe given by UID, the console a device
path (the twin's PTY, as ``/dev/ttyACM0`` would be), and the OTA server listens on the lab
address the board file gives: the board dials its LAN address (``ota.server``,
192.168.1.10:5000) and the twin's network carries that connection to the host address the
board file names in ``targets.nucleo.listen`` (as a lab's NAT or port forward would; the
twin's ``--forward`` points there). Everything of rig/targets/nucleo.py, the
plugin's nucleo branch, the address check, the allow-list (the board's own address), the
flash backup before the first write, ``--restore-after`` and the boot check after the run
runs for real, and with ``--allow-destructive`` the power-cut scenario through the board
file's ``power: command`` (a relay script; here it cuts the twin's power through its control
port, as a lab's script drives a relay); only the USB discovery of an ST-LINK and its virtual
COM port is not exercised (no USB device here). The board held a bootloader of the user's
own before the run (a variant): after the run it is there again, byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lab_relay import LAB_IP, flash_sha, lab_board_file

from rig.board import default_board_path
from rig.probe import Probe
from rig.targets.twin import TwinTarget, start_twin

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"
USER_BOOTLOADER = BUILD / "bootloader-no-vtor.bin"  # the user's own, before the run


@pytest.fixture
def lab_board(tmp_path: Path) -> Iterator[tuple[TwinTarget, int]]:
    for f in (USER_BOOTLOADER, BUILD / "bootloader.bin", BUILD / "app-v1-16k.bin"):
        if not f.is_file():
            pytest.skip(f"{f.name} not built (make -C firmware)")
    twin = start_twin(
        ota_lan=("192.168.1.10", 5000),  # the board dials this; the twin carries it to a host port
        extra_args=[
            *("--load", f"{USER_BOOTLOADER}@0x08000000"),
            *("--load", f"{BUILD / 'app-v2-300k.bin'}@0x08040000"),
            *("--timing", "datasheet"),
        ],
        log_path=tmp_path / "twin.log",
    )
    assert twin.ota_bind[0] == LAB_IP
    try:
        yield twin, twin.ota_bind[1]
    finally:
        twin.stop()


def test_the_nucleo_path_against_a_board_reached_like_a_lab_board(
    lab_board: tuple[TwinTarget, int], tmp_path: Path
) -> None:
    twin, port = lab_board
    before = flash_sha(twin)
    reports = tmp_path / "reports"
    board = [
        *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
        *("--board-file", str(lab_board_file(tmp_path, port))),
        *("--probe-uid", twin.probe_uid, "--serial-port", twin.serial_port),
    ]
    env = dict(os.environ, TWIN_CONTROL=str(twin.info["control"]))
    env.pop("PYTEST_XDIST_WORKER", None)
    update = "update and 16k and eth"
    cut = "power_switched and install and eth"
    # without --allow-destructive the power cut is skipped, saying why, before any board is touched
    skipped = subprocess.run(
        [*board, "-k", cut, "-rs", "--report-dir", str(tmp_path / "skip")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout[-3000:]
    assert "--allow-destructive" in skipped.stdout and not (tmp_path / "skip" / "backups").exists()
    proc = subprocess.run(
        [
            *board,
            *("-k", f"({update}) or ({cut})", "--allow-destructive"),
            *("--ota-bind", f"localhost:{port}", "--restore-after"),
            *("--report-dir", str(reports), "--junitxml", str(reports / "junit.xml")),
            *("--html", str(reports / "report.html"), "--self-contained-html"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    cases = {c.get("name"): c for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    assert sorted(cases) == [
        "test_power_switched_off_during_update[eth-install]",
        "test_update_jumps_into_new_app[eth-16k]",
    ], out[-3000:]
    assert not any(list(c) for c in cases.values()), out[-3000:]  # both passed, none skipped
    assert "power cut by command" in (reports / "report.html").read_text()

    # the board's flash was saved before the first write, put back and verified after the run
    (record_file,) = (reports / "artifacts").glob("*/board-safety.json")
    record = json.loads(record_file.read_text())
    backup = Path(record["backup"])
    meta = json.loads((backup / "backup.json").read_text())
    assert meta["sha256"] == before and meta["probe_uid"] == twin.probe_uid
    assert "flash verified" in record["restored"] and record["boot_check"]["ok"], record
    assert record["boot_check"]["line"].startswith("BL:")
    assert flash_sha(twin) == before  # the user's bootloader is back
    assert "ota-rig: the real board" in out and f"rig restore {backup}" in out

    # what the report says about the board: the silicon, the OTA session from the board's own address
    page = (reports / "report.html").read_text()
    assert "STM32F76x/F77x rev Z (DEV_ID 0x451, REV_ID 0x1001)" in page
    transcript = next((reports / "artifacts").glob("*eth-16k*/ota-transcript.txt")).read_text()
    assert f"{LAB_IP}:" in transcript and "ack" in transcript.lower()


def test_two_boards_each_served_by_its_own_worker(tmp_path: Path) -> None:
    """``pytest -n 2 --probe-uid A,B`` with ``targets.nucleo.boards``: worker gw0 drives board
    A and serves it on A's address, gw1 board B on B's. Both boards dial the same lab address
    (ota.server); each one's network carries it to its own server (``listen``)."""
    for f in (USER_BOOTLOADER, BUILD / "bootloader.bin", BUILD / "app-v1-16k.bin"):
        if not f.is_file():
            pytest.skip(f"{f.name} not built (make -C firmware)")
    twins = [
        start_twin(
            ota_lan=("192.168.1.10", 5000),
            extra_args=["--load", f"{USER_BOOTLOADER}@0x08000000"],
            log_path=tmp_path / f"twin{i}.log",
        )
        for i in range(2)
    ]
    try:
        doc = yaml.safe_load(Path(default_board_path()).read_text())
        doc["targets"]["nucleo"]["boards"] = [
            {"probe_uid": t.probe_uid, "listen": f"{LAB_IP}:{t.ota_bind[1]}", "serial_port": t.serial_port}
            for t in twins
        ]
        board_file = tmp_path / "two-boards.yaml"
        board_file.write_text(yaml.safe_dump(doc))
        reports = tmp_path / "reports"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--board", "nucleo"),
                *("--board-file", str(board_file), "--probe-uid", ",".join(t.probe_uid for t in twins)),
                *("-n", "2", "--dist", "each", "-k", "update and 16k and eth"),
                *("--report-dir", str(reports), "--junitxml", str(reports / "junit.xml")),
            ],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0 and "2 passed" in out, out[-5000:]
        records = {
            json.loads(p.read_text())["probe_uid"]: p.parent.name
            for p in (reports / "artifacts").glob("*/board-safety.json")
        }
        assert records == {twins[0].probe_uid: "gw0", twins[1].probe_uid: "gw1"}, records
        for t in twins:  # each board really got the update (its own server served it)
            with Probe(t.probe_uid) as p:
                assert p.read(0x08040000, 16384) == (BUILD / "app-v1-16k.bin").read_bytes()
    finally:
        for t in twins:
            t.stop()
