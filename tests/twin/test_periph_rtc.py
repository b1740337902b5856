"""RTC backup registers and backup SRAM: DBP write protection, what survives which reset."""
from __future__ import annotations

import time

from periph_exc_harness import Services, assemble
from periph_exc_programs import program

from twin.board import Board, BoardOptions
from twin.loader import Chunk
from twin.periph import Pwr, Rcc, Rtc

BKP0R, WPR, ISR, CR, TR, DR = 0x50, 0x24, 0x0C, 0x08, 0x00, 0x04
PWR_CR1, DBP = 0x00, 1 << 8
RCC_APB1ENR, RCC_BDCR = 0x40, 0x70


def _board() -> tuple[Services, Rtc, Pwr, Rcc]:
    s = Services()
    rcc, pwr, rtc = Rcc(), Pwr(), Rtc()
    s.add(rcc, pwr, rtc)
    rcc.write(RCC_APB1ENR, 4, 1 << 28)                   # PWREN
    return s, rtc, pwr, rcc


def _dbp(pwr: Pwr, on: bool) -> None:
    cr1 = pwr.read(PWR_CR1, 4)
    pwr.write(PWR_CR1, 4, cr1 | DBP if on else cr1 & ~DBP)


def test_backup_registers_need_dbp_and_survive_system_reset_only() -> None:
    s, rtc, pwr, rcc = _board()
    rtc.write(BKP0R, 4, 0xB007B007)                      # DBP = 0: ignored, logged with the fix
    assert rtc.read(BKP0R, 4) == 0 and rtc.ignored_writes == 1
    assert any("HAL_PWR_EnableBkUpAccess" in line for line in s.logs)
    _dbp(pwr, True)
    rtc.write(BKP0R + 4 * 31, 4, 0xCAFEF00D)
    rtc.write(BKP0R, 2, 0xB007)                          # half-word lane
    assert rtc.read(BKP0R + 4 * 31, 4) == 0xCAFEF00D and rtc.read(BKP0R, 4) == 0xB007
    for dev in (rcc, pwr, rtc):
        dev.reset("system")                              # NRST / SYSRESETREQ / watchdog
    assert rtc.read(BKP0R + 4 * 31, 4) == 0xCAFEF00D
    assert not pwr.dbp                                   # DBP itself is reset: lock again
    rtc.write(BKP0R, 4, 1)
    assert rtc.read(BKP0R, 4) == 0xB007
    for dev in (rcc, pwr, rtc):
        dev.reset("power")                               # VBAT = VDD on the NUCLEO
    assert rtc.read(BKP0R + 4 * 31, 4) == 0


def test_backup_domain_reset_clears_the_backup_registers() -> None:
    _, rtc, pwr, rcc = _board()
    _dbp(pwr, True)
    rtc.write(BKP0R + 8, 4, 0x12345678)
    rcc.write(RCC_BDCR, 4, 1 << 16)                      # BDRST
    rcc.write(RCC_BDCR, 4, 0)
    assert rtc.read(BKP0R + 8, 4) == 0


def test_rtc_registers_need_the_wpr_unlock_and_init_mode() -> None:
    _, rtc, pwr, _ = _board()
    _dbp(pwr, True)
    assert rtc.read(ISR, 4) & 0x7 == 0x7 and rtc.read(DR, 4) == 0x2101
    rtc.write(CR, 4, 1 << 6)                             # locked: ignored
    assert rtc.read(CR, 4) == 0
    rtc.write(WPR, 4, 0xCA)
    rtc.write(WPR, 4, 0x53)
    rtc.write(CR, 4, 1 << 6)                             # FMT
    assert rtc.read(CR, 4) == 1 << 6
    rtc.write(TR, 4, 0x123456)                           # not in INIT: ignored
    assert rtc.read(TR, 4) == 0
    rtc.write(ISR, 4, 1 << 7)                            # INIT
    assert rtc.read(ISR, 4) & (1 << 6)                   # INITF at once
    rtc.write(TR, 4, 0x123456)
    rtc.write(DR, 4, 0x00241124)
    rtc.write(ISR, 4, 0)                                 # leave INIT (and clear RSF)
    assert not rtc.read(ISR, 4) & (1 << 6)
    assert rtc.read(ISR, 4) & (1 << 5)                   # RSF: shadow registers in sync
    assert rtc.read(ISR, 4) & (1 << 4)                   # INITS: the year is set
    assert rtc.read(TR, 4) == 0x123456 and rtc.read(DR, 4) == 0x00241124
    rtc.write(WPR, 4, 0xFF)                              # any other key locks again
    rtc.write(CR, 4, 0)
    assert rtc.read(CR, 4) == 1 << 6


BACKUP_PROGRAM = """
    ldr r3, =0x20000100
    ldr r0, =0x40024000       @ backup SRAM
    ldr r1, =0x11111111
    str r1, [r0]              @ DBP = 0: ignored
    ldr r2, [r0]
    str r2, [r3]
    ldr r4, =0x40023840       @ RCC_APB1ENR |= PWREN
    ldr r1, [r4]
    orr r1, r1, #0x10000000
    str r1, [r4]
    ldr r4, =0x40007000       @ PWR_CR1 |= DBP
    ldr r1, [r4]
    orr r1, r1, #0x100
    str r1, [r4]
    ldr r1, =0x22222222
    str r1, [r0]
    ldr r2, [r0]
    str r2, [r3, #4]
    ldr r4, =0x40002850       @ RTC_BKP0R
    ldr r1, =0x33333333
    str r1, [r4]
    ldr r2, [r4]
    str r2, [r3, #8]
hang:
    b hang
"""


def test_firmware_sees_backup_sram_write_protected_until_dbp() -> None:
    b = Board(BoardOptions(pty=False))
    try:
        b.power_on([Chunk(0x08000000, assemble(program(BACKUP_PROGRAM)), "test")])
        m = b.machine
        m.start()

        def word(addr: int) -> int:
            with m.host():
                return int.from_bytes(m.bus_read(addr, 4), "little")

        deadline = time.monotonic() + 20
        while word(0x20000108) != 0x33333333:
            assert time.monotonic() < deadline, "the program did not finish"
            time.sleep(0.01)
        assert word(0x20000100) == 0                   # the store before DBP was ignored
        assert word(0x20000104) == 0x22222222
        assert m.backup_ignored_writes == 1
        m.stop()                                       # no rerun of the program from here
        with m.host():
            m.reset("system", "software")
        assert word(0x40024000) == 0x22222222          # a system reset keeps the backup domain
        with m.host():
            assert m.device("rtc").bkp[0] == 0x33333333
            m.reset("power", "power")
        assert word(0x40024000) == 0
        with m.host():
            assert m.device("rtc").bkp[0] == 0
    finally:
        b.close()
