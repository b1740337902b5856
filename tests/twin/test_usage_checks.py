"""UsageFaults a Cortex-M7 raises and unicorn 2.1.4 does not (twin/usage_checks.py):
LDRD/STRD/LDM/STM/VLDR/VSTR/VLDM/VSTM at an address that is not word-aligned (UNALIGNED),
SDIV/UDIV by zero with CCR.DIV_0_TRP set (DIVBYZERO). Real Thumb-2 programs on the twin's
machine; the handler records CFSR and the stacked PC, and skips the faulting instruction."""

from __future__ import annotations

import pytest
from test_mpu_machine import DONE, FINISH, REC, word

from twin.usage_checks import ALIGN, DIV, classify

UFSR_HANDLER = f"""
.thumb_func
uf_h:
    ldr r0, =0xE000ED28
    ldr r1, [r0]
    ldr r3, =0x{REC:08X}
    ldr r12, [r3]
    add r12, r12, #1
    str r12, [r3]
    str r1, [r3, #4]
    str r1, [r0]              @ clear CFSR
    mrs r0, msp
    ldr r1, [r0, #24]
    str r1, [r3, #12]
    ldrh r2, [r1]             @ skip the faulting instruction (16 or 32 bits)
    and r2, r2, #0xF800
    cmp r2, #0xE800
    ite hs
    addhs r1, r1, #4
    addlo r1, r1, #2
    str r1, [r0, #24]
    bx lr
"""
ENABLE = """
    ldr r0, =0xE000ED24
    ldr r1, =0x00040000       @ SHCSR.USGFAULTENA
    str r1, [r0]
    ldr r0, =0xE000ED88       @ CPACR: CP10/CP11 full access
    ldr r1, =0x00F00000
    str r1, [r0]
    dsb
    isb
    ldr r4, =0x20002000
    ldr r1, =0x11223344
    str r1, [r4]
    ldr r1, =0x55667788
    str r1, [r4, #4]
    str r1, [r4, #8]
"""


@pytest.fixture(params=["C", "python"])
def run(request, monkeypatch):
    """Run a program; every case with the C hook and with the Python one (no compiler)."""
    from periph_exc_harness import assemble, boot_until_done
    from periph_exc_programs import program

    from twin.loader import Chunk

    if request.param == "python":
        monkeypatch.setenv("OTA_TWIN_NATIVE", "python")
    else:
        monkeypatch.delenv("OTA_TWIN_NATIVE", raising=False)
    boards: list = []

    def _run(body: str):
        image = assemble(program(ENABLE + body + FINISH, {6: "uf_h"}, UFSR_HANDLER))
        boards.append(boot_until_done([Chunk(0x08000000, image, "t")], DONE))
        return boards[-1]

    yield _run
    for b in boards:
        native = "C" if b.machine.usage_checks.code_hook.native else "python"
        b.close()
        assert native == request.param


def faults(b) -> tuple[int, int, int]:
    """(how many UsageFaults, the last CFSR, the last stacked PC)"""
    return word(b, REC), word(b, REC + 4), word(b, REC + 12)


@pytest.mark.parametrize(
    "access",
    [
        "ldrd r2, r3, [r5]",
        "strd r2, r3, [r5, #8]",
        "ldm r5, {r2, r3}",
        "stmia r5!, {r2, r3}",
        "ldmdb r5, {r2, r3}",
        "ldmia.w r6, {r2, r3}",
        "ldrd r2, r3, [lr]",  # r13/r14 are not after r12 in unicorn's register ids
        "vldr s0, [r5]",
        "vstr d0, [r5, #4]",
        "vldmia r5, {s0-s1}",
    ],
)
def test_word_aligned_accesses_fault_on_an_unaligned_base(run, access) -> None:
    b = run(
        f"""
    adds r5, r4, #2           @ 0x20002002
    mov r6, r5
    mov lr, r5
    movs r2, #0
    movs r3, #0
fault_at:
    {access}
    ldr r0, =0x20001020
    str r2, [r0]
    ldr r1, =fault_at
    str r1, [r0, #4]
    """
    )
    count, cfsr, pc = faults(b)
    assert count == 1
    assert cfsr == 1 << 24, hex(cfsr)  # UNALIGNED
    assert pc == word(b, 0x20001024) & ~1  # before it executed
    assert word(b, 0x20001020) == 0  # the load did not happen


