"""Window watchdog (0x4000_2C00): 7-bit down-counter on PCLK1/4096/2^WDGTB, in core cycles.

Owns: the WWDG's registers and countdown. Must not touch: the machine beyond its Services
(a timeout is ``request_reset``).
"""

from __future__ import annotations

from twin.device import Device
from twin.periph.base import ClockGate, StoppedTime

CR, CFR, SR = 0x00, 0x04, 0x08
WWDG_IRQ = 0
DBG_WWDG_STOP = 1 << 11


class Wwdg(Device):
    """WWDG: reset when T6 clears (counter 0x40 → 0x3F) or on a refresh above the window.

    EWI raises IRQ 0 when the counter reaches 0x40. Once WDGA is set only a reset stops it.
    PCLK1 keeps running while the core is halted or locked up: the counter then runs on wall
    time (:class:`StoppedTime`) unless DBGMCU_APB1_FZ.DBG_WWDG_STOP freezes it in a halt.
    """

    name, base, size = "wwdg", 0x40002C00, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x40, 11)  # RCC_APB1ENR.WWDGEN
        self.handle: object | None = None
        self.stopped = StoppedTime(self, DBG_WWDG_STOP)
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self.t_base = 0x7F
        self.start = 0
        self.wdga = False
        self.cfr = 0x7F
        self.ewif = False
        if self.services is not None:
            self.services.set_irq(WWDG_IRQ, False)

    def _cycles_per_tick(self) -> int:
        div = 1
        if self.services is not None:
            try:
                rcc = self.services.device("rcc")
                div = max(rcc.hclk_hz() // max(rcc.pclk1_hz(), 1), 1)  # type: ignore[attr-defined]
            except KeyError:
                pass
        return div * 4096 << ((self.cfr >> 7) & 3)

    def _now(self) -> int:
        """PCLK1's time in core cycles: virtual time plus wall time counted while stopped."""
        assert self.services is not None
        return self.services.now_cycles() + int(self.stopped.seconds() * self.services.core_hz)

    def counter(self) -> int:
        """Current T[6:0]."""
        if not self.wdga or self.services is None:
            return self.t_base
        ticks = (self._now() - self.start) // self._cycles_per_tick()
        return max(self.t_base - ticks, 0)

    def _cancel(self) -> None:
        if self.handle is not None and self.services is not None:
            self.services.cancel(self.handle)
        self.handle = None

    def _load(self, value: int) -> None:
        assert self.services is not None
        self.t_base, self.start = value & 0x7F, self._now()
        self._arm()

    def _arm(self) -> None:
        self._cancel()
        if not self.wdga or self.services is None:
            return
        t = self.counter()
        target = 0x40 if t > 0x40 and not self.ewif else 0x3F
        ticks = t - target
        if ticks <= 0 or (t <= 0x40 and not self.ewif):  # due now (e.g. after a halt)
            self.handle = self.services.schedule(0, self._event)
            return
        elapsed = (self._now() - self.start) % self._cycles_per_tick()
        self.handle = self.services.schedule(ticks * self._cycles_per_tick() - elapsed, self._event)

    def core_stopped(self, state: str | None) -> None:
        """Machine hook: core running (None), halted or locked up; or freeze bits changed."""
        self.stopped.update(state)
        if state is None:
            self._arm()

    def stopped_tick(self) -> float | None:
        """Machine hook while the core is stopped: reset if T6 cleared on wall time."""
        if not self.wdga or self.services is None or not self.stopped.counting:
            return None
        t = self.counter()
        if t <= 0x3F:
            self._event()
            return None
        return (t - 0x3F) * self._cycles_per_tick() / self.services.core_hz

    def _event(self) -> None:
        self.handle = None
        assert self.services is not None
        t = self.counter()
        if t <= 0x3F:
            where = {
                "halt": " (core halted: DBGMCU_APB1_FZ.DBG_WWDG_STOP is clear)",
                "lockup": " (core locked up)",
            }.get(self.stopped.state or "", "")
            self.services.log(f"T6 cleared{where} → system reset")
            self.services.request_reset("system", "wwdg")
            self.wdga = False
            return
        if t <= 0x40 and not self.ewif:
            self.ewif = True
            if self.cfr & (1 << 9):
                self.services.set_irq(WWDG_IRQ, True)
        self._arm()

    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        off = offset & ~3
        if off == CR:
            return (0x80 if self.wdga else 0) | self.counter()
        if off == CFR:
            return self.cfr
        if off == SR:
            return int(self.ewif)
        self.unmodelled(off, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        off = offset & ~3
        if off == CR:
            if self.wdga and self.counter() > (self.cfr & 0x7F) and self.services is not None:
                self.services.log("refresh outside the window → system reset")
                self.services.request_reset("system", "wwdg")
                return
            self.wdga = self.wdga or bool(value & 0x80)
            if self.services is not None:
                self._load(value)
        elif off == CFR:
            self.cfr = value & 0x3FF
        elif off == SR:
            if not value & 1:
                self.ewif = False
                if self.services is not None:
                    self.services.set_irq(WWDG_IRQ, False)
                    self._arm()
        else:
            self.unmodelled(off, "write")

    def snapshot(self) -> dict[str, object]:
        return {
            "wdga": self.wdga,
            "counter": self.counter(),
            "cfr": self.cfr,
            "ewif": self.ewif,
            "counting_while_stopped": self.stopped.counting,
        }
