"""Flash writes through the rig's own on-target routine: one probe run per sector.

pyOCD's flash algorithm for the STM32F767 programs 1 KiB pages, each one a round of debugger
requests (write the page buffer, write the core registers, resume, poll until it halts, read
the result): ~75 requests a KiB. Through a real ST-LINK that is the ~13 KB/s users know
(pyOCD issue 892); against the twin's remote probe it was 77 % of a 512 KiB write. The rig
therefore loads its own routine (``rig/algo/flashprog.bin``, built from
``firmware/probe_algo/flashprog.S``: position-independent Thumb-2, no stack) next to the
CRC-32 routine, writes a whole sector's new bytes into SRAM with one block write, and runs
the routine once: it erases the sector and programs the words of every non-blank run
(FLASH_CR.PSIZE x32, BSY polled after each word, the first error flag stops it), then locks
the flash again and halts at its ``BKPT``.

:func:`write_sector` needs the core halted with no firmware running (the rig resets and halts
it first, as for the CRC routine). A run that times out or stops anywhere but its ``BKPT``
raises :class:`FlashWriteError` (the caller falls back to pyOCD's algorithm); a flash error
flag (write protection, alignment, parallelism) raises :class:`rig.errors.ProbeError` naming
the sector and the flags, as pyOCD's failure would.

SRAM used: :data:`CODE` (code and descriptors, above the CRC routine's 0x20002000..0x20004000)
and :data:`BUFFER` (SRAM1, up to :data:`BUFFER_SIZE`).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from functools import cache
from importlib import resources

import numpy as np

from rig.board_spec import Sector
from rig.errors import ProbeError
from rig.probe import Probe
from rig.probe_errors import describe_dhcsr

CODE = 0x20004000
DESCRIPTORS = CODE + 0x100
#: descriptors per run ({cr, dest, src, len, sr_out}: 20 bytes each)
MAX_DESCRIPTORS = 64
#: SRAM1 of the F767 (0x20020000..0x2007BFFF): the largest sector (256 KiB) fits
BUFFER = 0x20020000
BUFFER_SIZE = 256 * 1024
#: blank runs shorter than this inside a sector are programmed (0xFF words) rather than skipped
GAP = 256

CR_SER = 1 << 1
CR_PSIZE_X32 = 2 << 8
SR_ERRORS = {
    1: "OPERR",
    4: "WRPERR (write-protected sector)",
    5: "PGAERR (alignment)",
    6: "PGPERR (parallelism)",
    7: "ERSERR (sequence)",
}
_UNSET = 0xA5A5A5A5
XPSR_THUMB = 1 << 24


class FlashWriteError(Exception):
    """The routine could not be used (timeout, stopped elsewhere): fall back to pyOCD."""


@cache
def algo() -> bytes:
    """The routine's bytes (package data of rig)."""
    return (resources.files("rig") / "algo" / "flashprog.bin").read_bytes()


def stop_address() -> int:
    """Where the core halts when the routine is done (its ``BKPT #0xAB``)."""
    code = algo()
    for off in range(0, len(code) - 1, 2):
        if code[off : off + 2] == b"\xab\xbe":
            return CODE + off
    raise ValueError("the flash routine has no BKPT #0xAB")


def erase_cr(sector: Sector) -> int:
    """FLASH_CR for erasing ``sector``: SER, its SNB (from the board file), PSIZE x32."""
    return CR_SER | (sector.snb << 3) | CR_PSIZE_X32


