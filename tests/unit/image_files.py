"""Image files written by hand, byte by byte, so tests (and the fuzzer) control every header
field: a 32-bit little-endian ARM ELF with PT_LOAD segments, and Intel hex records."""

from __future__ import annotations

import struct

EM_ARM = 40
PT_LOAD = 1
ELF_HEADER = struct.Struct("<16sHHIIIIIHHHHHH")  # 52 bytes
PROGRAM_HEADER = struct.Struct("<IIIIIIII")  # 32 bytes: type offset vaddr paddr filesz memsz flags align


def elf(segments: list[tuple[int, bytes]], *, machine: int = EM_ARM) -> bytes:
    """An executable ELF32 whose program headers load each ``(paddr, data)``."""
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)  # ELFCLASS32, little-endian, version 1
    phoff = ELF_HEADER.size
    offset = phoff + PROGRAM_HEADER.size * len(segments)
    headers, body = b"", b""
    for paddr, data in segments:
        headers += PROGRAM_HEADER.pack(PT_LOAD, offset + len(body), paddr, paddr, len(data), len(data), 5, 4)
        body += data
    header = ELF_HEADER.pack(
        ident, 2, machine, 1, segments[0][0] + 1 if segments else 0, phoff, 0, 0x05000200, 52, 32,
        len(segments), 40, 0, 0,
    )  # fmt: skip
    return header + headers + body


def program_header_offset(index: int) -> int:
    """File offset of program header ``index`` of :func:`elf`'s output."""
    return ELF_HEADER.size + PROGRAM_HEADER.size * index


def with_program_header(raw: bytes, index: int, **fields: int) -> bytes:
    """``raw`` with fields of program header ``index`` replaced (type, offset, vaddr, paddr,
    filesz, memsz, flags, align)."""
    names = ("type", "offset", "vaddr", "paddr", "filesz", "memsz", "flags", "align")
    at = program_header_offset(index)
    values = dict(zip(names, PROGRAM_HEADER.unpack_from(raw, at), strict=True))
    values.update(fields)
    return raw[:at] + PROGRAM_HEADER.pack(*(values[n] & 0xFFFFFFFF for n in names)) + raw[at + 32 :]


def hex_record(kind: int, address: int, data: bytes) -> str:
    """One Intel hex record with its checksum."""
    body = bytes([len(data), (address >> 8) & 0xFF, address & 0xFF, kind]) + data
    return ":" + body.hex().upper() + f"{(-sum(body)) & 0xFF:02X}\n"


def intel_hex(base: int, data: bytes, *, chunk: int = 16) -> str:
    """``data`` at ``base`` as Intel hex (extended linear address records where needed)."""
    out, upper = [], None
    for i in range(0, len(data), chunk):
        addr = base + i
        if addr >> 16 != upper:
            upper = addr >> 16
            out.append(hex_record(4, 0, struct.pack(">H", upper & 0xFFFF)))
        out.append(hex_record(0, addr & 0xFFFF, data[i : i + chunk]))
    out.append(hex_record(1, 0, b""))
    return "".join(out)
