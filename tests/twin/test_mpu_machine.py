"""The MPU enforced by the twin's machine: real Thumb-2 programs take MemManage faults with
the architecture's CFSR/MMFAR values, and what the MPU allows still runs at RAM speed."""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble, boot_until_done
from periph_exc_programs import program

from twin.board import Board
from twin.loader import Chunk

REC = 0x20001000  # handler record: count, CFSR, MMFAR, faulting PC
DONE = 0x20001010  # the body stores 0xD0NE here when it finished

MPU_SETUP = """
    ldr r0, =0xE000ED24
    ldr r1, =0x00010000       @ SHCSR.MEMFAULTENA
    str r1, [r0]
    ldr r0, =0xE000ED94       @ MPU_CTRL; RNR +4, RBAR +8, RASR +12
{regions}
    movs r1, #{ctrl}
    str r1, [r0]
    dsb
    isb
"""
REGION = """
    movs r1, #{n}
    str r1, [r0, #4]
    ldr r1, =0x{base:08X}
    str r1, [r0, #8]
    ldr r1, =0x{rasr:08X}
    str r1, [r0, #12]
"""
FINISH = f"""
    ldr r0, =0x{DONE:08X}
    ldr r1, =0xD0DE
    str r1, [r0]
hang:
    b hang
"""

# MemManage handler: record CFSR, MMFAR and the stacked PC, clear CFSR, then resume
# {resume}: "skip" the 16-bit faulting instruction, or "return" to the stacked LR
MM_HANDLER = """
.thumb_func
mm_h:
    ldr r0, =0xE000ED28
    ldr r1, [r0]
    ldr r2, [r0, #12]
    ldr r3, =0x{rec:08X}
    ldr r12, [r3]
    add r12, r12, #1
    str r12, [r3]
    str r1, [r3, #4]
    str r2, [r3, #8]
    str r1, [r0]
    mrs r0, msp
    ldr r1, [r0, #24]
    str r1, [r3, #12]
{resume}
    bx lr
"""
SKIP = "    adds r1, #2\n    str r1, [r0, #24]"
RETURN = "    ldr r1, [r0, #20]\n    bic r1, r1, #1\n    str r1, [r0, #24]"


def rasr(size_field: int, ap: int, xn: bool = False) -> int:
    return (int(xn) << 28) | (ap << 24) | (size_field << 1) | 1


def mpu(regions: list[tuple[int, int]], ctrl: int = 5) -> str:
    body = "".join(REGION.format(n=i, base=b, rasr=r) for i, (b, r) in enumerate(regions))
    return MPU_SETUP.format(regions=body, ctrl=ctrl)


@pytest.fixture()
def run():
    boards: list[Board] = []

    def _run(body: str, resume: str = SKIP, handlers: dict[int, str] | None = None, extra: str = "") -> Board:
        src = program(
            body + FINISH, {4: "mm_h", **(handlers or {})}, MM_HANDLER.format(rec=REC, resume=resume) + extra
        )
        boards.append(boot_until_done([Chunk(0x08000000, assemble(src), "test")], DONE))
        return boards[-1]

    yield _run
    for b in boards:
        b.close()


def word(b: Board, address: int) -> int:
    with b.machine.host() as m:
        return int.from_bytes(m.bus_read(address, 4), "little")


def record(b: Board) -> tuple[int, int, int, int]:
    return tuple(word(b, REC + 4 * i) for i in range(4))  # type: ignore[return-value]


def test_no_access_region_of_32_bytes_faults_exactly(run) -> None:
    body = (
        mpu([(0x20008020, rasr(4, 0))])
        + """
    ldr r2, =0x20008000
    ldr r1, [r2]              @ same 1 KiB page, outside the region: allowed
    ldr r2, =0x20008020
    ldr r1, [r2]              @ DACCVIOL
    ldr r1, =0x5A5A5A5A
    str r1, [r2]              @ DACCVIOL, not stored
    ldr r2, =0x20008040
    str r1, [r2]              @ allowed: stored
    """
    )
    b = run(body)
    count, cfsr, mmfar, _ = record(b)
    assert count == 2
    assert cfsr == 0x82  # DACCVIOL | MMARVALID
    assert mmfar == 0x20008020
    assert word(b, 0x20008020) == 0 and word(b, 0x20008040) == 0x5A5A5A5A


def test_read_only_region_refuses_stores_only(run) -> None:
    body = (
        """
    ldr r2, =0x20009000
    ldr r1, =0x11223344
    str r1, [r2]              @ before the MPU: stored
    """
        + mpu([(0x20009000, rasr(9, 6))])
        + """
    ldr r2, =0x20009000
    ldr r3, [r2]              @ allowed
    ldr r1, =0x55667788
    str r1, [r2]              @ DACCVIOL
    ldr r2, =0x20001020
    str r3, [r2]
    """
    )
    b = run(body)
    assert record(b)[:3] == (1, 0x82, 0x20009000)
    assert word(b, 0x20009000) == 0x11223344 and word(b, 0x20001020) == 0x11223344


