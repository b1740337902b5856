"""Firmware images: load .bin/.hex/.elf, read the vector table, check an image against a slot.

An :class:`Image` is one contiguous block of bytes at a base address. Gaps between the
segments of a .hex or .elf are filled with 0xFF (erased flash), so the image is exactly what
flash must hold after programming.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rig.errors import ImageError

if TYPE_CHECKING:
    from rig.board import BoardSpec

#: Largest span (first to last byte) accepted from a .hex or .elf: the whole 2 MiB flash plus slack.
MAX_SPAN = 16 * 1024 * 1024
#: Largest .bin read (no flash or readback of this chip comes near it).
MAX_BIN = MAX_SPAN
#: Largest .hex read: the whole 2 MiB flash as Intel hex is about 5.7 MiB of text.
MAX_HEX = 3 * MAX_SPAN
#: Largest .elf read (symbols and debug info included).
MAX_ELF = 4 * MAX_SPAN
#: First address past the Cortex-M's 32-bit address space.
ADDRESS_LIMIT = 1 << 32


@dataclass(frozen=True)
class Image:
    """Bytes to place at ``base``; ``path`` is where they came from (None if built in memory)."""

    data: bytes
    base: int
    path: Path | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.data, bytes):
            object.__setattr__(self, "data", bytes(self.data))

    @property
    def size(self) -> int:
        """Number of bytes."""
        return len(self.data)

    @property
    def end(self) -> int:
        """First address after the image."""
        return self.base + len(self.data)

    def word(self, offset: int) -> int:
        """Little-endian 32-bit word at ``offset`` from the base."""
        if offset + 4 > len(self.data):
            raise ImageError(
                f"image is {len(self.data)} bytes, too short for a word at offset {offset}",
                hint="is this a real firmware image?",
            )
        return int(struct.unpack_from("<I", self.data, offset)[0])

    @property
    def initial_sp(self) -> int:
        """Vector 0: the initial main stack pointer."""
        return self.word(0)

    @property
    def reset_handler(self) -> int:
        """Vector 1: the reset handler address, Thumb bit included."""
        return self.word(4)

    def vector(self, n: int) -> int:
        """Vector ``n`` of the table at the image base."""
        return self.word(4 * n)

    def contains(self, address: int) -> bool:
        """True if ``address`` is inside the image."""
        return self.base <= address < self.end

    @property
    def crc32(self) -> int:
        """CRC-32 (IEEE 802.3, as zlib) of the bytes, the value the OTA protocol's FILE_CRC carries."""
        return zlib.crc32(self.data) & 0xFFFFFFFF

    @property
    def sha256(self) -> str:
        """SHA-256 hex digest of the bytes."""
        return hashlib.sha256(self.data).hexdigest()

    def write_bin(self, path: str | Path) -> Path:
        """Write the raw bytes to ``path`` and return it."""
        path = Path(path)
        path.write_bytes(self.data)
        return path

    def __repr__(self) -> str:
        src = f", path={str(self.path)!r}" if self.path else ""
        return f"Image(base=0x{self.base:08X}, size={self.size}{src})"


# --------------------------------------------------------------------------- loaders


