"""Thumb-2 test programs for the exception tests: a vector table plus a logging handler."""

from __future__ import annotations

LOG = 0x20000000  # word count, then one word per event
STACK_TOP = 0x20010000


def systick_start(reload: int, ctrl: int = 7) -> str:
    """Start SysTick: LOAD = ``reload`` (wraps every reload + 1 cycles), VAL = 0, CTRL =
    ``ctrl`` (7: ENABLE | TICKINT | CLKSOURCE; 5: without the interrupt); leaves r0 =
    SysTick base."""
    return f"""
    ldr r0, =0xE000E010
    ldr r1, ={reload}
    str r1, [r0, #4]          @ LOAD
    movs r1, #0
    str r1, [r0, #8]          @ VAL
    movs r1, #{ctrl}
    str r1, [r0]              @ CTRL
"""


#: an interrupt every 1000 cycles
SYSTICK_EVERY_1000 = systick_start(999)


def counting_handler(label: str, address: int, clobber: bool = False) -> str:
    """A handler ``label`` that adds one to the word at ``address`` (r1, r2 changed);
    ``clobber``: it also zeroes r0, r3 and r12, so every caller-saved register changes."""
    extra = "    movs r0, #0\n    movs r3, #0\n    mov r12, r0\n" if clobber else ""
    return f"""
.thumb_func
{label}:
    ldr r1, =0x{address:08X}
    ldr r2, [r1]
    adds r2, #1
    str r2, [r1]
{extra}    bx lr
"""


def program(body: str, handlers: dict[int, str] | None = None, extra: str = "") -> str:
    """Assembly source: vector table (exception n → handlers.get(n, "generic")), reset → body.

    ``generic`` logs IPSR on entry and IPSR|0x100 on exit into the LOG area.
    """
    handlers = handlers or {}
    vec = [f".word 0x{STACK_TOP:08X}", ".word reset"]
    for n in range(2, 16 + 110):
        vec.append(f".word {handlers.get(n, 'generic')}")
    return "\n".join(
        [
            ".text",
            ".global _start",
            "_start:",
            *vec,
            ".thumb_func",
            "reset:",
            body,
            "done: bkpt #0",
            "b done",
            ".thumb_func",
            "generic:",
            "  push {r4, lr}",
            "  mrs r0, ipsr",
            "  bl logit",
            "  mrs r0, ipsr",
            "  orr r0, r0, #0x100",
            "  bl logit",
            "  pop {r4, pc}",
            ".thumb_func",
            "logit:",  # append r0 to LOG (clobbers r1, r2)
            f"  ldr r1, =0x{LOG:08X}",
            "  ldr r2, [r1]",
            "  adds r2, #1",
            "  str r2, [r1]",
            "  str r0, [r1, r2, lsl #2]",
            "  bx lr",
            extra,
            ".ltorg",
        ]
    )


def log_of(board) -> list[int]:
    """Events logged by ``generic``/``logit``."""
    n = board.word(LOG)
    return [board.word(LOG + 4 * (i + 1)) for i in range(n)]