def test_execute_never_region_faults_on_the_fetch(run) -> None:
    body = (
        """
    ldr r2, =0x2000A000
    ldr r1, =0x47704770       @ bx lr; bx lr
    str r1, [r2]
    dsb
    isb
    ldr r0, =0x2000A001
    blx r0                    @ no MPU yet: runs and returns
    ldr r2, =0x20001020
    movs r1, #1
    str r1, [r2]
    """
        + mpu([(0x20000000, rasr(19, 3, xn=True))])
        + """
    ldr r0, =0x2000A001
    blx r0                    @ IACCVIOL; the handler returns to the stacked LR
    ldr r2, =0x20001024
    movs r1, #2
    str r1, [r2]
    """
    )
    b = run(body, resume=RETURN)
    count, cfsr, _, pc = record(b)
    assert count == 1 and cfsr == 0x01  # IACCVIOL, MMFAR not valid
    assert pc == 0x2000A000  # the fetch that was refused
    assert word(b, 0x20001020) == 1 and word(b, 0x20001024) == 2


def test_without_privdefena_an_uncovered_address_faults(run) -> None:
    # code (flash) and stack (RAM) covered; the test area is not
    regions = [(0x08000000, rasr(20, 6)), (0x20000000, rasr(15, 3))]
    body = (
        mpu(regions, ctrl=1)
        + """
    ldr r2, =0x20014000
    ldr r1, [r2]              @ DACCVIOL: no region, no default map
    """
    )
    b = run(body)
    assert record(b)[:3] == (1, 0x82, 0x20014000)


def test_unprivileged_thread_is_refused_a_privileged_only_region(run) -> None:
    regions = [(0x08000000, rasr(20, 6)), (0x20000000, rasr(16, 3)), (0x20008000, rasr(9, 1))]
    body = (
        mpu(regions)
        + """
    ldr r2, =0x20008000
    ldr r1, =0x0000AAAA
    str r1, [r2]              @ privileged: allowed
    movs r1, #1
    msr control, r1           @ nPRIV
    isb
    svc #0                    @ an exception return: the new level applies from here
    ldr r2, =0x20008000
    ldr r1, [r2]              @ unprivileged: DACCVIOL
    """
    )
    b = run(body, handlers={11: "svc_h"}, extra=".thumb_func\nsvc_h:\n    bx lr\n")
    assert record(b)[:3] == (1, 0x82, 0x20008000)
    assert word(b, 0x20008000) == 0xAAAA


def test_stacking_into_a_region_the_thread_may_not_write_is_mstkerr(run) -> None:
    """An unprivileged thread whose PSP points into a privileged-only region: the exception
    entry's stacking is refused (MSTKERR, no MMFAR), nothing is written there, and the
    return from the handler cannot unstack either (MUNSTKERR)."""
    regions = [(0x08000000, rasr(20, 6)), (0x20000000, rasr(16, 3)), (0x20008000, rasr(9, 1))]
    body = (
        mpu(regions)
        + """
    ldr r0, =0x20008200
    msr psp, r0
    movs r1, #3               @ SPSEL = PSP, nPRIV
    msr control, r1
    isb
    svc #0
    b .
    """
    )
    rec_handler = f"""
.thumb_func
mm_rec:
    ldr r0, =0xE000ED28
    ldr r1, [r0]
    ldr r3, =0x{REC:08X}
    str r1, [r3, #4]
    ldr r0, =0x{DONE:08X}
    ldr r1, =0xD0DE
    str r1, [r0]
    b .
.thumb_func
svc_h:
    ldr r3, =0x{REC:08X}
    ldr r1, =0x5C
    str r1, [r3]
    bx lr
"""
    b = run(body, handlers={4: "mm_rec", 11: "svc_h"}, extra=rec_handler)
    cfsr = word(b, REC + 4)
    assert cfsr & 0x10 and cfsr & 0x08, hex(cfsr)  # MSTKERR, then MUNSTKERR
    assert not cfsr & 0x80  # MMFAR not valid for stacking errors
    assert word(b, REC) == 0x5C  # the SVC handler ran (derived fault after)
    with b.machine.host() as m:
        assert m.bus_read(0x200081E0, 0x20) == bytes(0x20)  # no frame was written


DROP_PRIVILEGE = """
    movs r1, #1
    msr control, r1           @ nPRIV
    isb
    svc #0                    @ an exception return: the new level applies from here
"""
SVC_RET = ".thumb_func\nsvc_h:\n    bx lr\n"


def test_mpu_applies_to_peripheral_space_for_unprivileged_code(run) -> None:
    regions = [(0x08000000, rasr(20, 6)), (0x20000000, rasr(16, 3))]  # no peripheral region
    body = (
        mpu(regions)
        + """
    ldr r2, =0x4000481C       @ USART3_ISR, privileged: allowed (PRIVDEFENA)
    ldr r1, [r2]
"""
        + DROP_PRIVILEGE
        + """
    ldr r2, =0x4000481C
    ldr r1, [r2]              @ unprivileged, no region: DACCVIOL on the device address
    """
    )
    b = run(body, handlers={11: "svc_h"}, extra=SVC_RET)
    assert record(b)[:3] == (1, 0x82, 0x4000481C)


