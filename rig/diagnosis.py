"""Diagnosis of a flash mismatch, the shared state, and the detectors of data patterns.

:class:`Diagnosis` (from :mod:`rig.diff_base`) is one likely cause (a kind of :data:`KINDS`,
where, why, the evidence). :class:`State` holds the arrays every detector reads, the differing
bytes as sorted offsets and which of them are already explained; the detectors run in the
order :func:`rig.diff.diagnose` calls them, each explaining bytes the later ones then leave
alone. This module has those that look at the data itself: one block written over and over,
a displaced stretch, erased runs, single-bit errors. Protocol text in the image is
:mod:`rig.diagnosis_text`, stale D-cache lines :mod:`rig.diagnosis_cache`; the sector and
region level ones (never erased, whole sectors, bytes outside the OTA regions) are in
:mod:`rig.diagnosis_sectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rig.diff_arrays import bit_counts, num, popcount_sum, runs
from rig.diff_base import DEFAULT_TOKENS, KINDS, MAX_LIST, Diagnosis
from rig.diff_sparse import block_counts, count_in, differing, idx_runs, last_true, mask_runs, merge_runs

__all__ = [
    "DEFAULT_TOKENS",
    "KINDS",
    "MAX_LIST",
    "Diagnosis",
    "State",
    "bit_flips",
    "erased_not_written",
    "repeated_block",
    "shifted",
]

if TYPE_CHECKING:
    from rig.board import FlashLayout


class State:
    """What the detectors share: the two arrays, the differing bytes as sorted offsets
    (``idx``, see :mod:`rig.diff_sparse`) and which of them a detector has explained
    (``done``, one flag per offset). Bytes that do not differ but were explained anyway (a
    protocol token's matching bytes) are in ``extra``: the share of a stretch already
    explained counts them as the whole-image masks before issue 18 did."""

    def __init__(
        self,
        a: np.ndarray,
        b: np.ndarray,
        base: int,
        layout: FlashLayout | None,
        previous: np.ndarray | None,
        raw: tuple[bytes | None, bytes | None] = (None, None),
    ) -> None:
        self.a, self.b, self.base, self.layout = a, b, base, layout
        self.n = a.size
        self.idx, neq = differing(a, b)
        self.done = np.zeros(self.idx.size, dtype=bool)
        self.extra = np.zeros(0, dtype=np.int64)
        self.prev = previous
        #: ``a`` and ``b`` as bytes (the caller's, when it gave bytes of that length)
        self._a_bytes, self._b_bytes = (r if r is not None and len(r) == self.n else None for r in raw)
        #: runs of the unexplained bytes by (gap, explained count): ``done`` only ever grows
        self._runs: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        if neq is not None:
            self._runs[(0, 0)] = mask_runs(neq)
        #: what each byte should be compared with once displacements are known (see shifted)
        self.ref = a
        self._at: dict[str, np.ndarray] = {}  # a, b gathered at idx (random reads: once)

    def at(self, which: str) -> np.ndarray:
        """The bytes of ``a`` or ``b`` (``which``) at every differing offset, in ``idx`` order."""
        if which not in self._at:
            self._at[which] = (self.a if which == "a" else self.b)[self.idx]
        return self._at[which]

    def open_bytes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(:meth:`open_idx`, ``ref`` there, ``b`` there)."""
        o = self.open_idx()
        if not self.done.any():
            return o, (self.at("a") if self.ref is self.a else self.ref[o]), self.at("b")
        keep = ~self.done
        ref = self.at("a")[keep] if self.ref is self.a else self.ref[o]
        return o, ref, self.at("b")[keep]

    @property
    def a_bytes(self) -> bytes:
        if self._a_bytes is None:
            self._a_bytes = self.a.tobytes()
        return self._a_bytes

    @property
    def b_bytes(self) -> bytes:
        if self._b_bytes is None:
            self._b_bytes = self.b.tobytes()
        return self._b_bytes

    def open_idx(self) -> np.ndarray:
        """Offsets of the differing bytes no detector has explained yet."""
        return self.idx[~self.done] if self.done.any() else self.idx

    def open_runs(self, gap: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`rig.diff_sparse.idx_runs` of :meth:`open_idx` (cached while nothing changes)."""
        key = (gap, int(np.count_nonzero(self.done)))
        if key not in self._runs:
            whole = self._runs.get((0, key[1]))
            if whole is None:
                whole = self._runs[(0, key[1])] = idx_runs(self.open_idx())
            self._runs[key] = merge_runs(whole, gap)
        return self._runs[key]

    def all_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The runs of every differing byte, explained or not."""
        return self._runs.get((0, 0)) or idx_runs(self.idx)

    def open_count(self) -> int:
        return int(self.idx.size - np.count_nonzero(self.done))

    def span(self, lo: int, hi: int) -> tuple[int, int]:
        """Positions in ``idx`` of the differing bytes in [lo, hi)."""
        i0, i1 = np.searchsorted(self.idx, (lo, hi))
        return int(i0), int(i1)

    def explained_share(self, lo: int, hi: int) -> float:
        """The share of the bytes in [lo, hi) already explained."""
        i0, i1 = self.span(lo, hi)
        return (int(np.count_nonzero(self.done[i0:i1])) + count_in(self.extra, lo, hi)) / (hi - lo)

    def explain_all(self, spans: Sequence[tuple[int, int]]) -> None:
        """Every byte of each [lo, hi) explained, differing or not."""
        extra = [self.extra]
        for lo, hi in spans:
            i0, i1 = self.span(lo, hi)
            self.done[i0:i1] = True
            extra.append(np.setdiff1d(np.arange(lo, hi, dtype=np.int64), self.idx[i0:i1]))
        self.extra = np.unique(np.concatenate(extra))

    def where(self, offset: int) -> str:
        addr = self.base + offset
        if self.layout is not None and self.layout.base <= addr < self.layout.end:
            return f"0x{addr:08X} (sector {self.layout.locate(addr).sector})"
        return f"0x{addr:08X}"


_WINDOW = 32
_MAX_SHIFT = 64 * 1024
_BLOCK = 256


def _find_shift(st: State, s: int, e: int) -> tuple[int, int] | None:
    """Find the displacement k (actual[j] == expected[j+k]) near cluster [s, e); returns (k, probe)."""
    a_bytes = st.a_bytes
    attempts = 0
    for p in range(s, min(e, s + 4096) - _WINDOW + 1, 16):
        win = st.b[p : p + _WINDOW]
        if np.count_nonzero(win != win[0]) < 4:
            continue  # too uniform to locate
        if attempts == 4:
            break
        attempts += 1
        needle = win.tobytes()
        lo, hi = max(0, p - _MAX_SHIFT), min(st.n, p + _MAX_SHIFT + _WINDOW)
        best: int | None = None
        pos = a_bytes.find(needle, lo, hi)
        tries = 0
        while pos != -1 and tries < 64:
            k = pos - p
            if k != 0 and (best is None or abs(k) < abs(best)):
                best = k
            pos = a_bytes.find(needle, pos + 1, hi)
            tries += 1
        if best is not None:
            return best, p
    return None


def shifted(st: State) -> list[Diagnosis]:
    starts, ends, first = st.open_runs(gap=64)
    if starts.size == 0:
        return []
    # a displaced stretch differs almost everywhere; scattered errors give sparse clusters
    dense = np.diff(first) >= 0.25 * (ends - starts)
    pick = np.flatnonzero(((ends - starts) >= 64) & dense)[:32]
    cand = list(zip(starts[pick].tolist(), ends[pick].tolist(), strict=True))
    out: list[Diagnosis] = []
    for s, e in cand:
        if st.explained_share(s, e) > 0.5:
            continue
        found = _find_shift(st, s, e)
        if found is None:
            continue
        k, _ = found
        # compare actual[j] with expected[j + k] where both exist: a forward displacement (k < 0,
        # data written late) cannot start before offset -k, however early the cluster starts
        j0, j1 = max(s, -k), (st.n - k if k > 0 else st.n)
        if j1 - j0 < _WINDOW:
            continue
        sm = st.b[j0:j1] == st.a[j0 + k : j1 + k]
        nb = (j1 - j0) // _BLOCK
        end = j1
        if nb:
            # the displacement lasts while most of each block matches the displaced data
            bad = np.flatnonzero(block_counts(sm, _BLOCK) < _BLOCK // 2)
            if bad.size:
                end = j0 + int(bad[0]) * _BLOCK
        last = last_true(sm[: end - j0])
        if last < 0:
            continue
        end = j0 + last + 1
        i0, i1 = st.span(j0, end)
        at = np.zeros(st.n, dtype=bool)  # sm at image offsets: looked up by idx as it is
        at[j0:end] = sm[: end - j0]
        newly = at[st.idx[i0:i1]] & ~st.done[i0:i1]
        count = int(np.count_nonzero(newly))
        if count < _WINDOW:
            continue
        st.done[i0:i1] |= newly
        if st.ref is st.a:
            st.ref = st.a.copy()
        st.ref[j0:end] = st.a[j0 + k : end + k]
        if k > 0:
            what = f"{num(k)} byte(s) missing (a receive chunk lost)"
        elif j0 == -k:
            what = (
                f"the data starts {num(-k)} byte(s) late (written at 0x{st.base - k:08X} instead of "
                f"0x{st.base:08X}, or {num(-k)} byte(s) inserted before it)"
            )
        else:
            what = f"{num(-k)} byte(s) extra (a chunk duplicated or foreign bytes inserted)"
        out.append(
            Diagnosis(
                "shifted",
                st.base + j0,
                end - j0,
                f"from {st.where(j0)} on the data is displaced by {k:+d} bytes: {what}; "
                f"{num(count)} differing bytes match the expected data {abs(k)} bytes "
                f"{'further on' if k > 0 else 'earlier'}",
                {
                    "shift": k,
                    "offset": j0,
                    "address": st.base + j0,
                    "end": st.base + end,
                    "matched_bytes": count,
                },
            )
        )
    return out


#: block lengths tried for a repeated block (copy loops move 256 B .. 4 KiB at a time)
_PERIODS = (256, 512, 1024, 2048, 4096)


def _periodic_span(same: np.ndarray, s: int, e: int, period: int) -> tuple[int, int] | None:
    """The span around [s, e) where the data repeats with ``period`` (``same[j]``: byte j
    equals byte j + period), as (first byte of the first copy, end of the last); None if
    [s, e) is not periodic."""
    if e - s < 2 * period or same[s : e - period].mean() < 0.98:
        return None
    breaks = np.flatnonzero(~same[:s])
    lo = int(breaks[-1]) + 1 if breaks.size else 0
    after = np.flatnonzero(~same[e - period :])
    hi = e - period + (int(after[0]) if after.size else same.size - (e - period))
    return lo, hi + period


def repeated_block(st: State) -> list[Diagnosis]:
    """One block of the image written again and again: a copy whose source pointer never
    advances (or a buffer re-sent without being refilled)."""
    starts, ends, _ = st.open_runs(gap=64)
    long = (ends - starts) >= 2 * _PERIODS[0]
    out: list[Diagnosis] = []
    same: dict[int, np.ndarray] = {}  # period -> b[j] == b[j + period], computed when needed
    for s, e in zip(starts[long].tolist(), ends[long].tolist(), strict=True):
        if st.explained_share(s, e) > 0.5:
            continue
        for period in _PERIODS:
            if e - s < 2 * period:
                continue
            head = st.b[s : min(e, s + 4 * period)]  # a cheap look before the whole comparison
            if (head[period:] == head[:-period]).mean() < 0.98:
                continue
            if period not in same:
                same[period] = st.b[period:] == st.b[:-period]
            span = _periodic_span(same[period], s, e, period)
            if span is None:
                continue
            lo, hi = span
            block = st.b[lo : lo + period]
            if np.count_nonzero(block != block[0]) < period // 4:
                break  # a constant fill, not a block of data
            src = st.a_bytes.find(block.tobytes())
            tiled = np.resize(block, hi - lo)
            i0, i1 = st.span(lo, hi)
            sub = st.idx[i0:i1]
            newly = (st.b[sub] == tiled[sub - lo]) & ~st.done[i0:i1]
            st.done[i0:i1] |= newly
            if st.ref is st.a:
                st.ref = st.a.copy()
            st.ref[lo:hi] = tiled
            times = (hi - lo) / period
            origin = (
                f"the image's bytes at offset 0x{src:X}" if src >= 0 else "bytes that are not in the image"
            )
            out.append(
                Diagnosis(
                    "repeated_block",
                    st.base + lo,
                    hi - lo,
                    f"one {num(period)}-byte block ({origin}) is written {times:.4g} times in a row from "
                    f"{st.where(lo)} to 0x{st.base + hi - 1:08X}: the copy's source pointer does not "
                    f"advance (the same block is written again and again); {num(int(newly.sum()))} "
                    "differing bytes are that block",
                    {
                        "block": period,
                        "source_offset": src if src >= 0 else None,
                        "times": round(times, 3),
                        "address": st.base + lo,
                        "end": st.base + hi,
                        "matched_bytes": int(newly.sum()),
                    },
                )
            )
            break
    return out


def _no_erased_run(st: State, er: np.ndarray) -> bool:
    """True if none of the erased differing bytes ``er`` (sorted offsets) can be in an erased
    run :func:`erased_not_written` reports (16 of them in one run of 0xFF, or any in the run
    that reaches the end): 16 in one run each have a 0xFF neighbour."""
    b, n = st.b, st.n
    left = (er > 0) & (b[np.maximum(er - 1, 0)] == 0xFF)
    right = (er < n - 1) & (b[np.minimum(er + 1, n - 1)] == 0xFF)
    if np.count_nonzero(left | right) >= 16:
        return False
    if b[n - 1] != 0xFF:
        return True
    k = 4096
    while True:  # where the run of 0xFF that reaches the end begins
        lo = max(n - k, 0)
        rest = np.flatnonzero(b[lo:] != 0xFF)
        if rest.size or lo == 0:
            start = lo + int(rest[-1]) + 1 if rest.size else 0
            return int(er[-1]) < start
        k *= 8


def erased_not_written(st: State) -> list[Diagnosis]:
    o, _, act = st.open_bytes()
    er_idx = o[act == 0xFF]
    if er_idx.size == 0 or _no_erased_run(st, er_idx):
        return []
    ff = st.b == 0xFF
    er = np.zeros(st.n, dtype=bool)
    er[er_idx] = True
    starts, ends = runs(ff)
    run_of = np.searchsorted(starts, er_idx, side="right") - 1
    counts = np.bincount(run_of, minlength=starts.size)
    keep = np.flatnonzero((counts >= 16) | ((ends == st.n) & (counts > 0)))
    out = []
    for i in keep[:MAX_LIST].tolist():
        s, e, c = int(starts[i]), int(ends[i]), int(counts[i])
        first_diff = s + int(np.argmax(er[s:e]))
        to_end = e == st.n
        i0, i1 = st.span(s, e)
        st.done[i0:i1] |= st.b[st.idx[i0:i1]] == 0xFF
        tail = (
            " to the end of the data (truncated transfer or copy)" if to_end else " (a block never written)"
        )
        out.append(
            Diagnosis(
                "erased_not_written",
                st.base + first_diff,
                e - first_diff,
                f"{num(c)} byte(s) read back erased (0xFF) where data was expected, from {st.where(first_diff)}"
                f"{tail}",
                {"bytes": c, "run_start": st.base + s, "run_end": st.base + e, "to_end": to_end},
            )
        )
    return out


def bit_flips(st: State) -> list[Diagnosis]:
    idx, ref, act = st.open_bytes()
    if idx.size == 0:
        return []
    x = ref ^ act
    pc = bit_counts(x)
    single = int(np.count_nonzero(pc == 1)) / idx.size
    starts, ends, _ = st.open_runs()
    mean_run = float(np.mean(ends - starts))
    if single < 0.75 or mean_run > 2.0:
        return []
    bits = int(pc.sum(dtype=np.int64))
    rate = bits / (st.n * 8)
    st.done[:] = True
    return [
        Diagnosis(
            "bit_flips",
            st.base + int(idx[0]),
            int(idx[-1] - idx[0] + 1),
            f"{num(int(idx.size))} scattered byte(s) with single-bit errors ({num(bits)} bits, rate {rate:.2e} "
            f"per bit) from {st.where(int(idx[0]))}: corruption on the link (e.g. SPI to the WiFi module)",
            {
                "bytes": int(idx.size),
                "bits": bits,
                "rate": rate,
                "single_bit_fraction": single,
                "bits_1_to_0": popcount_sum(x & ref),
                "bits_0_to_1": popcount_sum(x & act),
                "addresses": (idx[:MAX_LIST] + st.base).tolist(),
            },
        )
    ]