def load_image(path: str | Path, base: int | None = None, *, spec: BoardSpec | None = None) -> Image:
    """Load a .bin (``base`` required), Intel .hex or .elf file.

    For .hex and .elf the base comes from the file; a given ``base`` must then match it.
    With ``spec``, the image is a flash image: every byte must lie in the board's flash
    (:func:`require_flash`).

    Raises:
        ImageError: unreadable or not a regular file, unknown format, missing base,
            empty/too sparse content, addresses past 2**32, a segment larger than the file or
            than :data:`MAX_SPAN`, or (with ``spec``) bytes outside the flash.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bin":
        if base is None:
            raise ImageError(
                f"{path}: a .bin has no address", hint="give the base address, e.g. --base 0x08040000"
            )
        data = read_image_file(path, MAX_BIN)
        if not data:
            raise ImageError(f"{path}: file is empty", hint="rebuild the image")
        image = Image(data, base, path)
    elif suffix in (".hex", ".ihex"):
        image = _load_hex(path)
    elif suffix in (".elf", ".axf", ".out"):
        image = _load_elf(path)
    else:
        _regular(path)  # a missing file is "no such file" before its suffix is judged
        raise ImageError(
            f"{path}: unknown image format {suffix or '(no suffix)'!r}",
            hint="use .bin (with a base address), .hex or .elf",
        )
    if image.base < 0 or image.end > ADDRESS_LIMIT:
        raise ImageError(
            f"{path}: {image.size} bytes at 0x{image.base:08X} run past the 32-bit address space "
            f"(end 0x{image.end:X})",
            hint="check the base address",
        )
    if spec is not None:
        require_flash(image, spec)
    if base is not None and base != image.base:
        raise ImageError(
            f"{path}: starts at 0x{image.base:08X}, not at the given base 0x{base:08X}",
            hint="drop the base for .hex/.elf or link the image for that address",
        )
    return image


def require_flash(image: Image, spec: BoardSpec, what: str | None = None) -> Image:
    """``image`` if every byte of it lies in the board's flash; ImageError otherwise (a .bin
    longer than the flash, a .hex linked for SRAM or external memory, the ITCM alias)."""
    flash = spec.flash
    if flash.contains(image.base, image.size):
        return image
    mem = spec.memory_at(image.base)
    if mem is None:
        where = "outside every memory of the board"
    elif mem.name != flash.name:
        where = f"in {mem.name} ({mem.kind}), not in flash"
    else:
        where = "past the end of flash"
    raise ImageError(
        f"{what or image.path or 'image'}: {image.size} bytes at 0x{image.base:08X}..0x{image.end - 1:08X}, "
        f"{where} (flash is 0x{flash.base:08X}..0x{flash.end - 1:08X}, {flash.size // 1024} KiB)",
        hint="a flash image must use the AXIM flash addresses (0x08xxxxxx) and fit the flash: "
        "check the base, the linker script's FLASH origin/length, or that this is not a RAM image",
    )


def _regular(path: Path) -> int:
    """``os.stat`` size of ``path`` if it is a regular file; ImageError otherwise."""
    from rig.board_yaml import file_kind

    try:
        st = path.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file", hint="check the image path") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}", hint="check the image path") from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageError(f"{path}: {file_kind(st.st_mode)}, not an image file", hint="pass the image file")
    return st.st_size


def read_image_file(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; ImageError for a
    missing, unreadable (permissions), non-regular (FIFO, device, directory) or larger file."""
    path = Path(path)
    _regular(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the check above
                raise ImageError(f"{path}: not a regular file", hint="pass the image file")
            chunks, left = [], limit + 1
            while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
                chunks.append(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
    except OSError as exc:
        raise ImageError(
            f"{path}: cannot read: {exc.strerror or exc}",
            hint="check the file's permissions (and that it is the image you mean)",
        ) from None
    data = b"".join(chunks)
    if len(data) > limit:
        raise ImageError(
            f"{path}: larger than {limit >> 20} MiB, far more than the 2 MiB flash",
            hint="pass the firmware image, not another file",
        )
    return data


def _from_segments(path: Path, segments: list[tuple[int, bytes]]) -> Image:
    segments = [(a, d) for a, d in segments if d]
    if not segments:
        raise ImageError(
            f"{path}: no loadable data", hint="is this the linked firmware (not an object file)?"
        )
    lo = min(a for a, _ in segments)
    hi = max(a + len(d) for a, d in segments)
    if hi > ADDRESS_LIMIT:
        raise ImageError(
            f"{path}: data runs to 0x{hi - 1:X}, past the 32-bit address space",
            hint="the file's addresses wrap past 0xFFFFFFFF: regenerate it (objcopy -O ihex)",
        )
    if hi - lo > MAX_SPAN:
        raise ImageError(
            f"{path}: data spans 0x{lo:08X}..0x{hi - 1:08X} ({hi - lo} bytes)",
            hint="a section probably has its load address in RAM; put it AT> FLASH in the linker script",
        )
    buf = bytearray(b"\xff" * (hi - lo))
    for addr, data in sorted(segments):
        buf[addr - lo : addr - lo + len(data)] = data
    return Image(bytes(buf), lo, path)


def _load_hex(path: Path) -> Image:
    import io

    from intelhex import IntelHex, IntelHexError

    raw = read_image_file(path, MAX_HEX)
    ih = IntelHex()
    try:
        ih.loadhex(io.StringIO(raw.decode("ascii")))
    except UnicodeDecodeError as exc:
        raise ImageError(
            f"{path}: not a valid Intel hex file: byte 0x{raw[exc.start]:02X} at offset {exc.start} is not ASCII",
            hint="regenerate it with objcopy -O ihex",
        ) from None
    except (IntelHexError, ValueError) as exc:
        raise ImageError(
            f"{path}: not a valid Intel hex file: {exc}", hint="regenerate it with objcopy -O ihex"
        ) from None
    segments = [(lo, ih.tobinstr(start=lo, end=hi - 1)) for lo, hi in ih.segments()]
    return _from_segments(path, segments)


def _load_elf(path: Path) -> Image:
    import io

    raw = read_image_file(path, MAX_ELF)
    return _from_segments(path, _elf_segments(path, io.BytesIO(raw), len(raw)))


def _elf_segments(path: Path, fh: BinaryIO, size: int) -> list[tuple[int, bytes]]:
    """The PT_LOAD segments' (physical address, file bytes) of an ARM ELF, each checked
    against the file before it is read (a header may claim gigabytes)."""
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(fh)
        if elf.get_machine_arch() != "ARM":
            raise ImageError(
                f"{path}: ELF for {elf.get_machine_arch()}, not ARM", hint="build with arm-none-eabi-gcc"
            )
        segments, total = [], 0
        for seg in elf.iter_segments():
            if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] <= 0:
                continue
            offset, filesz, paddr = seg["p_offset"], seg["p_filesz"], seg["p_paddr"]
            total += filesz
            if offset + filesz > size or total > MAX_SPAN:
                raise ImageError(
                    f"{path}: a segment claims {filesz} bytes at file offset {offset} "
                    f"(the file has {size}{'' if total <= MAX_SPAN else f'; at most {MAX_SPAN} load'})",
                    hint="the ELF is truncated or corrupt: relink it",
                )
            segments.append((paddr, seg.data()[:filesz]))
        return segments
    except ImageError:
        raise
    except Exception as exc:  # pyelftools raises ELFError, construct and struct errors... on bad input
        raise ImageError(
            f"{path}: not a valid ELF file: {type(exc).__name__}: {str(exc)[:200]}",
            hint="pass the linked .elf",
        ) from None


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    """One reason an image cannot boot from a slot: ``code`` is stable, ``message`` human, ``hint`` the fix."""

    code: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})"

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


