"""The firmware's memcpy (firmware/common/fwlib.c) on the twin's Cortex-M7, for every
source and destination alignment: word copies when both share their alignment, unaligned
word loads otherwise (allowed for normal memory with CCR.UNALIGN_TRP clear). The bootloader's
own memcpy is called through the probe like a debugger would (registers set, a BKPT as the
return address), and the bytes around the destination must stay untouched."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator

import pytest
from elftools.elf.elffile import ELFFile
from fw_build import BUILD

from rig.probe import Probe
from rig.targets.twin import TwinTarget, start_twin

SRAM = 0x2002_0000  # SRAM1: normal memory, cacheable
SRC, DST, STUB, STACK = SRAM + 0x1000, SRAM + 0x4000, SRAM + 0x100, SRAM + 0x800
LENGTHS = [0, 1, 3, 7, 8, 9, 15, 16, 17, 31, 33, 100, 1461]


def _symbol(elf_path, name: str) -> int:
    with open(elf_path, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
    assert sym, f"{name} not in {elf_path}"
    return sym[0]["st_value"] & ~1


@pytest.fixture(scope="module")
def board(tmp_path_factory) -> Iterator[tuple[TwinTarget, int]]:
    elf = BUILD / "bootloader.elf"
    if not elf.is_file():
        pytest.skip("bootloader.elf not built (make -C firmware)")
    twin = start_twin(
        extra_args=["--load", str(BUILD / "bootloader.bin") + "@0x08000000"],
        log_path=tmp_path_factory.mktemp("memcpy") / "twin.log",
    )
    try:
        yield twin, _symbol(elf, "memcpy")
    finally:
        twin.stop()


def test_memcpy_copies_every_alignment_and_length(board) -> None:
    twin, memcpy = board
    rnd = random.Random(7)
    with Probe(twin.probe_uid) as p:
        p.halt()
        p.write_ram(STUB, b"\xbe\xbe")  # BKPT 0xBE: where memcpy returns to
        for s_off in range(4):
            for d_off in range(4):
                for n in LENGTHS:
                    src = os.urandom(n + 8)
                    guard = bytes(rnd.randrange(256) for _ in range(n + 16))
                    p.write_ram(SRC, src)
                    p.write_ram(DST, guard)
                    p.write_registers(
                        {
                            "r0": DST + 4 + d_off,
                            "r1": SRC + s_off,
                            "r2": n,
                            "lr": STUB | 1,
                            "sp": STACK,
                            "pc": memcpy,
                            "xpsr": 1 << 24,
                        }
                    )
                    p.resume()
                    assert p.wait_halted(5.0), f"memcpy did not return (src+{s_off}, dst+{d_off}, n={n})"
                    regs = p.registers(["pc", "r0"])
                    assert regs["pc"] == STUB and regs["r0"] == DST + 4 + d_off
                    got = p.read(DST, n + 16)
                    want = guard[: 4 + d_off] + src[s_off : s_off + n] + guard[4 + d_off + n :]
                    assert got == want, f"src+{s_off}, dst+{d_off}, n={n}"
