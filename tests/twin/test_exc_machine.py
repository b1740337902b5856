"""Exception model inside the real twin machine: bad firmware never hangs or kills it."""

from __future__ import annotations

import itertools
import json
import time

import pytest
from periph_exc_harness import assemble
from periph_exc_programs import SYSTICK_EVERY_1000, counting_handler, log_of, program, systick_start

from twin.board import Board, BoardOptions
from twin.control import ControlServer
from twin.loader import Chunk


@pytest.fixture()
def board():
    b = Board(BoardOptions(pty=False))
    yield b
    b.close()


def _boot(board: Board, body: str, handlers: dict[int, str] | None = None, extra: str = "") -> None:
    board.power_on([Chunk(0x08000000, assemble(program(body, handlers, extra)), "test")])
    board.machine.start()


def _wait(pred, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


class _Log:
    def __init__(self, board: Board) -> None:
        self.board = board

    def word(self, address: int) -> int:
        return int.from_bytes(self.board.machine.bus_read(address, 4), "little")


def test_double_fault_locks_up_and_reset_recovers(board: Board) -> None:
    _boot(board, "udf #0", {3: "hard_h"}, ".thumb_func\nhard_h:\n    udf #1\n")
    m = board.machine
    _wait(m.is_locked_up)
    ctl = ControlServer(m, 0)
    try:
        reply = json.loads(ctl.handle_line(b'{"cmd": "status"}'))
        assert reply["ok"] and reply["state"] == "lockup"
        assert json.loads(ctl.handle_line(b"garbage"))["ok"] is False
        with m.host():
            assert m.exc.hfsr & (1 << 30) and m.exc.cfsr & (1 << 16)
        reply = json.loads(ctl.handle_line(b'{"cmd": "reset"}'))
        assert reply["ok"]
    finally:
        ctl._sock.close()
    with m.host():
        assert m.reset_history[-1]["cause"] == "pin"
        assert m.device("rcc").last_reset_cause() == "pin"
    _wait(m.is_locked_up)  # same firmware, same double fault


def test_spinning_with_interrupts_masked_keeps_systick_pending(board: Board) -> None:
    body = """
    cpsid i
    ldr r0, =0xE000E010
    ldr r1, =1599
    str r1, [r0, #4]
    movs r1, #7
    str r1, [r0]
spin:
    b spin
    """
    _boot(board, body)
    m = board.machine
    _wait(lambda: m.now_cycles() > 100_000)
    with m.host():
        assert 15 in m.exc.pending and m.exc.active == []
        assert log_of(_Log(board)) == []
        m.set_reg("primask", 0)  # like a debugger clearing PRIMASK
    _wait(lambda: log_of(_Log(board))[:2] == [15, 0x10F])


def test_garbage_writes_to_every_peripheral_do_not_kill_the_twin(board: Board) -> None:
    from twin.periph import all_devices

    loops = []
    for i, dev in enumerate(all_devices()):
        loops.append(f"""
    ldr r6, =0x{dev.base:08X}
    ldr r7, =0x{dev.base + dev.size:08X}
g{i}: str r5, [r6], #4
    cmp r6, r7
    blo g{i}
    ldr r6, =0x{dev.base:08X}
h{i}: ldr r4, [r6], #4
    cmp r6, r7
    blo h{i}""")
    body = (
        "ldr r5, =0xA5A5A5A5\n"
        + "\n".join(loops)
        + """
    ldr r0, =0x20002000
    movs r1, #1
    str r1, [r0]
2:  b 2b
    """
    )
    _boot(board, body)
    m = board.machine
    _wait(lambda: _Log(board).word(0x20002000) == 1, timeout=60)
    with m.host():
        assert not m.is_locked_up()
        assert m.exc.active == []  # no fault was raised by any model
    assert m.cpu_thread.thread is not None and m.cpu_thread.thread.is_alive()


#: IRQ 7's handler for the test below: counts its entries at COUNT (no log that could grow
#: into the stack: with the level held it re-enters back to back, as on silicon)
COUNT = 0x20002000
COUNT_H = counting_handler("count_h", COUNT)


def test_pending_irq_from_device_is_taken_by_firmware_handler(board: Board) -> None:
    body = """
    ldr r0, =0xE000E100
    movs r1, #1
    lsls r1, r1, #7              @ IRQ 7 (EXTI1)
    str r1, [r0]
    cpsie i
3:  b 3b
    """
    _boot(board, body, {23: "count_h"}, COUNT_H)
    m = board.machine
    with m.host():
        rcc = m.device("rcc")
        rcc.write(0x44, 4, rcc.read(0x44, 4) | (1 << 14))  # SYSCFGEN
        syscfg, exti = m.device("syscfg"), m.device("exti")
        syscfg.write(0x08, 4, 1 << 4)  # EXTI1 <- port B
        exti.write(0x0C, 4, 1 << 1)  # falling edge (WINC IRQN)
        exti.write(0x00, 4, 1 << 1)
        m.device("gpiob").drive_input(1, True)
        m.device("gpiob").drive_input(1, False)
    # one edge, several entries: the handler does not clear EXTI_PR, the level stays
    _wait(lambda: _Log(board).word(COUNT) >= 3)
    with m.host():
        assert exti.read(0x14, 4) == 1 << 1
        exti.write(0x14, 4, 1 << 1)
        n = _Log(board).word(COUNT)
    time.sleep(0.2)
    with m.host():
        assert _Log(board).word(COUNT) <= n + 1  # cleared: at most the entry under way


def test_countflag_polling_delay_skips_ahead_and_keeps_time(board: Board) -> None:
    # Bare-metal delay: SysTick without interrupt, poll COUNTFLAG 50 times (50 ms at 16 MHz).
    body = (
        systick_start(15999, ctrl=5)
        + """
    movs r2, #50
1:  ldr r1, [r0]
    tst r1, #0x10000
    beq 1b
    subs r2, #1
    bne 1b
    ldr r3, =0x20002000
    movs r1, #1
    str r1, [r3]
2:  b 2b
    """
    )
    board.power_on([Chunk(0x08000000, assemble(program(body)), "test")])
    m = board.machine
    with m.host():  # step by hand: stop exactly at the end
        for _ in range(100_000):
            if _Log(board).word(0x20002000) == 1:
                break
            m.step_slice(max_count=64)
        assert _Log(board).word(0x20002000) == 1
        assert 50 * 16000 <= m.now_cycles() < 51 * 16000  # virtual time is exact
        assert m.instructions < m.now_cycles() // 4  # most of it was skipped


def test_iwdg_rescues_a_locked_up_core(board: Board) -> None:
    """The IWDG's LSI keeps running while the core is locked up (virtual time does not):
    a watchdog started before a double fault resets the board, as on the chip."""
    body = """
    ldr r0, =0x40003000
    ldr r1, =0xCCCC
    str r1, [r0]              @ start
    ldr r1, =0x5555
    str r1, [r0]              @ unlock PR/RLR
    movs r1, #0
    str r1, [r0, #4]          @ PR = /4: 125 us per tick
    movs r1, #79
    str r1, [r0, #8]          @ RLR: 80 ticks = 10 ms
    ldr r1, =0xAAAA
    str r1, [r0]              @ reload
    udf #0                    @ HardFault, whose handler faults again: lockup
    """
    _boot(board, body, {3: "hard_h"}, ".thumb_func\nhard_h:\n    udf #1\n")
    m = board.machine

    def iwdg_resets() -> int:
        with m.host():
            return sum(1 for r in m.reset_history if r["cause"] == "iwdg")

    _wait(lambda: iwdg_resets() >= 2, timeout=10.0)  # locks up again after each rescue
    with m.host():
        assert m.device("rcc").last_reset_cause() == "iwdg"


def test_interrupt_points_are_reproducible_in_the_machine() -> None:
    """Same firmware, same inputs: SysTick interrupts the busy loop at the same iteration in
    every run of the real machine (slices are cut at the event's cycle)."""
    body = (
        SYSTICK_EVERY_1000
        + """
    movs r5, #0
    ldr r2, =0x20000000
spin:
    adds r5, #1
    ldr r3, [r2]
    cmp r3, #20
    blt spin
    movs r1, #0
    str r1, [r0]              @ SysTick off
hang:
    b hang
    """
    )
    extra = ".thumb_func\ntick_h:\n    push {r4, lr}\n    mov r0, r5\n    bl logit\n    pop {r4, pc}\n"
    runs = []
    for _ in range(2):
        b = Board(BoardOptions(pty=False))
        try:
            _boot(b, body, {15: "tick_h"}, extra)
            log = _Log(b)
            _wait(lambda log=log: log.word(0x20000000) >= 20)
            runs.append([log.word(0x20000000 + 4 * (i + 1)) for i in range(20)])
        finally:
            b.close()
    assert runs[0] == runs[1]  # to the loop iteration
    steps = [later - earlier for earlier, later in itertools.pairwise(runs[0])]
    assert all(240 <= n <= 250 for n in steps[2:]), steps  # ~1000 cycles of a 4-instruction loop


def test_exception_return_without_thumb_bit_faults_in_the_machine(board: Board) -> None:
    """The same frame on the twin's run loop, where the return is done inside the slice:
    INVSTATE, escalated, with the return address and the cleared xPSR stacked."""
    from test_exc_faults import CLEARED_T_BODY, CLEARED_T_FRAME

    _boot(board, CLEARED_T_BODY, {3: "hard_h", 11: "svc_h"}, CLEARED_T_FRAME)
    log = _Log(board)
    _wait(lambda: log.word(0x20001004) != 0)
    cfsr, hfsr, pc, xpsr = (log.word(0x20001000 + 4 * i) for i in range(4))
    assert cfsr & (1 << 17) and hfsr & (1 << 30)
    assert pc == log.word(0x20001024) & ~1 and xpsr == 0
    assert log.word(0x20001020) == 0


def test_branch_to_an_even_address_is_invstate_not_undefinstr(board: Board) -> None:
    """A jump through a pointer without the Thumb bit (a bootloader that masks bit 0 of the
    app's reset vector): EPSR.T clears and the first instruction there raises INVSTATE,
    with that address and T = 0 stacked. unicorn stops with an invalid instruction, which
    the twin had reported as UNDEFINSTR (CFSR 0x10000 instead of 0x20000)."""
    from test_exc_faults import CLEARED_T_FRAME

    body = """
    ldr r0, =target
    bic r0, r0, #1
    ldr r1, =0x20001024
    str r0, [r1]
    bx r0
target:
    ldr r0, =0x20001020
    movs r1, #1
    str r1, [r0]
"""
    _boot(board, body, {3: "hard_h"}, CLEARED_T_FRAME)
    log = _Log(board)
    _wait(lambda: log.word(0x20001004) != 0)
    cfsr, hfsr, pc, xpsr = (log.word(0x20001000 + 4 * i) for i in range(4))
    assert (cfsr, hfsr & (1 << 30)) == (1 << 17, 1 << 30)  # INVSTATE only, FORCED
    assert pc == log.word(0x20001024) and not xpsr & (1 << 24)
    assert log.word(0x20001020) == 0


@pytest.mark.parametrize(
    ("target", "cfsr"),
    [
        (0x40000001, 1 << 0),  # peripheral registers: execute-never → IACCVIOL
        (0xE0001001, 1 << 0),  # system region (DWT): execute-never → IACCVIOL
        (0xA0000001, 1 << 0),  # external device (FMC registers): execute-never
        (0x60000001, 1 << 8),  # FMC bank, nothing attached: IBUSERR, BFAR not valid
    ],
)
def test_a_jump_where_no_code_can_be_fetched_faults_as_on_silicon(
    board: Board, target: int, cfsr: int
) -> None:
    """A bootloader jumping to a wrong address: the default memory map's execute-never
    regions give MemManage IACCVIOL, an executable region with nothing behind it an
    instruction bus error without BFARVALID. The twin had reported UNDEFINSTR for the
    former and set BFARVALID for the latter."""
    from test_exc_faults import CLEARED_T_FRAME

    body = f"""
    ldr r0, =0x{target:08X}
    bx r0
"""
    _boot(board, body, {3: "hard_h"}, CLEARED_T_FRAME)
    log = _Log(board)
    _wait(lambda: log.word(0x20001004) != 0)
    got, hfsr, pc = (log.word(0x20001000 + 4 * i) for i in range(3))
    assert (got, hfsr) == (cfsr, 1 << 30) and pc == target & ~1


def test_bkpt_without_a_debugger_is_a_hardfault_with_debugevt(board: Board) -> None:
    """A BKPT left in firmware that runs with no debugger (C_DEBUGEN clear, DebugMonitor
    off) escalates to HardFault with HFSR.DEBUGEVT, the BKPT stacked; the twin had left
    HFSR at 0 (a fault handler or the rig's report then named no cause)."""
    from test_exc_faults import CLEARED_T_FRAME

    body = """
    ldr r0, =brk
    ldr r1, =0x20001024
    str r0, [r1]
brk:
    bkpt #0x42
"""
    _boot(board, body, {3: "hard_h"}, CLEARED_T_FRAME.replace("bkpt #3", "b ."))
    log = _Log(board)
    _wait(lambda: log.word(0x20001004) != 0)
    cfsr, hfsr, pc = (log.word(0x20001000 + 4 * i) for i in range(3))
    assert (cfsr, hfsr) == (0, 1 << 31) and pc == log.word(0x20001024) & ~1


def test_an_unaligned_ldrex_is_an_unaligned_usage_fault(board: Board) -> None:
    """LDREX needs a word-aligned address: UsageFault UNALIGNED on silicon. unicorn reports
    it as a data abort, which the twin had taken as UNDEFINSTR."""
    from test_exc_faults import CLEARED_T_FRAME

    body = """
    ldr r0, =insn
    ldr r1, =0x20001024
    str r0, [r1]
    ldr r0, =0x20000101
insn:
    ldrex r2, [r0]
"""
    _boot(board, body, {3: "hard_h"}, CLEARED_T_FRAME)
    log = _Log(board)
    _wait(lambda: log.word(0x20001004) != 0)
    cfsr, hfsr, pc = (log.word(0x20001000 + 4 * i) for i in range(3))
    assert (cfsr, hfsr) == (1 << 24, 1 << 30) and pc == log.word(0x20001024) & ~1


def test_an_unreadable_vector_locks_up_before_any_instruction_runs(board: Board) -> None:
    """VTOR into QSPI space with nothing mapped: SVC's vector fetch fails (VECTTBL), so does
    HardFault's: lockup at the entry. The twin had run a slice of the interrupted code in
    handler mode before it took the HardFault."""
    body = """
    ldr r0, =0xE000ED08
    ldr r1, =0x90000000
    str r1, [r0]
    dsb
    svc #0
    ldr r0, =0x20001020       @ never runs
    movs r1, #1
    str r1, [r0]
"""
    _boot(board, body)
    m = board.machine
    _wait(m.is_locked_up)
    with m.host():
        assert m.exc.hfsr == 1 << 1  # VECTTBL alone
    assert _Log(board).word(0x20001020) == 0