def validate_for_slot(
    image: Image, spec: BoardSpec, region: str = "app_slot", *, strict: bool = False
) -> list[Problem]:
    """Check that ``image`` can be installed in ``region`` and boot from it.

    Checks: base at the region start, fits the region and the staging region, vector table
    present, initial SP inside RAM and 8-byte aligned, reset handler a Thumb address inside
    the image (ITCM alias accepted).

    Args:
        strict: raise :class:`ImageError` listing every problem instead of returning them.
    """
    problems: list[Problem] = []
    reg = spec.region(region)
    if image.base != reg.base:
        problems.append(
            Problem(
                "base",
                f"image base 0x{image.base:08X} is not the start of {region} (0x{reg.base:08X})",
                f"link the app for 0x{reg.base:08X} or pass that base",
            )
        )
    if image.size > reg.size:
        problems.append(
            Problem(
                "too_big",
                f"image is {image.size} bytes, {region} holds {reg.size}",
                "make the image smaller or the region bigger",
            )
        )
    staging = spec.ota.staging_region
    if region == spec.ota.app_region and staging in spec.regions and image.size > spec.regions[staging].size:
        problems.append(
            Problem(
                "too_big_for_staging",
                f"image is {image.size} bytes, the {staging} region holds "
                f"{spec.regions[staging].size} (largest OTA image)",
                f"keep OTA images at or below {spec.regions[staging].size} bytes",
            )
        )
    if image.size < 8:
        problems.append(
            Problem(
                "no_vectors",
                f"image is {image.size} bytes, no vector table",
                "pass the full application image",
            )
        )
    else:
        problems.extend(_vector_problems(image, spec))
    if strict and problems:
        raise ImageError(
            f"{image.path or 'image'} cannot boot from {region}: " + "; ".join(p.message for p in problems),
            hint="; ".join(dict.fromkeys(p.hint for p in problems)),
        )
    return problems


