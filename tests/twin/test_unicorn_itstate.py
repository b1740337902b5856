"""A unicorn 2.1.4 defect found while running lwIP with the D-cache on (docs/twin-cache.md,
Limits), reproduced on bare unicorn, without the twin.

A Thumb IT block whose load a memory-read hook covers and whose store no memory-write hook
covers (while a write hook exists elsewhere) leaves the block's ITSTATE behind: the code after
the block's tail call runs as if still inside it, and its next conditional branch is an
undefined instruction. Without hooks, with only one of them, or with the write hook covering the
store, the same code runs right. The D-cache model installs exactly such hooks (reads of flash
and SRAM, writes to cacheable SRAM; stores to DTCM and peripherals are not covered), which is
how the reference bootloader's lwIP stack crashed on the twin in a build with the D-cache on
during an Ethernet update.

The test is a canary: it passes while unicorn has the defect (strict xfail) and fails the day an
upgraded unicorn fixes it, so that the limit in docs/twin-cache.md can be lifted.
"""

from __future__ import annotations

import subprocess

import pytest
import unicorn as uc_mod
from unicorn.arm_const import UC_ARM_REG_PC, UC_ARM_REG_R0, UC_ARM_REG_R6, UC_ARM_REG_SP

# lwIP's tcp_close (arm-none-eabi-gcc -Os): a conditional read-modify-write of pcb->flags in an
# IT block, then a tail call into tcp_close_shutdown, whose first conditional branch faults
SOURCE = """
    .syntax unified
    .thumb
_start:
    movs r3, #2
    movs r1, #1
    cmp r3, #1
    ittt ne
    ldrhne r3, [r0, #26]
    orrne.w r3, r3, #16
    strhne r3, [r0, #26]
    b.w target
    nop
    nop
target:
    push {r4, r5, lr}
    mov r4, r0
    sub sp, #20
    cbnz r0, 1f
    nop
1:
    ldrb r3, [r0, #20]
    cmp r1, #0
    beq done
    movs r6, #7
done:
    b done
"""
FLASH, RAM = 0x08000000, 0x20000000
PCB = 0x20000700  # DTCM: not covered by the write hook


def _assemble(tmp_path) -> bytes:
    s, o, e, b = (tmp_path / n for n in ("p.s", "p.o", "p.elf", "p.bin"))
    s.write_text(SOURCE)
    subprocess.run(["arm-none-eabi-as", "-mcpu=cortex-m7", "-mthumb", "-o", str(o), str(s)], check=True)
    subprocess.run(
        ["arm-none-eabi-ld", f"-Ttext=0x{FLASH:08X}", "-o", str(e), str(o)], check=True, capture_output=True
    )
    subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", str(e), str(b)], check=True)
    return b.read_bytes()


def _run(code: bytes, read_hook: bool, write_hook: tuple[int, int] | None) -> int:
    """Run to the final loop; return r6 (7: the code after the IT block ran as written)."""
    uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
    uc.mem_map(FLASH, 0x200000)
    uc.mem_map(RAM, 0x80000)
    uc.mem_write(FLASH, code)
    uc.reg_write(UC_ARM_REG_R0, PCB)
    uc.reg_write(UC_ARM_REG_SP, 0x2007F000)
    if read_hook:  # the D-cache model's: flash through SRAM
        uc.hook_add(uc_mod.UC_HOOK_MEM_READ, lambda *a: None, begin=FLASH, end=0x2007FFFF)
    if write_hook is not None:
        uc.hook_add(uc_mod.UC_HOOK_MEM_WRITE, lambda *a: None, begin=write_hook[0], end=write_hook[1])
    uc.emu_start(FLASH | 1, FLASH + len(code) - 2, count=100)
    assert uc.reg_read(UC_ARM_REG_PC) == FLASH + len(code) - 2
    return uc.reg_read(UC_ARM_REG_R6)


@pytest.mark.parametrize(
    ("read_hook", "write_hook"),
    [(False, None), (True, None), (False, (0x20020000, 0x2007FFFF)), (True, (RAM, 0x2007FFFF))],
    ids=["no-hooks", "read-only", "write-only", "write-covers-store"],
)
def test_it_block_runs_right_without_the_defect_conditions(tmp_path, read_hook, write_hook) -> None:
    assert _run(_assemble(tmp_path), read_hook, write_hook) == 7


@pytest.mark.xfail(strict=True, raises=uc_mod.UcError, reason="unicorn 2.1.4: stale ITSTATE (see module doc)")
def test_it_block_with_covered_load_and_uncovered_store(tmp_path) -> None:
    assert _run(_assemble(tmp_path), True, (0x20020000, 0x2007FFFF)) == 7
