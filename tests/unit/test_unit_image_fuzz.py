"""Property test of the image loaders: ELF files whose ELF and program headers are mutated
(hand-made ones and the reference firmware's own, with section headers), Intel hex files whose
records are mutated (types, counts, addresses, extended-address records, checksums kept valid
so the mutation reaches the loader), and .bin files at any base.

Invariant per input: :func:`rig.image.load_image` returns an Image inside the 32-bit address
space and at most ``MAX_SPAN`` long (with the board: inside the flash), or raises one
ImageError naming the file; never another exception, within 2 s (SIGALRM), with the process's
address space capped at 512 MiB more than before the run (RLIMIT_AS). The number of inputs is
printed (``-s``/``-rA``) and recorded as a test-suite property."""

from __future__ import annotations

import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzz_caps import memory_cap, peak_rss, time_cap
from image_files import ELF_HEADER, elf, hex_record, intel_hex, with_program_header

from rig.board import load_board
from rig.errors import ImageError
from rig.image import ADDRESS_LIMIT, MAX_SPAN, Image, load_image

APP = 0x08040000
REPO = Path(__file__).resolve().parents[2]
FIRMWARE_ELF = REPO / "firmware" / "build" / "app-v1-16k.elf"
SPEC = load_board()
TIME_CAP = 2.0
MEMORY_CAP = 512 << 20

u32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from(
        [0, 1, 3, 0x34, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFF00, APP, 0x20020000, 2 << 30]
    ),
)
u16 = st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 1, 0x20, 0x28, 0x34, 0xFFFF]))


def _vectors(base: int, size: int = 256) -> bytes:
    body = bytearray(size)
    struct.pack_into("<II", body, 0, 0x20080000, (base + 0x101) & 0xFFFFFFFF)
    return bytes(body)


def _base_elfs() -> list[bytes]:
    out = [elf([(APP, _vectors(APP, 1024))]), elf([(APP, _vectors(APP)), (APP + 0x1000, bytes(range(256)))])]
    if FIRMWARE_ELF.is_file():
        out.append(FIRMWARE_ELF.read_bytes())
    return out


BASE_ELFS = _base_elfs()
ELF_FIELDS = ["e_type", "e_machine", "e_version", "e_entry", "e_phoff", "e_shoff", "e_flags", "e_ehsize",
              "e_phentsize", "e_phnum", "e_shentsize", "e_shnum", "e_shstrndx"]  # fmt: skip
PH_FIELDS = ["type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align"]


@st.composite
def mutated_elf(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(BASE_ELFS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["elf", "ph", "ph", "ident", "flip"]))
        if kind == "elf":
            values = list(ELF_HEADER.unpack_from(raw, 0))
            i = draw(st.integers(1, len(ELF_FIELDS)))
            values[i] = draw(u16 if ELF_FIELDS[i - 1] in ("e_type", "e_machine") or i >= 8 else u32)
            raw[: ELF_HEADER.size] = ELF_HEADER.pack(*values)
        elif kind == "ph":
            phnum = struct.unpack_from("<H", raw, 44)[0]
            phoff = struct.unpack_from("<I", raw, 28)[0]
            if phnum and phoff == ELF_HEADER.size and len(raw) >= phoff + 32 * phnum:
                index = draw(st.integers(0, phnum - 1))
                field = draw(st.sampled_from(PH_FIELDS))
                raw = bytearray(with_program_header(bytes(raw), index, **{field: draw(u32)}))
        elif kind == "ident":
            raw[draw(st.integers(4, 15))] = draw(st.integers(0, 255))
        else:
            at = draw(st.integers(0, min(len(raw), 512) - 1))
            raw[at] ^= 1 << draw(st.integers(0, 7))
    if draw(st.integers(0, 9)) == 0:  # now and then, a file cut short
        del raw[draw(st.integers(0, len(raw))) :]
    return bytes(raw)


