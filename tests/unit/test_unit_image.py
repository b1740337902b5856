"""Image loaders (.bin/.hex/.elf), vector table, slot validation and sized test images."""

from __future__ import annotations

import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst
from intelhex import IntelHex

from rig.board import BoardSpec, load_board
from rig.errors import ImageError
from rig.image import Image, load_image, make_padded_app, padding_pattern, validate_for_slot

APP = 0x08040000
K = 1024


@pytest.fixture(scope="module")
def spec() -> BoardSpec:
    return load_board()


def app_image(sp: int = 0x20080000, reset: int = APP + 0x201, size: int = 1024, base: int = APP) -> Image:
    body = bytearray(size)
    struct.pack_into("<II", body, 0, sp, reset)
    for i in range(8, size):
        body[i] = (i * 7) & 0xFF
    return Image(bytes(body), base)


# ----------------------------------------------------------------------------- loaders


def test_bin_needs_base(tmp_path: Path) -> None:
    path = app_image().write_bin(tmp_path / "app.bin")
    with pytest.raises(ImageError, match="--base 0x08040000"):
        load_image(path)
    img = load_image(path, base=APP)
    assert img.base == APP and img.end == APP + 1024 and img.path == path
    assert img.initial_sp == 0x20080000 and img.reset_handler == APP + 0x201
    assert img.vector(1) == img.reset_handler


def test_empty_and_missing_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        load_image(tmp_path / "e.bin", base=APP)
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "none.bin", base=APP)
    (tmp_path / "x.srec").write_text("S0")
    with pytest.raises(ImageError, match=r"unknown image format '\.srec'"):
        load_image(tmp_path / "x.srec")


def test_hex_with_gap_is_filled_with_ff(tmp_path: Path) -> None:
    ih = IntelHex()
    ih.puts(APP, app_image(size=16).data)
    ih.puts(APP + 0x100, b"\x01\x02\x03")
    path = tmp_path / "app.hex"
    ih.write_hex_file(str(path))
    img = load_image(path)
    assert img.base == APP and img.size == 0x103
    assert img.data[16:0x100] == b"\xff" * (0x100 - 16)
    assert img.data[0x100:] == b"\x01\x02\x03"
    with pytest.raises(ImageError, match="not at the given base"):
        load_image(path, base=0x08000000)


def test_bad_hex(tmp_path: Path) -> None:
    path = tmp_path / "bad.hex"
    path.write_text(":10000000ZZ\n")
    with pytest.raises(ImageError, match="not a valid Intel hex"):
        load_image(path)


def test_bad_elf(tmp_path: Path) -> None:
    path = tmp_path / "bad.elf"
    path.write_bytes(b"\x7fELF" + b"\x00" * 10)
    with pytest.raises(ImageError, match="not a valid ELF"):
        load_image(path)


C_SRC = """
extern unsigned long _estack;
void reset(void);
__attribute__((section(".vectors"), used)) const void *vectors[2] = {&_estack, (void *)reset};
volatile unsigned int counter = 0x11223344u;   /* .data: runs in RAM, stored in flash */
void reset(void) { for (;;) { counter++; } }
"""
LD = """
MEMORY { FLASH (rx) : ORIGIN = 0x08040000, LENGTH = 1280K
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 512K }
_estack = ORIGIN(RAM) + LENGTH(RAM);
SECTIONS {
  .text : { KEEP(*(.vectors)) *(.text*) *(.rodata*) } > FLASH
  .data : { *(.data*) } > RAM AT> FLASH
  .bss (NOLOAD) : { *(.bss*) *(COMMON) } > RAM
}
"""


