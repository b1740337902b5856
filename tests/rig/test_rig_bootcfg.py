"""The config record the rig writes must be exactly what firmware/ parses."""

from __future__ import annotations

import struct
import zlib

import pytest

from rig.bootcfg import MAGIC, SIZE, BootConfig
from rig.errors import ConfigError


def test_pack_layout_matches_the_documented_record() -> None:
    rec = BootConfig(
        transport="wifi", server_ip="192.168.1.10", server_port=5000, update_requested=True
    ).pack()
    assert len(rec) == SIZE == 40
    words = struct.unpack("<10I", rec)
    assert words[0] == MAGIC == int.from_bytes(b"OTAC", "little")
    assert words[1:6] == (1, 1, 1, 0xC0A8010A, 5000)
    assert words[9] == zlib.crc32(rec[:36])


def test_round_trip_and_rejects_damaged_records() -> None:
    cfg = BootConfig(
        transport="eth",
        server_ip="10.0.0.2",
        server_port=6000,
        app_size=300 * 1024,
        app_crc=0xDEADBEEF,
        app_version=7,
    )
    rec = cfg.pack()
    assert BootConfig.unpack(rec) == cfg
    assert BootConfig.unpack(b"\xff" * SIZE) is None  # erased sector
    torn = bytearray(rec)
    torn[20] ^= 0x01  # one bit flipped
    assert BootConfig.unpack(bytes(torn)) is None
    assert BootConfig.unpack(rec[:10]) is None  # short read


@pytest.mark.parametrize("kw", [{"transport": "can"}, {"server_port": 0}, {"server_port": 70000}])
def test_bad_values_are_config_errors(kw: dict) -> None:
    with pytest.raises(ConfigError):
        BootConfig(**kw).pack()
