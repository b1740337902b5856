"""The timers' time base on virtual time: TIM6/TIM7 (basic) and the time-base part of TIM1-5
and TIM8-14 (prescaler, auto-reload, update event and its interrupt).

A HAL project takes its tick from one of them when SysTick is left to an RTOS (CubeMX's
"Timebase Source: TIMx", ST's FreeRTOS examples use TIM6), so each counts up from PSC and
ARR like the chip and raises its update interrupt. Not modelled in the general-purpose and
advanced timers: capture/compare, PWM and their interrupts, the slave modes, down and
centre-aligned counting, break, DMA bursts; their registers keep what is written, and a
configuration that needs them is logged once. One input capture is modelled, because ST's
IWDG code calibrates the LSI with it: TIM5 channel 4 remapped to the LSI or the LSE
(TIM5_OR.TI4_RMP), capturing CNT into CCR4 on its edges (IC4PSC, both edges with CC4P and
CC4NP), CC4IF/CC4OF and the interrupt with CC4IE. TIM2 and TIM5 count on 32 bits;
TIM1/TIM8's repetition counter (RCR) makes an update event every RCR + 1 overflows.

Owns: the timers' registers and update events. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.device import Device, merge_word
from twin.periph.base import ClockGate, StoppedTime

CR1, CR2, SMCR, DIER, SR, EGR, CNT, PSC, ARR, RCR = (
    0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x24, 0x28, 0x2C, 0x30,
)  # fmt: skip
#: general-purpose registers kept as written (CCMR1/2, CCER, CCR1-4, BDTR, DCR, DMAR, OR,
#: CCMR3, CCR5/6 of TIM1/8)
_KEPT = (0x18, 0x1C, 0x20, 0x34, 0x38, 0x3C, 0x40, 0x44, 0x48, 0x4C, 0x50, 0x54, 0x58, 0x5C)
CCMR2, CCER, CCR4, TIM5_OR = 0x1C, 0x20, 0x40, 0x50
#: TIM5_OR.TI4_RMP → the clock channel 4 sees (RM0410: 01 LSI, 10 LSE)
_TI4_CLOCKS = {1: 32_000, 2: 32_768}


@dataclass(frozen=True)
class TimerSpec:
    """Where a timer is and what it has (RM0410 memory map, vector table, RCC, DBGMCU)."""

    name: str
    base: int
    irq: int  # its update interrupt (shared: TIM1_UP_TIM10, TIM8_UP_TIM13)
    apb2: bool  # clocked from APB2 (RCC_APB2ENR, DBGMCU_APB2_FZ), else APB1
    bit: int  # its enable bit in RCC_APBxENR and its stop bit in DBGMCU_APBx_FZ
    bits: int = 16  # counter width
    general: bool = True  # more than the basic timers' registers
    repetition: bool = False  # RCR (TIM1, TIM8)


SPECS = (
    TimerSpec("tim2", 0x40000000, 28, False, 0, 32),
    TimerSpec("tim3", 0x40000400, 29, False, 1),
    TimerSpec("tim4", 0x40000800, 30, False, 2),
    TimerSpec("tim5", 0x40000C00, 50, False, 3, 32),
    TimerSpec("tim6", 0x40001000, 54, False, 4, general=False),
    TimerSpec("tim7", 0x40001400, 55, False, 5, general=False),
    TimerSpec("tim12", 0x40001800, 43, False, 6),
    TimerSpec("tim13", 0x40001C00, 44, False, 7),
    TimerSpec("tim14", 0x40002000, 45, False, 8),
    TimerSpec("tim1", 0x40010000, 25, True, 0, repetition=True),
    TimerSpec("tim8", 0x40010400, 44, True, 1, repetition=True),
    TimerSpec("tim9", 0x40014000, 24, True, 16),
    TimerSpec("tim10", 0x40014400, 25, True, 17),
    TimerSpec("tim11", 0x40014800, 26, True, 18),
)


class SharedLine:
    """An interrupt line two timers drive (TIM1/TIM10, TIM8/TIM13): asserted while either is."""

    def __init__(self) -> None:
        self.levels: dict[str, bool] = {}

    def level(self, name: str, level: bool) -> bool:
        self.levels[name] = level
        return any(self.levels.values())


class BasicTimer(Device):
    """Up-counter with prescaler and auto-reload; UIF and its IRQ on overflow.

    The counter clock is PCLKx×2 (its APB prescaler ≠ 1) or HCLK, derived from the core clock
    and the RCC's APB divider; time is counted in core cycles.

    The APB clock keeps running while the core is in debug halt or locked up, and so does the
    timer unless its DBGMCU_APBx_FZ.DBG_TIMx_STOP bit is set (halt only). Virtual time stands
    still then, so the timer adds the wall time (:class:`StoppedTime`) converted to core
    cycles at the current clock: CNT moves under a debugger's eyes and UIF (with its
    interrupt pending) is set when the wall time ran the counter over. A PSC change loaded
    by such an update applies from the resume on.
    """

    size = 0x400

    def __init__(self, name: str, base: int, irq: int, spec: TimerSpec | None = None) -> None:
        super().__init__()
        spec = spec or next(s for s in SPECS if s.name == name)
        self.spec = spec
        self.gate = ClockGate(self, 0x44 if spec.apb2 else 0x40, spec.bit)
        self.name, self.base, self.irq = name, base, irq
        self.line: SharedLine | None = None  # set when another timer drives the same line
        self.handle: object | None = None
        self._capture: object | None = None  # TIM5 CH4's next edge (see _arm_capture)
        self.stopped = StoppedTime(self, 1 << spec.bit, "apb2_fz" if spec.apb2 else "apb1_fz")
        self._mask = (1 << spec.bits) - 1
        self._extra_cycles = 0  # wall time counted while stopped, folded into cycles
        self._folded_s = 0.0
        self._logged: set[str] = set()
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self._cancel_capture()
        self.cr1 = self.cr2 = self.dier = self.sr = self.smcr = 0
        self.psc = 0
        self.arr = self._mask
        self.rcr = self.rep = 0
        self.kept: dict[int, int] = {}
        self.cnt_base = 0
        self.start = 0
        self.psc_active = 0
        if self.services is not None:
            self._irq()

    def _cycles_per_tick(self) -> int:
        div = 1
        try:
            rcc = self.services.device("rcc") if self.services else None
            if rcc is not None:
                pclk = rcc.pclk2_hz() if self.spec.apb2 else rcc.pclk1_hz()  # type: ignore[attr-defined]
                apb = rcc.hclk_hz() // max(pclk, 1)  # type: ignore[attr-defined]
                div = 1 if apb == 1 else apb // 2
        except KeyError:
            pass
        return max(div, 1) * (self.psc_active + 1)

    def _unschedule(self, handle: object | None) -> None:
        if handle is not None and self.services is not None:
            self.services.cancel(handle)

    def _cancel(self) -> None:
        self._unschedule(self.handle)
        self.handle = None

    def _now(self) -> int:
        """The timer's time in core cycles: virtual time plus wall time counted while stopped."""
        assert self.services is not None
        live = self.stopped.seconds() - self._folded_s
        return self.services.now_cycles() + self._extra_cycles + int(live * self.services.core_hz)

    def _fold(self) -> None:
        """Turn the wall seconds counted so far into cycles at the current clock."""
        if self.services is None:
            return
        secs = self.stopped.seconds()
        self._extra_cycles += int((secs - self._folded_s) * self.services.core_hz)
        self._folded_s = secs

    def counter(self) -> int:
        """Current CNT."""
        if not self.cr1 & 1 or self.services is None:
            return self.cnt_base
        ticks = (self._now() - self.start) // self._cycles_per_tick()
        return (self.cnt_base + ticks) % (self.arr + 1) if self.arr else 0

    def _arm(self) -> None:
        self._cancel()
        if not self.cr1 & 1 or self.services is None or self.arr == 0:
            return
        now = self._now()
        self.cnt_base = self.counter()
        self.start = now
        left = (self.arr + 1 - self.cnt_base) * self._cycles_per_tick()
        self.handle = self.services.schedule(left, self._overflow)

    def _update(self, overflows: int = 1) -> bool:
        """``overflows`` counter overflows: True if they made an update event (the repetition
        counter reached 0); UDIS blocks the event."""
        if self.spec.repetition:
            if overflows <= self.rep:
                self.rep -= overflows
                return False
            self.rep = self.rcr - (overflows - self.rep - 1) % (self.rcr + 1)
        if self.cr1 & 2:  # UDIS
            return False
        self.psc_active = self.psc
        self.sr |= 1
        return True

    def _overflow(self) -> None:
        self.handle = None
        assert self.services is not None
        self.cnt_base, self.start = 0, self._now()
        event = self._update()
        if event:
            self._irq()
        if event and self.cr1 & 0x8:  # OPM: stop at the update event
            self.cr1 &= ~1
        else:
            self._arm()

    def _catch_up(self) -> None:
        """Apply the overflows the wall time caused while the core was stopped."""
        if not self.cr1 & 1 or self.services is None or self.arr == 0:
            return
        cpt = self._cycles_per_tick()
        elapsed = self._now() - self.start
        total = self.cnt_base + elapsed // cpt
        if total <= self.arr:
            return
        if not self._update(total // (self.arr + 1)):
            self.cnt_base = total % (self.arr + 1)
            self.start = self._now() - elapsed % cpt
            return
        if self.cr1 & 0x8:  # OPM: stopped at the update
            self.cr1 &= ~1
            self.cnt_base = 0
            self._cancel()
        else:
            self.cnt_base = total % (self.arr + 1)
            self.start = self._now() - elapsed % cpt
        self._irq()

    def core_stopped(self, state: str | None) -> None:
        """Machine hook: the core is running (None), in debug halt or locked up; also called
        again when the DBGMCU freeze bits change."""
        self._fold()
        self.stopped.update(state)
        if state is None:
            self._catch_up()
            if self.cr1 & 1:
                self._arm()  # back on virtual time

    def stopped_tick(self) -> float | None:
        """Machine hook, polled while the core is stopped: apply overflows; return the
        seconds until the next one (None: not counting)."""
        if not self.cr1 & 1 or not self.stopped.counting or self.services is None or self.arr == 0:
            return None
        self._catch_up()
        if not self.cr1 & 1:
            return None
        left = (self.arr + 1 - self.counter()) * self._cycles_per_tick()
        return left / self.services.core_hz

    def _irq(self) -> None:
        if self.services is not None:
            level = bool(self.sr & self.dier & 0x11)  # UIF / CC4IF (TIM5's capture)
            if self.line is not None:
                level = self.line.level(self.name, level)
            self.services.set_irq(self.irq, level)

    def _log_once(self, what: str) -> None:
        if what not in self._logged and self.services is not None:
            self._logged.add(what)
            self.services.log(f"{what} is not modelled (the time base and its update interrupt are)")

    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        off = offset & ~3
        value = {
            CR1: self.cr1,
            CR2: self.cr2,
            DIER: self.dier,
            SR: self.sr,
            EGR: 0,
            CNT: self.counter(),
            PSC: self.psc,
            ARR: self.arr,
        }.get(off)
        if value is None and self.spec.general:
            value = {SMCR: self.smcr, RCR: self.rcr if self.spec.repetition else None}.get(off)
            if value is None and off in _KEPT:
                value = self.kept.get(off, 0)
                if off == CCR4 and self.sr & (1 << 4):  # reading a capture clears CC4IF
                    self.sr &= ~(1 << 4)
                    self._irq()
        if value is None:
            self.unmodelled(off, "read")
            return 0
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        off = offset & ~3
        if off == CR1:
            self._write_cr1(merge_word(self.cr1, offset, size, value))
        elif off == CR2:
            self.cr2 = value & 0x70
        elif off == DIER:
            self.dier = value & (0x7FFF if self.spec.general else 0x101)
            if self.dier & 0xFE & ~(0x10 if self.name == "tim5" else 0):  # TIM5's CC4IE is
                self._log_once("a capture/compare, trigger or break interrupt")
            self._irq()
        elif off == SR:
            self.sr &= value  # rc_w0: a 1 leaves the flag
            self._irq()
        elif off == EGR:
            if value & 1:  # UG: reinitialise counter, load PSC (and RCR)
                self.psc_active = self.psc
                self.rep = self.rcr
                self.cnt_base = 0
                if self.services is not None:
                    self.start = self._now()
                if not self.cr1 & 0x4:  # URS=0: UG also sets UIF
                    self.sr |= 1
                    self._irq()
                self._arm()
        elif off == CNT:
            self.cnt_base = value & self._mask
            if self.services is not None:
                self.start = self._now()
            self._arm()
        elif off == PSC:
            self.psc = value & 0xFFFF
        elif off == ARR:
            self.arr = value & self._mask
            self._arm()
        else:
            self._write_general(off, offset, size, value)

    def _write_cr1(self, value: int) -> None:
        was = self.cr1 & 1
        if was:
            self.cnt_base, self.start = self.counter(), self._now() if self.services else 0
        self.cr1 = value & (0xBFF if self.spec.general else 0x8F)
        if self.cr1 & 0x70:  # DIR, CMS
            self._log_once("down or centre-aligned counting (it counts up)")
        if self.cr1 & 1 and not was and self.services is not None:
            self.start = self._now()
        if self.cr1 & 1:
            self._arm()
        else:
            self._cancel()

    def _write_general(self, off: int, offset: int, size: int, value: int) -> None:
        if not self.spec.general:
            self.unmodelled(off, "write")
        elif off == SMCR:
            self.smcr = merge_word(self.smcr, offset, size, value)
            if self.smcr & 0x10007:  # SMS
                self._log_once("a slave mode")
        elif off == RCR and self.spec.repetition:
            self.rcr = value & 0xFFFF
        elif off in _KEPT:
            self.kept[off] = merge_word(self.kept.get(off, 0), offset, size, value)
            if off in (CCMR2, CCER, TIM5_OR) and self.name == "tim5":
                self._arm_capture()
            if off in (0x18, CCMR2, CCER) and self.kept[off] & self._unmodelled_cc(off):
                self._log_once("capture/compare (CCMRx/CCER) but TIM5's capture of the LSI/LSE")
        else:
            self.unmodelled(off, "write")

    # ------------------------------------------------------------------ TIM5 CH4 capture
    def _unmodelled_cc(self, off: int) -> int:
        """The bits of CCMR1/CCMR2/CCER that configure something not modelled: all of them,
        but TIM5's channel 4 (CCMR2 8-15, CCER 12-15)."""
        if self.name != "tim5" or off == 0x18:
            return 0xFFFFFFFF
        return 0xFFFF00FF if off == CCMR2 else 0xFFFF0FFF

    def _capturing(self) -> int:
        """The edges per second TIM5's channel 4 captures (0: none): TI4 remapped to the
        LSI or LSE, CC4S = TI4, CC4E, divided by IC4PSC, doubled on both edges."""
        k = self.kept
        if self.name != "tim5" or not k.get(CCER, 0) & (1 << 12) or (k.get(CCMR2, 0) >> 8) & 3 != 1:
            return 0
        hz = _TI4_CLOCKS.get((k.get(TIM5_OR, 0) >> 6) & 3, 0)
        both = k.get(CCER, 0) & 0xA000 == 0xA000
        return (hz * (2 if both else 1)) >> ((k.get(CCMR2, 0) >> 10) & 3)

    def _cancel_capture(self) -> None:
        self._unschedule(self._capture)
        self._capture = None

    def _arm_capture(self) -> None:
        self._cancel_capture()
        rate = self._capturing()
        if rate and self.services is not None:
            self._capture = self.services.schedule(max(self.services.core_hz // rate, 1), self._captured)

    def _captured(self) -> None:
        self._capture = None
        if self.sr & (1 << 4):
            self.sr |= 1 << 12  # CC4OF: the last one was not read
        self.kept[CCR4] = self.counter()
        self.sr |= 1 << 4
        self._irq()
        self._arm_capture()


def basic_timers() -> list[BasicTimer]:
    """Fresh TIM6 (IRQ 54, TIM6_DAC) and TIM7 (IRQ 55)."""
    return [BasicTimer("tim6", 0x40001000, 54), BasicTimer("tim7", 0x40001400, 55)]


def all_timers() -> list[BasicTimer]:
    """Fresh TIM1-TIM14, the update lines TIM1/TIM10 and TIM8/TIM13 share wired together."""
    timers = [BasicTimer(s.name, s.base, s.irq, s) for s in SPECS]
    for irq in {t.irq for t in timers}:
        sharing = [t for t in timers if t.irq == irq]
        if len(sharing) > 1:
            line = SharedLine()
            for t in sharing:
                t.line = line
    return timers
