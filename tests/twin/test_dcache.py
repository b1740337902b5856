"""The Cortex-M7 D-cache as other bus masters see it (twin/dcache.py, docs/twin-cache.md):
real Thumb programs with the D-cache on read stale data in exactly the 32-byte lines they
held when DMA2 or the flash controller changed memory, fresh data after invalidation, and
DTCM is never cached."""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble, boot_until_done
from periph_exc_programs import program

from twin.board import Board
from twin.loader import Chunk

OUT = 0x20001100  # the program copies what it read here (DTCM: never cached)
DONE = 0x20001010
SRC = 0x20002000  # DMA source, DTCM
FLASH_DATA = 0x08040000  # sector 5

ENABLE = """
    ldr r0, =0x40023830       @ RCC_AHB1ENR |= DMA2EN
    ldr r1, [r0]
    orr r1, r1, #0x00400000
    str r1, [r0]
    ldr r0, =0xE000EF60       @ DCISW (SCB_EnableDCache invalidates by set/way first)
    movs r1, #0
    str r1, [r0]
    dsb
    ldr r0, =0xE000ED14       @ CCR |= DC
    ldr r1, [r0]
    orr r1, r1, #0x10000
    str r1, [r0]
    dsb
    isb
"""
FINISH = f"""
    ldr r0, =0x{DONE:08X}
    ldr r1, =0xD0DE
    str r1, [r0]
hang:
    b hang
"""


SET_WAY_INVALIDATE = """
    ldr r0, =0xE000EF60       @ DCISW for 128 sets x 4 ways (as SCB_InvalidateDCache)
    movs r2, #0               @ set
sets:
    movs r3, #0               @ way
ways:
    lsls r1, r3, #30
    orr r1, r1, r2, lsl #5
    str r1, [r0]
    adds r3, r3, #1
    cmp r3, #4
    bne ways
    adds r2, r2, #1
    cmp r2, #128
    bne sets
    dsb
    isb
"""


def dma_program(dst: int, invalidate: bool | str, prefix: str = "") -> str:
    inval = ""
    if invalidate == "setway":
        inval = SET_WAY_INVALIDATE
    elif invalidate:  # SCB_InvalidateDCache_by_Addr(dst, 128): DCIMVAC per 32-byte line
        inval = f"""
    ldr r0, =0xE000EF5C
    ldr r1, =0x{dst:08X}
    movs r2, #4
inv_loop:
    str r1, [r0]
    adds r1, r1, #32
    subs r2, r2, #1
    bne inv_loop
    dsb
    isb
"""
    return (
        prefix
        + f"""
    ldr r0, =0x{SRC:08X}      @ source: 128 bytes 0x11111111
    ldr r1, =0x11111111
    movs r2, #32
fill:
    str r1, [r0], #4
    subs r2, r2, #1
    bne fill
    ldr r0, =0x{dst:08X}      @ destination zeroed before the cache is on
    movs r1, #0
    movs r2, #32
zero:
    str r1, [r0], #4
    subs r2, r2, #1
    bne zero
"""
        + ENABLE
        + f"""
    ldr r0, =0x{dst:08X}
    ldr r1, [r0]              @ the CPU holds line 0 ...
    ldr r1, [r0, #68]         @ ... and line 2
    ldr r0, =0x40026410       @ DMA2_S0CR
    ldr r1, =0x{SRC:08X}
    str r1, [r0, #8]          @ S0PAR
    ldr r1, =0x{dst:08X}
    str r1, [r0, #12]         @ S0M0AR
    movs r1, #32
    str r1, [r0, #4]          @ S0NDTR: 32 words
    movs r1, #7
    str r1, [r0, #20]         @ S0FCR: DMDIS, FTH full
    ldr r1, =0x00005681       @ M2M, PINC, MINC, PSIZE=MSIZE=word, EN
    str r1, [r0]
    ldr r0, =0x40026400
wait:
    ldr r1, [r0]              @ LISR.TCIF0
    tst r1, #0x20
    beq wait
"""
        + inval
        + f"""
    ldr r0, =0x{dst:08X}
    ldr r3, =0x{OUT:08X}
    movs r2, #32
copy:
    ldr r1, [r0], #4
    str r1, [r3], #4
    subs r2, r2, #1
    bne copy
"""
        + FINISH
    )