def test_the_same_accesses_run_on_an_aligned_base_and_plain_loads_run_unaligned(run) -> None:
    b = run(
        """
    ldrd r2, r3, [r4]
    ldm r4, {r6, r7}
    vldr s0, [r4]
    adds r5, r4, #2
    ldr r1, [r5]              @ unaligned LDR: allowed on the Cortex-M7
    ldrh r0, [r4, #1]         @ unaligned LDRH: allowed
    push {r2, r3}
    pop {r2, r3}
    ldr r0, =0x20001020
    str r2, [r0]
    str r7, [r0, #4]
    str r1, [r0, #8]
    """
    )
    assert faults(b)[0] == 0
    assert word(b, 0x20001020) == 0x11223344
    assert word(b, 0x20001024) == 0x55667788
    assert word(b, 0x20001028) == 0x77881122


@pytest.mark.parametrize(("trap", "expected"), [(False, (0, 0)), (True, (1, 1 << 25))])
def test_division_by_zero_traps_only_with_div_0_trp(run, trap, expected) -> None:
    b = run(
        f"""
    ldr r0, =0xE000ED14       @ CCR
    ldr r1, [r0]
    {"orr r1, r1, #0x10" if trap else "bic r1, r1, #0x10"}
    str r1, [r0]
    movs r2, #7
    movs r3, #0
    movs r1, #5
    udiv r1, r2, r3
    sdiv r6, r2, r2
    ldr r0, =0x20001020
    str r1, [r0]
    str r6, [r0, #4]
    """
    )
    count, cfsr, _ = faults(b)
    assert (count, cfsr if count else 0) == expected
    assert word(b, 0x20001020) == (5 if trap else 0)  # skipped by the handler / QEMU's 0
    assert word(b, 0x20001024) == 1


def test_classify_encodings() -> None:
    assert classify(0xE9D5) == (ALIGN, 5)  # ldrd rX, rY, [r5]
    assert classify(0xE92D) is None  # push.w (STMDB sp!)
    assert classify(0xE8BD) is None  # pop.w
    assert classify(0xE9DF) is None  # ldrd literal (PC: always aligned)
    assert classify(0xE855) is None  # ldrex (QEMU checks it)
    assert classify(0xE8D5) is None  # tbb/ldrexb group
    assert classify(0xC903) == (ALIGN, 1)  # ldmia r1!, {r0, r1}
    assert classify(0xED95) == (ALIGN, 5)  # vldr
    assert classify(0xECBD) is None  # vpop
    assert classify(0xEC41) is None  # vmov d, r, r
    assert classify(0xFBB2) == (DIV, -1)  # udiv
    assert classify(0x6828) is None  # ldr r0, [r5]


# ---------------------------------------------------------------- CCR.UNALIGN_TRP
TRAP_ON = """
    ldr r0, =0xE000ED14       @ CCR.UNALIGN_TRP
    ldr r1, [r0]
    orr r1, r1, #0x8
    str r1, [r0]
"""


