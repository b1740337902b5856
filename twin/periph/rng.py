"""RNG (0x5006_0800): deterministic random words (seeded) so runs are reproducible.

Its kernel clock is the 48 MHz domain (RM0410: the main PLL's Q output, or PLLSAI's P with
RCC_DCKCFGR2.CK48MSEL), not HCLK: with that PLL off (a bootloader still on the HSI) the RNG
never sets DRDY on the board, and HAL_RNG_GenerateRandomNumber times out; below HCLK / 16
with clock error detection on (CR.CED = 0) it sets SR.CECS and CEIS instead of data. Both are
modelled and said once per reset; with no RCC model (unit tests) it is always clocked.

Owns: the RNG's registers and its seeded stream. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

from twin.device import Device
from twin.periph.base import ClockGate

CR, SR, DR = 0x00, 0x04, 0x08
RNGEN, CED = 1 << 2, 1 << 5
DRDY, CECS, CEIS = 1 << 0, 1 << 1, 1 << 5
RNG_IRQ = 80


class Rng(Device):
    """True-RNG model backed by xorshift32 from a fixed seed; DRDY whenever RNGEN=1."""

    name, base, size = "rng", 0x50060800, 0x400

    def __init__(self, seed: int = 0x2545F491) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x34, 6)  # RCC_AHB2ENR.RNGEN
        self.seed = seed or 1
        self.reset("power")

    def reset(self, kind: str) -> None:
        self.cr = 0
        self.ceis = 0  # SR.CEIS: a clock error seen, until written 0
        self._said: set[str] = set()
        if kind == "power":
            self.state = self.seed

    def _clock(self) -> str:
        """ "ok", "off" (no 48 MHz clock) or "slow" (under HCLK / 16 with CED = 0)."""
        try:
            rcc = self.services.device("rcc") if self.services is not None else None
        except KeyError:
            rcc = None
        if rcc is None:
            return "ok"
        hz = rcc.pll48_hz()
        state = "off" if hz == 0 else "slow" if not self.cr & CED and hz * 16 < rcc.hclk_hz() else "ok"
        if state != "ok" and state not in self._said and self.services is not None:
            self._said.add(state)
            src = "PLLSAI's P output" if rcc.pll48_from_pllsai() else "the main PLL's Q output"
            self.services.log(
                f"RNG enabled but its 48 MHz clock ({src}, RCC_DCKCFGR2.CK48MSEL) is not running: DRDY "
                "never sets (HAL_RNG_GenerateRandomNumber times out); start that PLL first"
                if state == "off"
                else f"RNG clock {hz / 1e6:g} MHz is under HCLK / 16 ({rcc.hclk_hz() / 16e6:g} MHz): "
                "SR.CECS and CEIS set, no data (RM0410); raise PLLQ's output or set CR.CED"
            )
        return state

    def _next(self) -> int:
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        off = offset & ~3
        if off == CR:
            return self.cr
        if off == SR:
            if not self.cr & RNGEN:
                return self.ceis
            clock = self._clock()
            if clock == "slow":
                self.ceis = CEIS
                return CECS | CEIS
            return self.ceis | (DRDY if clock == "ok" else 0)
        if off == DR:
            return self._next() if self.cr & RNGEN and self._clock() == "ok" else 0
        self.unmodelled(off, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        off = offset & ~3
        if off == CR:
            self.cr = value & 0x2C
            if self.services is not None:
                self.services.set_irq(RNG_IRQ, bool(self.cr & 0x8 and self.cr & 0x4))
        elif off == SR:
            self.ceis &= value  # CEIS: cleared by writing 0 (SEIS never sets)
        else:
            self.unmodelled(off, "write")