FLASH_PROGRAM = (
    ENABLE
    + f"""
    ldr r4, =0x{FLASH_DATA:08X}
    ldr r1, [r4]              @ the CPU holds the first line of the sector
    ldr r0, =0x40023C04       @ FLASH_KEYR
    ldr r1, =0x45670123
    str r1, [r0]
    ldr r1, =0xCDEF89AB
    str r1, [r0]
    ldr r0, =0x40023C10       @ FLASH_CR
    ldr r1, =0x0001022A       @ STRT, PSIZE x32, SNB 5, SER
    str r1, [r0]
    ldr r2, =0x40023C0C       @ FLASH_SR
busy1:
    ldr r1, [r2]
    tst r1, #0x10000
    bne busy1
    ldr r1, =0x00000201       @ PSIZE x32, PG
    str r1, [r0]
    ldr r1, =0x12345678
    str r1, [r4]              @ program word 0 (line held: write-through, the line takes it)
    str r1, [r4, #32]         @ program word 8 (line not held)
busy2:
    ldr r1, [r2]
    tst r1, #0x10000
    bne busy2
    ldr r3, =0x{OUT:08X}
    ldr r1, [r4]              @ verify without invalidation: what was stored
    str r1, [r3]
    ldr r1, [r4, #4]          @ the rest of the line: stale (erased since)
    str r1, [r3, #4]
    ldr r1, [r4, #32]         @ not held: fresh
    str r1, [r3, #8]
    ldr r0, =0xE000EF5C       @ DCIMVAC on the held line
    str r4, [r0]
    dsb
    ldr r1, [r4]              @ fresh
    str r1, [r3, #12]
"""
    + FINISH
)


@pytest.fixture(params=["C", "Python"])
def run(request, monkeypatch):
    """Run a program on a fresh board until it stores DONE; every test runs with the model's
    C hooks (the default) and with its Python hooks (where no C compiler works)."""
    boards: list[Board] = []
    if request.param == "Python":
        monkeypatch.setenv("OTA_TWIN_DCACHE", "python")
    else:
        monkeypatch.delenv("OTA_TWIN_DCACHE", raising=False)

    def _run(body: str, extra_chunks: tuple[Chunk, ...] = ()) -> Board:
        b = boot_until_done([Chunk(0x08000000, assemble(program(body)), "test"), *extra_chunks], DONE)
        boards.append(b)
        assert b.machine.bus.dcache.snapshot()["hooks"] == request.param
        return b

    yield _run
    for b in boards:
        b.close()


def word(b: Board, address: int) -> int:
    with b.machine.host() as m:
        return int.from_bytes(m.bus_read(address, 4), "little")


def out_words(b: Board, n: int) -> list[int]:
    return [word(b, OUT + 4 * i) for i in range(n)]


FRESH, STALE = 0x11111111, 0


def test_dma_into_sram1_without_invalidation_reads_stale_in_held_lines_only(run) -> None:
    b = run(dma_program(0x20030000, invalidate=False))
    got = out_words(b, 32)
    assert got == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8
    assert word(b, 0x20030000) == FRESH  # memory (what the debugger sees) has the DMA data


def test_dma_into_sram1_with_invalidate_by_addr_reads_fresh(run) -> None:
    b = run(dma_program(0x20030000, invalidate=True))
    assert out_words(b, 32) == [FRESH] * 32


def test_dma_into_sram1_with_set_way_invalidate_reads_fresh(run) -> None:
    b = run(dma_program(0x20030000, invalidate="setway"))
    assert out_words(b, 32) == [FRESH] * 32


def cacr_write(value: int) -> str:
    if not value:
        return ""
    return f"""
    ldr r0, =0xE000EF9C       @ CM7_CACR
    movs r1, #{value}
    str r1, [r0]
    dsb
"""


