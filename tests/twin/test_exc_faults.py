"""Faults, escalation, lockup, SysTick timing and reproducibility on real execution."""

from __future__ import annotations

import itertools

import periph_exc_harness
import pytest
from periph_exc_harness import Board, assemble
from periph_exc_programs import SYSTICK_EVERY_1000, log_of, program


@pytest.fixture(autouse=True, params=["python", "c"], ids=["entry-python", "entry-c"])
def _entry_path(request, monkeypatch):
    """Every test twice: exception entry and return by the model's Python, then by the
    machine's C (twin/exc_fast.c), which must give the same result."""
    monkeypatch.setattr(periph_exc_harness, "C_ENTRY", request.param == "c")


SKIP_HANDLER = """
.thumb_func
{name}:
    push {{r4, lr}}
    mrs r0, ipsr
    bl logit
    ldr r0, =0xE000ED28       @ record CFSR, HFSR, BFAR
    ldr r1, [r0]
    ldr r2, [r0, #4]
    ldr r3, [r0, #16]
    ldr r0, =0x20001000
    str r1, [r0]
    str r2, [r0, #4]
    str r3, [r0, #8]
    ldr r0, =0xE000ED28       @ clear CFSR/HFSR (write 1 to clear)
    ldr r1, [r0]
    str r1, [r0]
    ldr r1, [r0, #4]
    str r1, [r0, #4]
    pop {{r4, lr}}
    mrs r0, msp               @ skip the faulting instruction: stacked PC += {step}
    ldr r1, [r0, #24]
    adds r1, #{step}
    str r1, [r0, #24]
    bx lr
"""


def test_undefined_instruction_escalates_to_hardfault_when_usagefault_disabled() -> None:
    body = """
    udf #0
    movs r7, #1
    """
    b = Board(assemble(program(body, {3: "hard_h"}, SKIP_HANDLER.format(name="hard_h", step=2))))
    assert b.run() == "bkpt"
    assert log_of(b) == [3]
    cfsr, hfsr = b.word(0x20001000), b.word(0x20001004)
    assert cfsr & (1 << 16)  # UNDEFINSTR
    assert hfsr & (1 << 30)  # FORCED
    assert b.cpu.reg("r7") == 1  # resumed after the UDF
    assert b.model.cfsr == 0 and b.model.hfsr == 0  # W1C cleared them


def test_usagefault_taken_when_enabled_in_shcsr() -> None:
    body = """
    ldr r0, =0xE000ED24
    ldr r1, =0x00070000       @ MEMFAULTENA | BUSFAULTENA | USGFAULTENA
    str r1, [r0]
    udf #1
    movs r7, #2
    """
    b = Board(assemble(program(body, {6: "usage_h"}, SKIP_HANDLER.format(name="usage_h", step=2))))
    assert b.run() == "bkpt"
    assert log_of(b) == [6]
    assert b.word(0x20001000) & (1 << 16)
    assert b.word(0x20001004) == 0
    assert b.cpu.reg("r7") == 2


def test_precise_busfault_records_bfar() -> None:
    body = """
    ldr r0, =0xE000ED24
    ldr r1, =0x00020000
    str r1, [r0]
    ldr r0, =0x60000010
    ldr r1, [r0]
    movs r7, #3
    """
    b = Board(assemble(program(body, {5: "bus_h"}, SKIP_HANDLER.format(name="bus_h", step=2))))
    assert b.run() == "bkpt"
    assert log_of(b) == [5]
    cfsr, _, bfar = (b.word(0x20001000 + 4 * i) for i in range(3))
    assert cfsr & (1 << 9) and cfsr & (1 << 15)  # PRECISERR, BFARVALID
    assert bfar == 0x60000010
    assert b.cpu.reg("r7") == 3


def test_fault_inside_hardfault_locks_up() -> None:
    body = "udf #0"
    extra = """
.thumb_func
hard_h:
    udf #2
"""
    b = Board(assemble(program(body, {3: "hard_h"}, extra)))
    assert b.run() == "lockup"
    assert b.model.is_locked_up()
    assert not b.model.wants_entry()
    assert any("LOCKUP" in line for line in b.services.logs)
    b.model.reset("system")
    assert not b.model.is_locked_up()


