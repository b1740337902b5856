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

from collections import Counter

import numpy as np

from rig.diagnosis import MAX_LIST, Diagnosis, State
from rig.diff_arrays import num

#: the Cortex-M7 L1 D-cache line (bytes)
LINE = 32
#: stale lines needed for the diagnosis (each is 32 bytes the image has earlier, at one phase)
MIN_LINES = 8
#: differing bytes a line needs to be looked up as a stale one: an earlier packet's line
#: differs from the right one in most of its 32 bytes, a scattered bit flip in one
MIN_BYTES = 8


def stale_cache_lines(st: State) -> list[Diagnosis]:
    """Differing 32-byte lines that hold data the image has earlier (see the module's text)."""
    if st.open_count() == 0:
        return []
    starts, ends, _ = st.open_runs()
    for phase in _line_phases(starts, ends):
        lines = _differing_lines(starts, ends, phase, st.n)
        candidates = _well_differing(st, lines, phase)
        if candidates.size < MIN_LINES:
            continue
        found = _earlier_sources(st, candidates, phase)
        if _convincing(found, lines):
            _explain_lines(st, found[:, 0])
            return [_diagnosis(st, phase, lines, found)]
    return []


def _line_phases(starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """The offset modulo 32 at which most differing runs start or end, and the runner-up if it
    also stands out (other errors elsewhere, such as bit flips, add edges at every phase)."""
    counts = np.bincount(np.concatenate((starts % LINE, ends % LINE)), minlength=LINE)
    top = np.argsort(-counts, kind="stable")[:2]
    phases = [int(top[0])]
    if counts[top[1]] > 1.2 * np.median(counts):  # clearly above the edges of scattered errors
        phases.append(int(top[1]))
    return phases


def _convincing(found: np.ndarray, lines: np.ndarray) -> bool:
    """Enough lines with an earlier source, most of the differing lines where they are, and
    not one contiguous stretch displaced by one distance (that is ``shifted``)."""
    if len(found) < MIN_LINES:
        return False
    lo, hi = found[0, 0], found[-1, 0]
    around = int(np.count_nonzero((lines >= lo) & (lines <= hi)))
    return len(found) >= around // 2 and _scattered(found)


def _differing_lines(starts: np.ndarray, ends: np.ndarray, phase: int, n: int) -> np.ndarray:
    """Start offsets of the whole lines (at ``phase``) that hold the differing runs
    [starts, ends)."""
    m = (n - phase) // LINE
    lo, hi = np.maximum(starts, phase), np.minimum(ends, phase + max(m, 0) * LINE)
    keep = hi > lo
    first, last = (lo[keep] - phase) // LINE, (hi[keep] - 1 - phase) // LINE
    if first.size == 0:
        return first
    if int(np.max(last - first)) <= 1:  # runs within two lines: the rows are first, last, first, ...
        rows = np.stack((first, last), axis=1).ravel()
        rows = rows[np.concatenate(([True], rows[1:] != rows[:-1]))]
    else:  # long runs: count the runs over each line
        mark = np.zeros(m + 1, dtype=np.int32)
        np.add.at(mark, first, 1)
        np.add.at(mark, last + 1, -1)
        rows = np.flatnonzero(np.cumsum(mark[:m]) > 0)
    return rows * LINE + phase


def _well_differing(st: State, lines: np.ndarray, phase: int) -> np.ndarray:
    """The ``lines`` (start offsets at ``phase``) holding at least MIN_BYTES differing bytes
    no detector explained yet: only those are looked up (hashing every line of the image to
    look up 18 000 lines of one flipped bit each was half the time of a diagnosis)."""
    off = st.open_idx()
    if off.size > st.n // 8:  # dense differences: (nearly) every differing line is one
        return lines
    off = off[off >= phase]
    per_line = np.bincount((off - phase) // LINE, minlength=(st.n - phase) // LINE + 1)
    return lines[per_line[(lines - phase) // LINE] >= MIN_BYTES]


def _line_words(data: np.ndarray, phase: int) -> np.ndarray:
    """The whole lines of ``data`` at ``phase`` as rows of four 64-bit words."""
    m = max((data.size - phase) // LINE, 0)
    return np.ascontiguousarray(data[phase : phase + m * LINE]).view(np.uint64).reshape(m, LINE // 8)


def _hashes(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each line (row of words): equal lines, equal hashes."""
    h = np.zeros(words.shape[0], dtype=np.uint64)
    for k in range(LINE // 8):
        h = (h ^ words[:, k]) * np.uint64(0x9E3779B97F4A7C15 + 2 * k)
    return h


def _earliest(ha: np.ndarray, hb: np.ndarray) -> np.ndarray:
    """For each hash of ``hb`` the first index in ``ha`` holding it, -1 if none. A table of the
    earliest line per bucket (the hash's top bits), again over the lines whose hash is not
    their bucket's first one until every query has its answer."""
    res = np.full(hb.size, -1, dtype=np.int64)
    if ha.size == 0 or hb.size == 0:
        return res
    none = np.int64(ha.size)
    lines = np.arange(ha.size, dtype=np.int64)
    q = np.arange(hb.size)
    while lines.size and q.size:
        bits = max(4, int(lines.size).bit_length() + 1)  # about two buckets a line
        shift = np.uint64(64 - bits)
        ba = (ha[lines] >> shift).astype(np.intp)
        first = np.full(1 << bits, none, dtype=np.int64)
        np.minimum.at(first, ba, lines)
        w = first[(hb[q] >> shift).astype(np.intp)]
        has = w < none
        match = has & (ha[np.minimum(w, none - 1)] == hb[q])
        res[q[match]] = w[match]
        q = q[has & ~match]
        lines = lines[ha[lines] != ha[first[ba]]]
    return res


def _earlier_sources(st: State, lines: np.ndarray, phase: int) -> np.ndarray:
    """Rows (line, source): the line's actual bytes are the image's bytes at ``source`` < line,
    a line at the same phase (a packet size that is a multiple of 32 bytes, as DMA receive
    buffers are), the first such line of the image. Found by hashing every line of the image,
    checked byte for byte; lines of one or two byte values (erased, a fill) prove nothing."""
    none = np.zeros((0, 2), dtype=np.int64)
    if lines.size == 0:
        return none
    wa = _line_words(st.a, phase)
    wb = _line_words(st.b, phase)[(lines - phase) // LINE]
    src = _earliest(_hashes(wa), _hashes(wb))
    hit = (src >= 0) & (src < (lines - phase) // LINE)
    lines, src, wb = lines[hit], src[hit], wb[hit]
    same = np.all(wa[src] == wb, axis=1)
    rows = wb.view(np.uint8).reshape(-1, LINE)
    first = rows[:, :1]
    other = rows[np.arange(rows.shape[0]), np.argmax(rows != first, axis=1)][:, None]
    two_values = np.all((rows == first) | (rows == other), axis=1)
    ok = same & ~two_values
    return np.stack((lines[ok], src[ok] * LINE + phase), axis=1).astype(np.int64)


def _scattered(found: np.ndarray) -> bool:
    """Stale lines come from several packets, or sit between lines that arrived right; one
    contiguous stretch displaced by one distance is a shift (``shifted``), not the cache."""
    stretches = 1 + int(np.count_nonzero(np.diff(found[:, 0]) != LINE))
    distances = np.unique(found[:, 0] - found[:, 1]).size
    return stretches >= 3 or distances >= 2


def _explain_lines(st: State, starts: np.ndarray) -> None:
    """Every differing byte in the lines beginning at the sorted ``starts`` explained."""
    i0, i1 = st.span(int(starts[0]), int(starts[-1]) + LINE)
    sub = st.idx[i0:i1]
    at = np.searchsorted(starts, sub, side="right") - 1
    st.done[i0:i1] |= sub < starts[at] + LINE


def _diagnosis(st: State, phase: int, lines: np.ndarray, found: np.ndarray) -> Diagnosis:
    distances = Counter((found[:, 0] - found[:, 1]).tolist())
    distance, _ = distances.most_common(1)[0]
    first, src = (int(x) for x in found[0])
    last = int(found[-1, 0]) + LINE
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
            "lines": [{"address": st.base + s, "source": st.base + x} for s, x in found[:MAX_LIST].tolist()],
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
