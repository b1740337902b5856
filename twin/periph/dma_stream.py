"""One DMA stream's registers and transfer state, and the register bits (RM0410 ch. 8).

Split from twin/periph/dma.py (the controller, its requests and transfers), which
documents the model.

Owns: a stream's register values, its current addresses and FIFO bytes. Must not touch:
transfers, request lines, interrupts (the controller drives them).
"""

from __future__ import annotations

FCR_RESET = 0x00000021

EN, DMEIE, TEIE, HTIE, TCIE, PFCTRL = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5
CIRC, PINC, MINC, PINCOS, DBM, CT = 1 << 8, 1 << 9, 1 << 10, 1 << 15, 1 << 18, 1 << 19
FCR_DMDIS, FCR_FEIE = 1 << 2, 1 << 7
P2M, M2P, M2M = 0, 1, 2

# flag bits inside a stream's 6-bit group of LISR/HISR
FEIF, DMEIF, TEIF, HTIF, TCIF = 1 << 0, 1 << 2, 1 << 3, 1 << 4, 1 << 5
SIZES = (1, 2, 4, 4)  # PSIZE/MSIZE encodings (0b11 reserved: treated as word)


class Stream:
    """One stream's registers and its transfer state (current addresses, FIFO bytes)."""

    def __init__(self, index: int, irq: int) -> None:
        self.index = index
        self.irq = irq
        self.reset()

    def reset(self) -> None:
        self.cr = 0
        self.ndtr = 0
        self.par = 0
        self.m0ar = 0
        self.m1ar = 0
        self.fcr = FCR_RESET
        self.flags = 0
        self.irq_level = False
        self.start_ndtr = 0
        self.pptr = 0
        self.mptr = 0
        self.fifo = bytearray()

    @property
    def enabled(self) -> bool:
        return bool(self.cr & EN)

    @property
    def channel(self) -> int:
        return (self.cr >> 25) & 0xF

    @property
    def direction(self) -> int:
        return (self.cr >> 6) & 3

    @property
    def psize(self) -> int:
        return SIZES[(self.cr >> 11) & 3]

    @property
    def msize(self) -> int:
        if not self.fcr & FCR_DMDIS:
            return self.psize  # direct mode
        return SIZES[(self.cr >> 13) & 3]

    @property
    def priority(self) -> int:
        return (self.cr >> 16) & 3

    def memory_target(self) -> int:
        return self.m1ar if self.cr & DBM and self.cr & CT else self.m0ar

    def start(self) -> None:
        """EN set: latch the transfer's start state."""
        self.start_ndtr = self.ndtr
        self.pptr = self.par
        self.mptr = self.memory_target()
        self.fifo = bytearray()

    def fifo_status(self) -> int:
        n = len(self.fifo)
        if n == 0:
            return 4 << 3  # FS = 100: empty
        return min(3, n * 4 // 16) << 3  # 000 <1/4, 001 <1/2, 010 <3/4, 011 <full

    def irq_wanted(self) -> bool:
        f, cr = self.flags, self.cr
        return bool(
            (f & TCIF and cr & TCIE)
            or (f & HTIF and cr & HTIE)
            or (f & TEIF and cr & TEIE)
            or (f & DMEIF and cr & DMEIE)
            or (f & FEIF and self.fcr & FCR_FEIE)
        )


def burst_config_valid(msize: int, mburst: int, fth: int) -> bool:
    """RM0410 "FIFO threshold configurations": a memory burst must fit the threshold level
    (FTH 0..3 = 1/4..full of 16 bytes) in whole bursts."""
    if mburst == 0:
        return True
    beats = (1, 4, 8, 16)[mburst]
    burst_bytes = beats * msize
    level = (fth + 1) * 4
    return burst_bytes <= level and level % burst_bytes == 0