def test_bad_vector_thumb_bit_gives_invstate() -> None:
    body = """
    ldr r0, =0x20004000       @ table in RAM whose SVC vector lacks the Thumb bit
    ldr r1, =0x08000000
    movs r2, #16
1:  ldr r3, [r1], #4
    str r3, [r0], #4
    subs r2, #1
    bne 1b
    ldr r0, =0x2000402C
    ldr r1, =generic
    bic r1, r1, #1
    str r1, [r0]
    ldr r0, =0xE000ED08
    ldr r1, =0x20004000
    str r1, [r0]
    svc #0
    """
    src = program(body, {3: "hard_h"}, HARD_RECORDER)
    b = Board(assemble(src))
    assert b.run() == "bkpt"
    cfsr, _, pc, xpsr = (b.word(0x20001000 + 4 * i) for i in range(4))
    assert cfsr & (1 << 17)  # INVSTATE
    # entry completed with EPSR.T = 0: the fault stacks the handler's address and T = 0
    assert pc == b.word(0x2000402C) and xpsr == 11  # IPSR = SVCall, T clear


def test_systick_fires_every_load_plus_one_cycles_and_counts_down() -> None:
    body = (
        SYSTICK_EVERY_1000
        + """
    ldr r2, =0x20000000
spin:
    ldr r3, [r2]
    cmp r3, #10               @ 5 SysTicks logged (entry + exit each)
    blt spin
    ldr r1, [r0]              @ CTRL read: COUNTFLAG
    ldr r4, [r0, #8]          @ VAL
    """
    )
    prog = assemble(program(body))

    def run_once() -> list[tuple[int, int]]:
        b = Board(prog)
        b.model.keep_history = 100
        assert b.run(max_instructions=20_000) == "bkpt"
        assert b.cpu.reg("r1") & (1 << 16)
        assert 0 <= b.cpu.reg("r4") <= 999
        return b.model.history

    first = run_once()
    assert [exc for _, exc in first] == [15] * 5
    times = [t for t, _ in first]
    assert all(later - earlier == 1000 for earlier, later in itertools.pairwise(times))
    assert run_once() == first  # reproducible to the cycle


def test_systick_counter_reads_and_countflag_clear_on_read() -> None:
    b = Board(assemble(program("nop")))
    st = b.model.systick
    st.write(4, 4, 99)
    st.write(0, 4, 5)  # enabled, no interrupt, HCLK
    b.services.advance(1)
    assert st.read(8, 4) == 99
    b.services.advance(50)
    assert st.read(8, 4) == 49
    b.services.advance(60)
    assert st.read(0, 4) & (1 << 16)
    assert not st.read(0, 4) & (1 << 16)  # cleared by the read
    assert 15 not in b.model.pending  # TICKINT=0
    st.write(0, 4, 0)
    frozen = st.read(8, 4)
    b.services.advance(500)
    assert st.read(8, 4) == frozen


def test_sysresetreq_requests_software_system_reset() -> None:
    body = """
    ldr r0, =0xE000ED0C
    ldr r1, =0x12340004       @ wrong key: ignored
    str r1, [r0]
    ldr r1, =0x05FA0004
    str r1, [r0]
    """
    b = Board(assemble(program(body)))
    assert b.run() == "bkpt"
    assert b.services.resets == [("system", "software")]


def test_fp_instruction_with_fpu_disabled_raises_nocp() -> None:
    body = """
    ldr r0, =0x3F800000
    vmov s0, r0                @ CPACR = 0 after reset: no FP access
    nop
    movs r7, #5
    """
    extra = """
.thumb_func
hard_h:
    ldr r0, =0xE000ED28
    ldr r1, [r0]
    ldr r0, =0x20001000
    str r1, [r0]
    bkpt #6
"""
    b = Board(assemble(program(body, {3: "hard_h"}, extra)))
    assert b.run() == "bkpt"
    assert b.word(0x20001000) & (1 << 19)  # NOCP, escalated to HardFault
    assert b.cpu.reg("r7") != 5
    assert any("CPACR" in line for line in b.services.logs)


