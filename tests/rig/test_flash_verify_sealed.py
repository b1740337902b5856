"""A record sealed with its own CRC-32 (``M || crc32(M)``) has the same CRC-32 whatever M
holds: verify-before-write must still write a changed record (it did not: every update on
the twin then ran without its update request)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator

import pytest

from rig.board import load_board
from rig.flash_verify import sync_flash
from rig.probe import Probe
from rig.targets.twin import TwinTarget, start_twin

pytestmark = pytest.mark.timeout(300)
CONFIG = 0x08020000


def sealed(flag: int) -> bytes:
    body = b"OTAC" + struct.pack("<7I", 1, flag, 0, 0x0A01A8C0, 5000, 0x10000, 0x1234)
    return (body + struct.pack("<I", zlib.crc32(body))).ljust(64, b"\xff")


def test_two_sealed_records_have_one_crc() -> None:
    assert sealed(0) != sealed(1) and zlib.crc32(sealed(0)) == zlib.crc32(sealed(1))


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinTarget]:
    t = start_twin(extra_args=["--timing", "fast"], log_path=tmp_path_factory.mktemp("twin") / "twin.log")
    try:
        yield t
    finally:
        t.stop()


def test_a_changed_sealed_record_is_written(twin: TwinTarget) -> None:
    layout = load_board().active_layout
    with Probe(twin.probe_uid) as p:
        p.reset(halt=True)
        sync_flash(p, layout, CONFIG, sealed(0))
        result = sync_flash(p, layout, CONFIG, sealed(1))
        assert result.stats.written == 64 and result.actual == sealed(1)
        assert p.read(CONFIG, 64) == sealed(1)
        again = sync_flash(p, layout, CONFIG, sealed(1))
        assert again.stats.written == 0 and again.stats.skipped == 64
