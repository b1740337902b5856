"""CRC unit: ST's worked example, zlib equivalence, widths, reversal, POLYSIZE."""

from __future__ import annotations

import struct
import zlib

from twin.periph import Crc
from twin.testing import ServicesDouble

# Input of ST's CRC example (STM32CubeF7 Projects/.../CRC/CRC_Example): a known-answer
# vector whose documented HAL result (default poly/init, WORDS format) is 0x379E9F06.
ST_EXAMPLE = [
    0x00001021,
    0x20423063,
    0x408450A5,
    0x60C670E7,
    0x9129A14A,
    0xB16BC18C,
    0xD1ADE1CE,
    0xF1EF1231,
    0x32732252,
    0x52B54294,
    0x72F762D6,
    0x93398318,
    0xA35AD3BD,
    0xC39CF3FF,
    0xE3DE2462,
    0x34430420,
    0x64E674C7,
    0x44A45485,
    0xA56AB54B,
    0x85289509,
    0xF5CFC5AC,
    0xD58D3653,
    0x26721611,
    0x063076D7,
    0x569546B4,
    0xB75BA77A,
    0x97198738,
    0xF7DFE7FE,
    0xC7BC48C4,
    0x58E56886,
    0x78A70840,
    0x18612802,
    0xC9CCD9ED,
    0xE98EF9AF,
    0x89489969,
    0xA90AB92B,
    0x4AD47AB7,
    0x6A961A71,
    0x0A503A33,
    0x2A12DBFD,
    0xFBBFEB9E,
    0x9B798B58,
    0xBB3BAB1A,
    0x6CA67C87,
    0x5CC52C22,
    0x3C030C60,
    0x1C41EDAE,
    0xFD8FCDEC,
    0xAD2ABD0B,
    0x8D689D49,
    0x7E976EB6,
    0x5ED54EF4,
    0x2E321E51,
    0x0E70FF9F,
    0xEFBEDFDD,
    0xCFFCBF1B,
    0x9F598F78,
    0x918881A9,
    0xB1CAA1EB,
    0xD10CC12D,
    0xE16F1080,
    0x00A130C2,
    0x20E35004,
    0x40257046,
    0x83B99398,
    0xA3FBB3DA,
    0xC33DD31C,
    0xE37FF35E,
    0x129022F3,
    0x32D24235,
    0x52146277,
    0x7256B5EA,
    0x95A88589,
    0xF56EE54F,
    0xD52CC50D,
    0x34E224C3,
    0x04817466,
    0x64475424,
    0x4405A7DB,
    0xB7FA8799,
    0xE75FF77E,
    0xC71DD73C,
    0x26D336F2,
    0x069116B0,
    0x76764615,
    0x5634D94C,
    0xC96DF90E,
    0xE92F99C8,
    0xB98AA9AB,
    0x58444865,
    0x78066827,
    0x18C008E1,
    0x28A3CB7D,
    0xDB5CEB3F,
    0xFB1E8BF9,
    0x9BD8ABBB,
    0x4A755A54,
    0x6A377A16,
    0x0AF11AD0,
    0x2AB33A92,
    0xED0FDD6C,
    0xCD4DBDAA,
    0xAD8B9DE8,
    0x8DC97C26,
    0x5C644C45,
    0x3CA22C83,
    0x1CE00CC1,
    0xEF1FFF3E,
    0xDF7CAF9B,
    0xBFBA8FD9,
    0x9FF86E17,
    0x7E364E55,
    0x2E933EB2,
    0x0ED11EF0,
]


def _crc() -> Crc:
    c = Crc()
    ServicesDouble().add(c)
    return c


def _hal_bytes(c: Crc, data: bytes) -> int:
    """HAL_CRC_Calculate with BYTES format: 4 bytes big-endian per word, then tail."""
    c.write(0x08, 4, c.read(0x08, 4) | 1)
    i = 0
    while i + 4 <= len(data):
        c.write(0x00, 4, int.from_bytes(data[i : i + 4], "big"))
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
    c.write(0x08, 4, (1 << 5) | (1 << 7))  # REV_IN=byte, REV_OUT
    for data in (b"123456789", b"", b"a", b"ab", b"abc", bytes(range(256)) * 3):
        assert _hal_bytes(c, data) ^ 0xFFFFFFFF == zlib.crc32(data)


def test_word_reversal_on_words_matches_zlib_of_memory() -> None:
    c = _crc()
    c.write(0x08, 4, (3 << 5) | (1 << 7))  # REV_IN=word, REV_OUT
    c.write(0x08, 4, c.read(0x08, 4) | 1)
    for w in ST_EXAMPLE:
        c.write(0x00, 4, w)
    mem = struct.pack(f"<{len(ST_EXAMPLE)}I", *ST_EXAMPLE)
    assert c.read(0x00, 4) ^ 0xFFFFFFFF == zlib.crc32(mem) == 0x43964C1D