def mpu_region(base: int, rasr: int) -> str:
    return f"""
    ldr r0, =0xE000ED94       @ MPU_CTRL; RNR +4, RBAR +8, RASR +12
    movs r1, #0
    str r1, [r0, #4]
    ldr r1, =0x{base:08X}
    str r1, [r0, #8]
    ldr r1, =0x{rasr:08X}
    str r1, [r0, #12]
    movs r1, #5               @ ENABLE | PRIVDEFENA
    str r1, [r0]
    dsb
    isb
"""


def test_mpu_non_cacheable_region_makes_dma_buffer_coherent(run) -> None:
    # region 0: 1 KiB at 0x20030000, AP full access, TEX=001 C=0 B=0: normal, non-cacheable
    prefix = mpu_region(0x20030000, (3 << 24) | (1 << 19) | (9 << 1) | 1)
    b = run(dma_program(0x20030000, invalidate=False, prefix=prefix))
    assert out_words(b, 32) == [FRESH] * 32


def test_mpu_write_back_region_stays_cacheable(run) -> None:
    # TEX=001 C=1 B=1: write-back write-allocate, cacheable (not shareable)
    prefix = mpu_region(0x20030000, (3 << 24) | (1 << 19) | (1 << 17) | (1 << 16) | (9 << 1) | 1)
    b = run(dma_program(0x20030000, invalidate=False, prefix=prefix))
    assert out_words(b, 32) == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8


#: CubeMX's MPU_Config for the Cortex-M7 (a 4 GB background region 0: no access, XN,
#: shareable strongly-ordered, sub-regions 0, 1, 2 and 7 disabled: code, SRAM, peripherals
#: and the system region keep the default map)
CUBEMX_BACKGROUND = (1 << 28) | (1 << 18) | (0x87 << 8) | (31 << 1) | 1


def test_cubemx_background_region_leaves_sram_cacheable(run) -> None:
    # its disabled sub-region 1 (0x20000000-0x3FFFFFFF) is the default map: SRAM1 cached,
    # a DMA buffer read without invalidation is stale where the CPU held lines, as on the chip
    b = run(dma_program(0x20030000, invalidate=False, prefix=mpu_region(0, CUBEMX_BACKGROUND)))
    assert out_words(b, 32) == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8


def test_a_disabled_sub_region_of_a_non_cacheable_region_is_cached(run) -> None:
    # 128 KiB at 0x20020000, TEX=001 C=B=0 (non-cacheable) but its sub-region 4
    # (0x20030000-0x20033FFF, the DMA buffer) disabled: the default map, cacheable
    rasr = (3 << 24) | (1 << 19) | (1 << (8 + 4)) | (16 << 1) | 1
    b = run(dma_program(0x20030000, invalidate=False, prefix=mpu_region(0x20020000, rasr)))
    assert out_words(b, 32) == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8
    # the same region with the sub-region enabled covers the buffer: non-cacheable, coherent
    rasr &= ~(0xFF << 8)
    b = run(dma_program(0x20030000, invalidate=False, prefix=mpu_region(0x20020000, rasr)))
    assert out_words(b, 32) == [FRESH] * 32


def test_dma_into_dtcm_is_coherent(run) -> None:
    b = run(dma_program(0x20004000, invalidate=False))
    assert out_words(b, 32) == [FRESH] * 32


def test_flash_program_with_dcache_on_verifies_stale_bytes(run) -> None:
    old = bytes(range(64))
    b = run(FLASH_PROGRAM, (Chunk(FLASH_DATA, old, "data"),))
    stored0, stale1, fresh8, after_inval = out_words(b, 4)
    assert stored0 == 0x12345678  # flash is write-through: a store hit updates the line
    assert stale1 == int.from_bytes(old[4:8], "little")
    assert fresh8 == 0x12345678
    assert after_inval == 0x12345678
    assert word(b, FLASH_DATA) == 0x12345678 and word(b, FLASH_DATA + 4) == 0xFFFFFFFF


