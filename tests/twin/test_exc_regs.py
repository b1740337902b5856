"""SCS register blocks of the exception model: reset values, IDs, masks, side effects."""

from __future__ import annotations

import periph_exc_harness
import pytest
from periph_exc_harness import Board, assemble
from periph_exc_programs import program


@pytest.fixture(autouse=True, params=["python", "c"], ids=["entry-python", "entry-c"])
def _entry_path(request, monkeypatch):
    """Every test twice: exception entry and return by the model's Python, then by the
    machine's C (twin/exc_fast.c), which must give the same result."""
    monkeypatch.setattr(periph_exc_harness, "C_ENTRY", request.param == "c")


SCB = 0xE000ED00


def _board() -> Board:
    return Board(assemble(program("nop")))


def rd(b: Board, addr: int, size: int = 4) -> int:
    dev = b.cpu._dev(addr)
    assert dev is not None, hex(addr)
    return dev.read(addr - dev.base, size)


def wr(b: Board, addr: int, value: int, size: int = 4) -> None:
    dev = b.cpu._dev(addr)
    assert dev is not None, hex(addr)
    dev.write(addr - dev.base, size, value)


def test_identification_registers() -> None:
    b = _board()
    assert rd(b, SCB) == 0x411FC270
    assert rd(b, 0xE000ED78) == 0x09000003  # CLIDR
    assert rd(b, 0xE000ED6C) == 0x01111131  # ID_ISAR3
    assert rd(b, 0xE000ED90) == 0x00000800  # MPU_TYPE: 8 regions
    assert rd(b, 0xE000EF40) == 0x10110221  # MVFR0
    assert rd(b, 0xE000E004) == 3  # ICTR: 110 IRQs
    wr(b, SCB, 0)
    assert rd(b, SCB) == 0x411FC270  # read-only


def test_ccsidr_follows_csselr() -> None:
    b = _board()
    wr(b, 0xE000ED84, 0)
    d = rd(b, 0xE000ED80)
    assert ((d >> 13) & 0x7FFF) + 1 == 128 and ((d >> 3) & 0x3FF) + 1 == 4
    wr(b, 0xE000ED84, 1)
    i = rd(b, 0xE000ED80)
    assert ((i >> 13) & 0x7FFF) + 1 == 256 and ((i >> 3) & 0x3FF) + 1 == 2
    assert rd(b, 0xE000ED84) == 1


def test_reset_values_and_vtor_alignment() -> None:
    b = _board()
    assert rd(b, SCB + 0x08) == 0x08000000  # VTOR = boot address
    assert rd(b, SCB + 0x0C) == 0xFA050000  # AIRCR
    assert rd(b, SCB + 0x14) == 0x00040200  # CCR: BP, STKALIGN
    assert rd(b, 0xE000EF34) == 0xC0000000  # FPCCR: ASPEN | LSPEN
    wr(b, SCB + 0x08, 0x20001234)
    assert rd(b, SCB + 0x08) == 0x20001200  # TBLOFF bits 31:7
    wr(b, SCB + 0x0C, 0x00000300)  # no VECTKEY: ignored
    assert rd(b, SCB + 0x0C) == 0xFA050000
    wr(b, SCB + 0x0C, 0x05FA0300)
    assert rd(b, SCB + 0x0C) == 0xFA050300


def test_ccr_cache_enables_tracked_and_icache_ops_flush_translations() -> None:
    b = _board()
    flushes = b.cpu.flushes
    wr(b, 0xE000EF50, 0)  # ICIALLU
    assert b.cpu.flushes == flushes + 1
    wr(b, SCB + 0x14, rd(b, SCB + 0x14) | (3 << 16))  # DC | IC
    assert rd(b, SCB + 0x14) & (3 << 16) == 3 << 16
    for op in (0xE000EF60, 0xE000EF6C, 0xE000EF74, 0xE000EF5C, 0xE000EF68, 0xE000EF70):
        wr(b, op, 0x40000020)  # set/way and by-address ops
    assert b.model.cache_ops >= 6
    assert rd(b, 0xE000EF60) == 0  # write-only


