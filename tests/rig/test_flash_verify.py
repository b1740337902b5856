"""Verify-before-write (issue 18): the rig's CRC-32 routine runs on the twin's core through
stock pyOCD and agrees with zlib.crc32 (lengths 0 to several chunks, unaligned starts, a range
across sectors, SRAM); :func:`rig.flash_verify.sync_flash` skips sectors that already hold the
image, writes only the sectors that differ, reads back only chunks whose CRC is wrong after
writing, and falls back to a plain write and full readback when the routine cannot be trusted
(wrong self-test CRC, stop outside its BKPT, timeout). Sectors are written by the rig's own
flash routine (rig/flash_write.py): whole sectors from SRAM in one run, blank runs skipped,
the rest of a sector kept, flash error flags named, pyOCD's algorithm when the routine cannot
run. Real twin, real pyOCD."""

from __future__ import annotations

import random
import zlib
from collections.abc import Iterator

import pytest

from rig import flash_verify, flash_write
from rig.board import load_board
from rig.bootcfg import BootConfig
from rig.errors import ProbeError
from rig.flash_verify import CHUNK, TargetCrc, TargetCrcError, chunks, sync_flash
from rig.flash_write import BUFFER, FlashWriteError, erase_cr, program_runs, write_sector
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
    real_write = flash_verify.write_sector

    def flips_a_byte(probe: Probe, sector, content: bytes) -> None:
        bad = bytearray(content)
        bad[5000] ^= 0x10  # a bit the flash did not take
        real_write(probe, sector, bytes(bad))

    monkeypatch.setattr(flash_verify, "write_sector", flips_a_byte)
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


def test_program_runs_skip_blank_words_and_merge_short_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    ff = b"\xff"
    content = ff * 8 + b"\x01\x02\x03\x04" + ff * 100 + b"\0" * 4 + ff * 1000 + b"\x05" + ff * 3
    assert program_runs(content, 0x100) == [(0x108, 108), (0x100 + 1116, 4)]
    assert program_runs(ff * 64, 0) == []
    assert program_runs(b"\0" * 64, 0x40) == [(0x40, 64)]
    with pytest.raises(ValueError, match="whole words"):
        program_runs(b"\0" * 6, 0)
    monkeypatch.setattr(flash_write, "MAX_DESCRIPTORS", 3)  # at most 2 runs: shortest gap merged
    many = b"\0" * 4 + ff * 400 + b"\0" * 4 + ff * 300 + b"\0" * 4 + ff * 500 + b"\0" * 4
    assert program_runs(many, 0) == [(0, 712), (1212, 4)]


def test_the_flash_routine_writes_a_whole_sector_in_one_run(probe: Probe) -> None:
    layout = load_board().active_layout
    sec = layout.sector(6)
    probe.flash(sec.base, _random(8192, 7))  # old bytes where the new content is blank
    content = bytearray(b"\xff" * sec.size)
    content[0:4096] = _random(4096, 8)
    content[100_000:100_008] = bytes(8)
    content[-4:] = b"\x12\x34\x56\x78"
    write_sector(probe, sec, bytes(content))
    assert probe.read(sec.base, sec.size) == bytes(content)  # erased first: no old byte left
    assert flash_verify.parked(probe)  # halted at the writer's BKPT: no firmware ran


def test_a_flash_error_flag_is_named(probe: Probe) -> None:
    layout = load_board().active_layout
    sec = layout.sector(7)
    # a word programmed at an unaligned address: the controller refuses it (PGAERR)
    descs = [(erase_cr(sec), sec.base, 0, 0), (0, sec.base + 2, BUFFER, 4)]
    with pytest.raises(ProbeError, match="PGAERR") as err:
        flash_write._run(probe, descs, sec, 4)
    assert "0x080C0002" in str(err.value)
    assert probe.read32(0x40023C10) >> 31 == 1  # FLASH_CR locked again


def test_a_flash_routine_that_cannot_run_falls_back_to_pyocd(
    probe: Probe, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = flash_write.algo()
    monkeypatch.setattr(flash_write, "algo", lambda: b"\xfe\xe7" + good[2:])  # loops for ever
    monkeypatch.setattr(flash_write, "run_timeout", lambda n, e: 0.3)
    sec = load_board().active_layout.sector(7)
    with pytest.raises(FlashWriteError, match="did not finish"):
        write_sector(probe, sec, b"\0" * sec.size)
    probe.reset(halt=True)
    image = _random(8 * 1024, 9)
    result = sync_flash(probe, load_board().active_layout, sec.base, image)
    assert result.actual == image == probe.read(sec.base, len(image))
    assert "pyOCD's algorithm wrote it" in result.stats.note("x")
