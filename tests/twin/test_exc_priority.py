"""NVIC priorities, masking, preemption and tail-chaining order on real execution."""

from __future__ import annotations

import periph_exc_harness
import pytest
from periph_exc_harness import Board, assemble
from periph_exc_programs import log_of, program


@pytest.fixture(autouse=True, params=["python", "c"], ids=["entry-python", "entry-c"])
def _entry_path(request, monkeypatch):
    """Every test twice: exception entry and return by the model's Python, then by the
    machine's C (twin/exc_fast.c), which must give the same result."""
    monkeypatch.setattr(periph_exc_harness, "C_ENTRY", request.param == "c")


NVIC_ISER0, NVIC_ISPR0, NVIC_IPR = 0xE000E100, 0xE000E200, 0xE000E400


def _setup(prios: dict[int, int]) -> str:
    """Assembly: enable IRQs and set their priorities (byte stores to IPR)."""
    lines = [f"ldr r0, =0x{NVIC_IPR:08X}"]
    mask = 0
    for irq, prio in prios.items():
        lines += [f"movs r1, #0x{prio:02X}", f"strb r1, [r0, #{irq}]"]
        mask |= 1 << irq
    lines += [f"ldr r0, =0x{NVIC_ISER0:08X}", f"ldr r1, =0x{mask:08X}", "str r1, [r0]"]
    return "\n".join(lines)


def test_higher_priority_irq_preempts_lower_one() -> None:
    body = (
        _setup({0: 0x80, 1: 0x40})
        + f"""
    ldr r0, =0x{NVIC_ISPR0:08X}
    movs r1, #1
    str r1, [r0]            @ pend IRQ0
    nop
    nop
    """
    )
    irq0 = """
.thumb_func
irq0:
    push {r4, lr}
    movs r0, #16
    bl logit
    ldr r0, =0xE000EF00      @ STIR: pend IRQ1 from inside IRQ0
    movs r1, #1
    str r1, [r0]
    nop
    nop
    movs r0, #0x110
    bl logit
    pop {r4, pc}
"""
    b = Board(assemble(program(body, {16: "irq0"}, irq0)))
    assert b.run() == "bkpt"
    assert log_of(b) == [16, 17, 0x111, 0x110]


def test_same_group_does_not_preempt_with_prigroup() -> None:
    # PRIGROUP=5: group = bits 7:6. 0x50 and 0x40 share group 0x40 → no preemption.
    body = (
        """
    ldr r0, =0xE000ED0C
    ldr r1, =0x05FA0500
    str r1, [r0]
    """
        + _setup({0: 0x50, 1: 0x40})
        + f"""
    ldr r0, =0x{NVIC_ISPR0:08X}
    movs r1, #1
    str r1, [r0]
    nop
    """
    )
    irq0 = """
.thumb_func
irq0:
    push {r4, lr}
    movs r0, #16
    bl logit
    ldr r0, =0xE000EF00
    movs r1, #1
    str r1, [r0]
    nop
    nop
    movs r0, #0x110
    bl logit
    pop {r4, pc}
"""
    b = Board(assemble(program(body, {16: "irq0"}, irq0)))
    assert b.run() == "bkpt"
    assert log_of(b) == [16, 0x110, 17, 0x111]  # IRQ1 tail-chains after IRQ0


def test_tail_chain_order_by_priority_then_number_after_primask() -> None:
    body = (
        """
    cpsid i
    ldr r0, =0xE000ED20       @ SHPR3: PendSV priority 0xF0
    ldr r1, =0x00F00000
    str r1, [r0]
    """
        + _setup({1: 0x40, 2: 0x80, 3: 0x40})
        + f"""
    ldr r0, =0x{NVIC_ISPR0:08X}
    movs r1, #0xE
    str r1, [r0]              @ pend IRQ1, IRQ2, IRQ3
    ldr r0, =0xE000ED04
    ldr r1, =0x10000000
    str r1, [r0]              @ PENDSVSET
    nop
    cpsie i
    nop
    nop
    """
    )
    b = Board(assemble(program(body)))
    b.model.keep_history = 16
    assert b.run() == "bkpt"
    assert log_of(b) == [17, 0x111, 19, 0x113, 18, 0x112, 14, 0x10E]
    entries = [exc for _, exc in b.model.history]
    assert entries == [17, 19, 18, 14]


def test_basepri_masks_lower_priorities_only() -> None:
    body = (
        """
    movs r0, #0x40
    msr basepri, r0
    """
        + _setup({0: 0x40, 1: 0x30})
        + f"""
    ldr r0, =0x{NVIC_ISPR0:08X}
    movs r1, #3
    str r1, [r0]
    nop
    nop
    ldr r0, =0x20002000
    ldr r1, =0x20000000
    ldr r1, [r1]
    str r1, [r0]              @ events seen while BASEPRI=0x40
    movs r0, #0
    msr basepri, r0
    nop
    nop
    """
    )
    b = Board(assemble(program(body)))
    assert b.run() == "bkpt"
    assert b.word(0x20002000) == 2  # only IRQ1 (0x30) ran
    assert log_of(b) == [17, 0x111, 16, 0x110]


