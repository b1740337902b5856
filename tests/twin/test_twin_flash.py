"""The flash controller against RM0410-style sequences, in both bank layouts.

Most tests drive FLASH registers through the machine's bus (like a bus master would); the
last ones run real Thumb code on the emulated core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twin_core_util import build

from twin.device import ResetKind
from twin.flash import FlashController
from twin.machine import Machine

FLASH = 0x40023C00
ACR, KEYR, OPTKEYR, SR, CR, OPTCR, OPTCR1 = (FLASH + o for o in (0, 4, 8, 0xC, 0x10, 0x14, 0x18))
# Bit positions and keys written out from RM0410 (not imported from twin.flash, so a wrong
# bit in the model fails here). See ../shared/docs/stm32f767-facts.md section 2.
KEY1, KEY2 = 0x45670123, 0xCDEF89AB  # RM0410 3.7.2 FLASH_KEYR unlock sequence
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F  # RM0410 3.7.3 FLASH_OPTKEYR unlock sequence
SR_EOP = 1 << 0  # RM0410 3.7.4 FLASH_SR.EOP
SR_OPERR = 1 << 1  # RM0410 3.7.4 FLASH_SR.OPERR
SR_WRPERR = 1 << 4  # RM0410 3.7.4 FLASH_SR.WRPERR
SR_PGAERR = 1 << 5  # RM0410 3.7.4 FLASH_SR.PGAERR
SR_PGPERR = 1 << 6  # RM0410 3.7.4 FLASH_SR.PGPERR
SR_ERSERR = 1 << 7  # RM0410 3.7.4 FLASH_SR.ERSERR
SR_BSY = 1 << 16  # RM0410 3.7.4 FLASH_SR.BSY
CR_PG = 1 << 0  # RM0410 3.7.5 FLASH_CR.PG
CR_SER = 1 << 1  # RM0410 3.7.5 FLASH_CR.SER
CR_MER = 1 << 2  # RM0410 3.7.5 FLASH_CR.MER (MER1)
PSIZE8, PSIZE16, PSIZE32 = 0 << 8, 1 << 8, 2 << 8  # RM0410 3.7.5 FLASH_CR.PSIZE[1:0]
CR_MER2 = 1 << 15  # RM0410 3.7.5 FLASH_CR.MER2
CR_STRT = 1 << 16  # RM0410 3.7.5 FLASH_CR.STRT
CR_EOPIE = 1 << 24  # RM0410 3.7.5 FLASH_CR.EOPIE
CR_ERRIE = 1 << 25  # RM0410 3.7.5 FLASH_CR.ERRIE
CR_LOCK = 1 << 31  # RM0410 3.7.5 FLASH_CR.LOCK


class Rig:
    """A bare machine with only the flash controller (no threads)."""

    def __init__(self, dual_bank: bool = False, timing: str = "fast") -> None:
        self.m = Machine()
        self.fc = FlashController(self.m.flash_buf, timing=timing, dual_bank=dual_bank)
        self.m.flash = self.fc
        self.m.add_device(self.fc)

    def w32(self, addr: int, value: int) -> None:
        self.m.bus_write(addr, value.to_bytes(4, "little"), 4)

    def r32(self, addr: int) -> int:
        return int.from_bytes(self.m.bus_read(addr, 4), "little")

    def store(self, addr: int, value: int, size: int) -> None:
        self.m.bus_write(addr, value.to_bytes(size, "little"), size)

    def unlock(self) -> None:
        self.w32(KEYR, KEY1)
        self.w32(KEYR, KEY2)

    def erase_sector(self, snb: int, psize: int = PSIZE32) -> None:
        self.w32(CR, psize | CR_SER | (snb << 3))
        self.w32(CR, psize | CR_SER | (snb << 3) | CR_STRT)


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_reset_values(rig: Rig) -> None:
    assert rig.r32(CR) == CR_LOCK
    assert rig.r32(SR) == 0
    assert rig.r32(OPTCR) == 0xFFFFAAFD
    assert rig.r32(OPTCR1) == 0x00400080
    assert rig.fc.boot_address() == 0x00200000


def test_acr_latency_reads_back(rig: Rig) -> None:
    rig.w32(ACR, 0x307)
    assert rig.r32(ACR) == 0x307


def test_unlock_and_relock(rig: Rig) -> None:
    rig.w32(CR, CR_PG)  # ignored while locked
    assert rig.r32(CR) == CR_LOCK
    rig.unlock()
    assert rig.r32(CR) == 0
    rig.w32(CR, PSIZE32 | CR_PG)
    assert rig.r32(CR) == PSIZE32 | CR_PG
    rig.w32(CR, CR_LOCK)
    assert rig.r32(CR) & CR_LOCK
    rig.w32(CR, 0)
    assert rig.r32(CR) & CR_LOCK


def test_wrong_key_locks_until_reset(rig: Rig) -> None:
    rig.w32(KEYR, KEY2)  # wrong order
    rig.unlock()
    assert rig.r32(CR) & CR_LOCK
    rig.m.reset(ResetKind.SYSTEM, "pin")
    rig.unlock()
    assert not rig.r32(CR) & CR_LOCK


def test_system_reset_relocks(rig: Rig) -> None:
    rig.unlock()
    rig.m.reset(ResetKind.SYSTEM, "software")
    assert rig.r32(CR) & CR_LOCK


def test_program_is_nor_and(rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000100, 0x12345678, 4)
    assert rig.r32(0x08000100) == 0x12345678
    rig.store(0x08000100, 0xFFFF0000, 4)  # programming only clears bits
    assert rig.r32(0x08000100) == 0x12340000
    assert rig.r32(0x00200100) == 0x12340000  # ITCM alias shows the same array
    assert rig.r32(SR) & 0xF3 == 0


def test_store_without_pg_is_rejected_with_erserr(rig: Rig) -> None:
    rig.unlock()
    rig.store(0x08000200, 0, 4)
    assert rig.r32(0x08000200) == 0xFFFFFFFF
    assert rig.r32(SR) & SR_ERSERR


def test_store_while_locked_is_rejected(rig: Rig) -> None:
    rig.store(0x08000200, 0, 4)
    assert rig.r32(0x08000200) == 0xFFFFFFFF
    assert rig.r32(SR) & SR_ERSERR


def test_psize_mismatch_is_pgperr(rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000300, 0x00, 1)
    assert rig.r32(SR) & SR_PGPERR
    assert rig.r32(0x08000300) == 0xFFFFFFFF


def test_unaligned_is_pgaerr(rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE16 | CR_PG)
    rig.fc.cpu_store(0x08000301, 2, 0)  # a CPU halfword store at an odd address
    assert rig.r32(SR) & SR_PGAERR
    assert rig.r32(0x08000300) == 0xFFFFFFFF


def test_byte_and_halfword_programming(rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE8 | CR_PG)
    rig.store(0x08000400, 0xA5, 1)
    rig.w32(CR, PSIZE16 | CR_PG)
    rig.store(0x08000402, 0x1234, 2)
    assert rig.r32(0x08000400) == 0x1234FFA5
    assert rig.r32(SR) & 0xF3 == 0


def test_error_flags_are_write_one_to_clear(rig: Rig) -> None:
    rig.store(0x08000000, 0, 4)  # ERSERR
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000000, 0, 1)  # PGPERR
    assert rig.r32(SR) == SR_ERSERR | SR_PGPERR
    rig.w32(SR, 0)  # writing 0 clears nothing
    assert rig.r32(SR) == SR_ERSERR | SR_PGPERR
    rig.w32(SR, SR_PGPERR)
    assert rig.r32(SR) == SR_ERSERR
    rig.w32(SR, 0xF3)
    assert rig.r32(SR) == 0


def test_eop_only_with_eopie_and_errie_sets_operr(rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000000, 0, 4)
    assert not rig.r32(SR) & SR_EOP
    rig.w32(CR, PSIZE32 | CR_PG | CR_EOPIE | CR_ERRIE)
    rig.store(0x08000004, 0, 4)
    assert rig.r32(SR) & SR_EOP
    rig.store(0x08000008, 0, 1)
    assert rig.r32(SR) & (SR_OPERR | SR_PGPERR) == SR_OPERR | SR_PGPERR


def _fill(rig: Rig, addr: int, n: int) -> None:
    rig.m.flash_region.write(addr, b"\x00" * n)


def test_sector_erase_single_bank_bounds(rig: Rig) -> None:
    _fill(rig, 0x08000000, 0x200000)
    rig.unlock()
    rig.erase_sector(5)  # 0x08040000, 256 KiB
    assert rig.r32(SR) & 0xF3 == 0
    assert rig.r32(0x0803FFFC) == 0
    assert rig.m.bus_read(0x08040000, 0x40000) == b"\xff" * 0x40000
    assert rig.r32(0x08080000) == 0
    assert not rig.r32(CR) & CR_STRT  # STRT self-clears
    rig.erase_sector(1)  # 0x08008000, 32 KiB
    assert rig.r32(0x08007FFC) == 0 and rig.r32(0x08008000) == 0xFFFFFFFF
    assert rig.r32(0x0800FFFC) == 0xFFFFFFFF and rig.r32(0x08010000) == 0


def test_invalid_snb_and_ser_with_mer_are_erserr(rig: Rig) -> None:
    _fill(rig, 0x08000000, 0x200000)
    rig.unlock()
    rig.erase_sector(12)
    assert rig.r32(SR) & SR_ERSERR
    rig.w32(SR, 0xF3)
    rig.w32(CR, PSIZE32 | CR_SER | CR_MER | CR_STRT)
    assert rig.r32(SR) & SR_ERSERR
    assert rig.m.bus_read(0x08000000, 16) == b"\x00" * 16


def test_mass_erase_single_bank(rig: Rig) -> None:
    _fill(rig, 0x08000000, 0x200000)
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_MER)
    rig.w32(CR, PSIZE32 | CR_MER | CR_STRT)
    assert rig.m.bus_read(0x08000000, 0x200000) == b"\xff" * 0x200000


def test_dual_bank_layout_and_snb_encoding() -> None:
    rig = Rig(dual_bank=True)
    assert not rig.r32(OPTCR) & (1 << 29)
    _fill(rig, 0x08000000, 0x200000)
    rig.unlock()
    rig.erase_sector(0x10)  # bank 2 sector 12: 0x08100000, 16 KiB
    assert rig.r32(0x080FFFFC) == 0
    assert rig.m.bus_read(0x08100000, 0x4000) == b"\xff" * 0x4000
    assert rig.r32(0x08104000) == 0
    rig.erase_sector(4)  # bank 1 sector 4: 0x08010000, 64 KiB
    assert rig.r32(0x08010000) == 0xFFFFFFFF and rig.r32(0x0801FFFC) == 0xFFFFFFFF
    assert rig.r32(0x08020000) == 0
    rig.erase_sector(12)  # not an encoding in dual bank mode
    assert rig.r32(SR) & SR_ERSERR
    rig.w32(SR, 0xF3)
    rig.w32(CR, PSIZE32 | CR_MER2 | CR_STRT)  # bank 2 only
    assert rig.r32(0x080FFFFC) == 0
    assert rig.m.bus_read(0x08100000, 0x100000) == b"\xff" * 0x100000
    rig.w32(CR, PSIZE32 | CR_MER | CR_STRT)  # bank 1
    assert rig.m.bus_read(0x08000000, 0x100000) == b"\xff" * 0x100000


def _unlock_options(rig: Rig) -> None:
    rig.w32(OPTKEYR, OPTKEY1)
    rig.w32(OPTKEYR, OPTKEY2)


def test_option_bytes_need_optkey_and_take_effect_after_reset(rig: Rig) -> None:
    rig.w32(OPTCR, 0x0FFFAAFC)  # locked: ignored
    assert rig.r32(OPTCR) == 0xFFFFAAFD
    _unlock_options(rig)
    assert rig.r32(OPTCR) == 0xFFFFAAFC
    rig.w32(OPTCR1, 0x00400000 | (0x08000000 >> 14))  # BOOT_ADD0 -> 0x08000000
    rig.w32(OPTCR, 0xDFFFAAFC)  # nDBANK = 0
    rig.w32(OPTCR, 0xDFFFAAFC | 2)  # OPTSTRT
    assert not rig.fc.dual_bank  # not before the reset
    rig.m.reset(ResetKind.SYSTEM, "pin")
    assert rig.fc.dual_bank
    assert rig.r32(OPTCR) == 0xDFFFAAFD  # relocked, new value loaded
    assert rig.fc.boot_address() == 0x08000000
    rig.m.reset(ResetKind.POWER, "power")  # option bytes survive power loss
    assert rig.fc.dual_bank and rig.fc.boot_address() == 0x08000000


def test_wrong_optkey_blocks_until_reset(rig: Rig) -> None:
    rig.w32(OPTKEYR, OPTKEY2)
    _unlock_options(rig)
    assert rig.r32(OPTCR) & 1
    rig.m.reset(ResetKind.SYSTEM, "pin")
    _unlock_options(rig)
    assert not rig.r32(OPTCR) & 1


def test_write_protection_gives_wrperr(rig: Rig) -> None:
    _unlock_options(rig)
    rig.w32(OPTCR, 0xFFFDAAFC | 2)  # nWRP1 = 0: sector 1 protected
    rig.m.reset(ResetKind.SYSTEM, "pin")
    _fill(rig, 0x08008000, 0x8000)
    rig.unlock()
    rig.erase_sector(1)
    assert rig.r32(SR) & SR_WRPERR
    assert rig.r32(0x08008000) == 0
    rig.w32(SR, 0xF3)
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000000, 0x11111111, 4)  # sector 0 still programmable
    rig.fc.mv[0x9000:0x9004] = b"\xff" * 4
    rig.store(0x08009000, 0, 4)
    assert rig.r32(SR) & SR_WRPERR
    assert rig.r32(0x08009000) == 0xFFFFFFFF
    assert rig.r32(0x08000000) == 0x11111111


def test_datasheet_timing_holds_bsy_in_virtual_time() -> None:
    rig = Rig(timing="datasheet")
    rig.unlock()
    rig.erase_sector(5)  # 256 KiB: about 2 s
    assert rig.r32(SR) & SR_BSY
    m = rig.m
    m.clock.advance(m.now_cycles() + m.core_hz)  # +1 s
    assert rig.r32(SR) & SR_BSY
    m.clock.advance(m.now_cycles() + 2 * m.core_hz)
    assert not rig.r32(SR) & SR_BSY


def test_state_persists(tmp_path: Path, rig: Rig) -> None:
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000010, 0xCAFEF00D, 4)
    _unlock_options(rig)
    rig.w32(OPTCR, 0xDFFFAAFC | 2)
    rig.fc.save_state(tmp_path)
    other = Rig()
    assert other.fc.load_state(tmp_path)
    assert other.r32(0x08000010) == 0xCAFEF00D
    assert other.fc.dual_bank


PROGRAM_FROM_CODE = """
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0x40023C00
    ldr r1, =0x45670123
    str r1, [r0, #4]
    ldr r1, =0xCDEF89AB
    str r1, [r0, #4]
    ldr r1, =0x201              @ PSIZE x32 | PG
    str r1, [r0, #0x10]
    ldr r2, =0x08010000
    ldr r3, =0xA5A5F00F
    str r3, [r2]
1:  ldr r4, [r0, #0xC]          @ wait while BSY
    lsrs r4, r4, #17
    bcs 1b
    ldr r5, [r2]                @ read back
    ldr r6, [r0, #0xC]          @ SR
    movs r1, #0
    str r1, [r0, #0x10]         @ PG off
    str r3, [r2, #4]            @ store without PG: rejected
    ldr r7, [r2, #4]
    ldr r8, [r0, #0xC]
    bkpt #0
"""


@pytest.mark.parametrize("timing", ["fast", "datasheet"])
def test_thumb_code_programs_flash(tmp_path: Path, timing: str) -> None:
    _, binf = build(tmp_path, PROGRAM_FROM_CODE)
    from twin.board import Board, BoardOptions

    board = Board(BoardOptions(pty=False, timing=timing))
    try:
        board.power_on(_chunks(binf))
        m = board.machine
        m.debug.ctrl = 1  # C_DEBUGEN: BKPT halts
        for _ in range(10000):
            if m.halted or m.is_locked_up():
                break
            if m.clock.wait_mode:
                m.clock.advance(m.clock.next_event())
                m.clock.wait_mode = None
            m.step_slice()
        assert m.halted and not m.is_locked_up(), m.lockup_reason
        assert m.reg("r5") == 0xA5A5F00F
        assert m.reg("r6") & 0xF3 == 0
        assert m.reg("r7") == 0xFFFFFFFF
        assert m.reg("r8") & SR_ERSERR
        if timing == "datasheet":
            assert m.now_cycles() >= 16 * 16  # 16 us at 16 MHz passed for the word
    finally:
        board.close()


def _chunks(binf: Path):
    from twin.loader import Chunk

    return [Chunk(0x08000000, binf.read_bytes(), str(binf))]


def test_power_cut_at_nth_operation() -> None:
    rig = Rig()
    resets = []
    rig.fc.services.request_reset = lambda kind, cause: resets.append((kind, cause))
    _fill(rig, 0x08000000, 0x20000)
    rig.unlock()
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.fc.arm_power_cut(3)
    rig.store(0x08000000, 0x11111111, 4)  # op 1 (onto programmed 0: AND keeps 0)
    rig.w32(CR, PSIZE32)
    rig.erase_sector(1)  # op 2: whole 32 KiB erased
    assert rig.r32(0x0800FFFC) == 0xFFFFFFFF and resets == []
    rig.erase_sector(2)  # op 3: power cut half way
    assert resets == [("power", "power")]
    assert rig.r32(0x08010000) == 0xFFFFFFFF and rig.r32(0x08013FFC) == 0xFFFFFFFF
    assert rig.r32(0x08014000) == 0 and rig.r32(0x08017FFC) == 0
    assert rig.fc.snapshot()["cuts"][0]["op"] == 3


def test_power_cut_filters_by_kind_and_range_and_torn_writes() -> None:
    rig = Rig()
    resets = []
    rig.fc.services.request_reset = lambda kind, cause: resets.append((kind, cause))
    rig.unlock()
    rig.fc.arm_power_cut(2, mode="torn", kind="program", address=0x08010000, length=0x100)
    rig.w32(CR, PSIZE32 | CR_PG)
    rig.store(0x08000000, 0x11111111, 4)  # outside the range: not counted
    rig.store(0x08010000, 0x22222222, 4)  # 1st match: done
    assert resets == []
    rig.store(0x08010004, 0x00000000, 4)  # 2nd match: torn, power cut
    assert resets == [("power", "power")]
    assert rig.r32(0x08000000) == 0x11111111 and rig.r32(0x08010000) == 0x22222222
    assert rig.r32(0x08010004) == 0xFFFF0000  # only the low half got programmed
    cut = rig.fc.snapshot()["cuts"][-1]
    assert cut["nth"] == 2 and cut["mode"] == "torn" and cut["address"] == 0x08010004
    rig.fc.arm_power_cut(1, kind="erase")
    rig.fc.cancel_power_cut()
    rig.w32(CR, PSIZE32)
    rig.erase_sector(2)
    assert len(resets) == 1
