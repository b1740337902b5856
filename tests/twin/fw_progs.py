"""Helpers of the tests that run a firmware/progs program on an in-process twin: build it with
the project's Makefile, boot it, wait for what it prints on USART3."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from twin.board import Board
from twin.loader import read_image

FW = Path(__file__).resolve().parents[2] / "firmware"


def build(target: str) -> Path:
    """``make -C firmware build/<target>``; the test fails with the compiler's output."""
    proc = subprocess.run(
        ["make", "-C", str(FW), f"build/{target}"], capture_output=True, text=True, timeout=300
    )
    if proc.returncode != 0:
        pytest.fail(f"building {target} failed:\n{proc.stdout}\n{proc.stderr}")
    return FW / "build" / target


def boot(board: Board, prog: str) -> None:
    """Build ``firmware/progs/<prog>`` and power the board on with it (not started)."""
    board.power_on(read_image(str(build(f"{prog}.elf"))))


def wait_for(board: Board, text: bytes, timeout: float = 30.0) -> str:
    """Wait until USART3 has sent the whole line holding ``text`` (up to its newline: the
    bytes leave one frame at a time) (the core must not lock up); the console so far."""
    line = re.compile(re.escape(text) + rb"[^\n]*\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not line.search(bytes(board.usart.tx_log)):
        assert not board.machine.is_locked_up(), board.machine.lockup_reason
        time.sleep(0.01)
    log = bytes(board.usart.tx_log).decode("latin-1")
    assert line.search(bytes(board.usart.tx_log)), (
        f"no line with {text!r} within {timeout} s; console:\n{log}"
    )
    return log
