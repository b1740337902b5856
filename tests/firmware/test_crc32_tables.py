"""The firmware's committed CRC-32 tables are what their generator writes, and they are
the tables of zlib's CRC-32 (the firmware's own CRC is checked on the host in
tests/firmware/test_fw_host.py)."""

from __future__ import annotations

import importlib.util
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GEN = REPO / "firmware" / "tools" / "gen_crc32_tables.py"


def _gen():
    spec = importlib.util.spec_from_file_location("gen_crc32_tables", GEN)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_header_is_generated() -> None:
    gen = _gen()
    assert (REPO / "firmware" / "common" / "crc32_tables.h").read_text() == gen.render()


def test_slicing_by_4_with_the_tables_is_zlib_crc32() -> None:
    t = _gen().tables()
    data = bytes((i * 37 + 11) & 0xFF for i in range(1027))
    crc = 0xFFFFFFFF
    i = 0
    while len(data) - i >= 4:
        crc ^= int.from_bytes(data[i : i + 4], "little")
        crc = t[3][crc & 0xFF] ^ t[2][(crc >> 8) & 0xFF] ^ t[1][(crc >> 16) & 0xFF] ^ t[0][crc >> 24]
        i += 4
    for b in data[i:]:
        crc = (crc >> 8) ^ t[0][(crc ^ b) & 0xFF]
    assert crc ^ 0xFFFFFFFF == zlib.crc32(data)
