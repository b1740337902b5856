"""Thumb-2 disassembly around the PC the core ended at (capstone, ARMv7-M)."""

from __future__ import annotations

from dataclasses import dataclass

import capstone

#: Instructions shown before and after the PC.
BEFORE = 10
AFTER = 10


@dataclass(frozen=True)
class Insn:
    """One decoded (or undecodable) instruction."""

    address: int
    raw: bytes
    mnemonic: str
    operands: str

    @property
    def text(self) -> str:
        """Mnemonic and operands."""
        return f"{self.mnemonic} {self.operands}".strip()


def _engine() -> capstone.Cs:
    return capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)


def decode(code: bytes, base: int) -> list[Insn]:
    """Linear-sweep decode of ``code`` at ``base``; undecodable halfwords become ``.short``."""
    md = _engine()
    out: list[Insn] = []
    off = 0
    while off + 2 <= len(code):
        got = False
        for ins in md.disasm(code[off:], base + off):
            out.append(Insn(ins.address, bytes(ins.bytes), ins.mnemonic, ins.op_str))
            off += ins.size
            got = True
        if off + 2 <= len(code):  # capstone stopped on an invalid encoding
            half = code[off : off + 2]
            out.append(Insn(base + off, half, ".short", f"0x{int.from_bytes(half, 'little'):04x}"))
            off += 2
        elif not got:
            break
    return out


def around(code: bytes, base: int, pc: int, before: int = BEFORE, after: int = AFTER) -> list[Insn]:
    """Instructions around ``pc`` (Thumb bit ignored); decoding restarts at the PC so its line is exact.

    Returns an empty list if ``pc`` is not inside ``[base, base+len(code))``.
    """
    pc &= ~1
    if not base <= pc < base + len(code):
        return []
    head = [i for i in decode(code[: pc - base], base) if i.address < pc][-before:]
    tail = decode(code[pc - base :], pc)[: after + 1]
    return head + tail
