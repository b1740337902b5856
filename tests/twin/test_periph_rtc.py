"""RTC backup registers and backup SRAM: DBP write protection, what survives which reset."""

from __future__ import annotations

import time

from periph_exc_harness import assemble
from periph_exc_programs import program

from twin.board import Board, BoardOptions
from twin.loader import Chunk
from twin.periph import Pwr, Rcc, Rtc
from twin.testing import ServicesDouble

BKP0R, WPR, ISR, CR, TR, DR = 0x50, 0x24, 0x0C, 0x08, 0x00, 0x04
PWR_CR1, DBP = 0x00, 1 << 8
RCC_APB1ENR, RCC_BDCR = 0x40, 0x70


def _board() -> tuple[ServicesDouble, Rtc, Pwr, Rcc]:
    s = ServicesDouble()
    rcc, pwr, rtc = Rcc(), Pwr(), Rtc()
    s.add(rcc, pwr, rtc)
    rcc.write(RCC_APB1ENR, 4, 1 << 28)  # PWREN
    return s, rtc, pwr, rcc


def _dbp(pwr: Pwr, on: bool) -> None:
    cr1 = pwr.read(PWR_CR1, 4)
    pwr.write(PWR_CR1, 4, cr1 | DBP if on else cr1 & ~DBP)


def test_backup_registers_need_dbp_and_survive_system_reset_only() -> None:
    s, rtc, pwr, rcc = _board()
    rtc.write(BKP0R, 4, 0xB007B007)  # DBP = 0: ignored, logged with the fix
    assert rtc.read(BKP0R, 4) == 0 and rtc.ignored_writes == 1
    assert any("HAL_PWR_EnableBkUpAccess" in line for line in s.logs)
    _dbp(pwr, True)
    rtc.write(BKP0R + 4 * 31, 4, 0xCAFEF00D)
    rtc.write(BKP0R, 2, 0xB007)  # half-word lane
    assert rtc.read(BKP0R + 4 * 31, 4) == 0xCAFEF00D and rtc.read(BKP0R, 4) == 0xB007
    for dev in (rcc, pwr, rtc):
        dev.reset("system")  # NRST / SYSRESETREQ / watchdog
    assert rtc.read(BKP0R + 4 * 31, 4) == 0xCAFEF00D
    assert not pwr.dbp  # DBP itself is reset: lock again
    rtc.write(BKP0R, 4, 1)
    assert rtc.read(BKP0R, 4) == 0xB007
    for dev in (rcc, pwr, rtc):
        dev.reset("power")  # VBAT = VDD on the NUCLEO
    assert rtc.read(BKP0R + 4 * 31, 4) == 0


def test_backup_domain_reset_clears_the_backup_registers() -> None:
    _, rtc, pwr, rcc = _board()
    _dbp(pwr, True)
    rtc.write(BKP0R + 8, 4, 0x12345678)
    rcc.write(RCC_BDCR, 4, 1 << 16)  # BDRST
    rcc.write(RCC_BDCR, 4, 0)
    assert rtc.read(BKP0R + 8, 4) == 0


