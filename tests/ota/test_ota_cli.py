"""``rig ota serve`` as a user runs it: a real process, a scripted board, Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
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
    assert "missing.bin: no such file" in capsys.readouterr().err
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


#: lines a hostile board sends: rich markup (a closing tag alone crashed the CLI), links,
#: emoji codes, format strings, and escape sequences that would clear or recolour a terminal
HOSTILE_LINES = [
    b"[/]\n",
    b"[bold red]ACK board acknowledged the image[/]\n",
    b"[link=http://evil.example]x[/link] :smile: :thumbs_up:\n",
    b"%s%n{0}{reason}\\x1b\n",
    b"\x1b[2J\x1b[31mNACK:crc\x07\n",
    b"\xe2\x80\xaeKCA\r\n",
]


def _send_line(addr: tuple[str, int], line: bytes) -> None:
    import socket

    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(line)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass


def test_nothing_a_board_sends_is_read_as_markup_or_escapes(image: Path, tmp_path: Path) -> None:
    """Every reason is printed exactly as the JSON has it (control characters made visible),
    and the server serves every hostile session to its end (issue 21, finding 1)."""
    out_json = tmp_path / "res.json"
    n = len(HOSTILE_LINES)
    proc, addr = start(
        ["serve", str(image), "--port", "0", "--sessions", str(n), "--json", str(out_json), "--transcript"]
    )
    try:
        for line in HOSTILE_LINES:
            _send_line(addr, line)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 1, err  # no session ACKed, none crashed the CLI
    assert "Traceback" not in err and "MarkupError" not in err, err
    assert "\x1b" not in out + err and "\x07" not in out and "\u202e" not in out
    doc = json.loads(out_json.read_text())
    reasons = [s["reason"] for s in doc["sessions"]]
    assert len(reasons) == n and all(s["outcome"] == "protocol" for s in doc["sessions"]), reasons
    printed = [line for line in out.splitlines() if line.startswith("PROTOCOL ")]
    assert printed == [f"PROTOCOL {r}" for r in reasons], (printed, reasons)
    assert "'[/]'" in out and "[bold red]" in out and ":smile:" in out and "{reason}" in out


def test_sessions_0_serves_until_ctrl_c_whatever_the_timeout(image: Path, tmp_path: Path) -> None:
    out_json = tmp_path / "res.json"
    proc, addr = start(
        ["serve", str(image), "--port", "0", "--sessions", "0", "--timeout", "0.3", "--json", str(out_json)]
    )
    try:
        time.sleep(1.5)  # five --timeout periods without a board
        assert proc.poll() is None, "--sessions 0 exited without Ctrl-C"
        board = ScriptedBoard(addr).run()
        time.sleep(1.0)
        assert proc.poll() is None
        assert json.loads(out_json.read_text())["sessions"][0]["outcome"] == "ack"  # kept at once
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert board.outcome == "ack"
    assert proc.returncode == 130 and "interrupted" in err
    assert out.count("ACK board acknowledged") == 1 and "TIMEOUT" not in out, out


def test_help_says_what_sessions_0_and_the_limits_do(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 = serve every board that connects until Ctrl-C (never exits on its own" in text
    assert "--session-limit S" in text and "default 600 s" in text


@pytest.mark.parametrize(
    "args, words",
    [
        (["--port", "99999"], "port 99999 is not in 0..65535"),
        (["--timeout", "nan"], "Timeouts.connect"),
        (["--timeout", "-1"], "Timeouts.connect"),
        (["--session-limit", "inf"], "Timeouts.session"),
    ],
)
def test_bad_numbers_are_usage_errors(
    image: Path, args: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        code = main(["serve", str(image), *args])
    except SystemExit as exc:  # argparse's own usage error
        code = exc.code
    assert code == 2 and words in capsys.readouterr().err


def test_an_image_that_is_not_a_readable_regular_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)
    for path, what in (
        (fifo, "a FIFO (named pipe)"),
        (tmp_path, "a directory"),
        ("/dev/zero", "a character device"),
    ):
        assert main(["serve", str(path)]) == 2
        assert f"{path}: {what}, not an image file" in capsys.readouterr().err
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        fh.truncate((16 << 20) + 1)
    assert main(["serve", str(big)]) == 2
    assert "larger than 16 MiB" in capsys.readouterr().err


def test_an_unwritable_json_path_is_a_usage_error(
    image: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(image), "--port", "0", "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path}: a directory" in capsys.readouterr().err
    assert main(["serve", str(image), "--port", "0", "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "its directory does not exist" in capsys.readouterr().err
    args = ["serve", str(image), "--port", "0", "--timeout", "0.01", "--json", "/dev/full"]
    assert main(args) == 2  # written after the session: the error, never a traceback
    assert "cannot write --json /dev/full: No space left on device" in capsys.readouterr().err
