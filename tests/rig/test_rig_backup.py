"""Never lose the user's flash (issue 15: 6): the whole flash (read twice) and the option bytes
saved before the first write, ``rig restore`` puts both back and verifies them, a
read-protected chip is refused, and after a run the board must boot to its banner. On a twin
reached through pyOCD's remote probe, as a lab board is; the "user's firmware" is a bootloader
variant loaded before the test."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.backup import Backup, _program_option_bytes, boot_check, restore_backup, take_backup
from rig.board import load_board
from rig.console import Console
from rig.errors import ConfigError, ProbeError
from rig.probe import FLASH_OPTCR, OptionBytes, Probe
from rig.targets.twin import TwinTarget, start_twin

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"
USER_FIRMWARE = BUILD / "bootloader-no-vtor.bin"  # what the user had on the board


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinTarget]:
    if not USER_FIRMWARE.is_file():
        pytest.skip("firmware not built (make -C firmware)")
    t = start_twin(
        log_path=tmp_path / "twin.log",
        extra_args=[
            "--load",
            f"{USER_FIRMWARE}@0x08000000",
            "--load",
            f"{BUILD / 'app-v1-16k.bin'}@0x08040000",
        ],
    )
    try:
        yield t
    finally:
        t.stop()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_backup_then_restore_puts_flash_and_option_bytes_back(twin: TwinTarget, tmp_path: Path) -> None:
    spec = load_board()
    with Probe(twin.probe_uid) as p:
        before = p.read(spec.flash.base, spec.flash.size)
        ob_before = p.option_bytes()
        backup = take_backup(p, spec, tmp_path / "backups", probe_uid=twin.probe_uid)
        # the rig's run: another bootloader, another app, other option bytes (BOOT_ADD1)
        p.reset(halt=True)
        p.flash(0x08000000, (BUILD / "bootloader.bin").read_bytes())
        p.flash(0x08180000, bytes(range(256)) * 1024)
        _program_option_bytes(p, OptionBytes(ob_before.optcr, ob_before.optcr1 ^ 0x00400000), ob_before)
        p.reset(halt=True)
        assert p.option_bytes().optcr1 != ob_before.optcr1
        assert _sha(p.read(spec.flash.base, spec.flash.size)) != _sha(before)

    meta = json.loads((backup.directory / "backup.json").read_text())
    assert backup.directory.parent == tmp_path / "backups" and backup.directory.name.startswith(
        "remote_127.0.0.1"
    )
    assert meta["sha256"] == _sha(before) == _sha((backup.directory / "flash.bin").read_bytes())
    assert meta["flash_size"] == 2 * 1024 * 1024 and meta["optcr1"] == f"0x{ob_before.optcr1:08X}"
    assert len(meta["unique_id"]) == 24 and meta["probe_uid"] == twin.probe_uid

    # `rig restore DIR`: the probe from backup.json, option bytes then flash, verified
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "restore", str(backup.directory)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "option bytes written back" in proc.stdout and "flash verified" in proc.stdout
    with Probe(twin.probe_uid) as p:
        assert _sha(p.read(spec.flash.base, spec.flash.size)) == _sha(before)
        assert p.option_bytes() == ob_before
        # restoring again changes nothing and still verifies
        again = restore_backup(p, Backup.load(backup.directory / "flash.bin"))
        assert not again.option_bytes_written and again.sha256 == _sha(before)


def test_a_changed_backup_or_another_chip_is_refused(twin: TwinTarget, tmp_path: Path) -> None:
    spec = load_board()
    with Probe(twin.probe_uid) as p:
        backup = take_backup(p, spec, tmp_path, probe_uid="066DFF485151717867114355")
        meta = json.loads((backup.directory / "backup.json").read_text())
        other = dict(meta, unique_id="0" * 24)
        (backup.directory / "backup.json").write_text(json.dumps(other))
        with pytest.raises(ConfigError, match="was taken from the chip 000000000000000000000000"):
            restore_backup(p, Backup.load(backup.directory))
        assert restore_backup(p, Backup.load(backup.directory), force=True).sha256 == meta["sha256"]
        (backup.directory / "backup.json").write_text(json.dumps(meta))
        data = bytearray((backup.directory / "flash.bin").read_bytes())
        data[100] ^= 1
        (backup.directory / "flash.bin").write_bytes(bytes(data))
        with pytest.raises(ConfigError, match="the file was changed"):
            restore_backup(p, Backup.load(backup.directory))
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "restore", str(tmp_path / "nothing-here")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2 and "no backup.json" in proc.stderr


def test_a_read_protected_chip_gets_no_backup_and_no_write(twin: TwinTarget, tmp_path: Path) -> None:
    with Probe(twin.probe_uid) as p:
        ob = p.option_bytes()
        p.write32(0x40023C08, 0x08192A3B)  # FLASH_OPTKEYR
        p.write32(0x40023C08, 0x4C5D6E7F)
        level1 = (ob.optcr & ~0xFF03) | 0x5500  # RDP = 0x55: level 1
        p.write32(FLASH_OPTCR, level1)
        p.write32(FLASH_OPTCR, level1 | 2)  # OPTSTRT
        p.reset(halt=True)
        assert p.option_bytes().rdp_level == 1
        with pytest.raises(ProbeError, match=r"read-protected \(RDP level 1\)"):
            take_backup(p, load_board(), tmp_path / "backups", probe_uid="x")
    assert not (tmp_path / "backups").exists()  # nothing written


def test_the_boot_check_after_a_run(twin: TwinTarget) -> None:
    with Probe(twin.probe_uid) as p, Console(twin.serial_port) as con:
        check = boot_check(p, con, banner=r"BL: [^\r\n]*", timeout=15)
        assert check.ok and check.line.startswith("BL:"), check.summary()
        assert "the board boots" in check.summary()
        # a board whose flash is empty boots to nothing: the check says so
        p.reset(halt=True)
        p.flash(0x08000000, b"\xff" * 0x8000)
        bad = boot_check(p, con, banner=None, timeout=2)
        assert not bad.ok and "does not boot to any line of output" in bad.summary()