@pytest.mark.parametrize("op", ["DCCIMVAC", "DCCISW"])
def test_clean_after_programming_a_held_flash_line_keeps_flash(run, op: str) -> None:
    # a flash line is never dirty: SCB_CleanInvalidateDCache before the jump (by address or
    # by set/way) must not write the CPU's stale copy of an erased line back into flash
    value = 0xE000EF70 if op == "DCCIMVAC" else 0xE000EF74
    store = "str r4, [r0]" if op == "DCCIMVAC" else "movs r1, #0\n    str r1, [r0]"  # set 0, way 0
    old = bytes(range(64))
    prog = FLASH_PROGRAM.replace(
        "ldr r0, =0xE000EF5C       @ DCIMVAC on the held line\n    str r4, [r0]",
        f"ldr r0, =0x{value:08X}\n    {store}",
    )
    assert prog != FLASH_PROGRAM
    b = run(prog, (Chunk(FLASH_DATA, old, "data"),))
    assert out_words(b, 4)[3] == 0x12345678
    assert [word(b, FLASH_DATA + 4 * i) for i in range(3)] == [0x12345678, 0xFFFFFFFF, 0xFFFFFFFF]


def clean_program(clean: bool, prefix: str = "") -> str:
    """CPU (D-cache on) reads then writes 64 bytes of SRAM1; DMA copies them to DTCM."""
    src, dst = 0x20040000, OUT
    cln = ""
    if clean:  # SCB_CleanDCache_by_Addr(src, 64): DCCMVAC per line
        cln = f"""
    ldr r0, =0xE000EF68
    ldr r1, =0x{src:08X}
    str r1, [r0]
    adds r1, r1, #32
    str r1, [r0]
    dsb
"""
    return (
        prefix
        + ENABLE
        + f"""
    ldr r0, =0x{src:08X}
    ldr r1, [r0]              @ hold line 0 (read-allocate) ...
    ldr r1, =0x22222222
    movs r2, #16
wr:
    str r1, [r0], #4          @ ... then write 2 lines: line 1 is a write miss
    subs r2, r2, #1
    bne wr
"""
        + cln
        + f"""
    ldr r0, =0x40026410
    ldr r1, =0x{src:08X}
    str r1, [r0, #8]
    ldr r1, =0x{dst:08X}
    str r1, [r0, #12]
    movs r1, #16
    str r1, [r0, #4]
    movs r1, #7
    str r1, [r0, #20]
    ldr r1, =0x00005681
    str r1, [r0]
    ldr r0, =0x40026400
wait2:
    ldr r1, [r0]
    tst r1, #0x20
    beq wait2
"""
        + FINISH
    )


NEW = 0x22222222
RASR_1K_FULL_ACCESS = (3 << 24) | (9 << 1) | 1
TEX1, SHAREABLE, C, B = 1 << 19, 1 << 18, 1 << 17, 1 << 16


def test_cpu_writes_not_cleaned_are_not_seen_by_dma(run) -> None:
    # SRAM in the default map is write-back write-allocate: the write miss on line 1
    # allocates it too, so neither line reaches memory before a clean
    b = run(clean_program(clean=False))
    assert out_words(b, 16) == [0] * 16
    assert word(b, 0x20040000) == 0 and word(b, 0x20040020) == 0  # the debugger sees memory


def test_write_back_without_write_allocate_sends_a_write_miss_to_memory(run) -> None:
    # TEX=000 C=1 B=1: write-back, no write-allocate: only the held line stays in the cache
    prefix = mpu_region(0x20040000, RASR_1K_FULL_ACCESS | C | B)
    b = run(clean_program(clean=False, prefix=prefix))
    assert out_words(b, 16) == [0] * 8 + [NEW] * 8


@pytest.mark.parametrize(
    ("rasr", "cacr"),
    [
        (RASR_1K_FULL_ACCESS | C, 0),  # TEX=000 C=1 B=0: write-through
        (RASR_1K_FULL_ACCESS | (4 << 19) | (2 << 16), 0),  # TEX=1AA, inner AA=10: write-through
        (RASR_1K_FULL_ACCESS | TEX1 | C | B, 4),  # WBWA made write-through by CACR.FORCEWT
    ],
    ids=["wt", "tex1-inner-wt", "forcewt"],
)
def test_write_through_memory_gets_cpu_writes_without_a_clean(run, rasr: int, cacr: int) -> None:
    prefix = mpu_region(0x20040000, rasr) + cacr_write(cacr)
    b = run(clean_program(clean=False, prefix=prefix))
    assert out_words(b, 16) == [NEW] * 16