def _vector_problems(image: Image, spec: BoardSpec) -> list[Problem]:
    out: list[Problem] = []
    sp, rh = image.initial_sp, image.reset_handler
    if sp == 0xFFFFFFFF and rh == 0xFFFFFFFF:
        return [
            Problem(
                "erased_vectors",
                "the vector table is erased (0xFFFFFFFF)",
                "check the base address; a .bin must start with the vector table",
            )
        ]
    if not spec.in_ram(sp):
        ram = ", ".join(f"0x{m.base:08X}..0x{m.end:08X}" for m in spec.ram_regions())
        out.append(
            Problem(
                "sp_not_in_ram",
                f"initial SP 0x{sp:08X} is not in RAM ({ram})",
                "set _estack to the top of RAM in the linker script (e.g. 0x20080000)",
            )
        )
    elif sp % 8:
        out.append(
            Problem(
                "sp_alignment",
                f"initial SP 0x{sp:08X} is not 8-byte aligned",
                "align _estack to 8 bytes (AAPCS)",
            )
        )
    if not rh & 1:
        out.append(
            Problem(
                "reset_not_thumb",
                f"reset handler 0x{rh:08X} has the Thumb bit clear",
                "Cortex-M executes Thumb only: the vector must be the handler address | 1",
            )
        )
    target = spec.to_flash_address(rh & ~1)
    if not image.contains(target):
        out.append(
            Problem(
                "reset_outside",
                f"reset handler 0x{rh:08X} is outside the image (0x{image.base:08X}..0x{image.end - 1:08X})",
                "link the app for the slot address (check FLASH ORIGIN in the linker script)",
            )
        )
    return out


# --------------------------------------------------------------------------- sized test images

_GOLDEN = 0x9E3779B9


def padding_pattern(offset: int, length: int, seed: int) -> bytes:
    """The deterministic padding bytes for image offsets ``[offset, offset+length)``.

    Byte at image offset ``o`` is byte ``o % 4`` (little-endian) of
    ``fmix32((o // 4) ^ (seed * 0x9E3779B9 mod 2**32))``, where ``fmix32`` is MurmurHash3's
    32-bit finaliser. The pattern depends only on the position and the seed, has no
    repeats a shifted comparison could confuse, and contains no 0xFFFFFFFF-only runs.
    """
    if length <= 0:
        return b""
    import numpy as np  # here: loading an image (``rig diff``) must not pay numpy's import

    first, last = offset // 4, (offset + length + 3) // 4
    k = np.arange(first, last, dtype=np.uint64)
    h = (k ^ np.uint64((seed * _GOLDEN) & 0xFFFFFFFF)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    h = (h * np.uint64(0x85EBCA6B)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(13)
    h = (h * np.uint64(0xC2B2AE35)) & np.uint64(0xFFFFFFFF)
    h ^= h >> np.uint64(16)
    raw = h.astype("<u4").tobytes()
    start = offset - first * 4
    return raw[start : start + length]


def make_padded_app(base_image: Image, size: int, seed: int = 0) -> Image:
    """Return ``base_image`` extended to ``size`` bytes with :func:`padding_pattern`.

    The vector table and code of ``base_image`` are untouched, so the result boots like the
    original; only the file (and the flash the OTA must write) grows. Same inputs, same bytes.
    The reference firmware can also build sized apps itself (see firmware/).

    Raises:
        ImageError: ``size`` is smaller than the base image.
    """
    if size < base_image.size:
        raise ImageError(
            f"cannot pad a {base_image.size}-byte image down to {size} bytes",
            hint=f"ask for at least {base_image.size} bytes",
        )
    pad = padding_pattern(base_image.size, size - base_image.size, seed)
    return Image(base_image.data + pad, base_image.base, None)
