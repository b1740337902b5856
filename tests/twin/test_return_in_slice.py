"""Exception return inside the running slice (twin/runner.py ``_return_in_slice``).

An interrupt handler that returns to code with nothing else pending is unstacked inside the
slice that ran it (unicorn resumes at the stacked PC): an interrupt then costs one slice, not
two. What the thread sees must not change: the caller-saved registers the handler clobbers
come back from the frame, the thread goes on where it was, and what needs the slice
boundary (a single step, the MPU, something left pending) still gets it.

The unprivileged thread on PSP found a bug older than the in-slice return: the model wrote
CONTROL after switching to thread mode, where a write with nPRIV set is ignored (MSR
semantics), so SPSEL was lost and the thread went on on MSP. CONTROL is now written in
handler mode, before the mode switch (twin/exc_entry.py ``_unstack``).
"""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble
from periph_exc_programs import counting_handler, program, systick_start

from twin.board import Board, BoardOptions
from twin.loader import Chunk

pytestmark = pytest.mark.timeout(60)

COUNT = 0x20002000
TICKS = 200

#: thread modes: privileged on MSP; unprivileged on PSP (CONTROL = nPRIV | SPSEL)
THREADS = {
    "msp": "",
    "psp unprivileged": """
    ldr r0, =0x20008000
    msr psp, r0
    movs r0, #3
    msr control, r0
    isb
""",
}


def body(thread: str) -> str:
    """SysTick every 10 000 cycles, then the thread (as ``thread`` says) keeps r0-r3, r12
    and SP and checks them every iteration (r5 = 2 at the BKPT if one ever changed, 1 once
    TICKS interrupts were taken)."""
    return (
        systick_start(9999)
        + THREADS[thread]
        + f"""
    movs r0, #1
    movs r1, #2
    movs r2, #3
    movs r3, #4
    mov.w r12, #5
    mov r8, sp
    ldr r6, =0x{COUNT:08X}
1:  cmp r0, #1
    bne bad
    cmp r1, #2
    bne bad
    cmp r2, #3
    bne bad
    cmp r3, #4
    bne bad
    cmp r12, #5
    bne bad
    mov r4, sp
    cmp r4, r8
    bne bad
    ldr r7, [r6]
    cmp r7, #{TICKS}
    blo 1b
    movs r5, #1
    bkpt #0
bad:
    movs r5, #2
    bkpt #0
"""
    )


#: SysTick's handler: counts, and clobbers every caller-saved register
TICK_H = counting_handler("tick_h", COUNT, clobber=True)


@pytest.fixture()
def make_board():
    boards: list[Board] = []

    def make(thread: str) -> Board:
        b = Board(BoardOptions(pty=False))
        boards.append(b)
        b.power_on([Chunk(0x08000000, assemble(program(body(thread), {15: "tick_h"}, TICK_H)), "test")])
        b.machine.debug.ctrl = 1  # C_DEBUGEN: the BKPT halts
        return b

    yield make
    for b in boards:
        b.close()


def _run_to_halt(board: Board, limit: int = 5_000) -> int:
    """Step slices by hand until the core halts; the number of slices."""
    m = board.machine
    for n in range(1, limit + 1):
        m.step_slice()
        assert not m.is_locked_up(), m.lockup_reason
        if m.halted:
            return n
    raise AssertionError("the program did not reach its BKPT")


def _count(board: Board) -> int:
    return int.from_bytes(board.machine.bus_read(COUNT, 4), "little")


@pytest.mark.parametrize("thread", THREADS)
def test_an_interrupt_costs_one_slice_and_the_thread_sees_its_registers(make_board, thread: str) -> None:
    board = make_board(thread)
    slices = _run_to_halt(board)
    m = board.machine
    assert m.reg("r5") == 1, "a caller-saved register or SP came back changed from the handler"
    assert _count(board) == TICKS
    assert m.exc.active == []
    if thread != "msp":  # still unprivileged on PSP, PSP where the thread left it
        assert m.reg("control") & 3 == 3
        assert m.reg("psp") == 0x20008000
    # one slice an interrupt (run to the next tick: entry, handler, return, thread), not two
    assert slices <= TICKS + 20, slices


def _mpu(board: Board, regions: list[tuple[int, int]]) -> None:
    """Program the MPU through its registers as a debugger would: (RBAR, RASR) per region
    (RBAR with VALID and the region number), then MPU_CTRL.ENABLE; SHCSR.MEMFAULTENA."""
    m = board.machine
    for rbar, rasr in regions:
        m.bus_write(0xE000ED9C, rbar.to_bytes(4, "little"))
        m.bus_write(0xE000EDA0, rasr.to_bytes(4, "little"))
    m.bus_write(0xE000ED94, (1).to_bytes(4, "little"))
    m.bus_write(0xE000ED24, (1 << 16).to_bytes(4, "little"))


#: region 0: all 4 GiB, full access, Normal WBWA (the unprivileged thread may run anywhere)
ALL_OPEN = (0x00000000 | 0x10 | 0, 0x030B003F)


def test_with_the_mpu_on_a_return_to_privileged_code_stays_in_the_slice(make_board) -> None:
    """Handler and privileged thread have the same page rights: one slice an interrupt."""
    board = make_board("msp")
    m = board.machine
    with m.host():
        _mpu(board, [ALL_OPEN])
    slices = _run_to_halt(board)
    assert m.reg("r5") == 1
    assert _count(board) == TICKS
    assert slices <= TICKS + 20, slices


SECRET, LEAK = 0x20003000, 0x20004000


def test_with_the_mpu_on_a_return_to_unprivileged_code_gets_its_page_rights_at_once() -> None:
    """The MPU's page rights are set per slice: a return to unprivileged code ends the slice,
    so the thread's first access after it is checked at its own level. Here it reads a
    word only privileged code may (region 1): MemManage, and nothing copied (had the slice
    gone on with the handler's rights, the read would have succeeded)."""
    thread = (
        THREADS["psp unprivileged"]
        + f"""
    ldr r6, =0x{COUNT:08X}
    ldr r4, =0x{SECRET:08X}
    ldr r5, =0x{LEAK:08X}
1:  ldr r7, [r6]
    cmp r7, #1
    blo 1b
    ldr r0, [r4]              @ privileged only: MemManage for this thread
    str r0, [r5]
2:  b 2b
"""
    )
    stop = """
.thumb_func
stop_h:
    bkpt #0
"""
    src = program(systick_start(9999) + thread, {15: "tick_h", 4: "stop_h", 3: "stop_h"}, TICK_H + stop)
    b = Board(BoardOptions(pty=False))
    try:
        b.power_on([Chunk(0x08000000, assemble(src), "test")])
        m = b.machine
        m.debug.ctrl = 1
        with m.host():
            m.bus_write(SECRET, (0x5EC12E7).to_bytes(4, "little"))
            # region 1: 32 bytes at SECRET, privileged read/write, unprivileged none
            _mpu(b, [ALL_OPEN, (SECRET | 0x10 | 1, 0x010B0009)])
        slices = _run_to_halt(b)
        assert int.from_bytes(m.bus_read(LEAK, 4), "little") == 0, "the thread read a privileged-only word"
        assert m.exc.active[-1] == 4 and m.exc.cfsr & 0x02, (m.exc.active, hex(m.exc.cfsr))  # DACCVIOL
        assert slices >= 2, slices
    finally:
        b.close()