def test_write_through_region_still_serves_reads_from_held_lines(run) -> None:
    # write-through changes what stores do, not reads: a DMA write to a held line stays unseen
    prefix = mpu_region(0x20030000, RASR_1K_FULL_ACCESS | C)
    b = run(dma_program(0x20030000, invalidate=False, prefix=prefix))
    assert out_words(b, 32) == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8


def test_shareable_region_is_not_cached_without_siwt(run) -> None:
    prefix = mpu_region(0x20030000, RASR_1K_FULL_ACCESS | TEX1 | C | B | SHAREABLE)
    b = run(dma_program(0x20030000, invalidate=False, prefix=prefix))
    assert out_words(b, 32) == [FRESH] * 32


def test_shareable_region_with_siwt_is_cached_write_through(run) -> None:
    # CACR.SIWT: shareable cacheable memory is cached, write-through: reads go stale ...
    prefix = mpu_region(0x20030000, RASR_1K_FULL_ACCESS | TEX1 | C | B | SHAREABLE) + cacr_write(1)
    b = run(dma_program(0x20030000, invalidate=False, prefix=prefix))
    assert out_words(b, 32) == [STALE] * 8 + [FRESH] * 8 + [STALE] * 8 + [FRESH] * 8
    # ... while CPU writes reach memory without a clean
    prefix = mpu_region(0x20040000, RASR_1K_FULL_ACCESS | TEX1 | C | B | SHAREABLE) + cacr_write(1)
    b = run(clean_program(clean=False, prefix=prefix))
    assert out_words(b, 16) == [NEW] * 16


def test_write_through_store_into_a_stale_line_reaches_memory(run) -> None:
    # the CPU holds line 0, DMA writes it (stale for the CPU), the CPU stores one word:
    # memory gets that word beside the DMA's; the CPU sees its word beside its old data
    prefix = mpu_region(0x20030000, RASR_1K_FULL_ACCESS | C)
    body = dma_program(0x20030000, invalidate=False, prefix=prefix).replace(
        "    ldr r0, =0x20030000\n    ldr r3,",
        "    ldr r0, =0x20030000\n    ldr r1, =0x22222222\n    str r1, [r0, #4]\n    ldr r3,",
    )
    assert body.count("0x22222222") == 1
    b = run(body)
    assert out_words(b, 8) == [STALE, NEW] + [STALE] * 6
    assert [word(b, 0x20030000 + 4 * i) for i in range(3)] == [FRESH, NEW, FRESH]


def test_cpu_writes_cleaned_by_addr_are_seen_by_dma(run) -> None:
    b = run(clean_program(clean=True))
    assert out_words(b, 16) == [0x22222222] * 16


# ------------------------------------------------------------------ the ETH MAC's DMA
DESC, FRAME = 0x20030000, 0x20030100  # a TX descriptor and its frame in cacheable SRAM1
TDES0_SENT = (1 << 31) | (1 << 30) | (1 << 29) | (1 << 28) | (1 << 21)  # OWN IC LS FS TER
TS, TBUS = 1 << 0, 1 << 2


