"""WFI with PRIMASK set wakes on a pending interrupt; an interrupt that becomes takeable
(CPSIE, MSR PRIMASK/BASEPRI/FAULTMASK) is taken before the next instructions retire
(issue 21: findings 7 and 8)."""

from __future__ import annotations

import time

import pytest
from periph_exc_harness import assemble
from periph_exc_programs import SYSTICK_EVERY_1000, log_of, program

from twin.board import Board, BoardOptions
from twin.loader import Chunk

MARK = 0x20002000


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


class _Words:
    def __init__(self, board: Board) -> None:
        self.board = board

    def word(self, address: int) -> int:
        return int.from_bytes(self.board.machine.bus_read(address, 4), "little")


def _boot(board: Board, body: str) -> _Words:
    board.power_on([Chunk(0x08000000, assemble(program(body)), "test")])
    board.machine.start()
    return _Words(board)


def _wait(pred, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.parametrize("run", range(3))
def test_wfi_with_primask_set_wakes_and_takes_the_interrupt_after_cpsie(board: Board, run: int) -> None:
    # the standard "wait for an interrupt, handle it after cpsie i" loop; it used to spin in
    # WFI for ever when each cpsie i / cpsid i pair fell inside one slice (finding 7)
    body = f"""
    cpsid i
{SYSTICK_EVERY_1000}
    ldr r6, =0x20000000
1:  ldr r2, [r6]
    cmp r2, #2
    bhs 2f
    cpsid i
    wfi
    cpsie i
    b 1b
2:  ldr r0, =0x{MARK:08X}
    movs r1, #1
    str r1, [r0]
3:  b 3b
    """
    w = _boot(board, body)
    assert _wait(lambda: w.word(MARK) == 1), "stayed in the cpsid/wfi/cpsie loop, SysTick never taken"
    assert log_of(w)[:2] == [15, 0x10F]


@pytest.mark.parametrize(
    "unmask",
    ["cpsie i", "movs r3, #0\n    msr primask, r3", "movs r3, #0\n    msr basepri, r3", "cpsie f"],
)
def test_pending_interrupt_taken_right_after_unmasking(board: Board, unmask: str) -> None:
    # SysTick pended (ICSR.PENDSTSET) while masked, then unmasked: the handler runs before
    # the following stores retire, so the count stored after the unmask already sees it.
    masks = {
        "cpsie i": "cpsid i",
        "movs r3, #0\n    msr primask, r3": "cpsid i",
        "movs r3, #0\n    msr basepri, r3": "movs r3, #0x10\n    msr basepri, r3",
        "cpsie f": "cpsid f",
    }
    body = f"""
    {masks[unmask]}
    ldr r0, =0xE000ED20       @ SHPR3: SysTick priority 0x20
    ldr r1, =0x20000000
    str r1, [r0]
    ldr r0, =0xE000ED04
    ldr r1, =0x04000000       @ PENDSTSET
    str r1, [r0]
    movs r4, #0
    ldr r5, =200
1:  adds r4, #1               @ a long run of plain instructions: the slice goes on
    cmp r4, r5
    bne 1b
    {unmask}
    ldr r1, =0x20000000
    ldr r2, [r1]
    ldr r1, =0x{MARK + 4:08X}
    str r2, [r1]
    ldr r0, =0x{MARK:08X}
    movs r1, #1
    str r1, [r0]
2:  b 2b
    """
    w = _boot(board, body)
    assert _wait(lambda: w.word(MARK) == 1)
    assert w.word(MARK + 4) == 2, "the pending SysTick was not taken right after unmasking"
    assert log_of(w)[:2] == [15, 0x10F]


@pytest.mark.parametrize("unmask", ["movs r3, #0\n    msr basepri, r3", "cpsie i"])
def test_unmasking_in_code_translated_before_the_watch_takes_the_exception(board: Board, unmask: str) -> None:
    # FreeRTOS's taskEXIT_CRITICAL(): a function run many times with nothing pending (its
    # code translated then) unmasks a PendSV/SysTick the scheduler pended inside the critical
    # section; the handler must run before the caller goes on. unicorn 2.1 compiles a direct
    # call to the one code hook into translated code, so a hook added for the watched slice
    # was never called there and the exception waited for the slice's end (the task went on
    # past its yield: ST's CubeF7 lwIP/FreeRTOS HTTP server hung in vListInsert)
    mask = "cpsid i" if unmask == "cpsie i" else "movs r3, #0x10\n    msr basepri, r3"
    body = f"""
    ldr r6, =300
5:  bl exit_critical           @ translated here, nothing pending: unwatched slices
    subs r6, #1
    bne 5b
    {mask}
    ldr r0, =0xE000ED20       @ SHPR3: SysTick priority 0x20
    ldr r1, =0x20000000
    str r1, [r0]
    ldr r0, =0xE000ED04
    ldr r1, =0x04000000       @ PENDSTSET while masked
    str r1, [r0]
    movs r4, #0
    ldr r5, =200
1:  adds r4, #1
    cmp r4, r5
    bne 1b
    bl exit_critical
    ldr r1, =0x20000000
    ldr r2, [r1]
    ldr r1, =0x{MARK + 4:08X}
    str r2, [r1]               @ events logged when the caller goes on: 2 if SysTick ran
    ldr r0, =0x{MARK:08X}
    movs r1, #1
    str r1, [r0]
2:  b 2b
exit_critical:
    {unmask}
    bx lr
    """
    w = _boot(board, body)
    assert _wait(lambda: w.word(MARK) == 1)
    assert w.word(MARK + 4) == 2, "the SysTick pended while masked was not taken at the unmasking"
    assert log_of(w)[:2] == [15, 0x10F]


def test_irq_pended_in_nvic_while_masked_is_taken_after_cpsie_and_unwatched_slices_stay_free(
    board: Board,
) -> None:
    body = f"""
{SYSTICK_EVERY_1000}
    ldr r6, =3000
5:  subs r6, #1                @ SysTick taken normally, unmasked: no watched slice
    bne 5b
    cpsid i
    ldr r0, =0xE000E010
    movs r1, #0
    str r1, [r0]               @ SysTick off
    ldr r0, =0xE000ED04
    ldr r1, =0x02000000
    str r1, [r0]               @ ICSR.PENDSTCLR: a tick that came since cpsid is not this test's
    ldr r0, =0xE000E100
    movs r1, #1
    lsls r1, r1, #7
    str r1, [r0]               @ ISER: IRQ7
    ldr r0, =0xE000E200
    str r1, [r0]               @ ISPR: IRQ7 pending while masked (mid-slice)
    ldr r1, =0x20000000
    ldr r3, [r1]
    movs r4, #0
    ldr r5, =200
1:  adds r4, #1
    cmp r4, r5
    bne 1b
    cpsie i
    ldr r2, [r1]
    subs r2, r2, r3
    ldr r1, =0x{MARK + 4:08X}
    str r2, [r1]               @ events logged since: 2 if IRQ7 already ran
    ldr r0, =0x{MARK:08X}
    movs r1, #1
    str r1, [r0]
2:  b 2b
    """
    w = _boot(board, body)
    assert _wait(lambda: w.word(MARK) == 1)
    assert w.word(MARK + 4) == 2
    assert board.machine.runner.unmask.slices <= 2


#: IRQ 7's handler for the test below: DWT_CYCCNT at entry to MARK, a count at MARK + 4
STAMP_H = f"""
.thumb_func
stamp_h:
    ldr r1, =0xE0001004
    ldr r1, [r1]
    ldr r2, =0x{MARK:08X}
    str r1, [r2]
    ldr r1, [r2, #4]
    adds r1, #1
    str r1, [r2, #4]
    bx lr
"""

#: CYCCNT on, IRQ 7 enabled, then a getc loop on USART3 that nothing ever feeds
GETC_LOOP = """
    ldr r0, =0xE000EDFC          @ DEMCR.TRCENA
    ldr r1, [r0]
    orr r1, r1, #0x1000000
    str r1, [r0]
    ldr r0, =0xE0001000          @ DWT_CTRL.CYCCNTENA
    ldr r1, [r0]
    orr r1, r1, #1
    str r1, [r0]
    ldr r0, =0xE000E100          @ NVIC_ISER0: IRQ 7
    movs r1, #0x80
    str r1, [r0]
    cpsie i
    ldr r0, =0x40023840          @ RCC_APB1ENR.USART3EN
    ldr r1, [r0]
    orr r1, r1, #0x40000
    str r1, [r0]
    ldr r0, =0x40004800          @ USART3: BRR, then RE | UE
    ldr r1, =139
    str r1, [r0, #0x0C]
    movs r1, #5
    str r1, [r0]
    ldr r0, =0x4000481C
1:  ldr r1, [r0]
    tst r1, #0x20
    beq 1b
    b 1b
"""


def test_an_interrupt_pended_during_a_host_wait_is_taken_at_once(board: Board) -> None:
    """A getc loop lets the machine wait for the host at wall pace (twin/usart.py); an
    interrupt pended meanwhile (here by the debugger, through NVIC_ISPR) ends the wait:
    the handler runs within a few hundred cycles, not when the wait's 2 ms (32 000
    cycles at 16 MHz) are over."""
    board.power_on([Chunk(0x08000000, assemble(program(GETC_LOOP, {23: "stamp_h"}, STAMP_H)), "test")])
    m = board.machine
    m.start()
    words = _Words(board)
    lags = []
    for i in range(5):
        deadline = (
            time.monotonic() + 5
        )  # the loop waits for the host within a few ms (on a busy machine: later)
        while True:
            time.sleep(0.01)
            with m.host():
                if m.clock.wait_mode == "idle":
                    t0 = words.word(0xE0001004)
                    m.bus_write(0xE000E200, (1 << 7).to_bytes(4, "little"))  # NVIC_ISPR0: IRQ 7
                    break
            assert time.monotonic() < deadline, "the getc loop never waited for the host"
        assert _wait(lambda n=i + 1: words.word(MARK + 4) == n)
        lags.append((words.word(MARK) - t0) & 0xFFFFFFFF)
    assert max(lags) < 2000, lags
