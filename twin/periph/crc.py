"""CRC calculation unit (0x4002_3000): programmable polynomial/size, input/output reversal.

Owns: the CRC unit's registers and computation. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

from functools import lru_cache

from twin.device import Device, merge_word
from twin.periph.base import ClockGate

DR, IDR, CR, INIT, POL = 0x00, 0x04, 0x08, 0x10, 0x14
WIDTHS = {0: 32, 1: 16, 2: 8, 3: 7}


def reverse_bits(value: int, width: int) -> int:
    """Bit-reverse the low ``width`` bits of ``value``."""
    out = 0
    for _ in range(width):
        out = (out << 1) | (value & 1)
        value >>= 1
    return out


@lru_cache(maxsize=16)
def _table(poly: int, width: int) -> tuple[int, ...]:
    """Byte-at-a-time table for an MSB-first CRC of ``width`` >= 8 bits."""
    top, mask = 1 << (width - 1), (1 << width) - 1
    table = []
    for byte in range(256):
        crc = byte << (width - 8)
        for _ in range(8):
            crc = ((crc << 1) ^ poly) & mask if crc & top else (crc << 1) & mask
        table.append(crc)
    return tuple(table)


def crc_update(crc: int, data: int, nbits: int, poly: int, width: int) -> int:
    """Feed ``nbits`` (8/16/32) of ``data``, MSB first, into the CRC register."""
    mask = (1 << width) - 1
    if width >= 8:
        table = _table(poly & mask, width)
        for shift in range(nbits - 8, -1, -8):
            byte = (data >> shift) & 0xFF
            crc = ((crc << 8) & mask) ^ table[((crc >> (width - 8)) ^ byte) & 0xFF]
        return crc
    top = 1 << (width - 1)
    for i in range(nbits - 1, -1, -1):
        bit = (data >> i) & 1
        fb = bool(crc & top) ^ bool(bit)
        crc = (crc << 1) & mask
        if fb:
            crc ^= poly & mask
    return crc


class Crc(Device):
    """The CRC unit. Access width decides how many bits a DR write processes."""

    name, base, size = "crc", 0x40023000, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x30, 12)  # RCC_AHB1ENR.CRCEN
        self.reset("power")

    def reset(self, kind: str) -> None:
        self.cr = 0
        self.init = 0xFFFFFFFF
        self.pol = 0x04C11DB7
        self.idr = 0
        self.crc = 0xFFFFFFFF

    @property
    def width(self) -> int:
        """Polynomial size in bits (CR.POLYSIZE)."""
        return WIDTHS[(self.cr >> 3) & 3]

    def _rev_in(self, value: int, nbits: int) -> int:
        mode = (self.cr >> 5) & 3
        if mode == 0:
            return value
        unit = min({1: 8, 2: 16, 3: 32}[mode], nbits)
        out = 0
        for shift in range(0, nbits, unit):
            out |= reverse_bits((value >> shift) & ((1 << unit) - 1), unit) << shift
        return out

    def dr_value(self) -> int:
        """DR as read: the CRC register, bit-reversed over its width when REV_OUT."""
        if self.cr & 0x80:
            return reverse_bits(self.crc, self.width)
        return self.crc

    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        value = {DR: self.dr_value(), IDR: self.idr, CR: self.cr, INIT: self.init, POL: self.pol}.get(
            offset & ~3
        )
        if value is None:
            self.unmodelled(offset & ~3, "read")
            return 0
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        aligned = offset & ~3
        if aligned == DR:
            nbits = 8 * size
            data = self._rev_in(value & ((1 << nbits) - 1), nbits)
            self.crc = crc_update(self.crc, data, nbits, self.pol, self.width)
        elif aligned == IDR:
            self.idr = merge_word(self.idr, offset, size, value) & 0xFF
        elif aligned == CR:
            cr = merge_word(self.cr, offset, size, value)
            self.cr = cr & 0xF8
            if cr & 1:  # RESET: load INIT (self-clearing)
                self.crc = self.init & ((1 << self.width) - 1)
        elif aligned == INIT:
            self.init = merge_word(self.init, offset, size, value)
        elif aligned == POL:
            pol = merge_word(self.pol, offset, size, value)
            self.pol = pol if pol & 1 else self.pol  # even polynomials are not accepted
        else:
            self.unmodelled(aligned, "write")

    def snapshot(self) -> dict[str, object]:
        return {"dr": self.dr_value(), "cr": self.cr, "init": self.init, "pol": self.pol}