def test_fp_instruction_with_fpu_enabled_runs() -> None:
    body = """
    ldr r0, =0xE000ED88
    ldr r1, =0x00F00000
    str r1, [r0]
    dsb
    isb
    ldr r0, =0x3F800000
    vmov s0, r0
    vadd.f32 s1, s0, s0
    vmov r7, s1
    """
    b = Board(assemble(program(body)))
    assert b.run() == "bkpt"
    assert b.cpu.reg("r7") == 0x40000000
    assert b.model.cfsr == 0


#: a HardFault handler recording at 0x20001000: CFSR, HFSR, the stacked PC and xPSR, its
#: MSP and LR
HARD_RECORDER = """
.thumb_func
hard_h:
    ldr r0, =0xE000ED28
    ldr r1, [r0]
    ldr r2, [r0, #4]
    mrs r5, msp
    mov r6, lr
    ldr r3, [r5, #24]
    ldr r4, [r5, #28]
    ldr r0, =0x20001000
    stmia r0, {r1, r2, r3, r4, r5, r6}
    bkpt #3
"""
#: an SVC handler that clears the stacked xPSR (EPSR.T = 0: a hand-built frame without
#: 0x01000000), and the HardFault recorder
CLEARED_T_FRAME = (
    """
.thumb_func
svc_h:
    mrs r0, msp
    movs r1, #0
    str r1, [r0, #28]
    bx lr
"""
    + HARD_RECORDER
)
CLEARED_T_BODY = """
    ldr r0, =0x20001024       @ where the return should land
    ldr r1, =after_svc
    str r1, [r0]
    svc #0
after_svc:
    ldr r0, =0x20001020       @ thread code ran on (silicon: it never does)
    movs r1, #1
    str r1, [r0]
"""


def test_exception_return_to_a_frame_without_thumb_bit_gives_invstate() -> None:
    """ARMv7-M: the return restores EPSR.T from the stacked xPSR; with T = 0 the first
    instruction returned to raises INVSTATE (here escalated: UsageFault is disabled) with
    that PC and xPSR stacked. The model had forced T = 1 and run on."""
    src = program(CLEARED_T_BODY, {3: "hard_h", 11: "svc_h"}, CLEARED_T_FRAME)
    b = Board(assemble(src))
    assert b.run() == "bkpt"
    cfsr, hfsr, pc, xpsr = (b.word(0x20001000 + 4 * i) for i in range(4))
    assert cfsr & (1 << 17) and hfsr & (1 << 30)  # UFSR.INVSTATE, HFSR.FORCED
    assert pc == b.word(0x20001024) & ~1 and xpsr == 0
    assert b.word(0x20001020) == 0


#: an SVC handler that writes IPSR 11 into the stacked xPSR of a frame returning to thread
#: mode (and its MSP at 0x20001018), and the HardFault recorder
WRONG_IPSR_FRAME = (
    """
.thumb_func
svc_h:
    mrs r0, msp
    ldr r1, =0x0100000B
    str r1, [r0, #28]
    ldr r1, =0x20001018
    str r0, [r1]
    bx lr
"""
    + HARD_RECORDER
)


def test_exception_return_to_thread_with_a_stacked_ipsr_gives_invpc() -> None:
    """ARMv7-M: returning to thread mode with IPSR != 0 in the stacked xPSR pushes the
    frame back and takes UsageFault INVPC (escalated here) without stacking again: the
    fault's frame is the same frame, at the same address, and LR is the EXC_RETURN. The
    model had logged it and returned into thread code anyway."""
    src = program(CLEARED_T_BODY, {3: "hard_h", 11: "svc_h"}, WRONG_IPSR_FRAME)
    b = Board(assemble(src))
    assert b.run() == "bkpt"
    cfsr, hfsr, pc, xpsr, msp, lr = (b.word(0x20001000 + 4 * i) for i in range(6))
    assert cfsr & (1 << 18) and hfsr & (1 << 30)  # UFSR.INVPC, HFSR.FORCED
    assert msp == b.word(0x20001018) and lr == 0xFFFFFFF9
    assert pc == b.word(0x20001024) & ~1 and xpsr == 0x0100000B
    assert b.word(0x20001020) == 0
