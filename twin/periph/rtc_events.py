"""The RTC's wake-up timer and alarms A/B (RM0410 "RTC periodic auto-wakeup", "Programmable
alarms"), for :class:`twin.periph.rtc.Rtc`.

* Wake-up timer: CR.WUTE starts it, CR.WUCKSEL picks its clock (RTCCLK/16, /8, /4, /2, or
  ck_spre: the calendar's second, (PREDIV_A+1)(PREDIV_S+1) RTCCLK periods, with 2^16 added
  to WUTR for 11x). ISR.WUTF is set every WUTR+1 of its clock periods (ck_spre: at the
  calendar's second boundaries, the first WUTR+1 boundaries after WUTE); WUTR takes writes
  only while WUTE = 0 (ISR.WUTWF reads 1 then). RTCCLK/x runs while RTCCLK does; ck_spre
  stops in initialisation mode, as the calendar does. HAL_TimeBase_RTC_WKUP runs its HAL
  tick on it (ck_spre at 1 kHz, WUTR = 0).
* Alarms: CR.ALRAE/ALRBE arm them; ISR.ALRAF/ALRBF are set at the start of the calendar
  second whose TR/DR fields match RTC_ALRMxR's unmasked ones (MSK1 seconds, MSK2 minutes,
  MSK3 hours with PM in 12-hour mode, MSK4 the date or, with WDSEL, the week day).
  ALRAWF/ALRBWF read 1 while the alarm is off. Sub-second matching (ALRMxSSR.MASKSS > 0) is
  not modelled: the alarm fires at the second's start (logged once).
* Interrupts: WUTF with CR.WUTIE drives EXTI line 22 (RTC_WKUP, IRQ 3), ALRAF/ALRBF with
  ALRAIE/ALRBIE EXTI line 17 (RTC_Alarm, IRQ 41); the EXTI's rising-edge setting decides, as
  on the chip (HAL's __HAL_RTC_WAKEUPTIMER_EXTI_ENABLE_RISING_EDGE). Flags are cleared by
  writing 0 to ISR; a flag not cleared gives no new edge.

Times are the RTC's own (virtual time plus wall time while the core was stopped and the
RTC not frozen by DBG_RTC_STOP): events due during a halt are applied at the resume or
by the machine's stopped-core polling, as the IWDG's.

Owns: the timer's and the alarms' schedule. Must not touch: the calendar (the RTC's).
"""

from __future__ import annotations

import datetime as _dt
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twin.periph.rtc import Rtc

CR, ISR, WUTR, ALRMAR, ALRMBR = 0x08, 0x0C, 0x14, 0x1C, 0x20
ALRMASSR, ALRMBSSR = 0x44, 0x48
CR_WUCKSEL = 7
CR_ALRAE, CR_ALRBE, CR_WUTE = 1 << 8, 1 << 9, 1 << 10
CR_ALRAIE, CR_ALRBIE, CR_WUTIE = 1 << 12, 1 << 13, 1 << 14
CR_FMT = 1 << 6
ISR_ALRAWF, ISR_ALRBWF, ISR_WUTWF = 1, 2, 4
ISR_ALRAF, ISR_ALRBF, ISR_WUTF = 1 << 8, 1 << 9, 1 << 10
ISR_INIT = 1 << 7
EXTI_ALARM, EXTI_WAKEUP = 17, 22
NS = 1_000_000_000


