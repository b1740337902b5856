"""Verify-before-write: CRC-32 of flash ranges computed on the target, so the rig writes only
the sectors that differ and reads back only the bytes whose CRC is wrong.

Reading flash through a probe is slow on a real board (~0.1 MB/s through an ST-LINK) and
pyOCD has no CRC analyzer for the STM32F767. The rig therefore loads its own small routine
(``rig/algo/crc32.bin``, built from ``firmware/probe_algo/crc32.S``: position-independent
Thumb-2, no stack, zlib's CRC-32) into SRAM and runs it on the core through the probe: set
r0–r2, PC and xPSR, resume, wait until it halts at its ``BKPT``, read the results. The twin
runs it on its emulated core like any code. Every run carries a self-test range of known
bytes in SRAM: a wrong CRC there, a timeout, a fault or a stop anywhere but the ``BKPT``
makes :func:`sync_flash` fall back to a plain write and a full readback, with a note.

The routine uses SRAM at :data:`BASE` (above pyOCD's flash algorithm and its page buffers,
0x20000000..0x20001800) and leaves the core halted there; the caller resets the core before
anything runs (the HIL steps hold it in reset state while they write flash).
"""

from __future__ import annotations

import logging
import struct
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from rig.board import FlashLayout
from rig.errors import ProbeError
from rig.flash_write import BUFFER_SIZE, FlashWriteError, write_sector
from rig.flash_write import stop_address as writer_stop
from rig.probe import Probe
from rig.probe_errors import describe_dhcsr

LOG = logging.getLogger(__name__)

#: where the routine, the self-test bytes, the range descriptors and its byte table go (SRAM);
#: code, self-test and descriptors are written with one block write per run
BASE = 0x20002000
SELFTEST = BASE + 0xC1  # deliberately unaligned: the routine reads bytes
DESCRIPTORS = BASE + 0x100
TABLE = 0x20003C00
#: ranges per run (12 bytes of descriptor each)
MAX_RANGES = (TABLE - DESCRIPTORS) // 12
#: bytes per CRC (and per readback when a CRC differs)
CHUNK = 4096
#: writes up to this size are compared byte for byte, never by CRC-32: a record sealed with its
#: own CRC-32 (``M || crc32(M)``, as the reference config record is) has the same CRC-32 over
#: the whole record whatever M holds (the CRC's constant residue), so two different records
#: look equal to any CRC-32 check that covers them whole
EXACT = 4096
#: the known bytes of every run's self-test range (61: an odd length)
SELFTEST_DATA = bytes((i * 37 + 11) & 0xFF for i in range(61))
XPSR_THUMB = 1 << 24


class TargetCrcError(Exception):
    """The routine did not give trustworthy CRCs (timeout, fault, wrong self-test CRC)."""


@cache
def algo() -> bytes:
    """The routine's bytes (package data of rig)."""
    return (resources.files("rig") / "algo" / "crc32.bin").read_bytes()


def bkpt_offset(code: bytes) -> int:
    """Offset of the routine's ``BKPT #0xAB`` (0xBEAB), where the core halts when it is done."""
    for off in range(0, len(code) - 1, 2):
        if code[off : off + 2] == b"\xab\xbe":
            return off
    raise ValueError("the CRC routine has no BKPT #0xAB")


def run_timeout(nbytes: int) -> float:
    """Upper bound for one run: 16 MHz HSI after reset, ~9 cycles a byte on silicon; the twin
    is faster. Generous: a timeout only costs the fallback."""
    return 1.0 + nbytes / (256 * 1024)


