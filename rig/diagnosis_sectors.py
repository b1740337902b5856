"""Detectors at sector and region level: a sector programmed without an erase (or
not programmed at all over the previous image), damage that starts and ends on sector
boundaries, and changes outside the OTA-writable regions. They run after the data-pattern
detectors of :mod:`rig.diagnosis` and share its :class:`~rig.diagnosis.State`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

from rig.diagnosis import MAX_LIST, Diagnosis, State
from rig.diff_arrays import num, sector_slices, span_text
from rig.diff_sparse import spans_in


def _groups(st: State) -> list[tuple[str, int, int, int | None]]:
    """(label, start, end, sector index) groups: sectors if a layout is known, else the whole span."""
    if st.layout is None:
        return [("the data", 0, st.n, None)]
    out: list[tuple[str, int, int, int | None]] = []
    for sec in st.layout.sectors:
        lo, hi = max(sec.base - st.base, 0), min(sec.end - st.base, st.n)
        if hi > lo:
            out.append((f"sector {sec.index}", lo, hi, sec.index))
    return out or [("the data", 0, st.n, None)]


def never_erased(st: State) -> list[Diagnosis]:
    o, ref, act = st.open_bytes()
    set_bits = np.flatnonzero((act & ~ref) != 0)  # positions in o of bytes with a 0->1 change
    prev = st.prev[o] if st.prev is not None else None
    groups = _groups(st)
    bounds = spans_in(o, [(lo, hi) for _, lo, hi, _ in groups])
    pos: np.ndarray | None = None  # positions in st.idx of the bytes still to explain
    out = []
    for (label, _, _, sector), (k0, k1), (s0, s1) in zip(
        groups, bounds, spans_in(set_bits, bounds), strict=True
    ):
        cnt = k1 - k0
        if cnt < 8:
            continue
        confirmed = None
        stale = 0
        if s0 == s1:  # only 1->0 changes
            if prev is not None:
                confirmed = bool(np.all(act[k0:k1] == (ref[k0:k1] & prev[k0:k1])))
        elif prev is not None:
            # Not erased and only partly (or not at all) programmed: every differing byte is
            # either the previous image's byte or expected AND previous.
            p, a = prev[k0:k1], act[k0:k1]
            is_prev = a == p
            if not bool(np.all(is_prev | (a == (ref[k0:k1] & p)))):
                continue
            confirmed, stale = True, int(np.count_nonzero(is_prev))
        else:
            continue
        first, last = int(o[k0]), int(o[k1 - 1])
        if pos is None:
            pos = np.flatnonzero(~st.done)
        st.done[pos[k0:k1]] = True
        if stale:
            detail = (
                f"{label} was never erased: {num(cnt)} bytes differ; {num(stale)} still hold the "
                f"previous image and {num(cnt - stale)} are expected AND previous "
                "(programmed over old content, then the write stopped)"
            )
        else:
            how = ""
            if confirmed is True:
                how = " (confirmed: every differing byte equals expected AND previous)"
            elif confirmed is False:
                how = " (not the AND of expected and the given previous image)"
            detail = (
                f"{label} was programmed without an erase: {num(cnt)} bytes differ, only 1->0 changes{how}"
            )
        out.append(
            Diagnosis(
                "never_erased",
                st.base + first,
                last - first + 1,
                detail,
                {"sector": sector, "bytes": cnt, "confirmed": confirmed, "stale_bytes": stale},
            )
        )
    return out


def _first_last_count(st: State, lo: int, hi: int) -> tuple[int, int, int] | None:
    """First and last differing offset in [lo, hi) and how many differ there, or None."""
    i0, i1 = st.span(lo, hi)
    if i1 == i0:
        return None
    return int(st.idx[i0]), int(st.idx[i1 - 1]), i1 - i0


def sector_aligned(st: State) -> list[Diagnosis]:
    if st.layout is None:
        return []
    rows = []
    slices = sector_slices(st.base, st.n, st.layout)
    for (sec, lo, hi), (i0, i1) in zip(
        slices, spans_in(st.idx, [(lo, hi) for _, lo, hi in slices]), strict=True
    ):
        first, last = (st.base + int(st.idx[i0]), st.base + int(st.idx[i1 - 1])) if i1 > i0 else (0, 0)
        rows.append((sec, st.base + lo, st.base + hi, i1 - i0, first, last))

    def dense(r: tuple) -> bool:
        return r[3] >= 0.05 * (r[2] - r[1])

    def edges(r: tuple) -> bool:
        sec, _, hi, _, first, last = r
        slack = max(16, sec.size // 4096)
        return sec.base >= st.base and first - sec.base < slack and hi - 1 - last < slack

    # runs of whole-sector damage: every sector dense with differences from its first to its last
    # bytes, and the sectors either side clean or only sparsely different
    out = []
    i = 0
    while i < len(rows):
        if not (rows[i][3] and dense(rows[i]) and edges(rows[i])):
            i += 1
            continue
        j = i
        while j + 1 < len(rows) and rows[j + 1][3] and dense(rows[j + 1]) and edges(rows[j + 1]):
            j += 1
        before = rows[i - 1] if i > 0 else None
        after = rows[j + 1] if j + 1 < len(rows) else None
        if not any(r is not None and dense(r) for r in (before, after)):
            run_lo, run_hi = rows[i][1], rows[j][2]
            total = sum(r[3] for r in rows[i : j + 1])
            secs = [r[0].index for r in rows[i : j + 1]]
            out.append(
                Diagnosis(
                    "sector_aligned",
                    run_lo,
                    run_hi - run_lo,
                    f"the mismatches start and end on sector boundaries: sector(s) {span_text(secs)} "
                    f"(0x{run_lo:08X}..0x{run_hi - 1:08X}), {num(total)} bytes differ — a whole-sector "
                    f"step (erase count, sector number, copy loop) went wrong",
                    {"sectors": secs, "bytes": total, "first": rows[i][4], "last": rows[j][5]},
                )
            )
        i = j + 1
    return out


def region_touched(st: State, writable: Sequence[tuple[int, int]] | None) -> list[Diagnosis]:
    layout = st.layout
    if writable is None:
        if layout is None or not layout.regions:
            return []
        writable = [(r.base, r.size) for r in layout.regions.values() if r.ota_writable]
    regions = list(layout.regions.values()) if layout is not None else []
    lo_all, hi_all = st.base, st.base + st.n
    cuts = {lo_all, hi_all}
    for lo, size in writable:
        cuts.update((lo, lo + size))
    for reg in regions:
        cuts.update((reg.base, reg.end))
    points = sorted(c for c in cuts if lo_all <= c <= hi_all)
    found: dict[str | None, list[tuple[int, int, int]]] = {}
    for seg_lo, seg_hi in itertools.pairwise(points):
        if any(lo <= seg_lo and seg_hi <= lo + size for lo, size in writable):
            continue
        flc = _first_last_count(st, seg_lo - st.base, seg_hi - st.base)
        if flc is None:
            continue
        name = next((r.name for r in regions if r.base <= seg_lo < r.end), None)
        found.setdefault(name, []).append((st.base + flc[0], st.base + flc[1], flc[2]))
    out = []
    for name, parts in found.items():
        first, last = parts[0][0], parts[-1][1]
        count = sum(p[2] for p in parts)
        label = name or "no region"
        sample: list[int] = []
        for p_lo, p_hi, _ in parts:
            if len(sample) < MAX_LIST:
                i0, i1 = st.span(p_lo - st.base, p_hi - st.base + 1)
                sample += (st.idx[i0:i1][: MAX_LIST - len(sample)] + st.base).tolist()
        sel = np.array(sample, dtype=np.int64)
        out.append(
            Diagnosis(
                "region_touched",
                first,
                last - first + 1,
                f"{num(count)} byte(s) changed outside the OTA-writable regions, in {label} "
                f"from 0x{first:08X}: the update wrote where it must not",
                {"region": name, "bytes": count, "addresses": sel.tolist()},
            )
        )
    return sorted(out, key=lambda d: d.address)