def test_cpacr_shpr_shcsr_cfsr() -> None:
    b = _board()
    wr(b, SCB + 0x88, 0xFFFFFFFF)
    assert rd(b, SCB + 0x88) == 0x00F00000
    wr(b, SCB + 0x1B, 0x5A, 1)  # SHPR1 byte 3: exception 7
    wr(b, SCB + 0x20 + 3, 0xFF, 1)  # SysTick priority
    assert rd(b, SCB + 0x20) >> 24 == 0xF0  # 4 implemented bits
    assert b.model.priority(15) == 0xF0
    wr(b, SCB + 0x24, 0x00070000)
    assert rd(b, SCB + 0x24) == 0x00070000
    b.model.fault("usage", "divbyzero")
    assert rd(b, SCB + 0x28) == 1 << 25
    assert rd(b, SCB + 0x24) & (1 << 12)  # USGFAULTPENDED
    wr(b, SCB + 0x2A, 0x0200, 2)  # UFSR half-word W1C
    assert rd(b, SCB + 0x28) == 0


def test_icsr_reports_pending_and_clears() -> None:
    b = _board()
    wr(b, SCB + 0x04, 1 << 28)  # PENDSVSET
    assert rd(b, SCB + 0x04) & (1 << 28)
    assert (rd(b, SCB + 0x04) >> 12) & 0x1FF == 14  # VECTPENDING
    wr(b, SCB + 0x04, 1 << 27)  # PENDSVCLR
    assert not rd(b, SCB + 0x04) & (1 << 28)
    wr(b, SCB + 0x04, 1 << 26)
    assert 15 in b.model.pending
    wr(b, SCB + 0x04, 1 << 25)
    assert 15 not in b.model.pending


def test_mpu_regions_and_aliases() -> None:
    b = _board()
    wr(b, 0xE000ED9C, 0x20000000 | 0x10 | 2)  # RBAR VALID region 2
    assert rd(b, 0xE000ED98) == 2
    wr(b, 0xE000EDA0, (3 << 24) | (18 << 1) | 1)
    wr(b, 0xE000ED94, 5)
    assert rd(b, 0xE000ED94) == 5
    assert rd(b, 0xE000EDA4) == 0x20000002  # RBAR_A1 alias
    regions = b.model.devices()[5].regions()
    assert regions == [
        {"region": 2, "base": 0x20000000, "size": 512 * 1024, "rasr": (3 << 24) | (18 << 1) | 1}
    ]


def test_nvic_registers_and_priority_bytes() -> None:
    b = _board()
    wr(b, 0xE000E100 + 4 * 3, 1 << 13)  # ISER3 bit 13 = IRQ 109
    assert rd(b, 0xE000E100 + 12) == 1 << 13
    wr(b, 0xE000E100 + 4 * 3, 0xFFFFFFFF)  # IRQs >= 110 do not exist
    assert rd(b, 0xE000E10C) == (1 << 14) - 1
    wr(b, 0xE000E180 + 12, 0xFFFFFFFF)
    assert rd(b, 0xE000E10C) == 0
    wr(b, 0xE000E400 + 39, 0x5F, 1)
    assert rd(b, 0xE000E400 + 36) == 0x50 << 24
    wr(b, 0xE000EF00, 39)  # STIR
    assert rd(b, 0xE000E204) == 1 << 7  # ISPR1 bit 7 = IRQ 39
    wr(b, 0xE000E284, 1 << 7)
    assert rd(b, 0xE000E204) == 0


def test_reset_clears_exception_state() -> None:
    b = _board()
    wr(b, 0xE000E100, 1)
    wr(b, 0xE000E200, 1)
    wr(b, SCB + 0x08, 0x20000000)
    b.model.reset("core")
    assert rd(b, 0xE000E100) == 0 and rd(b, 0xE000E200) == 0
    assert rd(b, SCB + 0x08) == 0x08000000


def test_random_scs_traffic_never_raises() -> None:
    import random

    rng = random.Random(1234)
    b = _board()
    devs = b.model.devices()
    for _ in range(5000):
        dev = rng.choice(devs)
        size = rng.choice((1, 2, 4))
        off = rng.randrange(0, dev.size) & ~(size - 1)
        if rng.random() < 0.5:
            if dev.base + off == 0xE000ED0C:
                continue  # AIRCR resets are tested elsewhere
            dev.write(off, size, rng.getrandbits(8 * size))
        else:
            assert 0 <= dev.read(off, size) < 1 << (8 * size)
        if b.model.wants_entry():
            b.model.enter()
    b.services.advance(1_000_000)
    assert isinstance(b.model.snapshot(), dict)
