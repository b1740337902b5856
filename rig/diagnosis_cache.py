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

import numpy as np

from rig.diagnosis import MAX_LIST, Diagnosis, State
from rig.diff_arrays import num

#: the Cortex-M7 L1 D-cache line (bytes)
LINE = 32
#: log2(LINE): offsets are shifted, not divided, into lines (the arrays run to 40 000 offsets)
LINE_BITS = 5
#: stale lines needed for the diagnosis (each is 32 bytes the image has earlier, at one phase)
MIN_LINES = 8
#: differing bytes a line needs to be looked up as a stale one: an earlier packet's line
#: differs from the right one in most of its 32 bytes, a scattered bit flip in one
MIN_BYTES = 8
#: the 16-bit word of a line (of 16) that sieves the image's lines before any is hashed
SIEVE = 5


def stale_cache_lines(st: State) -> list[Diagnosis]:
    """Differing 32-byte lines that hold data the image has earlier (see the module's text)."""
    if st.open_count() == 0:
        return []
    off = st.open_idx()
    if off.size <= st.n // 8 and not _may_hold_lines(off):
        return []
    starts, ends, _ = st.open_runs()
    for phase in _line_phases(starts, ends):
        lines, held = _differing_lines(starts, ends, phase, st.n)
        candidates = _well_differing(st, lines, phase, held)
        if candidates.size < MIN_LINES:
            continue
        found = _earlier_sources(st, candidates, phase)
        if _convincing(found, lines):
            _explain_lines(st, found[:, 0])
            return [_diagnosis(st, phase, lines, found)]
    return []


def _may_hold_lines(off: np.ndarray) -> bool:
    """Whether the sorted open offsets ``off`` (sparse ones: :func:`_well_differing` counts
    them) can give MIN_LINES lines of MIN_BYTES each, at any phase: each such line holds
    MIN_BYTES consecutive offsets less than 32 bytes apart, one more window for each line.
    Scattered bit flips never do, and are then dismissed without a look at a line."""
    if off.size < MIN_BYTES * MIN_LINES:
        return False
    k = MIN_BYTES - 1
    # windows among the first offsets are enough when they are (a stale-line image's are)
    return any(np.count_nonzero(p[k:] - p[:-k] < LINE) >= MIN_LINES for p in (off[:4096], off))


