"""An RTOS's load on the twin's exception model: firmware/progs/rtostest (a preemptive kernel
built the way FreeRTOS's Cortex-M7 port is: PendSV switches with the FPU's callee-saved
registers, BASEPRI critical sections, a yield inside one, a TIM1 time base giving a
semaphore from its ISR, caches on) hands 300 ticks between two tasks.

ST's own CubeF7 lwIP/FreeRTOS example hung on the twin until session 22 (a PendSV pended
inside a critical section was taken a slice late: twin/unmask.py); with that bug this
program never finishes."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from twin.board import Board, BoardOptions
from twin.loader import read_image

FW = Path(__file__).resolve().parents[2] / "firmware"


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def test_two_tasks_hand_300_ticks_over_without_a_late_yield_or_a_lost_fp_register(board: Board) -> None:
    proc = subprocess.run(
        ["make", "-C", str(FW), "build/rtostest.elf"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    board.power_on(read_image(str(FW / "build" / "rtostest.elf")))
    m = board.machine
    m.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and b"RT: handoffs" not in bytes(board.usart.tx_log):
        assert not m.is_locked_up(), m.lockup_reason
        time.sleep(0.01)
    text = bytes(board.usart.tx_log).decode("latin-1")
    found = re.search(r"RT: handoffs=(\d+) ticks=(\d+) late=(\d+) fp=(\w+) (PASS|FAIL)", text)
    assert found, f"no result within 60 s (a task stuck past its yield?); console:\n{text}"
    handoffs, ticks, late, fp, verdict = found.groups()
    assert (handoffs, late, fp, verdict) == ("300", "0", "ok", "PASS"), text
    assert int(ticks) >= 300