def test_rtc_registers_need_the_wpr_unlock_and_init_mode() -> None:
    _, rtc, pwr, _ = _board()
    _dbp(pwr, True)
    assert rtc.read(ISR, 4) & 0x7 == 0x7 and rtc.read(DR, 4) == 0x2101
    rtc.write(CR, 4, 1 << 6)  # locked: ignored
    assert rtc.read(CR, 4) == 0
    rtc.write(WPR, 4, 0xCA)
    rtc.write(WPR, 4, 0x53)
    rtc.write(CR, 4, 1 << 6)  # FMT
    assert rtc.read(CR, 4) == 1 << 6
    rtc.write(TR, 4, 0x123456)  # not in INIT: ignored
    assert rtc.read(TR, 4) == 0
    rtc.write(ISR, 4, 1 << 7)  # INIT
    assert rtc.read(ISR, 4) & (1 << 6)  # INITF at once
    rtc.write(TR, 4, 0x123456)
    rtc.write(DR, 4, 0x00241124)
    rtc.write(ISR, 4, 0)  # leave INIT (and clear RSF)
    assert not rtc.read(ISR, 4) & (1 << 6)
    assert rtc.read(ISR, 4) & (1 << 5)  # RSF: shadow registers in sync
    assert rtc.read(ISR, 4) & (1 << 4)  # INITS: the year is set
    assert rtc.read(TR, 4) == 0x123456 and rtc.read(DR, 4) == 0x00241124
    rtc.write(WPR, 4, 0xFF)  # any other key locks again
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
    ldr r1, =0x44444444
    str r1, [r0]              @ DBP = 1 but BKPSRAMEN = 0: ignored as well
    ldr r2, [r0]
    str r2, [r3, #12]
    ldr r4, =0x40023830       @ RCC_AHB1ENR |= BKPSRAMEN
    ldr r1, [r4]
    orr r1, r1, #0x40000
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
        assert word(0x20000100) == 0  # the store before DBP was ignored
        assert word(0x2000010C) == 0  # and the one before BKPSRAMEN
        assert word(0x20000104) == 0x22222222
        assert m.protection.backup_ignored_writes == 2
        m.stop()  # no rerun of the program from here
        with m.host():
            m.reset("system", "software")
        assert word(0x40024000) == 0x22222222  # a system reset keeps the backup domain
        with m.host():
            assert m.device("rtc").bkp[0] == 0x33333333
            m.reset("power", "power")
        assert word(0x40024000) == 0
        with m.host():
            assert m.device("rtc").bkp[0] == 0
    finally:
        b.close()


# ---------------------------------------------------------------- the calendar
SSR, PRER, RCC_CSR = 0x28, 0x10, 0x74
HZ = 16_000_000


def _calendar(tr: int, dr: int, *, rtcsel: int = 1, cr: int = 0):
    """An RTC on LSE (default) with the calendar set to TR/DR the way HAL_RTC_SetTime does."""
    s, rtc, pwr, rcc = _board()
    _dbp(pwr, True)
    if rtcsel == 2:
        rcc.write(RCC_CSR, 4, 1)  # LSION
    rcc.write(RCC_BDCR, 4, 1 | rtcsel << 8 | 1 << 15)  # LSEON, RTCSEL, RTCEN
    rtc.write(WPR, 4, 0xCA)
    rtc.write(WPR, 4, 0x53)
    rtc.write(CR, 4, cr)
    rtc.write(ISR, 4, 1 << 7)
    rtc.write(PRER, 4, 127 << 16 | (249 if rtcsel == 2 else 255))  # LSI 32000 / LSE 32768 → 1 Hz
    rtc.write(TR, 4, tr)
    rtc.write(DR, 4, dr)
    rtc.write(ISR, 4, 0)  # leave INIT: counting from here
    return s, rtc, pwr, rcc


def _now(rtc: Rtc) -> tuple[int, int]:
    tr = rtc.read(TR, 4)
    return tr, rtc.read(DR, 4)


def test_calendar_counts_seconds_into_a_leap_day_and_the_next_month() -> None:
    s, rtc, *_ = _calendar(0x235958, 0x24 << 16 | 3 << 13 | 0x0228)
    s.advance(HZ * 3 // 2)  # 1.5 s
    assert _now(rtc) == (0x235959, 0x24 << 16 | 3 << 13 | 0x0228)
    s.advance(HZ)  # midnight: 29 February 2024, Thursday
    assert _now(rtc) == (0x000000, 0x24 << 16 | 4 << 13 | 0x0229)
    s.advance(HZ * 86400)
    assert _now(rtc) == (0x000000, 0x24 << 16 | 5 << 13 | 0x0301)
    ssr = rtc.read(SSR, 4)
    rtc.read(DR, 4)
    assert 0 <= ssr <= 255
    s.advance(HZ // 4)  # a quarter second: SSR counts down
    assert (ssr - rtc.read(SSR, 4)) % 256 in range(62, 66)
    rtc.read(DR, 4)


def test_calendar_12h_format_and_year_wrap() -> None:
    s, rtc, *_ = _calendar(1 << 22 | 0x115959, 0x99 << 16 | 7 << 13 | 0x1231, cr=1 << 6)  # 11:59:59 PM
    s.advance(HZ)
    assert _now(rtc) == (0x120000, 0x00 << 16 | 1 << 13 | 0x0101)  # 12:00:00 AM, 2000-01-01, Monday


def test_reading_tr_latches_the_calendar_until_dr_is_read() -> None:
    s, rtc, *_ = _calendar(0x100000, 0x24 << 16 | 1 << 13 | 0x0101)
    assert rtc.read(TR, 4) == 0x100000
    s.advance(HZ * 5)
    assert rtc.read(TR, 4) == 0x100000  # still latched: DR was not read
    rtc.read(DR, 4)
    assert rtc.read(TR, 4) == 0x100005
    rtc.read(DR, 4)
    rtc.write(CR, 4, 1 << 5)  # BYPSHAD: live reads
    s.advance(HZ)
    assert rtc.read(TR, 4) == 0x100006
    s.advance(HZ)
    assert rtc.read(TR, 4) == 0x100007


def test_calendar_stops_in_init_and_without_its_clock_and_keeps_over_system_resets() -> None:
    s, rtc, pwr, rcc = _calendar(0x120000, 0x24 << 16 | 1 << 13 | 0x0101)
    s.advance(HZ * 2)
    rtc.write(ISR, 4, 1 << 7)  # INIT: stopped
    s.advance(HZ * 10)
    assert _now(rtc) == (0x120002, 0x24 << 16 | 1 << 13 | 0x0101)
    rtc.write(ISR, 4, 0)
    s.advance(HZ)
    assert _now(rtc)[0] == 0x120003
    for dev in (rcc, pwr, rtc):
        dev.reset("system")  # LSE and the calendar keep going
    s.advance(HZ)
    assert _now(rtc)[0] == 0x120004
    rcc.write(RCC_APB1ENR, 4, 1 << 28)  # PWREN and DBP were reset too
    _dbp(pwr, True)
    rcc.write(RCC_BDCR, 4, 1 | 1 << 8)  # RTCEN off
    s.advance(HZ * 10)
    assert _now(rtc)[0] == 0x120004
    for dev in (rcc, pwr, rtc):
        dev.reset("power")  # VBAT = VDD: all gone
    assert _now(rtc) == (0, 0x2101)


def test_calendar_on_lsi_stops_at_a_system_reset() -> None:
    s, rtc, pwr, rcc = _calendar(0x080000, 0x24 << 16 | 1 << 13 | 0x0101, rtcsel=2)
    s.advance(HZ * 2)
    assert _now(rtc)[0] == 0x080002
    for dev in (rcc, pwr, rtc):
        dev.reset("system")  # LSION is cleared by a system reset
    s.advance(HZ * 5)
    assert _now(rtc)[0] == 0x080002
    rcc.write(RCC_CSR, 4, 1)  # LSI on again
    s.advance(HZ)
    assert _now(rtc)[0] == 0x080003


def test_calendar_counts_wall_time_through_a_halt_unless_dbg_rtc_stop() -> None:
    from test_periph_timers import _Dbg, _Wall

    for fz, expect in ((0, 0x000003), (1 << 10, 0x000000)):
        s, rtc, *_ = _calendar(0x000000, 0x24 << 16 | 1 << 13 | 0x0101)
        s.devices["dbgmcu"] = _Dbg(fz)  # type: ignore[assignment]
        wall = _Wall()
        rtc.stopped.wall = wall
        rtc.core_stopped("halt")
        wall.t += 3.2
        assert _now(rtc)[0] == expect, fz
        rtc.core_stopped(None)


def test_an_invalid_date_does_not_count_and_says_why() -> None:
    s, rtc, *_ = _calendar(0x120000, 0x24 << 16 | 1 << 13 | 0x0230)  # 30 February
    s.advance(HZ * 3)
    assert _now(rtc) == (0x120000, 0x24 << 16 | 1 << 13 | 0x0230)
    assert any("not a valid time/date" in line for line in s.logs)
