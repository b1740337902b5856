"""Exception entry/return on real unicorn execution: stacking, EXC_RETURN, FP frames."""

from __future__ import annotations

import struct

import periph_exc_harness
import pytest
from periph_exc_harness import Board, assemble
from periph_exc_programs import STACK_TOP, log_of, program


@pytest.fixture(autouse=True, params=["python", "c"], ids=["entry-python", "entry-c"])
def _entry_path(request, monkeypatch):
    """Every test twice: exception entry and return by the model's Python, then by the
    machine's C (twin/exc_fast.c), which must give the same result."""
    monkeypatch.setattr(periph_exc_harness, "C_ENTRY", request.param == "c")


def test_svc_stacks_basic_frame_on_msp_and_returns() -> None:
    body = """
    movs r0, #0x10
    movs r1, #0x11
    movs r2, #0x12
    movs r3, #0x13
    mov r12, r3
    add r12, r12, #0x100
    ldr r4, =0x0BADC0DE
    mov lr, r4
    svc #7
after_svc:
    mov r5, r0
    mov r6, r12
    mov r7, lr
    """
    svc = """
.thumb_func
svc_h:
    ldr r4, =0x20001000
    mrs r5, msp
    str r5, [r4]
    str lr, [r4, #4]
    mrs r5, ipsr
    str r5, [r4, #8]
    mrs r5, control
    str r5, [r4, #12]
    movs r0, #0x99          @ clobber caller-saved registers: unstacking restores them
    movs r1, #0x99
    mov r12, r1
    bx lr
"""
    b = Board(assemble(program(body, {11: "svc_h"}, svc)))
    assert b.run() == "bkpt"
    msp_in, lr_in, ipsr_in, control_in = (b.word(0x20001000 + 4 * i) for i in range(4))
    assert lr_in == 0xFFFFFFF9
    assert ipsr_in == 11
    assert control_in & 6 == 0
    assert msp_in == STACK_TOP - 0x20
    frame = struct.unpack("<8I", b.cpu.read_mem(msp_in, 32))
    assert frame[:5] == (0x10, 0x11, 0x12, 0x13, 0x113)
    assert frame[5] == 0x0BADC0DE
    assert frame[7] & 0x01000000 and frame[7] & 0x1FF == 0
    assert b.cpu.reg("r5") == 0x10 and b.cpu.reg("r6") == 0x113 and b.cpu.reg("r7") == 0x0BADC0DE
    assert b.cpu.reg("msp") == STACK_TOP
    assert b.cpu.reg("ipsr") == 0
    assert b.model.active == []


def test_thread_on_psp_gives_exc_return_fffffffd_and_restores_spsel() -> None:
    body = """
    ldr r0, =0x20008000
    msr psp, r0
    movs r0, #2
    msr control, r0
    isb
    movs r0, #0x42
    svc #1
    mrs r8, control
    mov r9, sp
    """
    svc = """
.thumb_func
svc_h:
    ldr r1, =0x20001000
    str lr, [r1]
    mrs r2, psp
    str r2, [r1, #4]
    mov r2, sp
    str r2, [r1, #8]
    bx lr
"""
    b = Board(assemble(program(body, {11: "svc_h"}, svc)))
    assert b.run() == "bkpt"
    assert b.word(0x20001000) == 0xFFFFFFFD
    assert b.word(0x20001004) == 0x20008000 - 0x20
    assert b.word(0x20001008) == STACK_TOP  # handler runs on MSP
    assert b.word(0x20008000 - 0x20) == 0x42  # stacked r0 on the process stack
    assert b.cpu.reg("r8") & 2
    assert b.cpu.reg("r9") == 0x20008000


def test_fp_context_gives_extended_frame_and_is_restored() -> None:
    body = """
    ldr r0, =0xE000ED88       @ CPACR: CP10/CP11 full access
    ldr r1, =0x00F00000
    str r1, [r0]
    ldr r0, =0x3F800000
    vmov s0, r0
    ldr r0, =0x40000000
    vmov s15, r0
    svc #2
    vmov r10, s0
    vmov r11, s15
    """
    svc = """
.thumb_func
svc_h:
    ldr r1, =0x20001000
    str lr, [r1]
    mrs r2, msp
    str r2, [r1, #4]
    mrs r2, control
    str r2, [r1, #8]
    movs r2, #0
    vmov s0, r2
    vmov s15, r2
    bx lr
"""
    b = Board(assemble(program(body, {11: "svc_h"}, svc)))
    assert b.run() == "bkpt"
    exc_return, msp_in, _control_in = (b.word(0x20001000 + 4 * i) for i in range(3))
    assert exc_return == 0xFFFFFFE9
    assert msp_in == STACK_TOP - 0x68
    assert b.word(msp_in + 0x20) == 0x3F800000  # S0 in the extended frame
    assert b.word(msp_in + 0x20 + 15 * 4) == 0x40000000  # S15
    assert b.cpu.reg("r10") == 0x3F800000 and b.cpu.reg("r11") == 0x40000000
    assert b.cpu.reg("msp") == STACK_TOP
    assert b.cpu.reg("control") & 4  # FPCA restored from EXC_RETURN[4]


