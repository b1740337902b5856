"""The ``stale_cache_lines`` detector: data received by DMA into cacheable RAM and read by the
CPU through D-cache lines it never invalidated.

On the Cortex-M7 (32-byte D-cache lines, write-back, read-allocate) a DMA write to SRAM goes
past the cache: a CPU that held a line of the receive buffer from an earlier packet keeps
reading the old bytes until it invalidates the line (``SCB_InvalidateDCache_by_Addr``). A
bootloader that receives the image this way (SPI RX by DMA from a WiFi module, Microchip's
driver with its CRC off) writes those old bytes to flash. What flash then shows:

* the differing bytes fill whole 32-byte lines, all at one phase (the buffer's alignment in
  RAM carried over to the image offset);
* each such line holds bytes the image has *earlier*: what the buffer held when the line was
  cached, i.e. a previous packet's data at the same place in the buffer.

One block written again and again (``repeated_block``) is found first; this detector runs
before ``shifted`` (runs of stale lines from the previous packet look like short displaced
stretches) but leaves one contiguous stretch displaced by one distance to it.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np

from .diagnosis import MAX_LIST, Diagnosis, State
from .diff_arrays import num, runs

#: the Cortex-M7 L1 D-cache line (bytes)
LINE = 32
#: stale lines needed for the diagnosis (each is 32 bytes the image has earlier, at one phase)
MIN_LINES = 8


def stale_cache_lines(st: State) -> list[Diagnosis]:
    """Differing 32-byte lines that hold data the image has earlier (see the module's text)."""
    open_ = st.open_mask()
    if not open_.any():
        return []
    for phase in _line_phases(open_):
        lines = _differing_lines(open_, phase, st.n)
        found = _earlier_sources(st, lines, phase)
        if _convincing(found, lines):
            for s, _ in found:
                st.explained[s : s + LINE] |= st.neq[s : s + LINE]
            return [_diagnosis(st, phase, lines, found)]
    return []


def _line_phases(open_: np.ndarray) -> list[int]:
    """The offset modulo 32 at which most differing runs start or end, and the runner-up if it
    also stands out (other errors elsewhere, such as bit flips, add edges at every phase)."""
    starts, ends = runs(open_)
    counts = np.bincount(np.concatenate((starts % LINE, ends % LINE)), minlength=LINE)
    top = np.argsort(-counts, kind="stable")[:2]
    phases = [int(top[0])]
    if counts[top[1]] > 1.2 * np.median(counts):  # clearly above the edges of scattered errors
        phases.append(int(top[1]))
    return phases


def _convincing(found: list[tuple[int, int]], lines: np.ndarray) -> bool:
    """Enough lines with an earlier source, most of the differing lines where they are, and
    not one contiguous stretch displaced by one distance (that is ``shifted``)."""
    if len(found) < MIN_LINES:
        return False
    lo, hi = found[0][0], found[-1][0]
    around = int(np.count_nonzero((lines >= lo) & (lines <= hi)))
    return len(found) >= around // 2 and _scattered(found)


def _differing_lines(open_: np.ndarray, phase: int, n: int) -> np.ndarray:
    """Start offsets of the whole lines (at ``phase``) that hold unexplained differences."""
    m = (n - phase) // LINE
    rows = open_[phase : phase + m * LINE].reshape(m, LINE).any(axis=1)
    return np.flatnonzero(rows) * LINE + phase


def _line_hashes(data: np.ndarray, phase: int) -> np.ndarray:
    """A 64-bit hash of each whole line of ``data`` at ``phase`` (equal lines, equal hashes)."""
    m = (data.size - phase) // LINE
    words = np.ascontiguousarray(data[phase : phase + m * LINE]).view(np.uint64).reshape(m, LINE // 8)
    h = np.zeros(m, dtype=np.uint64)
    for k in range(LINE // 8):
        h = (h ^ words[:, k]) * np.uint64(0x9E3779B97F4A7C15 + 2 * k)
    return h


def _earlier_sources(st: State, lines: np.ndarray, phase: int) -> list[tuple[int, int]]:
    """(line, source) pairs: the line's actual bytes are the image's bytes at ``source`` < line,
    a line at the same phase (a packet size that is a multiple of 32 bytes, as DMA receive
    buffers are). Found by hashing every line of the image, checked byte for byte."""
    if lines.size == 0:
        return []
    ha = _line_hashes(st.a, phase)
    hb = _line_hashes(st.b, phase)[(lines - phase) // LINE]
    wanted = np.unique(hb)
    at = np.minimum(np.searchsorted(wanted, ha), wanted.size - 1)
    cand = np.flatnonzero(wanted[at] == ha)  # the image's lines that some differing line holds
    if cand.size == 0:
        return []
    hashes, first = np.unique(ha[cand], return_index=True)  # each hash's earliest image line
    j = np.minimum(np.searchsorted(hashes, hb), hashes.size - 1)
    src = cand[first[j]] * LINE + phase
    hit = (hashes[j] == hb) & (src < lines)
    a, b = st.a_bytes, st.b.tobytes()
    found = []
    for s, x in zip(lines[hit].tolist(), src[hit].tolist(), strict=True):
        window = b[s : s + LINE]
        if len(set(window)) > 2 and a[x : x + LINE] == window:  # erased or a fill proves nothing
            found.append((s, x))
    return found


def _scattered(found: list[tuple[int, int]]) -> bool:
    """Stale lines come from several packets, or sit between lines that arrived right; one
    contiguous stretch displaced by one distance is a shift (``shifted``), not the cache."""
    stretches = 1 + sum(1 for (s0, _), (s1, _) in itertools.pairwise(found) if s1 != s0 + LINE)
    distances = {s - src for s, src in found}
    return stretches >= 3 or len(distances) >= 2


def _diagnosis(st: State, phase: int, lines: np.ndarray, found: list[tuple[int, int]]) -> Diagnosis:
    distances = Counter(s - src for s, src in found)
    distance, _ = distances.most_common(1)[0]
    first, src = found[0]
    last = found[-1][0] + LINE
    where_phase = "" if phase == 0 else f" (lines at offset {phase} modulo 32)"
    return Diagnosis(
        "stale_cache_lines",
        st.base + first,
        last - first,
        f"{num(len(found))} of {num(len(lines))} differing 32-byte lines{where_phase} hold bytes "
        f"the image has earlier (most often {num(distance)} bytes earlier: a previous packet at the same "
        f"place in a reused buffer; {st.where(first)} holds the bytes of 0x{st.base + src:08X}): the CPU "
        "read the receive buffer through stale D-cache lines after a DMA wrote it; invalidate the "
        "buffer after each DMA receive (SCB_InvalidateDCache_by_Addr on 32-byte aligned whole lines) "
        "or put it in DTCM or a non-cacheable MPU region",
        {
            "line_size": LINE,
            "phase": phase,
            "lines_differing": len(lines),
            "lines_stale": len(found),
            "distance": distance,
            "distances": [{"distance": d, "lines": c} for d, c in distances.most_common(8)],
            "lines": [{"address": st.base + s, "source": st.base + x} for s, x in found[:MAX_LIST]],
        },
    )


def stale_buffer(d: Diagnosis) -> Diagnosis:
    """A ``repeated_block`` found in data that came straight from the link: a whole receive
    buffer read through cache lines the CPU never invalidated (every line still cached since
    the first packet) looks exactly like it. Whole 32-byte lines make it ``stale_cache_lines``;
    any other block size stays a repeated block."""
    block = int(d.evidence.get("block", 0))
    if d.kind != "repeated_block" or block % LINE:
        return d
    src = d.evidence.get("source_offset")
    origin = f"the image's bytes at offset 0x{src:X}" if src is not None else "bytes not in the image"
    return Diagnosis(
        "stale_cache_lines",
        d.address,
        d.length,
        f"one {num(block)}-byte receive buffer ({origin}) is written {d.evidence.get('times')} times in a "
        f"row from 0x{d.address:08X}: the CPU kept reading the buffer's first contents through D-cache "
        f"lines ({num(block // LINE)} lines of 32 bytes) that it never invalidated after the DMA refilled "
        "it (or the driver never refilled it); invalidate the buffer after each DMA receive "
        "(SCB_InvalidateDCache_by_Addr on 32-byte aligned whole lines) or put it in DTCM or a "
        "non-cacheable MPU region",
        {**d.evidence, "line_size": LINE, "lines_stale": block // LINE, "from": "repeated_block"},
    )
