"""The RTC's wake-up timer and alarms (RM0410 "RTC periodic auto-wakeup", "Programmable
alarms"): WUTF every WUTR+1 periods of RTCCLK/16../2 or ck_spre, WUTWF/ALRxWF, WUTR and
ALRMxR locked while on, alarms with masks, 12-hour PM and week days, EXTI lines 22/17 to
IRQ 3/41, events falling due through a halt. Register values are RM0410's, written out."""

from __future__ import annotations

from test_periph_rtc import HZ, _calendar

from twin.periph import Exti

CR, ISR, WUTR, ALRMAR, ALRMBR = 0x08, 0x0C, 0x14, 0x1C, 0x20
WUTE, WUTIE, ALRAE, ALRBE, ALRAIE, ALRBIE = 1 << 10, 1 << 14, 1 << 8, 1 << 9, 1 << 12, 1 << 13
WUTWF, ALRAWF, ALRBWF = 4, 1, 2
WUTF, ALRAF, ALRBF = 1 << 10, 1 << 8, 1 << 9
EXTI_IMR, EXTI_RTSR, EXTI_PR = 0x00, 0x08, 0x14
MSK1, MSK2, MSK3, MSK4, WDSEL = 1 << 7, 1 << 15, 1 << 23, 1 << 31, 1 << 30
DATE = 0x24 << 16 | 1 << 13 | 0x0101  # Monday 1 January 2024


def _with_exti(s, lines: int) -> Exti:
    exti = Exti()
    s.add(exti)
    exti.write(EXTI_IMR, 4, lines)
    exti.write(EXTI_RTSR, 4, lines)
    return exti


def _clear(rtc, flag: int) -> None:
    rtc.write(ISR, 4, rtc.read(ISR, 4) & ~flag & 0x1FF00)


