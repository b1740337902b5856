"""An RTOS's load on the twin's exception model: firmware/progs/rtostest (a preemptive kernel
built the way FreeRTOS's Cortex-M7 port is: PendSV switches with the FPU's callee-saved
registers, BASEPRI critical sections, a yield inside one, a TIM1 time base giving a
semaphore from its ISR, caches on) hands 300 ticks between two tasks.

ST's own CubeF7 lwIP/FreeRTOS example hung on the twin until session 22 (a PendSV pended
inside a critical section was taken a slice late: twin/unmask.py); with that bug this
program never finishes."""

from __future__ import annotations

import re

import pytest
from fw_progs import boot, wait_for

from twin.board import Board, BoardOptions


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def test_two_tasks_hand_300_ticks_over_without_a_late_yield_or_a_lost_fp_register(board: Board) -> None:
    boot(board, "rtostest")
    board.machine.start()
    text = wait_for(board, b"RT: handoffs", 60)
    found = re.search(r"RT: handoffs=(\d+) ticks=(\d+) late=(\d+) fp=(\w+) (PASS|FAIL)", text)
    assert found, f"no result within 60 s (a task stuck past its yield?); console:\n{text}"
    handoffs, ticks, late, fp, verdict = found.groups()
    assert (handoffs, late, fp, verdict) == ("300", "0", "ok", "PASS"), text
    assert int(ticks) >= 300