def test_halfword_reversal_equals_byte_stream_with_byte_reversal() -> None:
    a, b = _crc(), _crc()
    a.write(0x08, 4, (2 << 5) | 1)  # REV_IN=half-word, reset
    b.write(0x08, 4, (1 << 5) | 1)  # REV_IN=byte, reset
    a.write(0x00, 2, 0x1234)
    # half-word bit reversal of 0x1234 = byte-reversal of the swapped bytes 0x34, 0x12
    b.write(0x00, 1, 0x34)
    b.write(0x00, 1, 0x12)
    assert a.read(0x00, 4) == b.read(0x00, 4)


def test_crc16_ccitt_and_crc8_and_crc7() -> None:
    c = _crc()
    c.write(0x14, 4, 0x1021)
    c.write(0x10, 4, 0xFFFF)
    c.write(0x08, 4, (1 << 3) | 1)  # POLYSIZE=16
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0x29B1  # CRC-16/CCITT-FALSE check
    c.write(0x14, 4, 0x07)
    c.write(0x10, 4, 0)
    c.write(0x08, 4, (2 << 3) | 1)  # POLYSIZE=8
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0xF4  # CRC-8/SMBUS check
    c.write(0x14, 4, 0x09)
    c.write(0x08, 4, (3 << 3) | 1)  # POLYSIZE=7
    for byte in b"123456789":
        c.write(0x00, 1, byte)
    assert c.read(0x00, 4) == 0x75  # CRC-7/MMC check


def test_idr_scratch_and_even_polynomial_rejected() -> None:
    c = _crc()
    c.write(0x04, 4, 0x1A5)
    assert c.read(0x04, 4) == 0xA5
    c.write(0x14, 4, 0x1000)
    assert c.read(0x14, 4) == 0x04C11DB7


def test_the_zlib_fast_path_equals_the_bitwise_definition() -> None:
    """Reflected input (byte, half-word, word reversal) with the IEEE polynomial goes through
    zlib; every mode, access width and REV_OUT setting must give what the MSB-first,
    table-driven definition gives (the path still used for other polynomials and sizes)."""
    import random

    from twin.periph.crc import crc_update

    rnd = random.Random(7)
    for mode in (1, 2, 3):
        for rev_out in (0, 0x80):
            c = _crc()
            c.write(0x08, 4, (mode << 5) | rev_out | 1)  # reset to INIT
            want = 0xFFFFFFFF
            for i in range(200):
                size = rnd.choice((1, 2, 4))
                value = rnd.getrandbits(8 * size)
                c.write(0x00, size, value)
                nbits = 8 * size
                want = crc_update(want, c._rev_in(value, nbits), nbits, 0x04C11DB7, 32)
                if i % 37 == 0 or i == 199:  # reads between writes too
                    expect = int(f"{want:032b}"[::-1], 2) if rev_out else want
                    assert c.read(0x00, 4) == expect, (mode, rev_out, i)


def test_gathered_bytes_are_fed_in_before_anything_looks_at_the_register() -> None:
    """A run of reflected-input DR writes is gathered and fed to zlib at once; a switch of
    REV_IN, POLYSIZE or the polynomial, a reset through CR, a byte read of DR or a
    snapshot in the middle of a run must see every write before it, as one write at a time
    does."""
    import random

    from twin.periph.crc import crc_update

    rnd = random.Random(11)
    for trial in range(40):
        c = _crc()
        cr = (rnd.choice((1, 2, 3)) << 5) | rnd.choice((0, 0x80))
        c.write(0x08, 4, cr | 1)
        want, pol, width = 0xFFFFFFFF, 0x04C11DB7, 32
        for _ in range(120):
            step = rnd.random()
            if step < 0.05:  # another input reversal and output setting (no reset)
                cr = (rnd.randrange(4) << 5) | rnd.choice((0, 0x80)) | (cr & 0x18)
                c.write(0x08, 4, cr)
            elif step < 0.08:  # another polynomial (odd) and back later
                pol = rnd.choice((0x04C11DB7, 0x1EDC6F41))
                c.write(0x14, 4, pol)
            elif step < 0.10:
                c.write(0x08, 4, cr | 1)
                want = 0xFFFFFFFF
            elif step < 0.15:
                expect = int(f"{want:032b}"[::-1], 2) if cr & 0x80 else want
                assert c.read(0x00, 1) == expect & 0xFF, trial
                assert c.snapshot()["dr"] == expect, trial
            else:
                size = rnd.choice((1, 2, 4))
                value = rnd.getrandbits(8 * size)
                c.write(0x00, size, value)
                want = crc_update(want, c._rev_in(value, 8 * size), 8 * size, pol, width)
        expect = int(f"{want:032b}"[::-1], 2) if cr & 0x80 else want
        assert c.read(0x00, 4) == expect, trial
