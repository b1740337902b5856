"""Verify-before-write (issue 18): the rig's CRC-32 routine runs on the twin's core through
stock pyOCD and agrees with zlib.crc32 (lengths 0 to several chunks, unaligned starts, a range
across sectors, SRAM); :func:`rig.flash_verify.sync_flash` skips sectors that already hold the
image, writes only the sectors that differ, reads back only chunks whose CRC is wrong after
writing, and falls back to a plain write and full readback when the routine cannot be trusted
(wrong self-test CRC, stop outside its BKPT, timeout). Real twin, real pyOCD."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator

import pytest

from rig import flash_verify
from rig.board import load_board
from rig.bootcfg import BootConfig
from rig.flash_verify import CHUNK, TargetCrc, TargetCrcError, chunks, sync_flash
from rig.probe import Probe
from rig.targets.twin import TwinTarget, start_twin

pytestmark = pytest.mark.timeout(300)

FLASH = 0x08000000
SECTOR4 = 0x08020000  # single bank: sectors 0-3 are 32 KiB, sector 4 is 128 KiB
APP = 0x08040000  # sector 5 (256 KiB)


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinTarget]:
    t = start_twin(extra_args=["--timing", "fast"], log_path=tmp_path_factory.mktemp("twin") / "twin.log")
    try:
        yield t
    finally:
        t.stop()


@pytest.fixture
def probe(twin: TwinTarget) -> Iterator[Probe]:
    with Probe(twin.probe_uid) as p:
        p.reset(halt=True)
        yield p


def _random(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def test_chunks_cover_the_range_exactly() -> None:
    assert chunks(0x1000, 0) == []
    assert chunks(0x1000, 10, size=4) == [(0x1000, 4), (0x1004, 4), (0x1008, 2)]


def test_the_routine_agrees_with_zlib(probe: Probe) -> None:
    content = _random(192 * 1024, 1)
    probe.flash(FLASH, content)  # sectors 0..4
    ranges = [
        (FLASH, 0),
        (FLASH, 1),
        (FLASH + 1, 3),
        (FLASH + 3, 4095),
        (FLASH + 0x777, 4097),
        (FLASH + 0x1001, 65537),
        (SECTOR4 - 5000, 10001),  # across the sector 3 / sector 4 boundary
        (FLASH, len(content)),
    ]
    crc = TargetCrc(probe)
    got = crc.crcs(ranges)
    want = [zlib.crc32(content[a - FLASH : a - FLASH + n]) for a, n in ranges]
    assert got == want
    ram = _random(999, 2)
    probe.write_ram(0x20010003, ram)
    assert crc.crcs([(0x20010003, 999)]) == [zlib.crc32(ram)]
    assert crc.runs == 2


def test_many_ranges_run_in_batches(probe: Probe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(flash_verify, "MAX_RANGES", 4)
    crc = TargetCrc(probe)
    ranges = [(FLASH + 7 * i, 5 + i) for i in range(10)]
    data = probe.read(FLASH, 128)
    assert crc.crcs(ranges) == [zlib.crc32(data[7 * i : 8 * i + 5]) for i in range(10)]
    assert crc.runs == 4


def test_sync_skips_what_is_there_and_writes_only_differing_sectors(probe: Probe) -> None:
    layout = load_board().active_layout
    image = _random(300 * 1024, 3)  # sector 5 whole, sector 6 (256 KiB) in part
    tail = _random(4096, 4)
    probe.flash(APP + len(image), tail)  # bytes of sector 6 after the image: kept
    first = sync_flash(probe, layout, APP, image)
    assert first.actual == image and first.stats.fallback is None
    assert first.stats.read == 0 and first.stats.written + first.stats.skipped == len(image)

    again = sync_flash(probe, layout, APP, image)
    assert (again.stats.skipped, again.stats.written, again.stats.read) == (len(image), 0, 0)
    assert again.stats.crc == len(image) and again.actual == image
    assert "307200 bytes skipped" in again.stats.note("app")

    changed = bytearray(image)
    changed[256 * 1024 + 100] ^= 0xFF  # in sector 6 only
    third = sync_flash(probe, layout, APP, bytes(changed))
    assert third.stats.written == len(image) - 256 * 1024 and third.stats.skipped == 256 * 1024
    assert third.stats.read == 0 and third.actual == bytes(changed)
    assert probe.read(APP, len(image)) == bytes(changed)
    assert probe.read(APP + len(image), len(tail)) == tail  # the rest of sector 6 kept


def test_a_wrong_write_is_read_back_only_where_its_crc_differs(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = load_board().active_layout
    image = _random(64 * 1024, 5)
    real_flash = probe.flash

    def flips_a_byte(address: int, data: bytes, **kw: object) -> None:
        bad = bytearray(data)
        bad[5000] ^= 0x10  # a bit the flash did not take
        real_flash(address, bytes(bad), **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(probe, "flash", flips_a_byte)
    result = sync_flash(probe, layout, APP, image)
    assert result.stats.written == len(image) and result.stats.read == CHUNK
    assert result.actual != image
    diff = [i for i in range(len(image)) if result.actual[i] != image[i]]
    assert diff == [5000]
    monkeypatch.undo()
    assert probe.read(APP, len(image)) == result.actual  # the readback is what flash holds


@pytest.mark.parametrize(
    "blob, words",
    [
        # the polynomial's low half changed: every CRC wrong, the self-test catches it
        (
            lambda code: code.replace(bytes.fromhex("48f22033"), bytes.fromhex("48f22133"), 1),
            "self-test failed",
        ),
        # a BKPT at the routine's first instruction: it stops, but not where it should
        (lambda code: b"\x00\xbe" + code[2:], "not at its BKPT"),
        # a loop for ever before the BKPT
        (lambda code: b"\xfe\xe7" + code[2:], "did not finish"),
    ],
    ids=["wrong-crc", "wrong-stop", "timeout"],
)
def test_a_routine_that_cannot_be_trusted_falls_back(
    probe: Probe, monkeypatch: pytest.MonkeyPatch, blob, words: str
) -> None:
    good = flash_verify.algo()
    bad = blob(good)
    assert bad != good
    monkeypatch.setattr(flash_verify, "algo", lambda: bad)
    monkeypatch.setattr(flash_verify, "run_timeout", lambda n: 0.3)
    with pytest.raises(TargetCrcError, match=words):
        TargetCrc(probe).crcs([(FLASH, 16)])
    layout = load_board().active_layout
    image = _random(8 * 1024, 6)
    result = sync_flash(probe, layout, APP, image)
    assert result.stats.fallback is not None and words in result.stats.fallback
    assert (result.stats.written, result.stats.read) == (len(image), len(image))
    assert result.actual == image == probe.read(APP, len(image))
    assert "plain write and full readback" in result.stats.note("app")


def test_blob_is_the_package_data() -> None:
    code = flash_verify.algo()
    assert 0 < len(code) <= 0x100 and flash_verify.bkpt_offset(code) < len(code)


def test_written_end_and_parked(probe: Probe) -> None:
    sector8 = 0x08100000
    probe.flash(sector8 + 5000, b"\x00" * 100)  # the sector erased, 100 bytes in its 2nd chunk
    crc = TargetCrc(probe)
    assert flash_verify.written_end(crc, sector8, 256 * 1024) == 2 * CHUNK
    assert flash_verify.written_end(crc, sector8 + 2 * CHUNK, 64 * 1024) == 0
    assert flash_verify.parked(probe)  # halted at the routine's BKPT: no firmware ran since
    probe.reset(halt=True)
    assert not flash_verify.parked(probe)


def test_a_changed_record_sealed_with_its_own_crc_is_written(probe: Probe) -> None:
    """A request and a withdrawal of the config record share one CRC-32 (the residue,
    tests/unit/test_unit_config_crc_residue.py): the request must still be written."""
    layout = load_board().active_layout
    withdrawal, request = _record(False), _record(True)
    sync_flash(probe, layout, SECTOR4, withdrawal)
    result = sync_flash(probe, layout, SECTOR4, request)
    assert result.stats.written == 64 and result.actual == request
    assert probe.read(SECTOR4, 64) == request
    again = sync_flash(probe, layout, SECTOR4, request)
    assert again.stats.written == 0 and again.stats.skipped == 64


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