@pytest.mark.parametrize(
    "access",
    [
        "ldr r2, [r5]",  # 16-bit, immediate: the base is 2 off a word
        "str r3, [r5, #4]",
        "ldrh r2, [r7]",  # halfword at an odd address
        "strh r3, [r4, #1]",  # 32-bit, imm12
        "ldr.w r2, [r4, #2]",
        "ldr r2, [r4, r1]",  # 16-bit, register offset (r1 = 2)
        "ldr.w r2, [r4, r6, lsl #1]",  # 32-bit, shifted register (r6 = 1)
        "ldr r2, [r4, #-2]",  # imm8, subtracted
        "ldr r2, [r5], #4",  # post-indexed: the base itself is the address
        "str r3, [r4, #2]!",  # pre-indexed with writeback
        "ldrsh r2, [r4, #3]",
        "ldr.w r2, [pc, #2]",  # literal: Align(PC, 4) + 2
        "ldrt r2, [r5]",
    ],
)
def test_with_unalign_trp_unaligned_loads_and_stores_fault(run, access) -> None:
    b = run(
        TRAP_ON
        + f"""
    adds r5, r4, #2           @ 0x20002002
    adds r7, r4, #1           @ 0x20002001
    movs r1, #2
    movs r6, #1
    movs r2, #0
    ldr r3, =0xCAFEF00D
fault_at:
    {access}
    ldr r0, =0x20001020
    str r2, [r0]
    ldr r1, =fault_at
    str r1, [r0, #4]
    ldr r1, [r4, #4]
    str r1, [r0, #8]
    ldr r1, [r4]
    str r1, [r0, #12]
    """
    )
    count, cfsr, pc = faults(b)
    assert count == 1, access
    assert cfsr == 1 << 24, hex(cfsr)  # UNALIGNED
    assert pc == word(b, 0x20001024) & ~1  # before it executed
    assert word(b, 0x20001020) == 0  # no load happened
    assert (word(b, 0x20001028), word(b, 0x2000102C)) == (0x55667788, 0x11223344)  # no store


def test_with_unalign_trp_aligned_and_byte_accesses_run(run) -> None:
    b = run(
        TRAP_ON
        + """
    adds r5, r4, #2           @ 0x20002002
    adds r7, r4, #1           @ 0x20002001
    movs r1, #4
    ldr r2, [r4, r1]          @ aligned: register offset
    ldrh r3, [r5]             @ a halfword on a halfword boundary
    ldrb r6, [r7]             @ bytes never fault
    strb r6, [r7, #2]
    ldr r0, [r4], #2          @ post-indexed: the base (aligned) is the address, then +2
    ldrsh r1, [r4, #-2]       @ r4 = 0x20002002 now: 0x20002000
    ldr r0, =0x20001020
    str r2, [r0]
    str r3, [r0, #4]
    str r6, [r0, #8]
    str r1, [r0, #12]
    str r4, [r0, #16]
    """
    )
    assert faults(b)[0] == 0
    assert word(b, 0x20001020) == 0x55667788
    assert word(b, 0x20001024) == 0x1122
    assert word(b, 0x20001028) == 0x33
    assert word(b, 0x2000102C) == 0x3344
    assert word(b, 0x20001030) == 0x20002002


def test_classify_loads_and_stores() -> None:
    from twin.usage_checks import ldst

    # (size, rn, rm or -1, shift, offset, add, index)
    assert ldst(0x6828, 0) == (4, 5, -1, 0, 0, True, True)  # ldr r0, [r5]
    assert ldst(0x8868, 0) == (2, 5, -1, 0, 2, True, True)  # ldrh r0, [r5, #2]
    assert ldst(0x5860, 0) == (4, 4, 1, 0, 0, True, True)  # ldr r0, [r4, r1]
    assert ldst(0x5C60, 0) is None  # ldrb r0, [r4, r1]
    assert ldst(0x7828, 0) is None  # ldrb r0, [r5]
    assert ldst(0x9801, 0) is None  # ldr r0, [sp, #4]: SP is word-aligned
    assert ldst(0x4801, 0) is None  # ldr r0, [pc, #4]: always aligned
    assert ldst(0xF8D4, 0x2002) == (4, 4, -1, 0, 2, True, True)  # ldr.w r2, [r4, #2]
    assert ldst(0xF854, 0x2C02) == (4, 4, -1, 0, 2, False, True)  # ldr r2, [r4, #-2]
    assert ldst(0xF855, 0x2B04) == (4, 5, -1, 0, 4, True, False)  # ldr r2, [r5], #4
    assert ldst(0xF854, 0x2016) == (4, 4, 6, 1, 0, True, True)  # ldr.w r2, [r4, r6, lsl #1]
    assert ldst(0xF8DF, 0x2002) == (4, 15, -1, 0, 2, True, True)  # ldr.w r2, [pc, #2]
    assert ldst(0xF85F, 0x2002) == (4, 15, -1, 0, 2, False, True)  # ldr.w r2, [pc, #-2]
    assert ldst(0xF9B4, 0x2003) == (2, 4, -1, 0, 3, True, True)  # ldrsh r2, [r4, #3]
    assert ldst(0xF834, 0xF001) is None  # a halfword load to PC: a memory hint (NOP)
    assert ldst(0xF894, 0x2001) is None  # ldrb.w
    assert ldst(0xF854, 0x2000 | 0x80D) is None  # register form with Rm = SP: unpredictable
    assert ldst(0xF844, 0x2A02) is None  # P = 0, W = 0: undefined
    assert ldst(0xE9D5, 0x2300) is None  # ldrd: classify()'s


