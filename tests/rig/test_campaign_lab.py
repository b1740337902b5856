"""``rig campaign power-cut --board nucleo`` against a twin reached like a lab board (issue 19).

The twin runs with datasheet flash timing and is reached only as a NUCLEO on a runner would
be: a ``remote:`` probe by UID, its PTY as the console, the OTA server on the board file's
``listen`` address, and the board file's ``power: command`` relay script (here it cuts the
twin's power through its control port, as a lab's script drives a relay). The campaign's dry
run runs on a twin of its own; each point reaches its operation through DWT watchpoints and
breakpoints with the probe, cuts with the relay script, and judges the recovery through the
console, the OTA server and the probe. Only a real ST-LINK and a real relay are missing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab_relay import flash_sha, lab_board_file

from rig.targets.twin import TwinTarget, start_twin

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"
USER_BOOTLOADER = BUILD / "bootloader-no-vtor.bin"  # the user's own, before the campaign


@pytest.fixture
def lab_board(tmp_path: Path) -> Iterator[TwinTarget]:
    for f in (USER_BOOTLOADER, BUILD / "bootloader.bin", BUILD / "app-v1-16k.bin", BUILD / "app-v4-64k.bin"):
        if not f.is_file():
            pytest.skip(f"{f.name} not built (make -C firmware)")
    twin = start_twin(
        ota_lan=("192.168.1.10", 5000),
        extra_args=["--load", f"{USER_BOOTLOADER}@0x08000000", "--timing", "datasheet"],
        log_path=tmp_path / "twin.log",
    )
    try:
        yield twin
    finally:
        twin.stop()


def _campaign(twin: TwinTarget, board_file: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TWIN_CONTROL=str(twin.info["control"]))
    return subprocess.run(
        [
            *(sys.executable, "-m", "rig.cli", "campaign", "power-cut", "--board", "nucleo"),
            *("--board-file", str(board_file), "--probe-uid", twin.probe_uid),
            *("--serial-port", twin.serial_port, "--out", str(out)),
            *("--image", str(BUILD / "app-v1-16k.bin"), "--old", str(BUILD / "app-v4-64k.bin")),
            *extra,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


def test_campaign_on_a_board_reached_like_a_lab_board(lab_board: TwinTarget, tmp_path: Path) -> None:
    twin = lab_board
    before = flash_sha(twin)
    board_file = lab_board_file(tmp_path, twin.ota_bind[1], off_time=0.2)
    # without --allow-destructive nothing is touched, and the error says what to add
    refused = _campaign(twin, board_file, tmp_path / "refused", "--points", "2")
    assert refused.returncode != 0 and "--allow-destructive" in refused.stderr + refused.stdout
    assert not (tmp_path / "refused" / "backups").exists()

    out = tmp_path / "campaign"
    proc = _campaign(
        twin,
        board_file,
        out,
        *("--points", "10", "--cut-at", "halted,0", "--seed", "7"),
        *("--allow-destructive", "--restore-after"),
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    doc = json.loads((out / "campaign.json").read_text())
    assert doc["settings"]["board"] == "nucleo" and "command" in doc["settings"]["switch"]
    results = doc["results"]
    assert len(results) == 10 and doc["seed"] == 7
    # five operations, each cut with the core halted there and right after resuming it
    assert sorted(r["mode"] for r in results) == ["+0ms"] * 5 + ["halted"] * 5
    kinds = {r["kind"] for r in results}
    # the point after the last operation, the erases and programs of the update
    assert {"after-last", "erase", "program"} <= kinds, results
    assert doc["counts"]["bricked"] == 0 and doc["counts"].get("not-reached", 0) == 0, results
    for r in results:
        assert r["outcome"] in ("recovered-old", "recovered-new", "re-asked"), r
        assert "halted at PC=0x" in r["detail"], r
    # an erase cut while the controller was busy with it: the reference bootloader asked again
    erases = [r for r in results if r["kind"] == "erase"]
    assert all("FLASH_SR=" in r["detail"] for r in erases) and any(r["outcome"] == "re-asked" for r in erases)
    # the twin saw power cuts from the relay, one per point
    cuts = [c for c in twin.control("flash")["cuts"] if c.get("kind") == "time"]
    assert len(cuts) == 10
    assert "interrupted after" in (tmp_path / "twin.log").read_text()  # an erase cut mid-way
    # the board's own flash saved first, put back at the end, byte for byte
    backups = list((out / "backups").iterdir())
    assert len(backups) == 1 and json.loads((backups[0] / "backup.json").read_text())["sha256"] == before
    assert flash_sha(twin) == before
    assert (out / "campaign.html").is_file() and "rig restore" in text


def test_a_board_without_a_power_switch_is_refused(lab_board: TwinTarget, tmp_path: Path) -> None:
    twin = lab_board
    before = flash_sha(twin)
    proc = _campaign(
        twin,
        lab_board_file(tmp_path, twin.ota_bind[1], off_time=None),
        tmp_path / "out",
        "--points",
        "2",
        "--allow-destructive",
    )
    assert proc.returncode != 0
    assert "no power switch" in proc.stderr + proc.stdout and "power:" in proc.stderr + proc.stdout
    assert flash_sha(twin) == before


def test_the_pytest_entry_on_a_board_reached_like_a_lab_board(lab_board: TwinTarget, tmp_path: Path) -> None:
    """``pytest tests_hil -m campaign --board nucleo --allow-destructive``: the twin's own
    campaign is skipped (twin_only), the real board's runs with the board file's switch."""
    import xml.etree.ElementTree as ET

    twin = lab_board
    before = flash_sha(twin)
    reports = tmp_path / "reports"
    env = dict(os.environ, TWIN_CONTROL=str(twin.info["control"]), OTA_RIG_CAMPAIGN_SEED="5")
    env.pop("PYTEST_XDIST_WORKER", None)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "-m", "campaign"),
            *(
                "--board",
                "nucleo",
                "--board-file",
                str(lab_board_file(tmp_path, twin.ota_bind[1], off_time=0.2)),
            ),
            *("--probe-uid", twin.probe_uid, "--serial-port", twin.serial_port),
            *("--allow-destructive", "--restore-after", "-rs"),
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
    assert proc.returncode == 0, out[-5000:]
    cases = {c.get("name"): c for c in ET.parse(reports / "junit.xml").getroot().iter("testcase")}
    ran = cases["test_power_cut_campaign_on_the_board[eth]"]
    assert not list(ran), out[-3000:]  # passed: no failure, no skip
    assert cases["test_power_cut_campaign[eth]"].find("skipped") is not None
    (doc,) = (json.loads(p.read_text()) for p in reports.glob("artifacts/**/campaign-board/campaign.json"))
    assert doc["seed"] == 5 and len(doc["results"]) == 6 and doc["counts"]["bricked"] == 0
    assert flash_sha(twin) == before
