"""Bus errors a device answers to a CPU store: the store retires, an imprecise BusFault
follows (escalated to HardFault unless BUSFAULTENA), as on the Cortex-M7."""

from __future__ import annotations

import pytest
from test_mpu_machine import DONE, REC, record
from test_mpu_machine import run as run  # the fixture, shared with the MPU tests

WRONG_KEY = """
    ldr r0, =0x40023C04       @ FLASH_KEYR
    ldr r1, =0xCDEF89AB       @ KEY2 first: wrong sequence
    str r1, [r0]
    movs r7, #7               @ the store retired: the fault is imprecise
    ldr r0, =0x40023C10
    ldr r6, [r0]              @ FLASH_CR
"""
FAULT_REC = f"""
.thumb_func
fault_rec:
    ldr r0, =0xE000ED28
    ldr r1, [r0]              @ CFSR
    ldr r2, [r0, #4]          @ HFSR
    ldr r3, =0x{REC:08X}
    str r1, [r3]
    str r2, [r3, #4]
    mrs r0, msp
    ldr r1, [r0, #24]
    str r1, [r3, #8]          @ stacked PC
    ldr r0, =0x{DONE:08X}
    ldr r1, =0xD0DE
    str r1, [r0]
    b .
"""


@pytest.mark.parametrize("busfaultena", [False, True])
def test_wrong_flash_key_is_an_imprecise_bus_fault(run, busfaultena: bool) -> None:
    """RM0410: a wrong FLASH_KEYR sequence is a bus error (HardFault by default) and
    FLASH_CR stays locked until reset."""
    enable = "    ldr r0, =0xE000ED24\n    ldr r1, =0x00020000\n    str r1, [r0]\n" if busfaultena else ""
    b = run(enable + WRONG_KEY, handlers={3: "fault_rec", 5: "fault_rec"}, extra=FAULT_REC)
    cfsr, hfsr, pc = record(b)[:3]
    assert cfsr & (1 << 10) and not cfsr & (1 << 15), hex(cfsr)  # IMPRECISERR, no BFAR
    assert bool(hfsr & (1 << 30)) != busfaultena, hex(hfsr)  # FORCED only when escalated
    with b.machine.host() as m:
        assert m.bus_read(pc, 2) == bytes.fromhex("0727")  # stacked PC: the movs after the store
        assert int.from_bytes(m.bus_read(0x40023C10, 4), "little") & (1 << 31)  # still LOCK


def test_unprivileged_ppb_access_is_a_bus_fault_and_stir_needs_usersetmpend(run) -> None:
    body = """
    ldr r0, =0xE000ED14       @ CCR |= USERSETMPEND: unprivileged STIR writes allowed
    ldr r1, [r0]
    orr r1, r1, #2
    str r1, [r0]
    movs r1, #1
    msr control, r1
    isb
    svc #0
    ldr r0, =0xE000EF00
    movs r1, #0
    str r1, [r0]              @ STIR (IRQ 0 is disabled: nothing happens)
    movs r7, #7
    ldr r0, =0xE000E010
    ldr r1, [r0]              @ SysTick CTRL, unprivileged: precise BusFault, HardFault here
"""
    b = run(
        body, handlers={3: "fault_rec", 11: "svc_h"}, extra=FAULT_REC + ".thumb_func\nsvc_h:\n    bx lr\n"
    )
    cfsr, hfsr, pc = record(b)[:3]
    assert cfsr & (1 << 9) and cfsr & (1 << 15), hex(cfsr)  # PRECISERR, BFARVALID
    assert hfsr & (1 << 30)
    with b.machine.host() as m:
        assert int.from_bytes(m.bus_read(0xE000ED38, 4), "little") == 0xE000E010  # BFAR
        assert m.bus_read(pc, 2) == bytes.fromhex("0168")  # ldr r1, [r0]
