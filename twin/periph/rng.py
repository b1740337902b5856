"""RNG (0x5006_0800): deterministic random words (seeded) so runs are reproducible.

Owns: the RNG's registers and its seeded stream. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

from twin.device import Device
from twin.periph.base import ClockGate

CR, SR, DR = 0x00, 0x04, 0x08
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
        if kind == "power":
            self.state = self.seed

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
            return 1 if self.cr & 4 else 0
        if off == DR:
            return self._next() if self.cr & 4 else 0
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
            pass  # SEIS/CEIS never set
        else:
            self.unmodelled(off, "write")
