"""Basic timers TIM6/TIM7 (APB1 ×2 clock) on virtual time: update event + interrupt.

Owns: TIM6/TIM7's registers and update events. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

from twin.device import Device, merge_word
from twin.periph.base import ClockGate, StoppedTime

CR1, CR2, DIER, SR, EGR, CNT, PSC, ARR = 0x00, 0x04, 0x0C, 0x10, 0x14, 0x24, 0x28, 0x2C


class BasicTimer(Device):
    """Up-counter with prescaler and auto-reload; UIF and its IRQ on overflow.

    The counter clock is PCLK1×2 (APB1 prescaler ≠ 1) or HCLK, derived from the core clock
    and the RCC's APB1 divider; time is counted in core cycles.

    The APB clock keeps running while the core is in debug halt or locked up, and so does the
    timer unless DBGMCU_APB1_FZ.DBG_TIM6_STOP / DBG_TIM7_STOP is set (halt only). Virtual time
    stands still then, so the timer adds the wall time (:class:`StoppedTime`) converted to
    core cycles at the current clock: CNT moves under a debugger's eyes and UIF (with its
    interrupt pending) is set when the wall time ran the counter over. A PSC change loaded
    by such an update applies from the resume on.
    """

    size = 0x400

    def __init__(self, name: str, base: int, irq: int) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x40, 4 if name == "tim6" else 5)  # RCC_APB1ENR.TIM6EN/TIM7EN
        self.name, self.base, self.irq = name, base, irq
        self.handle: object | None = None
        # DBGMCU_APB1_FZ.DBG_TIM6_STOP (bit 4) / DBG_TIM7_STOP (bit 5)
        self.stopped = StoppedTime(self, 1 << (4 if name == "tim6" else 5))
        self._extra_cycles = 0  # wall time counted while stopped, folded into cycles
        self._folded_s = 0.0
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self.cr1 = self.cr2 = self.dier = self.sr = 0
        self.psc = 0
        self.arr = 0xFFFF
        self.cnt_base = 0
        self.start = 0
        self.psc_active = 0
        if self.services is not None:
            self.services.set_irq(self.irq, False)

    def _cycles_per_tick(self) -> int:
        div = 1
        try:
            rcc = self.services.device("rcc") if self.services else None
            if rcc is not None:
                apb = rcc.hclk_hz() // max(rcc.pclk1_hz(), 1)  # type: ignore[attr-defined]
                div = 1 if apb == 1 else apb // 2
        except KeyError:
            pass
        return max(div, 1) * (self.psc_active + 1)

    def _cancel(self) -> None:
        if self.handle is not None and self.services is not None:
            self.services.cancel(self.handle)
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

    def _overflow(self) -> None:
        self.handle = None
        assert self.services is not None
        self.cnt_base, self.start = 0, self._now()
        self.psc_active = self.psc
        self.sr |= 1
        self._irq()
        if self.cr1 & 0x8:  # OPM: stop
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
        self.sr |= 1
        self.psc_active = self.psc
        if self.cr1 & 0x8:  # OPM: stopped at the first update
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
            self.services.set_irq(self.irq, bool(self.sr & 1 and self.dier & 1))

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
        if value is None:
            self.unmodelled(off, "read")
            return 0
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        off = offset & ~3
        if off == CR1:
            was = self.cr1 & 1
            if was:
                self.cnt_base, self.start = self.counter(), self._now() if self.services else 0
            self.cr1 = merge_word(self.cr1, offset, size, value) & 0x8F
            if self.cr1 & 1 and not was and self.services is not None:
                self.start = self._now()
            if self.cr1 & 1:
                self._arm()
            else:
                self._cancel()
        elif off == CR2:
            self.cr2 = value & 0x70
        elif off == DIER:
            self.dier = value & 0x101
            self._irq()
        elif off == SR:
            self.sr &= value & 1 | ~1
            self._irq()
        elif off == EGR:
            if value & 1:  # UG: reinitialise counter, load PSC
                self.psc_active = self.psc
                self.cnt_base = 0
                if self.services is not None:
                    self.start = self._now()
                if not self.cr1 & 0x4:  # URS=0: UG also sets UIF
                    self.sr |= 1
                    self._irq()
                self._arm()
        elif off == CNT:
            self.cnt_base = value & 0xFFFF
            if self.services is not None:
                self.start = self._now()
            self._arm()
        elif off == PSC:
            self.psc = value & 0xFFFF
        elif off == ARR:
            self.arr = value & 0xFFFF
            self._arm()
        else:
            self.unmodelled(off, "write")


def basic_timers() -> list[BasicTimer]:
    """Fresh TIM6 (IRQ 54, TIM6_DAC) and TIM7 (IRQ 55)."""
    return [BasicTimer("tim6", 0x40001000, 54), BasicTimer("tim7", 0x40001400, 55)]