def test_stkalign_pads_misaligned_stack_and_sets_xpsr_bit9() -> None:
    body = """
    ldr r0, =0x2000FFF4
    mov sp, r0
    svc #0
    mov r9, sp
    """
    svc = """
.thumb_func
svc_h:
    mrs r2, msp
    ldr r1, =0x20001000
    str r2, [r1]
    bx lr
"""
    b = Board(assemble(program(body, {11: "svc_h"}, svc)))
    assert b.run() == "bkpt"
    frame = b.word(0x20001000)
    assert frame == (0x2000FFF4 - 0x20) & ~7
    assert b.word(frame + 28) & (1 << 9)
    assert b.cpu.reg("r9") == 0x2000FFF4


def test_vtor_relocation_to_ram_table() -> None:
    body = """
    ldr r0, =0x08000000      @ copy the vector table to SRAM at 0x20004000
    ldr r1, =0x20004000
    movs r2, #128
copy:
    ldr r3, [r0], #4
    str r3, [r1], #4
    subs r2, #1
    bne copy
    ldr r3, =other_svc       @ patch the SVC vector in the copy
    ldr r1, =0x2000402C
    str r3, [r1]
    ldr r0, =0xE000ED08
    ldr r1, =0x20004000
    str r1, [r0]
    dsb
    svc #0
    """
    extra = """
.thumb_func
other_svc:
    movs r0, #0x77
    bl logit
    mrs r0, ipsr
    bx lr
"""
    # other_svc clobbers lr via bl; keep EXC_RETURN in r4 instead
    extra = extra.replace("movs r0, #0x77", "mov r4, lr\n    movs r0, #0x77").replace(
        "    mrs r0, ipsr\n    bx lr", "    bx r4"
    )
    b = Board(assemble(program(body, {}, extra)))
    assert b.run() == "bkpt"
    assert log_of(b) == [0x77]
    assert b.model.vtor == 0x20004000


def test_invalid_exc_return_is_invpc_usage_fault_escalated() -> None:
    body = "svc #0"
    extra = """
.thumb_func
svc_h:
    ldr r0, =0xFFFFFFF5      @ reserved EXC_RETURN
    bx r0
.thumb_func
hard_h:
    ldr r0, =0x20001000
    ldr r1, =0xE000ED28
    ldr r2, [r1]
    str r2, [r0]
    ldr r1, =0xE000ED2C
    ldr r2, [r1]
    str r2, [r0, #4]
    bkpt #1
"""
    b = Board(assemble(program(body, {11: "svc_h", 3: "hard_h"}, extra)))
    assert b.run() == "bkpt"
    assert b.word(0x20001000) & (1 << 18)  # CFSR.INVPC
    assert b.word(0x20001004) & (1 << 30)  # HFSR.FORCED


def test_invalid_exc_return_takes_the_fault_without_stacking_again() -> None:
    """ARMv7-M ExceptionReturn: an illegal EXC_RETURN deactivates the returning exception
    and takes UsageFault (here HardFault) without pushing a frame, LR = EXC_RETURN. The
    model had stacked a second frame with the EXC_RETURN value as its PC, SVCall still
    active."""
    body = "svc #0"
    extra = """
.thumb_func
svc_h:
    ldr r1, =0x20001008
    mrs r0, msp
    str r0, [r1]
    ldr r0, =0xFFFFFFF5      @ reserved EXC_RETURN
    bx r0
.thumb_func
hard_h:
    ldr r0, =0x20001000
    mrs r1, msp
    str r1, [r0]
    str lr, [r0, #4]
    ldr r1, =0xE000ED24      @ SHCSR: SVCALLACT is bit 7
    ldr r2, [r1]
    str r2, [r0, #12]
    bkpt #1
"""
    b = Board(assemble(program(body, {11: "svc_h", 3: "hard_h"}, extra)))
    assert b.run() == "bkpt"
    assert b.word(0x20001000) == b.word(0x20001008)  # the same MSP: nothing pushed
    assert b.word(0x20001004) == 0xFFFFFFF5
    assert not b.word(0x2000100C) & (1 << 7)  # SVCall no longer active