def test_irq_disabled_in_iser_stays_pending() -> None:
    body = f"""
    ldr r0, =0x{NVIC_ISPR0:08X}
    movs r1, #1
    str r1, [r0]
    nop
    nop
    """
    b = Board(assemble(program(body)))
    assert b.run() == "bkpt"
    assert log_of(b) == []
    assert b.word(NVIC_ISPR0) == 1
    assert b.model.icsr() & (1 << 22)  # ISRPENDING


def test_level_irq_repends_while_line_high() -> None:
    body = (
        _setup({5: 0x80})
        + """
    nop
    nop
    nop
    """
    )
    extra = """
.thumb_func
irq5:
    push {r4, lr}
    movs r0, #21
    bl logit
    ldr r1, =0x20000000
    ldr r2, [r1]
    cmp r2, #2                @ second entry: tell Python to drop the line
    bne 1f
    ldr r1, =0x20003000
    movs r2, #1
    str r2, [r1]
1:
    pop {r4, pc}
"""
    b = Board(assemble(program(body, {21: "irq5"}, extra)))
    b.model.set_irq(5, True)
    for _ in range(200):
        if b.word(0x20003000):
            b.model.set_irq(5, False)
        if b.run(max_instructions=1) == "bkpt":
            break
    assert log_of(b) == [21, 21]


def test_svc_with_primask_set_escalates_to_hardfault() -> None:
    body = """
    cpsid i
    svc #0
    """
    extra = """
.thumb_func
hard_h:
    ldr r0, =0xE000ED2C
    ldr r1, [r0]
    ldr r0, =0x20001000
    str r1, [r0]
    bkpt #2
"""
    b = Board(assemble(program(body, {3: "hard_h"}, extra)))
    assert b.run() == "bkpt"
    assert b.cpu.reg("ipsr") == 3
    assert b.model.pending == set()


def test_on_kick_called_only_when_an_exception_becomes_takeable() -> None:
    b = Board(assemble(program("nop")))
    kicks: list[int] = []
    b.model.on_kick = lambda: kicks.append(1)
    nvic = b.model.devices()[2]
    nvic.write(0x100, 4, 1 << 3)  # pend IRQ3 while disabled: not takeable
    assert kicks == []
    nvic.write(0x000, 4, 1 << 3)  # enable → takeable
    assert kicks == [1]
    b.cpu.set_reg("primask", 1)
    b.model.pend_irq(4)
    assert kicks == [1]  # masked by PRIMASK


def test_wfi_wakes_on_interrupt_masked_only_by_primask() -> None:
    b = Board(assemble(program("nop")))
    b.cpu.set_reg("primask", 1)
    b.model.write_icsr(1 << 26)  # SysTick pending (priority 0)
    assert not b.model.wants_entry()
    assert b.model.sleeping_can_wake()
    b.cpu.set_reg("basepri", 0x10)
    b.model.shpr[15] = 0x20  # masked by BASEPRI: no wake
    assert not b.model.sleeping_can_wake()


def test_jump_from_handler_blocks_equal_priority_systick_like_the_thread() -> None:
    # A "bootloader" jumps to the app from inside its SVC handler (thread: "don't jump
    # from within an interrupt"); the app's SysTick has the same priority and never runs.
    body = "svc #0"
    extra = """
.thumb_func
svc_h:
    ldr r0, =app
    bx r0
.thumb_func
app:
    ldr r0, =0xE000E010
    ldr r1, =99
    str r1, [r0, #4]
    movs r1, #7
    str r1, [r0]
    ldr r2, =3000
1:  subs r2, #1
    bne 1b
    mrs r3, ipsr
    bkpt #4
"""
    b = Board(assemble(program(body, {11: "svc_h"}, extra)))
    assert b.run() == "bkpt"
    assert b.cpu.reg("r3") == 11  # the app runs in handler mode
    assert log_of(b) == []  # SysTick pending, never taken
    assert 15 in b.model.pending


def test_nmi_preempts_primask_and_faultmask_blocks_hardfault_level() -> None:
    body = """
    cpsid i
    cpsid f                    @ FAULTMASK: execution priority -1
    ldr r0, =0xE000ED04
    ldr r1, =0x80000000        @ NMIPENDSET
    str r1, [r0]
    nop
    nop
    """
    b = Board(assemble(program(body)))
    assert b.run() == "bkpt"
    assert log_of(b) == [2, 0x102]  # NMI (-2) beats FAULTMASK (-1)
    assert b.cpu.reg("faultmask") == 1  # returning from NMI keeps FAULTMASK
    b2 = Board(assemble(program("cpsid f\nsvc #0\nnop")))
    assert b2.run() == "lockup"  # SVC escalates, HardFault can't preempt -1
