"""Images given to ``python -m twin --load FILE[@ADDR]``: .bin (needs @ADDR), .hex, .elf.

Owns: the file formats and the address checks of ``--load``. Must not touch: the machine
(the board places the chunks).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

from twin import memory as mm

#: Where an image may be loaded: (name, base, size). Flash through its ITCM alias is accepted.
TARGETS = [
    ("flash", mm.FLASH_BASE, mm.FLASH_SIZE),
    ("flash (ITCM alias)", mm.FLASH_ITCM_BASE, mm.FLASH_SIZE),
    ("SRAM", mm.SRAM_BASE, mm.SRAM_SIZE),
    ("ITCM RAM", mm.ITCM_BASE, mm.ITCM_SIZE),
]


class LoadError(Exception):
    """A --load argument cannot be used; the message names the fix."""


@dataclass
class Chunk:
    """Bytes to place at an absolute address (flash alias already folded to 0x08000000)."""

    address: int
    data: bytes
    source: str


def parse_spec(spec: str) -> tuple[Path, int | None]:
    """Split ``FILE[@ADDR]`` (ADDR in C notation, e.g. 0x08000000)."""
    path, at, addr = spec.rpartition("@")
    if not at:
        return Path(spec), None
    try:
        return Path(path), int(addr, 0)
    except ValueError:
        raise LoadError(
            f"--load {spec}: {addr!r} is not an address (write e.g. app.bin@0x08000000)"
        ) from None


def read_image(spec: str) -> list[Chunk]:
    """Read one --load argument into chunks."""
    path, addr = parse_spec(spec)
    if not path.is_file():
        raise LoadError(f"--load {spec}: no such file {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix in (".hex", ".ihex"):
            if addr is not None:
                raise LoadError(f"--load {spec}: a .hex file carries its addresses; drop @ADDR")
            return _read_hex(path)
        if suffix in (".elf", ".axf", ".out"):
            if addr is not None:
                raise LoadError(f"--load {spec}: an ELF carries its addresses; drop @ADDR")
            return _read_elf(path)
        if addr is None:
            raise LoadError(f"--load {spec}: a raw binary needs an address, e.g. {path}@0x08000000")
        return [Chunk(addr, path.read_bytes(), str(path))]
    except OSError as e:
        raise LoadError(f"--load {spec}: cannot read: {e.strerror or e}") from None


def _read_hex(path: Path) -> list[Chunk]:
    from intelhex import IntelHex, IntelHexError

    try:
        ih = IntelHex(str(path))
    except (IntelHexError, ValueError) as e:
        raise LoadError(f"--load {path}: not a valid Intel HEX file: {e}") from None
    out = []
    for start, end in ih.segments():
        out.append(Chunk(start, ih.tobinstr(start=start, end=end - 1), str(path)))
    return out


def _read_elf(path: Path) -> list[Chunk]:
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    out = []
    try:
        with path.open("rb") as f:
            elf = ELFFile(f)
            for seg in elf.iter_segments():
                if seg["p_type"] != "PT_LOAD" or seg["p_filesz"] == 0:
                    continue
                out.append(Chunk(seg["p_paddr"], seg.data()[: seg["p_filesz"]], str(path)))
    except ELFError as e:
        raise LoadError(f"--load {path}: not a valid ELF file: {e}") from None
    if not out:
        raise LoadError(f"--load {path}: the ELF has no loadable segments")
    return out


def validate(chunks: list[Chunk]) -> list[Chunk]:
    """Check every chunk lies in flash/RAM and none overlap; fold the flash alias."""
    placed: list[Chunk] = []
    for c in chunks:
        if not c.data:
            continue
        for _name, base, size in TARGETS:
            if base <= c.address and c.address + len(c.data) <= base + size:
                addr = c.address
                if base == mm.FLASH_ITCM_BASE:
                    addr += mm.FLASH_BASE - mm.FLASH_ITCM_BASE
                placed.append(Chunk(addr, c.data, c.source))
                break
        else:
            raise LoadError(
                f"--load {c.source}: 0x{c.address:08X}..0x{c.address + len(c.data) - 1:08X} is "
                "outside flash (0x08000000-0x081FFFFF) and RAM (0x20000000-0x2007FFFF, ITCM "
                "0x00000000-0x00003FFF)"
            )
    ordered = sorted(placed, key=lambda c: c.address)
    for a, b in itertools.pairwise(ordered):
        if b.address < a.address + len(a.data):
            raise LoadError(
                f"--load: {a.source} (0x{a.address:08X}+{len(a.data)}) overlaps "
                f"{b.source} (0x{b.address:08X}); give non-overlapping addresses"
            )
    return placed
