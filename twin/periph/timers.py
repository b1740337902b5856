"""Basic timers TIM6/TIM7 (APB1 ×2 clock) on virtual time: update event + interrupt."""
from __future__ import annotations

from twin.device import Device, merge_word
from twin.periph.base import ClockGate

CR1, CR2, DIER, SR, EGR, CNT, PSC, ARR = 0x00, 0x04, 0x0C, 0x10, 0x14, 0x24, 0x28, 0x2C


class BasicTimer(Device):
    """Up-counter with prescaler and auto-reload; UIF and its IRQ on overflow.

    The counter clock is PCLK1×2 (APB1 prescaler ≠ 1) or HCLK, derived from the core clock
    and the RCC's APB1 divider; time is counted in core cycles.
    """

    size = 0x400

    def __init__(self, name: str, base: int, irq: int) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x40, 4 if name == "tim6" else 5)   # RCC_APB1ENR.TIM6EN/TIM7EN
        self.name, self.base, self.irq = name, base, irq
        self.handle: object | None = None
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
                apb = rcc.hclk_hz() // max(rcc.pclk1_hz(), 1)   # type: ignore[attr-defined]
                div = 1 if apb == 1 else apb // 2
        except KeyError:
            pass
        return max(div, 1) * (self.psc_active + 1)

    def _cancel(self) -> None:
        if self.handle is not None and self.services is not None:
            self.services.cancel(self.handle)
        self.handle = None

    def counter(self) -> int:
        """Current CNT."""
        if not self.cr1 & 1 or self.services is None:
            return self.cnt_base
        ticks = (self.services.now_cycles() - self.start) // self._cycles_per_tick()
        return (self.cnt_base + ticks) % (self.arr + 1) if self.arr else 0

    def _arm(self) -> None:
        self._cancel()
        if not self.cr1 & 1 or self.services is None or self.arr == 0:
            return
        now = self.services.now_cycles()
        self.cnt_base = self.counter()
        self.start = now
        left = (self.arr + 1 - self.cnt_base) * self._cycles_per_tick()
        self.handle = self.services.schedule(left, self._overflow)

    def _overflow(self) -> None:
        self.handle = None
        assert self.services is not None
        self.cnt_base, self.start = 0, self.services.now_cycles()
        self.psc_active = self.psc
        self.sr |= 1
        self._irq()
        if self.cr1 & 0x8:                        # OPM: stop
            self.cr1 &= ~1
        else:
            self._arm()

    def _irq(self) -> None:
        if self.services is not None:
            self.services.set_irq(self.irq, bool(self.sr & 1 and self.dier & 1))

    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        off = offset & ~3
        value = {CR1: self.cr1, CR2: self.cr2, DIER: self.dier, SR: self.sr, EGR: 0,
                 CNT: self.counter(), PSC: self.psc, ARR: self.arr}.get(off)
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
                self.cnt_base, self.start = self.counter(), self.services.now_cycles() if self.services else 0
            self.cr1 = merge_word(self.cr1, offset, size, value) & 0x8F
            if self.cr1 & 1 and not was and self.services is not None:
                self.start = self.services.now_cycles()
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
            if value & 1:                         # UG: reinitialise counter, load PSC
                self.psc_active = self.psc
                self.cnt_base = 0
                if self.services is not None:
                    self.start = self.services.now_cycles()
                if not self.cr1 & 0x4:            # URS=0: UG also sets UIF
                    self.sr |= 1
                    self._irq()
                self._arm()
        elif off == CNT:
            self.cnt_base = value & 0xFFFF
            if self.services is not None:
                self.start = self.services.now_cycles()
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
