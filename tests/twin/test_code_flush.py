"""A whole flush of translated code asked inside a slice (an I-cache invalidate, CCR.IC/DC)
is done when the slice ends, never while unicorn runs the code it would free.

unicorn 2.1 flushes at once (QEMU defers a flush to outside execution): returning from the
hook into the freed block killed the twin's process with SIGILL (ST's CubeF7 IWDG example
at its ``SCB_EnableICache()``; twin/stores.py ``flush_code_cache``)."""

from __future__ import annotations

import time

import pytest
from periph_exc_harness import assemble
from periph_exc_programs import program

from twin.board import Board, BoardOptions
from twin.loader import Chunk

MARK = 0x20002000
CODE = 0x20004000  # a routine copied to RAM: movs r0, #N; bx lr

CACHE_ON_AND_RAM_CODE = f"""
    ldr r7, =0x{CODE:08X}
    ldr r1, =0x47702001       @ movs r0, #1; bx lr
    str r1, [r7]
    dsb
    isb
    adds r3, r7, #1
    blx r3                    @ r0 = 1, translated
    mov r8, r0
    ldr r1, =0x47702002       @ movs r0, #2; bx lr: the routine changed
    str r1, [r7]
    ldr r2, =0xE000ED00
    movs r4, #0
    dsb
    str.w r4, [r2, #0x250]    @ ICIALLU
    dsb
    isb
    ldr r3, [r2, #0x14]
    orr r3, r3, #0x20000      @ CCR.IC
    str r3, [r2, #0x14]
    dsb
    isb
    ldr r3, [r2, #0x14]
    orr r3, r3, #0x10000      @ CCR.DC
    str r3, [r2, #0x14]
    dsb
    isb
    adds r3, r7, #1
    blx r3                    @ r0 = 2: the new code
    ldr r1, =0x{MARK + 4:08X}
    str r0, [r1]
    str r8, [r1, #4]
    ldr r0, =0x{MARK:08X}
    movs r1, #1
    str r1, [r0]
1:  b 1b
"""


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def _word(board: Board, address: int) -> int:
    return int.from_bytes(board.machine.bus_read(address, 4), "little")


def test_a_flush_asked_by_a_store_waits_for_the_slice_end_and_the_new_code_runs(board: Board) -> None:
    m = board.machine
    uc = m.uc
    calls: list[bool] = []
    real = uc.ctl_flush_tb

    def spy() -> None:
        calls.append(m.slice.active)  # inside emu_start: unicorn would free the running code
        real()

    uc.ctl_flush_tb = spy
    board.power_on([Chunk(0x08000000, assemble(program(CACHE_ON_AND_RAM_CODE)), "test")])
    calls.clear()  # the power-on's own flush
    m.start()
    deadline = time.monotonic() + 10
    while _word(board, MARK) != 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert _word(board, MARK) == 1, "the program did not finish"
    assert _word(board, MARK + 8) == 1 and _word(board, MARK + 4) == 2, (
        "stale code after the I-cache invalidate"
    )
    assert calls, "the I-cache invalidate and CCR.IC/DC asked for no flush"
    assert not any(calls), "translated code was flushed while unicorn ran it"
