"""CRC calculation unit (0x4002_3000): programmable polynomial/size, input/output reversal.

Owns: the CRC unit's registers and computation. Must not touch: the machine beyond its
Services.
"""

from __future__ import annotations

import zlib
from functools import lru_cache

from twin.device import Device, merge_word
from twin.periph.base import ClockGate

DR, IDR, CR, INIT, POL = 0x00, 0x04, 0x08, 0x10, 0x14
WIDTHS = {0: 32, 1: 16, 2: 8, 3: 7}


#: each byte value with its 8 bits reversed (bytes.translate table)
_REV8 = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))
#: the IEEE 802.3 polynomial of the reset value: with reflected input this is zlib's CRC-32
ZLIB_POLY = 0x04C11DB7
_M32 = 0xFFFFFFFF


def reverse_bits(value: int, width: int) -> int:
    """Bit-reverse the low ``width`` bits of ``value``."""
    if width in (8, 16, 32):
        n = width // 8
        return int.from_bytes((value & ((1 << width) - 1)).to_bytes(n, "little").translate(_REV8), "big")
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


def _unit_bytes(value: int, size: int, mode: int) -> bytes:
    """The bytes zlib must see for one DR write of ``size`` bytes with input reversed by byte
    (mode 1), half-word (2) or word (3): MSB-first processing of bit-reversed units is the
    reflected CRC over the bytes of each unit from its low byte up, the units taken from the
    most significant one down."""
    raw = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
    unit = min(1 << (mode - 1), size)  # bytes per reversed unit
    return raw if unit == size else b"".join(raw[i : i + unit] for i in range(size - unit, -1, -unit))


class Crc(Device):
    """The CRC unit. Access width decides how many bits a DR write processes."""

    name, base, size = "crc", 0x40023000, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.gate = ClockGate(self, 0x30, 12)  # RCC_AHB1ENR.CRCEN
        self._pend = bytearray()
        self.reset("power")

    def reset(self, kind: str) -> None:
        self.cr = 0
        self.init = 0xFFFFFFFF
        self.pol = 0x04C11DB7
        self.idr = 0
        self.crc = 0xFFFFFFFF

    # The CRC register; while a reflected-input run goes through zlib it is kept reflected
    # (``_refl``, the bit-reverse of the register) and converted back only when read. The
    # bytes of such a run are gathered in ``_pend`` and fed to zlib in one call when
    # anything looks at the register (a read, a CR/INIT/POL write, a snapshot): a CRC of
    # a flash range is thousands of DR writes and nothing in between.
    _crc = 0xFFFFFFFF
    _refl: int | None = None

    @property
    def crc(self) -> int:
        """The CRC register as the MSB-first definition holds it."""
        if self._refl is not None:
            self._crc, self._refl = reverse_bits(self._reflected(), 32), None
        return self._crc

    @crc.setter
    def crc(self, value: int) -> None:
        self._crc, self._refl = value, None
        self._pend.clear()

    def _reflected(self) -> int:
        """The reflected register with the gathered bytes fed in (``_refl`` must be set)."""
        refl = self._refl
        assert refl is not None
        if self._pend:
            refl = self._refl = ~zlib.crc32(self._pend, ~refl & _M32) & _M32
            self._pend.clear()
        return refl

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
            if self._refl is not None and not self.cr & 0x18:  # REV_OUT, 32 bits: the reflected one
                return self._reflected()
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
        if (
            offset == DR
            and size == 4
            and self._refl is not None
            and self.cr & 0x78 == 0x60
            and self.pol == ZLIB_POLY
        ):
            # hot path: a word of a reflected-by-word 32-bit run already going (HAL's
            # CRC_INPUTDATA_INVERSION_WORD)
            self._pend += value.to_bytes(4, "little")
            return
        aligned = offset & ~3
        if aligned == DR:
            nbits = 8 * size
            mode = (self.cr >> 5) & 3
            if mode and self.pol == ZLIB_POLY and not self.cr & 0x18:  # 32-bit, reflected input
                if self._refl is None:
                    self._refl = reverse_bits(self._crc, 32)
                self._pend += _unit_bytes(value, size, mode)
                return
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