def test_a_region_cutting_a_peripheral_page_is_checked_after_an_allowed_access(run) -> None:
    # privileged code, PRIVDEFENA; region 2: 32 bytes of no access over USART3_CR1..; the
    # page's other registers stay allowed, which must not leave the whole page unchecked
    regions = [(0x08000000, rasr(20, 6)), (0x20000000, rasr(16, 3)), (0x40004800, rasr(4, 0))]
    body = (
        mpu(regions)
        + """
    ldr r2, =0x40004828       @ USART3_TDR's neighbour, outside the region: allowed
    ldr r1, [r2]
    ldr r1, [r2]
    ldr r2, =0x40004800       @ USART3_CR1, inside it: DACCVIOL
    ldr r1, [r2]
    """
    )
    b = run(body)
    assert record(b)[:3] == (1, 0x82, 0x40004800)


# a MemManage handler that records the stacked xPSR (REC+4), r5 (REC+8) and the stacked PC
# (REC+12), then ends the program
FRAME_HANDLER = f"""
.thumb_func
mm_frame:
    mrs r0, msp
    ldr r1, [r0, #28]
    ldr r3, =0x{REC:08X}
    str r1, [r3, #4]
    str r5, [r3, #8]
    ldr r1, [r0, #24]
    str r1, [r3, #12]
    ldr r0, =0x{DONE:08X}
    ldr r1, =0xD0DE
    str r1, [r0]
    b .
"""
DCACHE_ON = """
    ldr r0, =0xE000ED14       @ CCR.DC
    ldr r1, [r0]
    orr r1, r1, #0x10000
    str r1, [r0]
    dsb
    isb
"""


@pytest.mark.parametrize("dcache", [False, True], ids=["dcache-off", "dcache-on"])
def test_refused_read_in_an_it_block_faults_before_it_retires(run, dcache) -> None:
    """A 32-byte no-access region cuts a page: the refused load does not retire, nothing
    after it runs, and the frame holds its PC and the IT state (an exception return
    resumes the block where it stopped). The twin once let the load and the rest of its
    translation block run, and stacked the PC after them with the IT state gone."""
    body = (
        (DCACHE_ON if dcache else "")
        + mpu([(0x20008020, rasr(4, 0))])
        + """
    ldr r0, =0x20008020
    movs r5, #0
    movs r3, #2
    cmp r3, #1
    itt ne
fault_here:
    ldrne r3, [r0]            @ DACCVIOL
    addne r3, r3, #1
    movs r5, #9
    b .
    """
    )
    b = run(body, handlers={4: "mm_frame"}, extra=FRAME_HANDLER)
    xpsr, r5, pc = (word(b, REC + 4 * i) for i in (1, 2, 3))
    with b.machine.host() as m:
        assert m.bus_read(pc - 2, 4) == bytes.fromhex("1cbf0368")  # itt ne; ldrne r3, [r0]
    assert r5 == 0
    assert xpsr & 0x0600FC00 == 0x00001C00, hex(xpsr)  # ITSTATE of the block's first instruction


def test_code_after_an_it_block_whose_load_the_mpu_allowed_runs_outside_it(run) -> None:
    """The MPU checks reads on a page a region cuts with a hook; unicorn 2.1.4 leaves an IT
    block's state behind after a hooked access (twin/itstate.py), and the code after this
    block then ran as if inside it (its conditional branch: UNDEFINSTR, lockup here)."""
    body = (
        mpu([(0x20008020, rasr(4, 0))])
        + """
    ldr r0, =0x20008000       @ the page the region cuts, outside the region: allowed
    ldr r4, =0x20000700       @ DTCM
    movs r6, #0
    movs r3, #2
    movs r1, #1
    cmp r3, #1
    ittt ne
    ldrne r3, [r0]
    orrne r3, r3, #16
    strne r3, [r4]
    b.w 1f
    nop
1:
    cmp r1, #0
    beq 2f
    movs r6, #7
2:
    ldr r0, =0x20001020
    str r6, [r0]
    """
    )
    b = run(body)
    assert word(b, 0x20001020) == 7
    assert record(b)[0] == 0


def test_execute_never_region_of_32_bytes_faults_at_the_instruction(run) -> None:
    """Code runs up to a 32-byte XN region in the same page and faults on its first
    instruction there, not at the start of the block unicorn translated ahead."""
    body = (
        """
    ldr r2, =0x2000A01C
    ldr r1, =0x25062505       @ movs r5, #5; movs r5, #6
    str r1, [r2]
    ldr r1, =0x47704770       @ bx lr; bx lr
    str r1, [r2, #4]
    dsb
    isb
    movs r5, #0
"""
        + mpu([(0x2000A020, rasr(4, 3, xn=True))])
        + """
    ldr r0, =0x2000A01D
    blx r0                    @ two instructions run, then IACCVIOL at 0x2000A020
    ldr r2, =0x20001024
    str r5, [r2]
    """
    )
    b = run(body, resume=RETURN)
    count, cfsr, _, pc = record(b)
    assert (count, cfsr, pc) == (1, 0x01, 0x2000A020)
    assert word(b, 0x20001024) == 6
