"""The WINC3400 SPI protocol's CRCs: CRC-7 of commands, CRC-16/CCITT-FALSE of data packets.

Split from twin/net/winc_bus.py (the protocol engine that uses them).

Owns: the CRC table. Must not touch: anything else.
"""

from __future__ import annotations

import binascii


def _crc7_table() -> bytes:
    """CRC-7 (x^7 + x^3 + 1) of one byte for every 7-bit state, MSB first."""
    table = bytearray(128 * 256)
    for crc0 in range(128):
        for byte in range(256):
            crc = crc0
            for i in range(7, -1, -1):
                top = ((crc >> 6) & 1) ^ ((byte >> i) & 1)
                crc = (crc << 1) & 0x7F
                if top:
                    crc ^= 0x09
            table[crc0 * 256 + byte] = crc
    return bytes(table)


_CRC7 = _crc7_table()


def crc7(data: bytes, crc: int = 0x7F) -> int:
    """CRC-7 (poly x^7 + x^3 + 1, seed 0x7F, MSB first) of ``data``; the wire byte is ``crc7 << 1``."""
    for b in data:
        crc = _CRC7[crc * 256 + b]
    return crc


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of a data packet; sent big-endian."""
    return binascii.crc_hqx(data, 0xFFFF)
