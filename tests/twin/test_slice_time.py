"""Virtual time is the instructions the core retired (docs/twin.md), inside a slice and for
a slice that stops early: the twin's C code hook counts them (twin/code_hook.py). Before,
a slice that a hook stopped early (an SVC, a poll of a busy flag, a kick) was charged its
MMIO accesses + 1 and the instructions it had run were lost to time, and a device looking
at the time inside a slice saw one cycle per MMIO access: DWT_CYCCNT around a computation
said it took a fraction of what it did."""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble, boot_until_done
from periph_exc_programs import program
from test_mpu_machine import DONE, FINISH, word

from twin.loader import Chunk

OUT = 0x20001020
START_CYCCNT = """
    ldr r0, =0xE0001000       @ DWT_CTRL.CYCCNTENA
    ldr r1, [r0]
    orr r1, r1, #1
    str r1, [r0]
"""
STORE_DELTA = f"""
    subs r4, r4, r2
    ldr r1, =0x{OUT:08X}
    str r4, [r1]
"""
SVC_H = """
.thumb_func
svc_h:
    bx lr
"""


@pytest.fixture
def run(monkeypatch):
    monkeypatch.delenv("OTA_TWIN_NATIVE", raising=False)  # the count needs the C hook
    boards: list = []

    def _run(body: str):
        image = assemble(program(START_CYCCNT + body + STORE_DELTA + FINISH, {11: "svc_h"}, SVC_H))
        boards.append(boot_until_done([Chunk(0x08000000, image, "t")], DONE))
        assert boards[-1].machine.usage_checks.code_hook.native
        return boards[-1]

    yield _run
    for b in boards:
        b.close()


def test_cyccnt_inside_a_slice_counts_the_instructions_between_reads(run) -> None:
    b = run(
        """
    ldr r2, [r0, #4]          @ t0
    .rept 1000
    adds r3, #1
    .endr
    ldr r4, [r0, #4]          @ t1: 1000 adds and the load of t0 retired since t0's read
    """
    )
    assert word(b, OUT) == 1001


def test_slices_an_svc_ends_are_charged_what_they_ran(run) -> None:
    b = run(
        """
    ldr r2, [r0, #4]          @ t0
    movs r5, #100
1:
    .rept 100
    adds r3, #1
    .endr
    svc #0                    @ ends the slice; the handler returns at once
    subs r5, #1
    bne 1b
    ldr r4, [r0, #4]          @ t1
    """
    )
    # the load of t0, movs, then 100 x (100 adds, svc, bx lr, subs, bne); exception entry
    # and return take no cycles on the twin
    expected = 1 + 1 + 100 * 104
    assert expected <= word(b, OUT) <= expected + 2, word(b, OUT)