def _arm_tool(name: str) -> str:
    """The Arm toolchain is part of the project's set-up (make setup), never optional: a
    missing tool is an error, not a skip."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found on PATH: install the Debian package gcc-arm-none-eabi "
            "(apt-get install gcc-arm-none-eabi; `make setup` does it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="module")
def elf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = _arm_tool("arm-none-eabi-gcc")
    d = tmp_path_factory.mktemp("elf")
    (d / "app.c").write_text(C_SRC)
    (d / "app.ld").write_text(LD)
    out = d / "app.elf"
    subprocess.run(
        [
            gcc,
            "-mcpu=cortex-m7",
            "-mthumb",
            "-O1",
            "-nostdlib",
            "-nostartfiles",
            "-T",
            str(d / "app.ld"),
            str(d / "app.c"),
            "-o",
            str(out),
        ],
        check=True,
        timeout=120,
        capture_output=True,
    )
    return out


def test_elf_segments_at_physical_addresses(elf_path: Path, spec: BoardSpec) -> None:
    img = load_image(elf_path)
    assert img.base == APP
    assert img.initial_sp == 0x20080000
    assert img.reset_handler & 1 and img.contains(img.reset_handler & ~1)
    # .data's load address (p_paddr) is in flash right after .text: its initial value is in the image
    assert struct.pack("<I", 0x11223344) in img.data
    assert validate_for_slot(img, spec) == []
    objcopy = _arm_tool("arm-none-eabi-objcopy")
    binpath = elf_path.with_suffix(".bin")
    subprocess.run([objcopy, "-O", "binary", str(elf_path), str(binpath)], check=True, timeout=60)
    assert load_image(binpath, base=APP).data == img.data


def test_elf_for_other_arch(tmp_path: Path) -> None:
    src = Path(sys.executable).resolve()  # the running interpreter: a host (x86/arm64) ELF
    elf = tmp_path / "host.elf"
    shutil.copy(src, elf)
    if elf.read_bytes()[:4] != b"\x7fELF":
        pytest.skip("host python is not an ELF binary")
    with pytest.raises(ImageError, match="not ARM"):
        load_image(elf)


# ----------------------------------------------------------------------------- validation


def codes(img: Image, spec: BoardSpec, region: str = "app_slot") -> list[str]:
    return [p.code for p in validate_for_slot(img, spec, region)]


def test_good_image(spec: BoardSpec) -> None:
    assert codes(app_image(), spec) == []


@pytest.mark.parametrize(
    "img,code",
    [
        (app_image(sp=0x10000000), "sp_not_in_ram"),
        (app_image(sp=0x20080004), "sp_not_in_ram"),
        (app_image(sp=0x2007FFFC), "sp_alignment"),
        (app_image(reset=APP + 0x200), "reset_not_thumb"),
        (app_image(reset=0x08000201), "reset_outside"),
        (app_image(reset=APP + 0x10001), "reset_outside"),
        (app_image(sp=0xFFFFFFFF, reset=0xFFFFFFFF), "erased_vectors"),
        (app_image(base=0x08060000, reset=0x08060201), "base"),
        (Image(b"\x00\x00\x08\x20", APP), "no_vectors"),
    ],
)
def test_each_problem(spec: BoardSpec, img: Image, code: str) -> None:
    assert code in codes(img, spec)


def test_itcm_alias_reset_handler_accepted(spec: BoardSpec) -> None:
    assert codes(app_image(reset=0x00240201), spec) == []


def test_too_big_for_staging_and_region(spec: BoardSpec) -> None:
    assert codes(app_image(size=512 * K), spec) == []
    assert codes(app_image(size=512 * K + 4), spec) == ["too_big_for_staging"]
    big = app_image(size=1280 * K + 4)
    assert {"too_big", "too_big_for_staging"} <= set(codes(big, spec))


def test_strict_raises_with_hint(spec: BoardSpec) -> None:
    with pytest.raises(ImageError, match="SP 0x10000000 is not in RAM") as err:
        validate_for_slot(app_image(sp=0x10000000), spec, strict=True)
    assert "_estack" in str(err.value)


def test_problem_dict(spec: BoardSpec) -> None:
    (p,) = validate_for_slot(app_image(reset=APP + 0x200), spec)
    assert set(p.to_dict()) == {"code", "message", "hint"} and "Thumb" in str(p)


# ----------------------------------------------------------------------------- sized images


def test_padded_app_is_deterministic(spec: BoardSpec) -> None:
    base = app_image()
    a = make_padded_app(base, 300 * K, seed=1)
    b = make_padded_app(base, 300 * K, seed=1)
    c = make_padded_app(base, 300 * K, seed=2)
    assert a.data == b.data and a.data != c.data
    assert a.size == 300 * K and a.data[: base.size] == base.data and a.base == APP
    assert validate_for_slot(a, spec) == []
    assert a.data[base.size :] == padding_pattern(base.size, 300 * K - base.size, 1)
    assert b"\xff\xff\xff\xff\xff\xff\xff\xff" not in a.data[base.size :]
    assert make_padded_app(base, base.size, 0).data == base.data


def test_padded_app_cannot_shrink() -> None:
    with pytest.raises(ImageError, match="at least 1024"):
        make_padded_app(app_image(), 100)


@settings(max_examples=60, deadline=None)
@given(
    off=hst.integers(0, 5000), n=hst.integers(0, 600), cut=hst.integers(0, 600), seed=hst.integers(0, 2**32)
)
def test_padding_depends_only_on_position(off: int, n: int, cut: int, seed: int) -> None:
    cut = min(cut, n)
    whole = padding_pattern(off, n, seed)
    assert len(whole) == n
    assert padding_pattern(off, cut, seed) + padding_pattern(off + cut, n - cut, seed) == whole


def test_crc_and_sha() -> None:
    img = Image(b"123456789", 0)
    assert img.crc32 == 0xCBF43926
    assert len(img.sha256) == 64
    assert "0x00000000" in repr(img)
