"""``python -m twin --hold-reset``: the board powers on with NRST held low, so a host that
opens the console first (pyserial's open discards what was buffered) sees the whole first
boot once it pulses NRST (the control port's ``reset``), and nothing from a boot before it:
the order the firmware tests' harness needs (tests/firmware/fw_twin.py)."""

from __future__ import annotations

import time

from fw_progs import boot, wait_for

from twin.board import Board, BoardOptions
from twin.control import _reset, _status


def test_nothing_runs_before_the_pin_reset_then_the_whole_boot() -> None:
    board = Board(BoardOptions(pty=False, hold_reset=True))
    try:
        boot(board, "haltest")
        board.start()
        m = board.machine
        time.sleep(0.5)
        assert _status(m, {})["state"] == "reset"
        assert m.instructions == 0 and bytes(board.usart.tx_log) == b""
        _reset(m, {})
        log = wait_for(board, b"HT: DONE")
        assert log.count("HT: DONE") == 1, log  # one boot, whole, from its first line
        assert m.reset_history[-1]["cause"] == "pin"
    finally:
        board.close()


def test_without_it_the_board_runs_at_once() -> None:
    board = Board(BoardOptions(pty=False))
    try:
        boot(board, "haltest")
        board.start()
        wait_for(board, b"HT: ")
        assert _status(board.machine, {})["state"] != "reset"
    finally:
        board.close()
