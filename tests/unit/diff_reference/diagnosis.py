"""Diagnosis of a flash mismatch, the shared state, and the detectors of data patterns.

:class:`Diagnosis` is one likely cause (a kind of :data:`KINDS`, where, why, the evidence).
:class:`State` holds the arrays every detector reads and the mask of bytes already explained;
the detectors run in the order :func:`rig.diff.diagnose` calls them, each explaining bytes
the later ones then leave alone. This module has those that look at the data itself: protocol
text in the image, one block written over and over, a displaced stretch, erased runs,
single-bit errors. The sector and region
level ones (never erased, whole sectors, bytes outside the OTA regions) are in
:mod:`rig.diagnosis_sectors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .diff_arrays import POPCOUNT, num, popcount_sum, runs

if TYPE_CHECKING:
    from rig.board import FlashLayout

KINDS = (
    "never_erased",
    "erased_not_written",
    "shifted",
    "repeated_block",
    "stale_cache_lines",
    "foreign_text",
    "bit_flips",
    "sector_aligned",
    "region_touched",
)
#: Protocol control tokens that must never appear in flash data (see docs/protocol.md).
DEFAULT_TOKENS: tuple[bytes, ...] = (
    b"FILE_SIZE:",
    b"FILE_CRC:",
    b"OTA_UPDATE",
    b"OTA_DONE",
    b"OTA_READY",
    b"REQ_FW",
    b"NACK:",
)
#: Cap on per-item lists in the evidence (the counts stay exact).
MAX_LIST = 64


@dataclass(frozen=True)
class Diagnosis:
    """A likely cause: ``kind`` (one of :data:`KINDS`), where, a human ``detail`` and the ``evidence``."""

    kind: str
    address: int
    length: int
    detail: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One human sentence."""
        return self.detail

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "address": self.address,
            "length": self.length,
            "detail": self.detail,
            "evidence": self.evidence,
        }


class State:
    """Arrays shared by the detectors."""

    def __init__(
        self, a: np.ndarray, b: np.ndarray, base: int, layout: FlashLayout | None, previous: np.ndarray | None
    ) -> None:
        self.a, self.b, self.base, self.layout = a, b, base, layout
        self.n = a.size
        self.neq = a != b
        self.explained = np.zeros(self.n, dtype=bool)
        self.prev = previous
        self._a_bytes: bytes | None = None
        #: what each byte should be compared with once displacements are known (see shifted)
        self.ref = a

    @property
    def a_bytes(self) -> bytes:
        if self._a_bytes is None:
            self._a_bytes = self.a.tobytes()
        return self._a_bytes

    def open_mask(self) -> np.ndarray:
        return self.neq & ~self.explained

    def where(self, offset: int) -> str:
        addr = self.base + offset
        if self.layout is not None and self.layout.base <= addr < self.layout.end:
            return f"0x{addr:08X} (sector {self.layout.locate(addr).sector})"
        return f"0x{addr:08X}"


def foreign_text(st: State, tokens: Sequence[bytes]) -> list[Diagnosis]:
    toks = [t for t in tokens if t]
    if not toks:
        return []
    actual = st.b.tobytes()
    expected = st.a_bytes
    hits: dict[bytes, list[int]] = {}
    for tok in dict.fromkeys(toks):
        p = actual.find(tok)
        while p != -1:
            if expected[p : p + len(tok)] != tok:
                hits.setdefault(tok, []).append(p)
                st.explained[p : p + len(tok)] = True
            p = actual.find(tok, p + 1)
    out = []
    for tok, offs in hits.items():
        text = tok.decode("ascii", "replace")
        out.append(
            Diagnosis(
                "foreign_text",
                st.base + offs[0],
                len(tok),
                f"protocol token {text!r} found {len(offs)} time(s) inside the flash data, first at "
                f"{st.where(offs[0])}: a control message was stored as image data",
                {"token": text, "count": len(offs), "addresses": [st.base + o for o in offs[:MAX_LIST]]},
            )
        )
    return out


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
    open_ = st.open_mask()
    starts, ends = runs(open_, gap=64)
    if starts.size == 0:
        return []
    # a displaced stretch differs almost everywhere; scattered errors give sparse clusters
    dense = np.add.reduceat(open_.view(np.int8), starts, dtype=np.int64) >= 0.25 * (ends - starts)
    pick = np.flatnonzero(((ends - starts) >= 64) & dense)[:32]
    cand = list(zip(starts[pick].tolist(), ends[pick].tolist(), strict=True))
    out: list[Diagnosis] = []
    for s, e in cand:
        if st.explained[s:e].mean() > 0.5:
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
            smf = sm[: nb * _BLOCK].reshape(nb, _BLOCK).mean(axis=1)
            bad = np.flatnonzero(smf < 0.5)
            if bad.size:
                end = j0 + int(bad[0]) * _BLOCK
        sm_hits = np.flatnonzero(sm[: end - j0])
        if sm_hits.size == 0:
            continue
        end = j0 + int(sm_hits[-1]) + 1
        newly = st.neq[j0:end] & sm[: end - j0] & ~st.explained[j0:end]
        count = int(np.count_nonzero(newly))
        if count < _WINDOW:
            continue
        st.explained[j0:end] |= newly
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
    open_ = st.open_mask()
    starts, ends = runs(open_, gap=64)
    out: list[Diagnosis] = []
    same: dict[int, np.ndarray] = {}  # period -> b[j] == b[j + period], computed when needed
    for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
        if e - s < 2 * _PERIODS[0] or st.explained[s:e].mean() > 0.5:
            continue
        for period in _PERIODS:
            head = st.b[s : min(e, s + 4 * period)]  # a cheap look before the whole comparison
            if head.size < 2 * period or (head[period:] == head[:-period]).mean() < 0.98:
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
            newly = st.neq[lo:hi] & (st.b[lo:hi] == tiled) & ~st.explained[lo:hi]
            st.explained[lo:hi] |= newly
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


def erased_not_written(st: State) -> list[Diagnosis]:
    ff = st.b == 0xFF
    er = st.open_mask() & ff
    if not er.any():
        return []
    starts, ends = runs(ff)
    run_of = np.searchsorted(starts, np.flatnonzero(er), side="right") - 1
    counts = np.bincount(run_of, minlength=starts.size)
    keep = np.flatnonzero((counts >= 16) | ((ends == st.n) & (counts > 0)))
    out = []
    for i in keep[:MAX_LIST].tolist():
        s, e, c = int(starts[i]), int(ends[i]), int(counts[i])
        first_diff = s + int(np.argmax(er[s:e]))
        to_end = e == st.n
        st.explained[s:e] |= er[s:e]
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
    m = st.open_mask()
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return []
    x = st.ref[idx] ^ st.b[idx]
    pc = POPCOUNT[x]
    single = float(np.mean(pc == 1))
    starts, ends = runs(m)
    mean_run = float(np.mean(ends - starts))
    if single < 0.75 or mean_run > 2.0:
        return []
    bits = int(pc.sum())
    rate = bits / (st.n * 8)
    st.explained |= m
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
                "bits_1_to_0": popcount_sum(x & st.ref[idx]),
                "bits_0_to_1": popcount_sum(x & st.b[idx]),
                "addresses": (idx[:MAX_LIST] + st.base).tolist(),
            },
        )
    ]
