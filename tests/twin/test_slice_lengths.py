"""How long the twin's slices are around device accesses (twin/slice.py, twin/clock.py).

Short slices (SHORT_SLICE instructions) make time seen inside a slice advance finely, and
bound how late an event scheduled inside a running slice fires. They cost one
``emu_start`` each, so they follow only what needs them:

- a device read that looks at the time (SysTick VAL, DWT_CYCCNT, a timer's CNT): the next
  slices are short, so polled time advances in steps of at most one short slice;
- a device access that schedules an event near inside the running slice: short slices;
- a device write that schedules an event far inside a long slice (a UART frame, a DMA
  transfer): the slice ends right after the store and the next one runs exactly to the event;
- any other device access (a TDR write whose frame is far off, a status read, a GPIO
  write): the slices stay long.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.device import Device
from twin.loader import Chunk
from twin.slice import LONG_SLICE, SHORT_SLICE

pytestmark = pytest.mark.timeout(60)

DEV = 0x40007C00  # an unused APB1 slot


class Probe(Device):
    """+0 write N: an event N cycles from now (records r5 when it fires); +4 write: a plain
    register; +8 read: the time (cycles); +12 read: a constant status."""

    name, base, size = "probe", DEV, 0x400

    def __init__(self, board_ref: list[Board]) -> None:
        super().__init__()
        self.fired: list[int] = []
        self._board = board_ref

    def read(self, offset: int, size: int) -> int:
        if offset == 8:
            return self.services.now_cycles() & 0xFFFFFFFF
        return 0x1234

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            m = self._board[0].machine
            self.services.schedule(value, lambda: self.fired.append(m.reg("r5")))


def _board(tmp_path: Path, body: str) -> tuple[Board, Probe]:
    _, binf = build(tmp_path, body)
    board = Board(BoardOptions(pty=False))
    ref = [board]
    probe = Probe(ref)
    board.machine.add_device(probe, first=True)
    board.power_on([Chunk(0x08000000, binf.read_bytes(), "prog")])
    board.machine.debug.ctrl = 1  # C_DEBUGEN: BKPT halts
    return board, probe


def _slices_until(board: Board, done, limit: int = 20_000) -> int:
    m = board.machine
    for n in range(1, limit + 1):
        m.step_slice()
        assert not m.is_locked_up(), m.lockup_reason
        if done():
            return n
    raise AssertionError("the program did not get there")


#: a long stretch without device accesses, so the slices are long when the loop starts
SPIN = """
    ldr r0, =600000
0:  subs r0, r0, #1
    bne 0b
"""


def test_an_event_far_inside_a_long_slice_fires_on_time(tmp_path: Path) -> None:
    """The write ends the slice after the store; the loop then runs the event's 40 000
    cycles (2 instructions an iteration) and no more: not up to a long slice more."""
    body = f"""
    .text
    .thumb_func
    .global reset
reset:
    ldr r6, ={DEV:#x}
    movs r5, #0
{SPIN}
    ldr r1, =40000
    str r1, [r6]
1:  adds r5, r5, #1
    b 1b
"""
    board, probe = _board(tmp_path, body)
    try:
        _slices_until(board, lambda: probe.fired)
        assert 19_990 <= probe.fired[0] <= 20_010, probe.fired
    finally:
        board.close()


@pytest.mark.parametrize(
    ("access", "short"),
    [
        ("str r1, [r6, #4]", False),  # a plain register write
        ("ldr r1, [r6, #12]", False),  # a status read
        ("ldr r1, [r6, #8]", True),  # a read of the time
    ],
)
def test_only_a_look_at_the_time_makes_slices_short(tmp_path: Path, access: str, short: bool) -> None:
    iterations = 200_000  # 5 instructions each: 1 M instructions
    body = f"""
    .text
    .thumb_func
    .global reset
reset:
    ldr r6, ={DEV:#x}
    ldr r5, ={iterations}
1:  {access}
    nop
    nop
    subs r5, r5, #1
    bne 1b
    bkpt #0
"""
    board, _ = _board(tmp_path, body)
    try:
        m = board.machine
        i0 = m.instructions
        slices = _slices_until(board, lambda: m.halted)
        executed = m.instructions - i0
        assert executed >= 5 * iterations - 10
        if short:  # all but the first slice (long: nothing had looked at the time yet)
            assert slices >= (executed - LONG_SLICE) // SHORT_SLICE, slices
        else:
            assert slices <= executed // LONG_SLICE + 10, slices
    finally:
        board.close()
