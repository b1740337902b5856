"""CRC unit: ST's worked example, zlib equivalence, widths, reversal, POLYSIZE."""
from __future__ import annotations

import struct
import zlib

from periph_exc_harness import Services

from twin.periph import Crc

# Input of ST's CRC example (STM32CubeF7 Projects/.../CRC/CRC_Example): a known-answer
# vector whose documented HAL result (default poly/init, WORDS format) is 0x379E9F06.
ST_EXAMPLE = [
    0x00001021, 0x20423063, 0x408450a5, 0x60c670e7, 0x9129a14a, 0xb16bc18c, 0xd1ade1ce,
    0xf1ef1231, 0x32732252, 0x52b54294, 0x72f762d6, 0x93398318, 0xa35ad3bd, 0xc39cf3ff,
    0xe3de2462, 0x34430420, 0x64e674c7, 0x44a45485, 0xa56ab54b, 0x85289509, 0xf5cfc5ac,
    0xd58d3653, 0x26721611, 0x063076d7, 0x569546b4, 0xb75ba77a, 0x97198738, 0xf7dfe7fe,
    0xc7bc48c4, 0x58e56886, 0x78a70840, 0x18612802, 0xc9ccd9ed, 0xe98ef9af, 0x89489969,
    0xa90ab92b, 0x4ad47ab7, 0x6a961a71, 0x0a503a33, 0x2a12dbfd, 0xfbbfeb9e, 0x9b798b58,
    0xbb3bab1a, 0x6ca67c87, 0x5cc52c22, 0x3c030c60, 0x1c41edae, 0xfd8fcdec, 0xad2abd0b,
    0x8d689d49, 0x7e976eb6, 0x5ed54ef4, 0x2e321e51, 0x0e70ff9f, 0xefbedfdd, 0xcffcbf1b,
    0x9f598f78, 0x918881a9, 0xb1caa1eb, 0xd10cc12d, 0xe16f1080, 0x00a130c2, 0x20e35004,
    0x40257046, 0x83b99398, 0xa3fbb3da, 0xc33dd31c, 0xe37ff35e, 0x129022f3, 0x32d24235,
    0x52146277, 0x7256b5ea, 0x95a88589, 0xf56ee54f, 0xd52cc50d, 0x34e224c3, 0x04817466,
    0x64475424, 0x4405a7db, 0xb7fa8799, 0xe75ff77e, 0xc71dd73c, 0x26d336f2, 0x069116b0,
    0x76764615, 0x5634d94c, 0xc96df90e, 0xe92f99c8, 0xb98aa9ab, 0x58444865, 0x78066827,
    0x18c008e1, 0x28a3cb7d, 0xdb5ceb3f, 0xfb1e8bf9, 0x9bd8abbb, 0x4a755a54, 0x6a377a16,
    0x0af11ad0, 0x2ab33a92, 0xed0fdd6c, 0xcd4dbdaa, 0xad8b9de8, 0x8dc97c26, 0x5c644c45,
    0x3ca22c83, 0x1ce00cc1, 0xef1fff3e, 0xdf7caf9b, 0xbfba8fd9, 0x9ff86e17, 0x7e364e55,
    0x2e933eb2, 0x0ed11ef0]


def _crc() -> Crc:
    c = Crc()
    Services().add(c)
    return c


def _hal_bytes(c: Crc, data: bytes) -> int:
    """HAL_CRC_Calculate with BYTES format: 4 bytes big-endian per word, then tail."""
    c.write(0x08, 4, c.read(0x08, 4) | 1)
    i = 0
    while i + 4 <= len(data):
        c.write(0x00, 4, int.from_bytes(data[i:i + 4], "big"))
        i += 4
    rest = data[i:]
    if len(rest) >= 2:
        c.write(0x00, 2, rest[0] << 8 | rest[1])
        rest = rest[2:]
    if rest:
        c.write(0x00, 1, rest[0])
    return c.read(0x00, 4)


def test_reset_values() -> None:
    c = _crc()
    assert c.read(0x00, 4) == 0xFFFFFFFF
    assert c.read(0x08, 4) == 0
    assert c.read(0x10, 4) == 0xFFFFFFFF
    assert c.read(0x14, 4) == 0x04C11DB7


def test_st_worked_example_words() -> None:
    c = _crc()
    c.write(0x08, 4, 1)
    for w in ST_EXAMPLE:
        c.write(0x00, 4, w)
    assert c.read(0x00, 4) == 0x379E9F06


def test_default_bytes_format_is_crc32_mpeg2() -> None:
    assert _hal_bytes(_crc(), b"123456789") == 0x0376E6E7


def test_byte_reversal_with_rev_out_matches_zlib() -> None:
    c = _crc()
    c.write(0x08, 4, (1 << 5) | (1 << 7))                 # REV_IN=byte, REV_OUT
    for data in (b"123456789", b"", b"a", b"ab", b"abc", bytes(range(256)) * 3):
        assert _hal_bytes(c, data) ^ 0xFFFFFFFF == zlib.crc32(data)


def test_word_reversal_on_words_matches_zlib_of_memory() -> None:
    c = _crc()
    c.write(0x08, 4, (3 << 5) | (1 << 7))                 # REV_IN=word, REV_OUT
    c.write(0x08, 4, c.read(0x08, 4) | 1)
    for w in ST_EXAMPLE:
        c.write(0x00, 4, w)
    mem = struct.pack(f"<{len(ST_EXAMPLE)}I", *ST_EXAMPLE)
    assert c.read(0x00, 4) ^ 0xFFFFFFFF == zlib.crc32(mem) == 0x43964C1D


def test_halfword_reversal_equals_byte_stream_with_byte_reversal() -> None:
    a, b = _crc(), _crc()
    a.write(0x08, 4, (2 << 5) | 1)                        # REV_IN=half-word, reset
    b.write(0x08, 4, (1 << 5) | 1)                        # REV_IN=byte, reset
    a.write(0x00, 2, 0x1234)
    # half-word bit reversal of 0x1234 = byte-reversal of the swapped bytes 0x34, 0x12
    b.write(0x00, 1, 0x34)
    b.write(0x00, 1, 0x12)
    assert a.read(0x00, 4) == b.read(0x00, 4)


def test_crc16_ccitt_and_crc8_and_crc7() -> None:
    c = _crc()
    c.write(0x14, 4, 0x1021)
    c.write(0x10, 4, 0xFFFF)
    c.write(0x08, 4, (1 << 3) | 1)                        # POLYSIZE=16
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0x29B1                      # CRC-16/CCITT-FALSE check
    c.write(0x14, 4, 0x07)
    c.write(0x10, 4, 0)
    c.write(0x08, 4, (2 << 3) | 1)                        # POLYSIZE=8
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0xF4                        # CRC-8/SMBUS check
    c.write(0x14, 4, 0x09)
    c.write(0x08, 4, (3 << 3) | 1)                        # POLYSIZE=7
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0x75                        # CRC-7/MMC check


def test_idr_scratch_and_even_polynomial_rejected() -> None:
    c = _crc()
    c.write(0x04, 4, 0x1A5)
    assert c.read(0x04, 4) == 0xA5
    c.write(0x14, 4, 0x1000)
    assert c.read(0x14, 4) == 0x04C11DB7
