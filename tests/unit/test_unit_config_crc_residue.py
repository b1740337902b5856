"""Why rig.flash_verify.sync_flash compares small writes (the config record) byte for byte, not
by CRC-32 (tests/rig/test_flash_verify.py writes such a record on the twin).

The reference record ends with its own CRC-32, and CRC-32(M + CRC-32(M)) is the same for
every M: a request and a withdrawal, padded alike, have one CRC-32. A skip-if-the-CRC-matches
write therefore never turned a withdrawal into a request (the power cuts and the campaign
then waited for an update that was never asked for).
"""

from __future__ import annotations

import zlib

from rig.bootcfg import BootConfig


def _record(update: bool) -> bytes:
    cfg = BootConfig(
        transport="eth",
        server_ip="192.168.1.10",
        server_port=5000,
        update_requested=update,
        app_size=65536,
        app_crc=0xE8AA1011,
    )
    return cfg.pack().ljust(64, b"\xff")


def test_two_valid_records_share_one_crc32() -> None:
    request, withdrawal = _record(True), _record(False)
    assert request != withdrawal
    assert zlib.crc32(request) == zlib.crc32(withdrawal)