class RtcEvents:
    """The wake-up timer and the two alarms of one RTC (see the module doc)."""

    def __init__(self, rtc: Rtc) -> None:
        self.rtc = rtc
        self._wu: tuple[int, int, int] | None = None  # (start ns, period in RTCCLK ticks, RTCCLK)
        self._wu_k = 0  # wake-ups counted since start
        self._alarm_at: dict[int, int] = {}  # ISR flag → RTC ns of its next match
        self._handle: object | None = None
        self._levels = (False, False)  # EXTI lines 17 and 22 as last driven

    # -------------------------------------------------------------- status bits
    def write_flags(self) -> int:
        """ISR's write-allowed flags: WUTWF/ALRxWF read 1 while the event is off."""
        cr = self.rtc.regs[CR]
        return (
            (0 if cr & CR_ALRAE else ISR_ALRAWF)
            | (0 if cr & CR_ALRBE else ISR_ALRBWF)
            | (0 if cr & CR_WUTE else ISR_WUTWF)
        )

    def wutr_writable(self) -> bool:
        return not self.rtc.regs[CR] & CR_WUTE

    # -------------------------------------------------------------- (re)timing
    def reset(self) -> None:
        self._cancel()
        self._wu, self._wu_k, self._alarm_at = None, 0, {}
        self._drive()

    def retime(self) -> None:
        """CR, WUTR, an alarm register, PRER, INIT or the clock changed: start again from now
        (the flags already set stay)."""
        self._cancel()
        self._wu, self._wu_k = self._wakeup_plan(), 0
        self._alarm_at = {}
        for flag, enable, reg in ((ISR_ALRAF, CR_ALRAE, ALRMAR), (ISR_ALRBF, CR_ALRBE, ALRMBR)):
            if self.rtc.regs[CR] & enable:
                at = self._next_alarm(reg)
                if at is not None:
                    self._alarm_at[flag] = at
        self._drive()
        self._arm()

    def _wakeup_plan(self) -> tuple[int, int, int] | None:
        rtc = self.rtc
        cr = rtc.regs[CR]
        if not cr & CR_WUTE:
            return None
        sel, wut = cr & CR_WUCKSEL, rtc.regs[WUTR] & 0xFFFF
        now = rtc._now_ns()
        if sel < 4:  # RTCCLK/16, /8, /4, /2
            hz = rtc._clock_hz()
            return (now, (wut + 1) * (16 >> sel), hz) if hz else None
        hz = rtc._rate  # ck_spre: the calendar's second, stopped in INIT
        if not hz:
            return None
        div_a, div_s = rtc._periods()
        second = div_a * div_s
        into = rtc._ticks() % second  # ticks since the last boundary
        start = now - into * NS // hz
        count = wut + 1 + (1 << 16 if sel >= 6 else 0)
        return (start, count * second, hz)

    def _wakeup_due(self, k: int) -> int:
        assert self._wu is not None
        start, period, hz = self._wu
        return start + k * period * NS // hz

    def _next_alarm(self, reg: int) -> int | None:
        """The RTC time of the next second start matching alarm ``reg`` (None: never)."""
        rtc = self.rtc
        if not rtc._rate or rtc._base is None:
            return None
        if rtc.regs[ALRMASSR if reg == ALRMAR else ALRMBSSR] >> 24 & 0xF:
            rtc._tell("alrss", "RTC alarm sub-second matching (MASKSS) is not modelled: fires at the second")
        div_a, div_s = rtc._periods()
        second = div_a * div_s
        ticks = rtc._ticks()
        base, _ = rtc._base
        now_sec = base + _dt.timedelta(seconds=ticks // second)
        wday0 = rtc._base[1]
        after = _first_match(
            rtc.regs[reg], now_sec + _dt.timedelta(seconds=1), bool(rtc.regs[CR] & CR_FMT), base, wday0
        )
        if after is None:
            return None
        secs = int((after - base).total_seconds())
        return rtc._anchor_ns + (secs * second - rtc._sub) * NS // rtc._rate

    # -------------------------------------------------------------- events
    def catch_up(self) -> None:
        """Apply every event due by the RTC's time now."""
        if self._wu is None and not self._alarm_at:
            return  # nothing armed (the common case: ISR polled for INITF/RSF)
        rtc = self.rtc
        now = rtc._now_ns()
        changed = False
        if self._wu is not None and now >= self._wakeup_due(self._wu_k + 1):
            start, period, hz = self._wu
            self._wu_k = (now - start) * hz // (period * NS)
            rtc.regs[ISR] |= ISR_WUTF
            changed = True
        for flag, at in list(self._alarm_at.items()):
            if now >= at:
                rtc.regs[ISR] |= flag
                changed = True
                reg = ALRMAR if flag == ISR_ALRAF else ALRMBR
                nxt = self._next_alarm(reg)
                if nxt is None or nxt <= at:
                    del self._alarm_at[flag]
                else:
                    self._alarm_at[flag] = nxt
        if changed:
            self._drive()

    def next_ns(self) -> int | None:
        """RTC time of the next event (None: none)."""
        times = list(self._alarm_at.values())
        if self._wu is not None:
            times.append(self._wakeup_due(self._wu_k + 1))
        return min(times) if times else None

    def _arm(self) -> None:
        self._cancel()
        rtc = self.rtc
        nxt = self.next_ns()
        if nxt is None or rtc.services is None:
            return
        left = max(nxt - rtc._now_ns(), 0)
        cycles = max(1, -(-left * rtc.services.core_hz // NS))
        self._handle = rtc.services.schedule(cycles, self._check)

    def _check(self) -> None:
        self._handle = None
        self.catch_up()
        self._arm()

    def _cancel(self) -> None:
        if self._handle is not None and self.rtc.services is not None:
            self.rtc.services.cancel(self._handle)
        self._handle = None

    def after_reset(self) -> None:
        """A system reset dropped the machine's scheduled events; the RTC goes on."""
        self._handle = None
        self.resumed()

    def resumed(self) -> None:
        """The core runs again: apply what fell due in the stop, re-time on virtual time."""
        self.catch_up()
        self._arm()

    def stopped_left(self) -> float | None:
        """While the core is stopped: apply what is due; seconds to the next event."""
        self.catch_up()
        nxt = self.next_ns()
        return None if nxt is None else (nxt - self.rtc._now_ns()) / NS

    # -------------------------------------------------------------- EXTI
    def flags_written(self) -> None:
        """ISR flags may have been cleared: the EXTI lines follow."""
        self._drive()

    def _drive(self) -> None:
        rtc = self.rtc
        cr, isr = rtc.regs[CR], rtc.regs[ISR]
        alarm = bool((cr & CR_ALRAIE and isr & ISR_ALRAF) or (cr & CR_ALRBIE and isr & ISR_ALRBF))
        wake = bool(cr & CR_WUTIE and isr & ISR_WUTF)
        old, self._levels = self._levels, (alarm, wake)
        if (alarm, wake) == old or rtc.services is None:
            return
        try:
            exti = rtc.services.device("exti")
        except KeyError:
            return
        if alarm != old[0]:
            exti.line_edge(EXTI_ALARM, alarm)  # type: ignore[attr-defined]
        if wake != old[1]:
            exti.line_edge(EXTI_WAKEUP, wake)  # type: ignore[attr-defined]


def _decimal(bcd: int) -> int:
    """A register field's BCD digits as a number (rtc.py's ``_bcd`` goes the other way)."""
    return (bcd >> 4) * 10 + (bcd & 0xF)


def _first_match(
    alrm: int, start: _dt.datetime, fmt12: bool, base: _dt.datetime, wday0: int
) -> _dt.datetime | None:
    """The first second at or after ``start`` whose fields match alarm register ``alrm``
    (the week day counted from ``base``, which has week day ``wday0``)."""
    secs = None if alrm & 1 << 7 else _decimal(alrm & 0x7F)
    mins = None if alrm & 1 << 15 else _decimal(alrm >> 8 & 0x7F)
    hours = None if alrm & 1 << 23 else _decimal(alrm >> 16 & 0x3F)
    if hours is not None and fmt12:
        hours = hours % 12 + (12 if alrm & 1 << 22 else 0)
    day = None if alrm & 1 << 31 else alrm >> 24 & 0x3F
    by_wday = bool(alrm & 1 << 30)
    day = (day & 0xF if by_wday else _decimal(day)) if day is not None else None
    for d in range(8 if by_wday else 62 if day is not None else 2):
        date = start.date() + _dt.timedelta(days=d)
        if day is not None:
            if by_wday:
                wday = (wday0 - 1 + (date - base.date()).days) % 7 + 1 if wday0 else 0
                if wday != day:
                    continue
            elif date.day != day:
                continue
        t = _time_match(secs, mins, hours, start.time() if d == 0 else _dt.time(0, 0, 0))
        if t is not None:
            return _dt.datetime.combine(date, t)
    return None


def _time_match(secs: int | None, mins: int | None, hours: int | None, at: _dt.time) -> _dt.time | None:
    """The first time of day at or after ``at`` with these fields (None: any), or None."""
    for h in [hours] if hours is not None else range(at.hour, 24):
        if h < at.hour:
            continue
        for m in [mins] if mins is not None else range(60):
            if (h, m) < (at.hour, at.minute):
                continue
            for s in [secs] if secs is not None else range(60):
                if (h, m, s) >= (at.hour, at.minute, at.second) and s < 60 and m < 60 and h < 24:
                    return _dt.time(h, m, s)
    return None