def _line_phases(starts: np.ndarray, ends: np.ndarray) -> list[int]:
    """The offset modulo 32 at which most differing runs start or end, and the runner-up if it
    also stands out (other errors elsewhere, such as bit flips, add edges at every phase)."""
    counts = np.bincount(starts & (LINE - 1), minlength=LINE) + np.bincount(ends & (LINE - 1), minlength=LINE)
    c = counts.tolist()
    top = sorted(range(LINE), key=lambda p: -c[p])[:2]  # stable: the lower phase on a tie
    mid = sorted(c)
    phases = [top[0]]
    if c[top[1]] > 1.2 * ((mid[LINE // 2 - 1] + mid[LINE // 2]) / 2):  # above the scattered errors' edges
        phases.append(top[1])
    return phases


def _convincing(found: np.ndarray, lines: np.ndarray) -> bool:
    """Enough lines with an earlier source, most of the differing lines where they are, and
    not one contiguous stretch displaced by one distance (that is ``shifted``)."""
    if len(found) < MIN_LINES:
        return False
    lo, hi = np.searchsorted(lines, (found[0, 0], found[-1, 0] + 1))  # ``lines`` are sorted
    return len(found) >= int(hi - lo) // 2 and _scattered(found)


def _differing_lines(
    starts: np.ndarray, ends: np.ndarray, phase: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Start offsets of the whole lines (at ``phase``) that hold the differing runs
    [starts, ends), and how many of the runs' bytes each line holds."""
    m = (n - phase) // LINE
    lo, hi = np.maximum(starts, phase), np.minimum(ends, phase + max(m, 0) * LINE)
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    first, last = (lo - phase) >> LINE_BITS, (hi - 1 - phase) >> LINE_BITS
    if first.size == 0:
        return first, first
    count = last - first + 1  # the lines of each run, listed one after another
    end = np.cumsum(count)
    at = np.repeat(first - end + count, count) + np.arange(int(end[-1]))
    at = at * LINE + phase
    held = np.minimum(np.repeat(hi, count), at + LINE) - np.maximum(np.repeat(lo, count), at)
    new = np.empty(at.size, dtype=bool)  # a run may end in the line where the next begins
    new[0] = True
    np.not_equal(at[1:], at[:-1], out=new[1:])
    new = np.flatnonzero(new)
    return at[new], np.add.reduceat(held, new)


def _well_differing(st: State, lines: np.ndarray, phase: int, held: np.ndarray | None = None) -> np.ndarray:
    """The ``lines`` (start offsets at ``phase``) holding at least MIN_BYTES differing bytes
    no detector explained yet (``held``, counted from :meth:`State.open_idx` if not given):
    only those are looked up (hashing every line of the image to look up 18 000 lines of one
    flipped bit each was half the time of a diagnosis)."""
    if st.open_count() > st.n // 8:  # dense differences: (nearly) every differing line is one
        return lines
    if held is None:
        bounds = np.empty(2 * lines.size, dtype=lines.dtype)
        bounds[0::2], bounds[1::2] = lines, lines + LINE  # sorted: the lines do not overlap
        at = np.searchsorted(st.open_idx(), bounds)
        held = at[1::2] - at[0::2]
    return lines[held >= MIN_BYTES]


def _line_words(data: np.ndarray, phase: int) -> np.ndarray:
    """The whole lines of ``data`` at ``phase`` as rows of four 64-bit words."""
    m = max((data.size - phase) // LINE, 0)
    return np.ascontiguousarray(data[phase : phase + m * LINE]).view(np.uint64).reshape(m, LINE // 8)


def _hashes(words: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each line (row of words): equal lines, equal hashes."""
    h = words[:, 0] * np.uint64(0x9E3779B97F4A7C15)
    for k in range(1, LINE // 8):
        h ^= words[:, k]
        h *= np.uint64(0x9E3779B97F4A7C15 + 2 * k)
    return h


def _first_equal(wa: np.ndarray, wq: np.ndarray, before: np.ndarray) -> np.ndarray:
    """For each line (row of words) of ``wq`` the index of the first line of ``wa`` with the
    same bytes, if it is less than ``before`` (else -1). One pass over the image: unless the
    queries are many, one 16-bit word of each line is looked up in a table of the queries'
    (hashing 64 Ki lines cost more than the rest of the detector); the first line it lets
    through with a query's hash is compared word for word: the same bytes are the first ones
    (an earlier line with them has the hash), other bytes (hashes that collide) have the
    query looked up line by line."""
    top = int(np.max(before, initial=0))
    if top == 0:
        return np.full(wq.shape[0], -1, dtype=np.int64)
    if wq.shape[0] <= top // 16:
        sieve = np.zeros(1 << 16, dtype=bool)
        sieve[wq.view(np.uint16)[:, SIEVE]] = True
        cand = np.flatnonzero(np.take(sieve, wa[:top].view(np.uint16)[:, SIEVE]))
        src = _earliest(_hashes(np.take(wa, cand, axis=0)), _hashes(wq))
        src = np.take(np.append(cand, -1), src)  # -1 (none) takes the -1 appended
    else:  # most lines would pass
        src = _earliest(_hashes(wa[:top]), _hashes(wq))
    src[src >= before] = -1  # none of the lines with the hash is early enough
    hit = np.flatnonzero(src >= 0)
    same = np.take(wa, src[hit], axis=0) == np.take(wq, hit, axis=0)
    same = same.view(np.uint32)[:, 0] == 0x01010101  # all four words
    for q in hit[~same].tolist():
        equal = np.flatnonzero(np.all(wa[: before[q]] == wq[q], axis=1))
        src[q] = equal[0] if equal.size else -1
    return src


def _earliest(ha: np.ndarray, hb: np.ndarray) -> np.ndarray:
    """For each hash of ``hb`` the first index in ``ha`` holding it, -1 if none: the hashes
    joined (:func:`_join`), the least index of each query's."""
    if ha.size == 0 or hb.size == 0:
        return np.full(hb.size, -1, dtype=np.int64)
    rep, who = _join(hb, ha)
    hit = np.flatnonzero(who >= 0)
    first = np.full(hb.size, ha.size, dtype=np.int64)
    np.minimum.at(first, who[hit], hit)
    src = first[rep]
    src[src == ha.size] = -1
    return src


def _join(hq: np.ndarray, hc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Queries and candidates by their hashes ``hq`` and ``hc``: (rep, who), ``rep[i]`` the
    query that stands for every query with the hash of query i, ``who[j]`` the one with the
    hash of candidate j (-1 if none). A table over the queries indexed by the hash's top bits
    (four to eight buckets a query); the few queries that lost their bucket to another hash are
    sorted and looked up by the candidates of those buckets only."""
    shift = np.uint64(64 - max(4, int(hq.size).bit_length() + 2))
    table = np.full(1 << (64 - int(shift)), -1, dtype=np.int64)
    bq = (hq >> shift).astype(np.intp)
    table[bq] = np.arange(hq.size)  # one query per bucket
    rep = np.take(table, bq)
    bc = (hc >> shift).astype(np.intp)
    who = np.take(table, bc)
    who[np.take(hq, who) != hc] = -1  # an empty bucket's -1 stays
    left = np.flatnonzero(np.take(hq, rep) != hq)
    if left.size:
        lost = np.zeros(table.size, dtype=bool)
        lost[bq[left]] = True
        c = np.flatnonzero(lost[bc])
        hl = hq[left]
        order = np.argsort(hl, kind="stable")
        sl = hl[order]
        rep[left] = left[order[np.searchsorted(sl, hl)]]
        at = np.minimum(np.searchsorted(sl, hc[c]), sl.size - 1)
        ok = sl[at] == hc[c]
        who[c[ok]] = left[order[at[ok]]]
    return rep, who


def _earlier_sources(st: State, lines: np.ndarray, phase: int) -> np.ndarray:
    """Rows (line, source): the line's actual bytes are the image's bytes at ``source`` < line,
    a line at the same phase (a packet size that is a multiple of 32 bytes, as DMA receive
    buffers are), the first such line of the image. Lines of one or two byte values (erased,
    a fill) prove nothing."""
    at = (lines - phase) >> LINE_BITS
    wb = np.take(_line_words(st.b, phase), at, axis=0)
    src = _first_equal(_line_words(st.a, phase), wb, at)
    hit = np.flatnonzero(src >= 0)
    hit = hit[~_two_values(np.take(wb, hit, axis=0).view(np.uint8))]
    found = np.empty((hit.size, 2), dtype=np.int64)
    found[:, 0], found[:, 1] = np.take(lines, hit), np.take(src, hit) * LINE + phase
    return found


def _two_values(rows: np.ndarray) -> np.ndarray:
    """Whether each row of bytes holds at most two values (then its min and max); three
    different ones among its first three rule a row out before it is looked at whole."""
    b0, b1, b2 = rows[:, 0], rows[:, 1], rows[:, 2]
    maybe = np.flatnonzero((b0 == b1) | (b0 == b2) | (b1 == b2))
    out = np.zeros(b0.size, dtype=bool)
    if maybe.size:
        rows = np.take(rows, maybe, axis=0)
        two = (rows == rows.min(axis=1, keepdims=True)) | (rows == rows.max(axis=1, keepdims=True))
        out[maybe] = np.all(two, axis=1)
    return out


def _scattered(found: np.ndarray) -> bool:
    """Stale lines come from several packets, or sit between lines that arrived right; one
    contiguous stretch displaced by one distance is a shift (``shifted``), not the cache."""
    if np.count_nonzero(np.diff(found[:, 0]) != LINE) >= 2:  # three stretches or more
        return True
    distance = found[:, 0] - found[:, 1]
    return bool(np.any(distance != distance[0]))


def _explain_lines(st: State, starts: np.ndarray) -> None:
    """Every differing byte in the lines beginning at the sorted ``starts`` (all at one
    phase) explained."""
    lo = int(starts[0])
    i0, i1 = st.span(lo, int(starts[-1]) + LINE)
    mark = np.zeros(((int(starts[-1]) - lo) >> LINE_BITS) + 1, dtype=bool)
    mark[(starts - lo) >> LINE_BITS] = True
    at = st.idx[i0:i1] - lo
    np.right_shift(at, LINE_BITS, out=at)
    st.done[i0:i1] |= np.take(mark, at)


def _diagnosis(st: State, phase: int, lines: np.ndarray, found: np.ndarray) -> Diagnosis:
    values, seen, counts = np.unique(found[:, 0] - found[:, 1], return_index=True, return_counts=True)
    top = np.lexsort((seen, -counts))[:8]  # as Counter.most_common: ties in order of appearance
    distances = list(zip(values[top].tolist(), counts[top].tolist(), strict=True))
    distance = distances[0][0]
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
            "distances": [{"distance": d, "lines": c} for d, c in distances],
            "lines": [{"address": s, "source": x} for s, x in (found[:MAX_LIST] + st.base).tolist()],
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