@st.composite
def mutated_hex(draw: st.DrawFn) -> str:
    base = draw(st.sampled_from([APP, 0x08000000, 0x20020000, 0x90000000, 0xFFFFFF00, 0]))
    lines = intel_hex(base, _vectors(base & 0xFFFFFF00, 128)).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["record", "record", "ela", "esa", "start", "drop", "duplicate", "text"]))
        at = draw(st.integers(0, len(lines)))
        if kind == "record":
            rtype = draw(st.one_of(st.integers(0, 5), st.integers(6, 255)))
            data = draw(st.binary(max_size=40))
            lines.insert(at, hex_record(rtype, draw(u16), data).strip())
        elif kind == "ela":
            lines.insert(at, hex_record(4, 0, struct.pack(">H", draw(u16))).strip())
        elif kind == "esa":
            lines.insert(at, hex_record(2, 0, struct.pack(">H", draw(u16))).strip())
        elif kind == "start":
            lines.insert(
                at, hex_record(draw(st.sampled_from([3, 5])), 0, struct.pack(">I", draw(u32))).strip()
            )
        elif kind == "drop" and lines:
            del lines[min(at, len(lines) - 1)]
        elif kind == "duplicate" and lines:
            lines.insert(at, lines[min(at, len(lines) - 1)])
        elif lines:
            line = lines[min(at, len(lines) - 1)]
            pos = draw(st.integers(0, len(line)))
            junk = draw(st.sampled_from(["Z", ":", "", "\x00", "é", "0" * 600, "FF"]))
            lines[min(at, len(lines) - 1)] = line[:pos] + junk + line[pos + 1 :]
    return "\n".join(lines) + "\n"


def check_image(image: Image, path: Path, with_spec: bool) -> None:
    assert image.base >= 0 and image.end <= ADDRESS_LIMIT, image
    assert 0 < image.size <= MAX_SPAN, image
    if with_spec:
        assert SPEC.flash.contains(image.base, image.size), image


def run_one(path: Path, data: bytes, stats: dict[str, Any], base: int | None = None) -> None:
    path.write_bytes(data)
    with_spec = stats["inputs"] % 2 == 1
    t0 = time.monotonic()
    with time_cap(TIME_CAP):
        try:
            image = load_image(path, base=base, spec=SPEC if with_spec else None)
            check_image(image, path, with_spec)
            stats["loaded"] += 1
        except ImageError as exc:
            assert str(path) in str(exc), str(exc)
            stats["ImageError"] += 1
    stats["inputs"] += 1
    stats["slowest"] = max(stats["slowest"], time.monotonic() - t0)


def test_mutated_images(tmp_path: Path, record_testsuite_property: Callable[[str, object], None]) -> None:
    stats: dict[str, Any] = {"inputs": 0, "loaded": 0, "ImageError": 0, "slowest": 0.0}

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(data=mutated_elf())
    def elf_files(data: bytes) -> None:
        run_one(tmp_path / "app.elf", data, stats)

    @settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=mutated_hex())
    def hex_files(text: str) -> None:
        run_one(tmp_path / "app.hex", text.encode(), stats)

    @settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
    @given(size=st.one_of(st.integers(0, 4096), st.sampled_from([2 << 20, (2 << 20) + 1])), base=u32)
    def bin_files(size: int, base: int) -> None:
        run_one(tmp_path / "app.bin", _vectors(base, max(size, 8))[:size], stats, base=base)

    rss0 = peak_rss()
    with memory_cap(MEMORY_CAP) as cap:
        elf_files()
        hex_files()
        bin_files()
    print(
        f"\n[image fuzz] {stats['inputs']} mutated images (.elf, .hex, .bin): {stats['loaded']} loaded, "
        f"{stats['ImageError']} ImageError, nothing else; slowest {stats['slowest'] * 1000:.0f} ms; "
        f"address space capped at {cap >> 20} MiB, peak RSS grew {(peak_rss() - rss0) >> 20} MiB"
    )
    record_testsuite_property("image_fuzz_inputs", stats["inputs"])
    assert stats["inputs"] >= 1000 and stats["loaded"] > 0 and stats["ImageError"] > 0, stats
