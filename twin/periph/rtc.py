"""RTC (0x4000_2800): the 32 backup registers, write protection, the INIT handshake.

What a bootloader uses the RTC block for is the backup registers: "update requested" or
"boot count" flags that survive a software reset (``HAL_PWR_EnableBkUpAccess`` then
``HAL_RTCEx_BKUPWrite(&hrtc, RTC_BKP_DR0, MAGIC)`` then ``NVIC_SystemReset``). Modelled:

* BKP0R..BKP31R (+0x50..+0xCC): written only while PWR_CR1.DBP = 1 (else ignored, logged
  once with the fix); kept across system resets (NRST, SYSRESETREQ, watchdogs); cleared by a
  backup-domain reset (RCC_BDCR.BDRST) and by a power cut — the NUCLEO-F767ZI powers VBAT
  from VDD (chosen, UM1974 jumper default; a coin cell would keep them).
* The other RTC registers are in the backup domain too: writes need DBP, and all but ISR's
  flag bits and the backup registers need the write-protection unlock (WPR 0xCA then 0x53;
  any other value locks again). TR, DR and PRER take writes only in initialisation mode
  (ISR.INIT set → INITF reads 1 at once). RSF, cleared by software, reads 1 again at once
  (the shadow registers are always in sync).
* The calendar advances while RCC_BDCR.RTCEN is set and the clock RTCSEL picks is ready
  (LSE 32.768 kHz, LSI 32 kHz, HSE / RCC_CFGR.RTCPRE): one second per
  (PREDIV_A+1)(PREDIV_S+1) RTCCLK periods of the RTC's time, which is virtual time plus the
  wall time that passes while the core is stopped (halt unless DBGMCU_APB1_FZ.DBG_RTC_STOP,
  lockup always: the RTC is clocked apart from the core). It keeps running over system
  resets (an RTC on LSI stops there, since a system reset turns the LSI off). INIT stops it
  and resets the prescalers; leaving INIT restarts it from TR/DR. SSR counts PREDIV_S down
  to 0 within the second. Seconds roll into minutes, hours (24 h, or 12 h with PM when
  CR.FMT = 1), days of the month (leap years: year % 4 == 0, as the chip), months and
  years 00..99; the week day counts 1..7 on its own (the chip does not check it).
* Shadow registers (CR.BYPSHAD = 0): reading SSR or TR latches the calendar, DR unlatches
  it, as on the chip — firmware that reads TR and never DR sees the time stand still there
  too. A TR/DR the calendar cannot count from (bad BCD, 30 February) does not advance
  (logged once). The wake-up timer and alarms A/B (EXTI lines 22 and 17) are
  twin/periph/rtc_events.py's; tamper and time stamps never fire.

Owns: the RTC's registers, calendar and backup registers. Must not touch: the machine
beyond its Services.
"""

from __future__ import annotations

import datetime as _dt

from twin.device import Device, merge_word, sub_word
from twin.periph.base import StoppedTime
from twin.periph.rcc import HSE_HZ
from twin.periph.rtc_events import RtcEvents

TR, DR, CR, ISR, PRER, WUTR, ALRMAR, ALRMBR, WPR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20, 0x24
BKP0R, BKP_COUNT = 0x50, 32
RESET = {
    TR: 0,
    DR: 0x00002101,
    CR: 0,
    ISR: 0x00000007,
    PRER: 0x007F00FF,
    WUTR: 0x0000FFFF,
    ALRMAR: 0,
    ALRMBR: 0,
    0x28: 0,
    0x2C: 0,
    0x30: 0,
    0x34: 0,
    0x38: 0,
    0x3C: 0,
    0x40: 0,
    0x44: 0,
    0x48: 0,
    0x4C: 0,
}
ISR_INIT, ISR_INITF, ISR_RSF, ISR_INITS = 1 << 7, 1 << 6, 1 << 5, 1 << 4
ISR_WRITABLE = ISR_INIT | ISR_RSF | 0x0001FF00  # INIT, RSF and the clear-by-0 event flags
NEEDS_INIT = (TR, DR, PRER)
#: registers writable only while their event is off (CR bit): WUTR (WUTE), ALRMxR (ALRxE)
LOCKED_WHILE_ON = {WUTR: 1 << 10, ALRMAR: 1 << 8, ALRMBR: 1 << 9}
SSR = 0x28
CR_FMT, CR_BYPSHAD = 1 << 6, 1 << 5
DBG_RTC_STOP = 1 << 10
LSE_HZ, LSI_HZ = 32_768, 32_000
RCC_CR, RCC_CFGR, RCC_CSR, RCC_BDCR = 0x00, 0x08, 0x74, 0x70


