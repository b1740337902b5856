"""``rig ota serve`` as a user runs it: a real process, a scripted board, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ota_board import ScriptedBoard

from rig.ota.cli import _size, main


def start(args: list[str]) -> tuple[subprocess.Popen, tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "rig.ota.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()  # type: ignore[union-attr]
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not m:
        proc.kill()
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"no listening line: {line!r} {out!r} {err!r}")
    return proc, (m.group(1), int(m.group(2)))


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "app.bin"
    path.write_bytes(os.urandom(30000))
    return path


def test_serve_one_session_with_policy_and_json(image: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "res.json"
    proc, addr = start(
        [
            "serve",
            str(image),
            "--port",
            "0",
            "--policy",
            "split-tokens",
            "--json",
            str(out_json),
            "--timeout",
            "30",
            "--transcript",
        ]
    )
    try:
        board = ScriptedBoard(addr).run()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert board.outcome == "ack" and board.data == image.read_bytes()
    assert proc.returncode == 0, err
    assert "ACK board acknowledged the image" in out and "policy=split-tokens" in out
    assert "OTA_DONE" in out  # --transcript
    doc = json.loads(out_json.read_text())
    assert doc["sessions"][0]["outcome"] == "ack" and doc["sessions"][0]["bytes_sent"] == 30000


def test_serve_reports_a_nack_with_exit_code_1(image: Path) -> None:
    proc, addr = start(["serve", str(image), "--port", "0", "--policy", "wrong-crc"])
    try:
        board = ScriptedBoard(addr).run()
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert board.outcome == "nack:crc"
    assert proc.returncode == 1 and "NACK crc" in out


def test_ctrl_c_closes_everything(image: Path) -> None:
    proc, _addr = start(["serve", str(image), "--port", "0", "--sessions", "0"])
    try:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "interrupted" in err


def test_usage_errors_exit_2_with_a_fix(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(image), "--max-size", "1K"]) == 2
    assert "larger than the board's slot" in capsys.readouterr().err
    assert main(["serve", str(image), "--policy", "tiny:size=0"]) == 2
    assert "size must be an integer >= 1" in capsys.readouterr().err
    assert main(["serve", str(image.parent / "missing.bin")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", str(image), "--bind", "0.0.0.0"]) == 2
    assert "all interfaces" in capsys.readouterr().err


def test_registered_in_the_rig_command(image: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rig.cli import main as rig_main

    assert rig_main(["ota", "policies"]) == 0
    assert "split-tokens" in capsys.readouterr().out
    assert rig_main(["ota", "serve", str(image), "--max-size", "0x100"]) == 2


def test_size_parser() -> None:
    assert _size("768K") == 786432 and _size("0xC0000") == 786432 and _size("1M") == 1 << 20
    assert _size("1000") == 1000