def eth_tx_program(clean: bool) -> str:
    """With the D-cache on, the CPU writes a TX descriptor and a 64-byte frame in SRAM1 (as
    a driver does, no read first) and starts the ETH MAC's transmit DMA; then it reads
    DMASR and TDES0, and TDES0 again after invalidating its line."""
    cln = ""
    if clean:  # SCB_CleanDCache_by_Addr on the descriptor and the frame
        cln = f"""
    ldr r0, =0xE000EF68
    str r4, [r0]
    ldr r1, =0x{FRAME:08X}
    str r1, [r0]
    adds r1, r1, #32
    str r1, [r0]
    dsb
"""
    return (
        ENABLE
        + f"""
    ldr r0, =0x40023830       @ RCC_AHB1ENR: GPIOA, ETHMAC, ETHMACTX, ETHMACRX
    ldr r1, [r0]
    ldr r2, =0x0E000001
    orr r1, r1, r2
    str r1, [r0]
    ldr r0, =0x40023844       @ RCC_APB2ENR: SYSCFG
    ldr r1, [r0]
    orr r1, r1, #0x4000
    str r1, [r0]
    ldr r0, =0x40013804       @ SYSCFG_PMC: RMII
    ldr r1, [r0]
    orr r1, r1, #0x800000
    str r1, [r0]
    ldr r0, =0x40020000       @ PA1 (REF_CLK) in AF11
    ldr r1, [r0]
    bic r1, r1, #0xC
    orr r1, r1, #0x8
    str r1, [r0]
    ldr r0, =0x40020020
    ldr r1, [r0]
    bic r1, r1, #0xF0
    orr r1, r1, #0xB0
    str r1, [r0]
    ldr r0, =0x40029000       @ DMABMR.SR, wait for it to clear
    ldr r1, [r0]
    orr r1, r1, #1
    str r1, [r0]
srwait:
    ldr r1, [r0]
    tst r1, #1
    bne srwait
    ldr r5, =0x{FRAME:08X}    @ the frame: 64 bytes of 0x33
    ldr r1, =0x33333333
    movs r2, #16
frame:
    str r1, [r5], #4
    subs r2, r2, #1
    bne frame
    ldr r4, =0x{DESC:08X}     @ TDES1..3, then TDES0 with OWN
    movs r1, #64
    str r1, [r4, #4]
    ldr r1, =0x{FRAME:08X}
    str r1, [r4, #8]
    movs r1, #0
    str r1, [r4, #12]
    ldr r1, =0x{TDES0_SENT:08X}
    str r1, [r4]
    dsb
"""
        + cln
        + f"""
    ldr r0, =0x40029010       @ DMATDLAR
    str r4, [r0]
    ldr r0, =0x40028000       @ MACCR.TE
    ldr r1, [r0]
    orr r1, r1, #8
    str r1, [r0]
    ldr r0, =0x40029018       @ DMAOMR: TSF, ST
    ldr r1, =0x00202000
    str r1, [r0]
    ldr r0, =0x40029004       @ DMATPDR: poll demand
    movs r1, #0
    str r1, [r0]
    ldr r3, =0x{OUT:08X}
    ldr r0, =0x40029014       @ DMASR
    ldr r1, [r0]
    str r1, [r3]
    ldr r1, [r4]              @ TDES0 as the CPU sees it
    str r1, [r3, #4]
    ldr r0, =0xE000EF5C       @ DCIMVAC on the descriptor's line
    str r4, [r0]
    dsb
    ldr r1, [r4]
    str r1, [r3, #8]
"""
        + FINISH
    )


def test_eth_tx_descriptor_not_cleaned_is_not_seen_by_the_mac(run) -> None:
    # the classic F7 Ethernet hang with the D-cache on: the descriptor and the frame sit in
    # dirty lines, the DMA reads memory (OWN = 0) and suspends without sending anything
    b = run(eth_tx_program(clean=False))
    dmasr, tdes0_cpu, _ = out_words(b, 3)
    assert dmasr & TBUS and not dmasr & TS and (dmasr >> 20) & 7 == 6  # suspended
    assert tdes0_cpu == TDES0_SENT  # the CPU's own copy
    assert word(b, DESC) == 0  # memory, as the MAC and the debugger see it


def test_eth_tx_descriptor_cleaned_is_sent_and_its_write_back_needs_an_invalidate(run) -> None:
    b = run(eth_tx_program(clean=True))
    dmasr, tdes0_cpu, tdes0_fresh = out_words(b, 3)
    assert dmasr & TS  # the frame went out (IC)
    assert tdes0_cpu == TDES0_SENT  # the MAC's write-back (OWN cleared) unseen: a driver waits
    assert not tdes0_fresh & (1 << 31) and tdes0_fresh & (1 << 28)  # after DCIMVAC: OWN = 0
    assert word(b, DESC) == tdes0_fresh
