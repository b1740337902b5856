"""Images that cannot be a flash image of this board (issue 21, finding 6): unreadable files,
files that are no image, addresses outside the flash or past 2**32, an ELF whose header lies
about its size. Each is one ImageError (``rig diff``: exit 2 with the message, no traceback)."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from image_files import elf, hex_record, intel_hex, with_program_header

from rig.board import load_board
from rig.cli import main
from rig.errors import ImageError
from rig.image import load_image

FLASH = 0x08000000
APP = 0x08040000


def vectors(base: int = APP, size: int = 1024) -> bytes:
    body = bytearray(size)
    struct.pack_into("<II", body, 0, 0x20080000, base + 0x201)
    return bytes(body)


@pytest.fixture(scope="module")
def spec():
    return load_board()


def _diff(expected: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    """``rig diff EXPECTED readback`` with a readback that is fine: the exit code and stderr."""
    readback = expected.parent / "readback.bin"
    readback.write_bytes(vectors())
    base = [] if expected.suffix != ".bin" else ["--base", hex(APP)]
    code = main(["diff", str(expected), str(readback), *base, *extra])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".bin", ".hex", ".elf"])
def test_an_unreadable_image_is_exit_2_with_the_reason(
    tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Root reads every file, so the refusal is simulated where every loader opens it."""
    path = tmp_path / f"app{suffix}"
    path.write_bytes(vectors() if suffix == ".bin" else b"")
    real_open = os.open

    def denied(file: Any, *args: Any, **kwargs: Any) -> int:
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", denied)
    code, err = _diff(path, capsys)
    assert code == 2 and f"{path}: cannot read: Permission denied" in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("suffix", [".bin", ".hex", ".elf"])
def test_a_directory_or_fifo_named_like_an_image_is_refused(
    tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / f"dir{suffix}"
    d.mkdir()
    fifo = tmp_path / f"fifo{suffix}"
    os.mkfifo(fifo)
    for path, what in ((d, "a directory"), (fifo, "a FIFO (named pipe)")):
        code, err = _diff(path, capsys)
        assert code == 2 and f"{path}: {what}, not an image file" in err, err


def test_a_bin_longer_than_the_flash_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(vectors(FLASH) + bytes((3 << 20) - 1024))
    code, err = _diff(path, capsys, "--base", hex(FLASH))
    assert code == 2 and "3145728 bytes at 0x08000000..0x082FFFFF, past the end of flash" in err, err


@pytest.mark.parametrize(
    "address, words",
    [
        (0x90000000, "outside every memory of the board"),
        (0x20020000, "in sram1 (ram), not in flash"),
        (0x00200000, "in flash_itcm (alias), not in flash"),
    ],
)
def test_a_hex_outside_the_flash_is_refused(
    tmp_path: Path, address: int, words: str, spec, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.hex"
    path.write_text(intel_hex(address, vectors(address)))
    assert load_image(path).base == address  # as a file it is fine
    with pytest.raises(ImageError, match=r"not in flash|outside every memory"):
        load_image(path, spec=spec)
    code, err = _diff(path, capsys)
    assert code == 2 and words in err, err


def test_hex_addresses_past_2_to_the_32_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "wrap.hex"
    path.write_text(
        hex_record(4, 0, b"\xff\xff") + hex_record(0, 0xFFF0, bytes(range(32))) + hex_record(1, 0, b"")
    )
    with pytest.raises(ImageError, match=r"data runs to 0x10000000F, past the 32-bit address space"):
        load_image(path)


def test_a_bin_whose_base_runs_past_2_to_the_32_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(bytes(4096))
    with pytest.raises(ImageError, match="run past the 32-bit address space"):
        load_image(path, base=0xFFFFF000 + 16)


def test_an_elf_segment_claiming_2_gib_is_refused_not_truncated(tmp_path: Path) -> None:
    raw = elf([(APP, vectors())])
    path = tmp_path / "app.elf"
    path.write_bytes(raw)
    assert load_image(path).data == vectors()  # the hand-made ELF itself is fine
    path.write_bytes(with_program_header(raw, 0, filesz=2 << 30, memsz=2 << 30))
    with pytest.raises(
        ImageError, match=r"a segment claims 2147483648 bytes at file offset 84 \(the file has"
    ):
        load_image(path)


def test_an_elf_whose_segments_run_past_2_to_the_32_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "app.elf"
    path.write_bytes(elf([(0xFFFFFF00, vectors(size=1024))]))
    with pytest.raises(ImageError, match="past the 32-bit address space"):
        load_image(path)


def test_an_elf_with_a_broken_header_is_an_image_error(tmp_path: Path) -> None:
    raw = bytearray(elf([(APP, vectors())]))
    raw[44:46] = struct.pack("<H", 0xFFFF)  # e_phnum: 65535 program headers in an 1.1 KiB file
    path = tmp_path / "app.elf"
    path.write_bytes(bytes(raw))
    with pytest.raises(ImageError, match=r"not a valid ELF file|a segment claims"):
        load_image(path)


def test_a_readback_or_previous_image_outside_the_flash_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected = tmp_path / "app.bin"
    expected.write_bytes(vectors(FLASH + (2 << 20) - 1024))
    readback = tmp_path / "readback.bin"
    readback.write_bytes(bytes(4096))  # starts 1 KiB before the end of flash: 3 KiB past it
    code = main(["diff", str(expected), str(readback), "--base", hex(FLASH + (2 << 20) - 1024)])
    err = capsys.readouterr().err
    assert code == 2 and f"{readback}: 4096 bytes at 0x081FFC00..0x08200BFF, past the end of flash" in err