def test_wakeup_on_rtcclk_div16_sets_wutf_every_period_and_drives_exti22_irq3() -> None:
    s, rtc, *_ = _calendar(0x120000, DATE)  # LSE 32768 Hz
    exti = _with_exti(s, 1 << 22)
    assert rtc.read(ISR, 4) & WUTWF
    rtc.write(WUTR, 4, 2047)  # 2048 x 16 / 32768 Hz = 1 s
    rtc.write(CR, 4, WUTE | WUTIE)  # WUCKSEL = 000: RTCCLK/16
    assert not rtc.read(ISR, 4) & WUTWF
    s.advance(HZ * 999 // 1000)
    assert not rtc.read(ISR, 4) & WUTF and not s.irqs.get(3)
    s.advance(HZ // 500)
    assert rtc.read(ISR, 4) & WUTF and s.irqs.get(3)
    exti.write(EXTI_PR, 4, 1 << 22)
    _clear(rtc, WUTF)
    assert not s.irqs.get(3)
    s.advance(HZ)
    assert rtc.read(ISR, 4) & WUTF and s.irqs.get(3)  # the second period, same phase


def test_wutr_is_locked_while_the_timer_runs() -> None:
    s, rtc, *_ = _calendar(0x120000, DATE)
    rtc.write(WUTR, 4, 100)
    rtc.write(CR, 4, WUTE)
    rtc.write(WUTR, 4, 5)
    assert rtc.read(WUTR, 4) == 100 and any("WUTE" in line for line in s.logs)
    rtc.write(CR, 4, 0)
    rtc.write(WUTR, 4, 5)
    assert rtc.read(WUTR, 4) == 5


def test_wakeup_on_ck_spre_at_1_khz_is_a_hal_tick() -> None:
    """HAL_TimeBase_RTC_WKUP: PREDIV_A 31, PREDIV_S 0 on LSE (a 1 kHz ck_spre), WUTR 0."""
    s, rtc, *_ = _calendar(0x120000, DATE)
    exti = _with_exti(s, 1 << 22)
    rtc.write(ISR, 4, 1 << 7)
    rtc.write(0x10, 4, 31 << 16 | 0)  # PRER: 32768 / 32 = 1024 Hz
    rtc.write(ISR, 4, 0)
    rtc.write(WUTR, 4, 0)
    rtc.write(CR, 4, WUTE | WUTIE | 4)  # WUCKSEL = 100: ck_spre
    ticks = 0
    for _ in range(100):
        s.advance(HZ // 10_000)
        if rtc.read(ISR, 4) & WUTF:
            ticks += 1
            _clear(rtc, WUTF)
            exti.write(EXTI_PR, 4, 1 << 22)
    assert ticks in (10, 11)  # 10 ms at 1024 Hz


def test_alarm_a_matches_hours_and_minutes_every_day_and_drives_exti17_irq41() -> None:
    s, rtc, *_ = _calendar(0x235958, DATE)
    _with_exti(s, 1 << 17)
    assert rtc.read(ISR, 4) & ALRAWF
    rtc.write(ALRMAR, 4, MSK4 | 0x00 << 16 | 0x00 << 8 | 0x01)  # 00:00:01 any day
    rtc.write(CR, 4, ALRAE | ALRAIE)
    assert not rtc.read(ISR, 4) & ALRAWF
    s.advance(HZ * 5 // 2)  # 23:59:58.0 + 2.5 s: 00:00:00.5
    assert not rtc.read(ISR, 4) & ALRAF
    s.advance(HZ // 2)  # 00:00:01.0
    assert rtc.read(ISR, 4) & ALRAF and s.irqs.get(41)
    _clear(rtc, ALRAF)
    s.advance(HZ * 86400)
    assert rtc.read(ISR, 4) & ALRAF  # the next day at 00:00:01


def test_alarm_b_every_minute_at_second_30_and_alarm_registers_locked_while_on() -> None:
    s, rtc, *_ = _calendar(0x120040, DATE)  # 12:00:40
    rtc.write(ALRMBR, 4, MSK4 | MSK3 | MSK2 | 0x30)
    rtc.write(CR, 4, ALRBE)
    rtc.write(ALRMBR, 4, 0)
    assert rtc.read(ALRMBR, 4) == MSK4 | MSK3 | MSK2 | 0x30
    s.advance(HZ * 49)  # 12:01:29
    assert not rtc.read(ISR, 4) & ALRBF
    s.advance(HZ)
    assert rtc.read(ISR, 4) & ALRBF and not s.irqs.get(41)  # ALRBIE off: no interrupt
    _clear(rtc, ALRBF)
    s.advance(HZ * 60)
    assert rtc.read(ISR, 4) & ALRBF


def test_alarm_on_a_week_day_and_in_12_hour_format() -> None:
    # 12-hour format: 11:59:59 AM on Monday; the alarm at 1 PM on Wednesday (week day 3)
    s, rtc, *_ = _calendar(0x115959, DATE, cr=1 << 6)
    rtc.write(ALRMAR, 4, WDSEL | 3 << 24 | 1 << 22 | 0x01 << 16)  # PM, 01:00:00
    rtc.write(CR, 4, 1 << 6 | ALRAE)
    s.advance(HZ * (2 * 86400 + 3600))  # Wednesday 12:59:59 PM
    assert not rtc.read(ISR, 4) & ALRAF
    s.advance(HZ)
    assert rtc.read(ISR, 4) & ALRAF


def test_a_wakeup_falls_due_through_a_halt() -> None:
    from test_periph_timers import _Dbg, _Wall

    s, rtc, *_ = _calendar(0x120000, DATE)
    s.devices["dbgmcu"] = _Dbg(0)  # type: ignore[assignment]
    wall = _Wall()
    rtc.stopped.wall = wall
    rtc.write(WUTR, 4, 2047)
    rtc.write(CR, 4, WUTE)  # 1 s
    rtc.core_stopped("halt")
    wall.t += 1.5
    assert rtc.stopped_tick() is not None
    assert rtc.read(ISR, 4) & WUTF
    rtc.core_stopped(None)
