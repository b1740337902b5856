"""The firmware build: every image exists, is laid out as the rig expects, is
warning-free and reproducible (tests/firmware, runs `make -C firmware`)."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from fw_build import APPS, BUILD, FIRMWARE, VARIANTS, make

sys.path.insert(0, str(FIRMWARE / "tools"))
import gen_payload

RAM_TOP = 0x2008_0000


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A from-scratch build in a private directory (firmware/build is shared with other
    tests running at the same time, so it is never cleaned here)."""
    return tmp_path_factory.mktemp("fwbuild")


@pytest.fixture(scope="module")
def build_log(fresh: Path) -> str:
    """Build everything from scratch into ``fresh`` and return make's output."""
    proc = make("all", extra=(f"B={fresh}",), timeout=1200)
    make("all", timeout=1200)  # keep firmware/build current for the other firmware tests
    return proc.stdout + proc.stderr


def symbol(elf_path: Path, name: str) -> int:
    """Address of a symbol in an ELF file."""
    with elf_path.open("rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
        assert sym, f"{name} not in {elf_path.name}"
        return sym[0]["st_value"]


def test_build_is_warning_free_and_reports_size_and_stack(build_log: str) -> None:
    assert "warning:" not in build_log
    assert "bootloader image:" in build_log and "of 131072" in build_log
    assert "worst-case stack" in build_log


@pytest.mark.parametrize("name", ["bootloader"] + [f"bootloader-{v}" for v in VARIANTS])
def test_bootloader_images(build_log: str, fresh: Path, name: str) -> None:
    data = (fresh / f"{name}.bin").read_bytes()
    assert 1024 < len(data) <= 128 * 1024
    sp, pc = struct.unpack_from("<II", data, 0)
    assert sp == RAM_TOP
    assert pc & 1 and 0x0800_0000 <= pc - 1 < 0x0800_0000 + len(data)
    assert (fresh / f"{name}.map").is_file() and (fresh / f"{name}.elf").is_file()
    assert symbol(fresh / f"{name}.elf", "Reset_Handler") | 1 == pc


def test_variants_differ_from_the_correct_bootloader(build_log: str, fresh: Path) -> None:
    ref = (fresh / "bootloader.bin").read_bytes()
    images = {v: (fresh / f"bootloader-{v}.bin").read_bytes() for v in VARIANTS}
    assert all(img != ref for img in images.values())
    assert len(set(images.values())) == len(VARIANTS)


@pytest.mark.parametrize("version,kib", sorted(APPS.items()))
def test_app_images(build_log: str, fresh: Path, version: int, kib: int) -> None:
    name = f"app-v{version}-{kib}k"
    data = (fresh / f"{name}.bin").read_bytes()
    assert len(data) == kib * 1024
    sp, pc = struct.unpack_from("<II", data, 0)
    assert sp == RAM_TOP
    assert pc & 1 and 0x0804_0000 < pc - 1 < 0x0804_0000 + len(data)
    magic, hdr_ver, app_ver, size, link = struct.unpack_from("<5I", data, 0x200)
    build_id = data[0x214:0x220].split(b"\0")[0].decode()
    assert (magic, hdr_ver, app_ver, size, link) == (0x4841544F, 1, version, len(data), 0x0804_0000)
    assert build_id == gen_payload.build_id(version, kib * 1024)
    # The image ends with the seeded payload, so its content is reproducible.
    start = symbol(fresh / f"{name}.elf", "__payload_start") - 0x0804_0000
    assert data[start:] == gen_payload.payload(version, len(data) - start)


def test_apps_are_distinct(build_log: str, fresh: Path) -> None:
    crcs = {zlib.crc32((fresh / f"app-v{v}-{k}k.bin").read_bytes()) for v, k in APPS.items()}
    assert len(crcs) == len(APPS)


def test_rebuild_is_byte_identical(build_log: str, fresh: Path) -> None:
    """Two independent builds (fresh dir and firmware/build) give the same bytes."""
    names = (
        [f"app-v{v}-{k}k" for v, k in APPS.items()] + ["bootloader"] + [f"bootloader-{v}" for v in VARIANTS]
    )
    for name in names:
        assert (fresh / f"{name}.bin").read_bytes() == (BUILD / f"{name}.bin").read_bytes(), name


def test_make_app_any_size(build_log: str, tmp_path: Path) -> None:
    make("app", "VERSION=9", "SIZE=20", extra=(f"B={tmp_path}",))
    data = (tmp_path / "app-v9-20k.bin").read_bytes()
    assert len(data) == 20 * 1024
    assert struct.unpack_from("<I", data, 0x208)[0] == 9


def test_make_app_too_small_names_the_fix(build_log: str, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="bigger SIZE"):
        make("app", "VERSION=9", "SIZE=1", extra=(f"B={tmp_path}",))
