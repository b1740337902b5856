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


class _Console:
    """The host's side of the PTY: what was read and not yet matched is kept for the next
    wait (one read may bring a result line and the next prompt together)."""

    def __init__(self, port: serial.Serial, board: Board) -> None:
        self.port, self.board, self.pending = port, board, b""

    def until(self, pattern: re.Pattern[bytes], timeout: float = 30) -> re.Match[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = pattern.search(self.pending)
            if found:
                self.pending = self.pending[found.end() :]
                return found
            self.pending += self.port.read(self.port.in_waiting or 1)
            assert not self.board.machine.is_locked_up(), self.board.machine.lockup_reason
        raise AssertionError(f"no {pattern.pattern!r} within {timeout} s; got {self.pending!r}")


def test_usart3_by_dma1_sends_receives_into_a_cached_buffer_and_rearms(board: Board) -> None:
    with serial.Serial(board.usart.slave_path, 115200, timeout=0.05) as port:
        boot(board, "uartdma")
        board.usart.start()  # the PTY's reader (Board.start would also open the servers)
        board.machine.start()
        console = _Console(port, board)
        for rnd, payload in ((1, bytes(range(0x30, 0x40))), (2, b"\x00\xff" * 8)):
            console.until(re.compile(b"UD: ready %d\r\n" % rnd))
            port.write(payload)
            found = console.until(LINE)
            stale, got, ht, tc, tx, ore, verdict = found.groups()
            assert stale == b"eeeeeeee"  # the lines the CPU read before the DMA wrote SRAM
            assert got == payload.hex().encode()
            assert (ht, tc, ore, verdict) == (b"%d" % rnd, b"%d" % rnd, b"0", b"PASS"), found.group(0)
            assert int(tx) == 2 * rnd - 1  # the prompts before this answer, each ended by TC
    deadline = time.monotonic() + 10  # LD1 on once the answer's TC ended the second round
    while not led_states(board.machine.device)["ld1"]:
        assert time.monotonic() < deadline, "LD1 never came on"
        time.sleep(0.01)
