"""USART3 by DMA1 (the ST-LINK virtual COM port the way HAL_UART_Transmit_DMA and
HAL_UART_Receive_DMA drive it): firmware/progs/uartdma sends its prompt by DMA1 stream 3,
receives 16 bytes by stream 1 into cacheable SRAM1 and answers by DMA, twice; the host is
pyserial on the twin's PTY. Before session 23 the twin had no DMA1: the prompt never came.

Also on the chip: the CPU sees the buffer's old bytes (0xEE) through the D-cache lines it
read before the DMA, and the new ones after SCB_DCIMVAC."""

from __future__ import annotations

import re
import time

import pytest
import serial
from fw_progs import boot

from twin.board import Board, BoardOptions
from twin.periph import led_states

LINE = re.compile(rb"UD: stale=(\w+) got=(\w+) ht=(\d) tc=(\d) tx=(\d) ore=(\d) (PASS|FAIL)")


@pytest.fixture()
def board():
    b = Board(BoardOptions())
    yield b
    b.close()


def _read_until(port: serial.Serial, pattern: re.Pattern[bytes], board: Board, timeout: float) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got += port.read(port.in_waiting or 1)
        if pattern.search(got):
            return got
        assert not board.machine.is_locked_up(), board.machine.lockup_reason
    raise AssertionError(f"no {pattern.pattern!r} within {timeout} s; got {got!r}")


def test_usart3_by_dma1_sends_receives_into_a_cached_buffer_and_rearms(board: Board) -> None:
    with serial.Serial(board.usart.slave_path, 115200, timeout=0.05) as port:
        boot(board, "uartdma")
        board.usart.start()  # the PTY's reader (Board.start would also open the servers)
        board.machine.start()
        for rnd, payload in ((1, bytes(range(0x30, 0x40))), (2, b"\x00\xff" * 8)):
            _read_until(port, re.compile(b"UD: ready %d\r\n" % rnd), board, 30)
            port.write(payload)
            text = _read_until(port, LINE, board, 30)
            found = LINE.search(text)
            assert found, text
            stale, got, ht, tc, tx, ore, verdict = found.groups()
            assert stale == b"eeeeeeee"  # the lines the CPU read before the DMA wrote SRAM
            assert got == payload.hex().encode()
            assert (ht, tc, ore, verdict) == (b"%d" % rnd, b"%d" % rnd, b"0", b"PASS"), text
            assert int(tx) == 2 * rnd - 1  # the prompts before this answer, each ended by TC
    assert led_states(board.machine.device)["ld1"]  # LD1 on: the second round passed