def program_runs(content: bytes, base: int) -> list[tuple[int, int]]:
    """``(address, length)`` runs of whole words of ``content`` (at ``base``) that are not
    blank (0xFFFFFFFF), blank gaps shorter than :data:`GAP` merged in, at most
    ``MAX_DESCRIPTORS - 1`` runs (the shortest gaps merged first)."""
    if len(content) % 4:
        raise ValueError("a sector's content must be whole words")
    used = np.frombuffer(content, dtype="<u4") != 0xFFFFFFFF
    edges = np.flatnonzero(np.diff(np.concatenate(([False], used, [False])).astype(np.int8)))
    runs = [[int(a) * 4, int(b) * 4] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[list[int]] = []
    for run in runs:
        if merged and run[0] - merged[-1][1] < GAP:
            merged[-1][1] = run[1]
        else:
            merged.append(run)
    while len(merged) > MAX_DESCRIPTORS - 1:
        i = min(range(len(merged) - 1), key=lambda k: merged[k + 1][0] - merged[k][1])
        merged[i][1] = merged.pop(i + 1)[1]
    return [(base + a, b - a) for a, b in merged]


def run_timeout(nbytes: int, erases: int) -> float:
    """Upper bound for one run on silicon (datasheet maxima: 4 s a 256 KiB sector erase,
    100 µs a word) with room for a loaded twin. Generous: a timeout only costs the fallback."""
    return 5.0 + 8.0 * erases + nbytes / (16 * 1024)


def write_sector(probe: Probe, sector: Sector, content: bytes) -> None:
    """Erase ``sector`` and program ``content`` (its whole new content, ``sector.size`` bytes)
    with one run of the routine. The core must be halted with no firmware running."""
    if len(content) != sector.size or sector.size > BUFFER_SIZE:
        raise ValueError(f"content of {len(content)} bytes for a {sector.size}-byte sector")
    runs = program_runs(content, sector.base)
    descs = [(erase_cr(sector), sector.base, 0, 0)]
    if runs:
        lo = runs[0][0]
        hi = runs[-1][0] + runs[-1][1]
        probe.write_ram(BUFFER, content[lo - sector.base : hi - sector.base])
        descs += [(0, a, BUFFER + a - lo, n) for a, n in runs]
    _run(probe, descs, sector, sum(n for _, n in runs))


def _run(probe: Probe, descs: Sequence[tuple[int, int, int, int]], sector: Sector, nbytes: int) -> None:
    table = b"".join(struct.pack("<5I", *d, _UNSET) for d in descs)
    probe.write_ram(CODE, algo().ljust(DESCRIPTORS - CODE, b"\0") + table)
    probe.write_registers({"r0": DESCRIPTORS, "r1": len(descs), "xpsr": XPSR_THUMB, "pc": CODE})
    probe.resume()
    timeout = run_timeout(nbytes, 1)
    if not probe.wait_halted(timeout, poll=0.002):
        probe.halt()
        state, _ = probe.core_state()
        raise FlashWriteError(f"the flash routine did not finish within {timeout:.1f} s ({state})")
    regs = probe.registers(["pc", "r0"])
    if regs["pc"] != stop_address():
        dhcsr = probe.read32(0xE000EDF0)
        raise FlashWriteError(
            f"the flash routine stopped at PC=0x{regs['pc']:08X}, not at its BKPT "
            f"0x{stop_address():08X} ({describe_dhcsr(dhcsr)}; a fault?)"
        )
    failed = regs["r0"]
    if failed:
        if not 1 <= failed <= len(descs):
            raise FlashWriteError(f"the flash routine returned {failed} for {len(descs)} operations")
        sr = struct.unpack("<I", probe.read(DESCRIPTORS + 20 * (failed - 1) + 16, 4))[0]
        flags = ", ".join(name for bit, name in SR_ERRORS.items() if sr >> bit & 1) or f"SR 0x{sr:08X}"
        cr, dest, _, _ = descs[failed - 1]
        what = f"erasing sector {sector.index}" if cr else f"programming 0x{dest:08X}"
        raise ProbeError(
            f"{what} (0x{sector.base:08X}+{sector.size}) failed: FLASH_SR {flags}",
            hint="check the sector is not write-protected (option bytes nWRP) and the board "
            "file's sector table (snb) matches the chip's bank mode",
        )