def _bcd(v: int) -> int:
    return (v // 10) << 4 | (v % 10)


def _unbcd(v: int, bits_tens: int) -> int:
    tens, units = v >> 4 & ((1 << bits_tens) - 1), v & 0xF
    if units > 9:
        raise ValueError("BCD digit > 9")
    return tens * 10 + units


def decode_calendar(tr: int, dr: int, fmt12: bool) -> tuple[_dt.datetime, int]:
    """(date and time, week day) from TR/DR; ValueError when the chip could not count it."""
    hours = _unbcd(tr >> 16, 2)
    if fmt12:
        if not 1 <= hours <= 12:
            raise ValueError("12 h hour out of 1..12")
        hours = hours % 12 + (12 if tr & (1 << 22) else 0)
    when = _dt.datetime(
        2000 + _unbcd(dr >> 16, 4),
        _unbcd(dr >> 8, 1),
        _unbcd(dr, 2),
        hours,
        _unbcd(tr >> 8, 3),
        _unbcd(tr, 3),
    )
    return when, dr >> 13 & 7


def encode_calendar(when: _dt.datetime, weekday: int, fmt12: bool) -> tuple[int, int]:
    """TR and DR for a date and time (years 2000..2099) and week day."""
    hours, pm = when.hour, 0
    if fmt12:
        pm = int(hours >= 12)
        hours = hours % 12 or 12
    tr = pm << 22 | _bcd(hours) << 16 | _bcd(when.minute) << 8 | _bcd(when.second)
    dr = _bcd(when.year % 100) << 16 | (weekday & 7) << 13 | _bcd(when.month) << 8 | _bcd(when.day)
    return tr, dr


class Rtc(Device):
    """Backup registers plus enough of the RTC for HAL_RTC_Init/HAL_RTCEx_BKUPWrite."""

    name, base, size = "rtc", 0x40002800, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.bkp = [0] * BKP_COUNT
        self.regs: dict[int, int] = dict(RESET)
        self._unlock = 0  # 0 locked, 1 after 0xCA, 2 unlocked
        self.ignored_writes = 0
        self._told: set[str] = set()
        self.stopped = StoppedTime(self, DBG_RTC_STOP, in_stop=True)
        self._rate = 0  # RTCCLK Hz while the calendar counts, else 0
        self._anchor_ns = 0  # the RTC's time when TR/DR/_sub were current
        self._sub = 0  # RTCCLK periods into the current second then
        self._base: tuple[_dt.datetime, int] | None = None
        self._latch: tuple[int, int, int] | None = None
        self._ssr_hold = 0  # SSR while not counting (0 after power-on)
        self.events = RtcEvents(self)

    # -------------------------------------------------------------- resets
    def reset(self, kind: str) -> None:
        """Only power-on clears the backup domain; a system reset keeps it."""
        if kind == "power":
            self.backup_domain_reset()
        self._unlock = 0
        self._latch = None
        self.clock_changed()  # a system reset turns the LSI off
        self.events.after_reset()  # the machine dropped the scheduled events

    def backup_domain_reset(self) -> None:
        """RCC_BDCR.BDRST (or power-on): backup registers and RTC to reset values."""
        self.bkp = [0] * BKP_COUNT
        self.regs = dict(RESET)
        self._unlock = 0
        self._rate, self._sub, self._base, self._latch, self._ssr_hold = 0, 0, None, None, 0
        self.events.reset()

    # -------------------------------------------------------------- calendar
    def _now_ns(self) -> int:
        """The RTC's time: virtual time plus wall time counted while the core was stopped."""
        if self.services is None:
            return 0
        return self.services.now_ns() + int(self.stopped.seconds() * 1e9)

    def _clock_hz(self) -> int:
        """RTCCLK now, or 0 when RTCEN is clear or the selected clock is not ready."""
        if self.services is None:
            return 0
        try:
            rcc = self.services.device("rcc")
        except KeyError:
            return 0
        regs = getattr(rcc, "regs", {})
        bdcr = regs.get(RCC_BDCR, 0)
        if not bdcr & (1 << 15):  # RTCEN
            return 0
        sel = bdcr >> 8 & 3
        if sel == 1:
            return LSE_HZ if bdcr & 2 else 0  # LSERDY
        if sel == 2:
            return LSI_HZ if regs.get(RCC_CSR, 0) & 2 else 0  # LSIRDY
        if sel == 3 and regs.get(RCC_CR, 0) & (1 << 17):  # HSERDY
            pre = regs.get(RCC_CFGR, 0) >> 16 & 0x1F
            return getattr(rcc, "hse_hz", HSE_HZ) // pre if pre >= 2 else 0
        return 0

    def _periods(self) -> tuple[int, int]:
        prer = self.regs[PRER]
        return (prer >> 16 & 0x7F) + 1, (prer & 0x7FFF) + 1

    def _ticks(self) -> int:
        """RTCCLK periods since the start of the second TR/DR hold (calendar counting)."""
        return self._sub + (self._now_ns() - self._anchor_ns) * self._rate // 1_000_000_000

    def _current(self) -> tuple[int, int, int]:
        """(TR, DR, SSR) now."""
        div_a, div_s = self._periods()
        if not self._rate or self._base is None:
            return self.regs[TR], self.regs[DR], self._ssr_hold
        ticks = self._ticks()
        secs, rem = divmod(ticks, div_a * div_s)
        when, wday = self._base
        later = when + _dt.timedelta(seconds=secs)
        days = (later.date() - when.date()).days
        if later.year > 2099:  # the year counter wraps to 00
            later = later.replace(year=2000 + (later.year - 2000) % 100)
        wday = (wday - 1 + days) % 7 + 1 if wday else 0
        tr, dr = encode_calendar(later, wday, bool(self.regs[CR] & CR_FMT))
        return tr, dr, div_s - 1 - rem // div_a

    def _materialize(self) -> None:
        """Fold the time counted so far into TR/DR and the prescaler position."""
        if not self._rate or self._base is None:
            return
        div_a, div_s = self._periods()
        ticks = self._ticks()
        self.regs[TR], self.regs[DR], self._ssr_hold = self._current()
        self._sub = ticks % (div_a * div_s)
        self._anchor_ns = self._now_ns()

    def _reanchor(self) -> None:
        """Count from TR/DR from now on, at the current clock (0: stopped)."""
        self._anchor_ns = self._now_ns()
        rate = 0 if self.regs[ISR] & ISR_INIT else self._clock_hz()
        self._base = None
        if rate:
            try:
                self._base = decode_calendar(self.regs[TR], self.regs[DR], bool(self.regs[CR] & CR_FMT))
            except ValueError as exc:
                self._tell(
                    "badcal",
                    f"calendar not counting: TR=0x{self.regs[TR]:06X} "
                    f"DR=0x{self.regs[DR]:06X} is not a valid time/date ({exc})",
                )
                rate = 0
        self._rate = rate

    def clock_changed(self) -> None:
        """The RCC changed RTCEN, RTCSEL or an oscillator (or reset): re-time the calendar."""
        if self._rate and self._rate == self._clock_hz() and not self.regs[ISR] & ISR_INIT:
            return  # unchanged: keep counting
        self._materialize()
        self._reanchor()
        self.events.retime()

    def core_stopped(self, state: str | None) -> None:
        """Machine hook: the core runs (None), is halted or locked up; the RTC's clock keeps
        running then unless DBG_RTC_STOP freezes it in a halt."""
        self.stopped.update(state)
        if state is None:
            self.events.resumed()

    def stopped_tick(self) -> float | None:
        """Machine hook while the core is stopped: the wake-up timer and alarms fire on the
        RTC's time; seconds to the next one (None: none)."""
        return self.events.stopped_left() if self.stopped.counting else None

    # -------------------------------------------------------------- access rules
    def _dbp(self) -> bool:
        if self.services is None:
            return True
        try:
            pwr = self.services.device("pwr")
        except KeyError:
            return True
        return bool(getattr(pwr, "dbp", True))

    def _tell(self, key: str, message: str) -> None:
        if key not in self._told and self.services is not None:
            self._told.add(key)
            self.services.log(message)

    def _ignored(self, offset: int, why: str, fix: str) -> None:
        self.ignored_writes += 1
        self._tell(why, f"write to RTC +0x{offset:02X} ignored: {why}; {fix}")

    # -------------------------------------------------------------- registers
    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if BKP0R <= aligned < BKP0R + 4 * BKP_COUNT:
            value = self.bkp[(aligned - BKP0R) // 4]
        elif aligned == WPR:
            value = 0  # write-only
        elif aligned in self.regs:
            value = self.regs[aligned]
            if aligned == ISR:
                self.events.catch_up()
                value = (self.regs[ISR] & ~7) | ISR_RSF | self.events.write_flags()
                if value & ISR_INIT:
                    value |= ISR_INITF
                if self.regs[DR] & 0x00FF0000:
                    value |= ISR_INITS
            elif aligned in (TR, DR, SSR):
                value = self._read_calendar(aligned)
        else:
            self.unmodelled(aligned, "read")
            return 0
        return sub_word(value, offset, size)

    def _read_calendar(self, aligned: int) -> int:
        if self.regs[CR] & CR_BYPSHAD:
            tr, dr, ssr = self._current()
        else:
            if self._latch is None:
                self._latch = self._current()
            tr, dr, ssr = self._latch
            if aligned == DR:
                self._latch = None  # reading DR unlocks the shadows
        return {TR: tr, DR: dr, SSR: ssr}[aligned]

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        in_bkp = BKP0R <= aligned < BKP0R + 4 * BKP_COUNT
        if not in_bkp and aligned != WPR and aligned not in self.regs:
            self.unmodelled(aligned, "write")
            return
        if not self._dbp():
            self._ignored(
                aligned,
                "the backup domain is write-protected (PWR_CR1.DBP = 0)",
                "set PWR_CR1.DBP first (HAL_PWR_EnableBkUpAccess)",
            )
            return
        if in_bkp:
            i = (aligned - BKP0R) // 4
            self.bkp[i] = merge_word(self.bkp[i], offset, size, value) if size != 4 else value & 0xFFFFFFFF
            return
        if aligned == WPR:
            key = value & 0xFF
            self._unlock = 1 if key == 0xCA else 2 if key == 0x53 and self._unlock == 1 else 0
            return
        old = self.regs[aligned]
        value = merge_word(old, offset, size, value) if size != 4 else value & 0xFFFFFFFF
        if aligned == ISR:
            # event flags are cleared by writing 0; INIT needs the unlock
            flags = old & 0x0001FF00 & value
            init = old & ISR_INIT
            if self._unlock == 2:
                init = value & ISR_INIT
            elif (value ^ old) & ISR_INIT:
                self._ignored(
                    ISR,
                    "RTC registers are write-protected (RTC_WPR)",
                    "write 0xCA then 0x53 to RTC_WPR first",
                )
            if init and not old & ISR_INIT:  # entering INIT: stop, reset prescalers
                self._materialize()
                self._sub, self._rate, self._latch = 0, 0, None
                self._ssr_hold = self._periods()[1] - 1  # the synchronous prescaler reloads
            self.regs[ISR] = (old & ~ISR_WRITABLE) | flags | init
            if old & ISR_INIT and not init:  # leaving INIT: count from TR/DR
                self._reanchor()
            if (old ^ init) & ISR_INIT:
                self.events.retime()  # ck_spre and the alarms follow the calendar
            else:
                self.events.flags_written()
            return
        if self._unlock != 2:
            self._ignored(
                aligned,
                "RTC registers are write-protected (RTC_WPR)",
                "write 0xCA then 0x53 to RTC_WPR first",
            )
            return
        if aligned in NEEDS_INIT and not self.regs[ISR] & ISR_INIT:
            self._ignored(
                aligned,
                "TR/DR/PRER change only in initialisation mode",
                "set RTC_ISR.INIT and wait for INITF first",
            )
            return
        if aligned in LOCKED_WHILE_ON and self.regs[CR] & LOCKED_WHILE_ON[aligned]:
            self._ignored(
                aligned,
                "the wake-up timer's WUTR / an alarm's ALRMxR change only while it is off",
                "clear RTC_CR.WUTE / ALRxE and wait for ISR.WUTWF / ALRxWF first",
            )
            return
        if aligned in (CR, PRER):
            self._materialize()
            self.regs[aligned] = value
            self._reanchor()
        else:
            self.regs[aligned] = value
        if aligned in (CR, PRER, WUTR, ALRMAR, ALRMBR):
            self.events.retime()

    def snapshot(self) -> dict[str, object]:
        return {
            "bkp": [f"0x{v:08X}" for v in self.bkp],
            "ignored_writes": self.ignored_writes,
            "unlocked": self._unlock == 2,
            "init": bool(self.regs[ISR] & ISR_INIT),
            "rtcclk_hz": self._rate,
        }