class TargetCrc:
    """The CRC-32 routine on one probe's core."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.runs = 0
        self.seconds = 0.0

    def crcs(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        """zlib.crc32 of each ``(address, length)`` range, computed by the core (in batches of
        :data:`MAX_RANGES` − 1). Raises :class:`TargetCrcError` (or ProbeError) when the
        routine cannot be trusted."""
        out: list[int] = []
        step = MAX_RANGES - 1
        for i in range(0, len(ranges), step):
            out += self._run(ranges[i : i + step])
        return out

    def _run(self, ranges: Sequence[tuple[int, int]]) -> list[int]:
        t0 = time.monotonic()
        code = algo()
        probe = self.probe
        descs = [(SELFTEST, len(SELFTEST_DATA)), *ranges]
        # crc_out pre-set to the complement of the right answer of the self-test: a routine
        # that never wrote it cannot pass
        table = b"".join(struct.pack("<3I", a, n, 0x5A5A5A5A) for a, n in descs)
        head = code.ljust(SELFTEST - BASE, b"\0") + SELFTEST_DATA
        probe.write_ram(BASE, head.ljust(DESCRIPTORS - BASE, b"\0") + table)
        stop = BASE + bkpt_offset(code)
        # the routine uses no stack and returns nowhere: no SP or LR to set
        probe.write_registers(
            {"r0": DESCRIPTORS, "r1": len(descs), "r2": TABLE, "xpsr": XPSR_THUMB, "pc": BASE}
        )
        probe.resume()
        timeout = run_timeout(sum(n for _, n in descs))
        if not probe.wait_halted(timeout, poll=0.002):
            probe.halt()
            state, _ = probe.core_state()
            raise TargetCrcError(f"the CRC routine did not finish within {timeout:.1f} s ({state})")
        regs = probe.registers(["pc", "r0"])
        if regs["pc"] != stop:
            dhcsr = probe.read32(0xE000EDF0)
            raise TargetCrcError(
                f"the CRC routine stopped at PC=0x{regs['pc']:08X}, not at its BKPT 0x{stop:08X} "
                f"({describe_dhcsr(dhcsr)}; a fault?)"
            )
        raw = probe.read(DESCRIPTORS, 12 * len(descs))
        crcs = [struct.unpack_from("<3I", raw, 12 * i)[2] for i in range(len(descs))]
        if crcs[0] != zlib.crc32(SELFTEST_DATA) or regs["r0"] != crcs[-1]:
            raise TargetCrcError(
                f"the CRC routine's self-test failed: 0x{crcs[0]:08X} for bytes whose CRC is "
                f"0x{zlib.crc32(SELFTEST_DATA):08X} (r0 0x{regs['r0']:08X})"
            )
        self.runs += 1
        self.seconds += time.monotonic() - t0
        return crcs[1:]


def parked(probe: Probe) -> bool:
    """True if the core is halted at the routine's BKPT: since the reset and halt before the
    routine ran, no firmware has run (the routine only ever comes back to its BKPT)."""
    return probe.is_halted() and probe.registers(["pc"])["pc"] in (BASE + bkpt_offset(algo()), writer_stop())


def chunks(base: int, length: int, size: int = CHUNK) -> list[tuple[int, int]]:
    """``[base, base+length)`` cut into ``(address, length)`` pieces of at most ``size``."""
    return [(a, min(size, base + length - a)) for a in range(base, base + length, size)]


@dataclass
class FlashStats:
    """What one :func:`sync_flash` did, in bytes."""

    skipped: int = 0  #: already held the wanted bytes (target CRC matched): not written
    written: int = 0  #: written (whole sectors' parts of the image that differed)
    read: int = 0  #: read back through the probe (only chunks whose CRC differed, or all in fallback)
    crc: int = 0  #: checked by CRC on the target (before and after writing)
    kept: int = 0  #: read and written back: the rest of partly written sectors that was not blank
    seconds: float = 0.0
    fallback: str | None = None  #: why the CRC routine was not used
    notes: list[str] = field(default_factory=list)

    def note(self, what: str) -> str:
        """One sentence for the evidence."""
        text = (
            f"{what}: {self.skipped} bytes skipped (already there), {self.written} written, "
            f"{self.read} read back, {self.crc} checked by CRC-32 on the target, {self.seconds:.2f} s"
        )
        if self.kept:
            text += f"; {self.kept} bytes of the sectors around kept (read and written back)"
        if self.fallback:
            text += f"; CRC routine not used ({self.fallback}): plain write and full readback"
        return "; ".join([text, *self.notes])


@dataclass
class SyncResult:
    """The flash content after :func:`sync_flash` (read back where a CRC differed, the
    wanted bytes where it matched) and what it cost."""

    actual: bytes
    stats: FlashStats


def sync_flash(
    probe: Probe, layout: FlashLayout, base: int, data: bytes, *, crc: TargetCrc | None = None
) -> SyncResult:
    """Make flash ``[base, base+len(data))`` hold ``data``: CRC every :data:`CHUNK` on the
    target, write (sector erase, the rest of the sector kept) only the sectors whose part
    differs, CRC those again and read back only the chunks whose CRC is still wrong. The
    returned ``actual`` is what flash holds. On any failure of the routine: a plain write of
    everything and a full readback (``stats.fallback`` says why). The core must be halted."""
    t0 = time.monotonic()
    crc = crc or TargetCrc(probe)
    stats = FlashStats()
    parts = chunks(base, len(data))
    if len(data) <= EXACT:  # a record: compared byte for byte (see EXACT), read back after writing
        return _sync_small(probe, layout, base, data, stats, t0)
    try:
        before = crc.crcs(parts)
    except (TargetCrcError, ProbeError) as exc:
        return _fallback(probe, base, data, stats, str(exc), t0)
    stats.crc = len(data)
    dirty = {a for (a, n), got in zip(parts, before, strict=True) if got != _want(data, base, a, n)}
    pieces = []
    for sec in layout.sectors_for_span(base, len(data)):
        lo, hi = max(sec.base, base), min(sec.base + sec.size, base + len(data))
        if any(lo <= a < hi for a in dirty):
            pieces.append((lo, hi))
    for lo, hi in pieces:
        write_piece(probe, layout, lo, data[lo - base : hi - base], crc, stats)
        stats.written += hi - lo
    stats.skipped = len(data) - stats.written
    actual = bytearray(data)
    if pieces:
        check = [c for lo, hi in pieces for c in chunks(lo, hi - lo)]
        after: Sequence[int | None]
        try:
            after = crc.crcs(check)
        except (TargetCrcError, ProbeError) as exc:  # the writes happened: read them all back
            stats.fallback = f"after writing: {exc}"
            after = [None] * len(check)
        stats.crc += sum(n for _, n in check)
        for (a, n), got in zip(check, after, strict=True):
            if got != _want(data, base, a, n):
                actual[a - base : a - base + n] = probe.read(a, n)
                stats.read += n
    stats.seconds = time.monotonic() - t0
    LOG.info(stats.note(f"flash 0x{base:08X}+{len(data)}"))
    return SyncResult(bytes(actual), stats)


def _sync_small(
    probe: Probe, layout: FlashLayout, base: int, data: bytes, stats: FlashStats, t0: float
) -> SyncResult:
    """:func:`sync_flash` for at most :data:`EXACT` bytes: read back and compared exactly."""
    held = probe.read(base, len(data))
    stats.read = len(data)
    if held != data:
        for sec in layout.sectors_for_span(base, len(data)):
            lo, hi = max(sec.base, base), min(sec.base + sec.size, base + len(data))
            if held[lo - base : hi - base] != data[lo - base : hi - base]:
                write_piece(probe, layout, lo, data[lo - base : hi - base], TargetCrc(probe), stats)
                stats.written += hi - lo
        held = probe.read(base, len(data))
        stats.read += len(data)
    stats.skipped = len(data) - stats.written
    stats.seconds = time.monotonic() - t0
    return SyncResult(held, stats)


def write_piece(
    probe: Probe, layout: FlashLayout, address: int, data: bytes, crc: TargetCrc, stats: FlashStats
) -> None:
    """Write ``data`` at ``address`` (inside one sector) with the rig's flash routine
    (rig/flash_write.py), the rest of the sector kept: its chunks that are not blank (by CRC
    on the target) are read and written back. Falls back to pyOCD's algorithm, with a note,
    when the routine cannot be used."""
    (sec,) = layout.sectors_for_span(address, len(data))
    if len(data) % 4 or address % 4 or sec.size > BUFFER_SIZE:  # pyOCD keeps the rest itself
        why = "not whole words" if sec.size <= BUFFER_SIZE else f"a sector over {BUFFER_SIZE} bytes"
        stats.notes.append(f"0x{address:08X}+{len(data)}: {why}, written by pyOCD's algorithm")
        probe.flash(address, data, smart=False)
        return
    content = bytearray(b"\xff" * sec.size)
    off = address - sec.base
    content[off : off + len(data)] = data
    rest = chunks(sec.base, off) + chunks(address + len(data), sec.end - address - len(data))
    try:
        got: Sequence[int | None] = crc.crcs(rest) if rest else []
    except (TargetCrcError, ProbeError):
        got = [None] * len(rest)
    for (a, n), c in zip(rest, got, strict=True):
        if c != zlib.crc32(b"\xff" * n):
            content[a - sec.base : a - sec.base + n] = probe.read(a, n)
            stats.kept += n
    try:
        write_sector(probe, sec, bytes(content))
    except FlashWriteError as exc:
        LOG.warning("the flash routine failed (%s): pyOCD's algorithm writes sector %d", exc, sec.index)
        stats.notes.append(
            f"sector {sec.index}: the rig's flash routine failed ({exc}); pyOCD's algorithm wrote it"
        )
        probe.reset(halt=True)
        probe.flash(sec.base, bytes(content), smart=False)


def written_end(crc: TargetCrc, base: int, size: int) -> int:
    """Offset of the end of the last :data:`CHUNK` of ``[base, base+size)`` that is not erased
    (all 0xFF), by CRC on the target; 0 if everything is erased."""
    parts = chunks(base, size)
    got = crc.crcs(parts)
    dirty = [a + n - base for (a, n), c in zip(parts, got, strict=True) if c != zlib.crc32(b"\xff" * n)]
    return max(dirty, default=0)


def _want(data: bytes, base: int, address: int, length: int) -> int:
    return zlib.crc32(data[address - base : address - base + length])


def _fallback(probe: Probe, base: int, data: bytes, stats: FlashStats, why: str, t0: float) -> SyncResult:
    LOG.warning("the CRC routine failed (%s): plain write and readback of 0x%08X+%d", why, base, len(data))
    stats.fallback = why
    probe.reset(halt=True)  # whatever the routine left behind (a fault, a lockup)
    probe.flash(base, data)
    stats.written = len(data)
    actual = probe.read(base, len(data))
    stats.read = len(data)
    stats.seconds = time.monotonic() - t0
    return SyncResult(actual, stats)