# ---------------------------------------------------------------- Device memory
BKPSRAM_CLOCK_ON = """
    ldr r0, =0x40023830       @ RCC_AHB1ENR.BKPSRAMEN
    ldr r1, [r0]
    orr r1, r1, #0x40000
    str r1, [r0]
    ldr r5, =0x40024000       @ the backup SRAM: Device memory in the default map
"""


def mpu_region_over_r4(rasr: int) -> str:
    """MPU region 0 over the 4 KiB at 0x20002000 (r4's data) with ``rasr``, the default
    map behind it, enabled."""
    return f"""
    ldr r0, =0xE000ED98       @ MPU_RNR
    movs r1, #0
    str r1, [r0]
    ldr r1, =0x20002000
    str r1, [r0, #4]          @ RBAR
    ldr r1, =0x{rasr:08X}
    str r1, [r0, #8]          @ RASR
    ldr r0, =0xE000ED94
    movs r1, #5               @ MPU_CTRL: ENABLE | PRIVDEFENA
    str r1, [r0]
    dsb
    isb
    mov r5, r4
"""


#: AP full access, SIZE 4 KiB, enabled; + TEX/C/B
MPU_DEVICE = 0x03000017 | 1 << 16  # TEX=000 C=0 B=1: Device
MPU_STRONGLY_ORDERED = 0x03000017  # TEX=000 C=0 B=0
MPU_NORMAL_NONCACHEABLE = 0x03000017 | 1 << 19  # TEX=001 C=0 B=0


@pytest.mark.parametrize(
    ("setup", "faults_expected"),
    [
        (BKPSRAM_CLOCK_ON, True),
        (mpu_region_over_r4(MPU_DEVICE), True),
        (mpu_region_over_r4(MPU_STRONGLY_ORDERED), True),
        (mpu_region_over_r4(MPU_NORMAL_NONCACHEABLE), False),  # Normal: unaligned is fine
    ],
    ids=["backup-sram", "mpu-device", "mpu-strongly-ordered", "mpu-normal"],
)
def test_unaligned_loads_in_device_memory_fault_without_the_trap_bit(run, setup, faults_expected) -> None:
    b = run(
        setup
        + """
    movs r2, #0
    ldr r1, [r5, #4]          @ aligned: always fine
    ldrb r3, [r5, #1]         @ a byte: always fine
fault_at:
    ldr r2, [r5, #2]
    ldr r0, =0x20001020
    str r2, [r0]
    ldr r1, =fault_at
    str r1, [r0, #4]
    """
    )
    count, cfsr, pc = faults(b)
    if faults_expected:
        assert (count, cfsr) == (1, 1 << 24), hex(cfsr)
        assert pc == word(b, 0x20001024) & ~1
    else:
        assert count == 0
        assert word(b, 0x20001020) == 0x77881122


def test_the_backup_sram_is_not_checked_before_its_clock_is_on(run) -> None:
    b = run(
        """
    ldr r5, =0x40024000
    ldr r2, [r5, #2]
    """
    )
    assert faults(b)[0] == 0
