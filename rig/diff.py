"""Flash diff and diagnosis: what differs between expected bytes and a readback, and why.

:func:`diff_bytes` gives coalesced mismatch ranges, a per-sector table and totals.
:func:`diagnose` names the likely causes (kinds in :data:`KINDS`) with their evidence.
:func:`analyze` does both and counts the differing bytes no diagnosis explains.
Everything is vectorised with numpy (2 MiB with 1% scattered errors takes milliseconds)
and has ``to_dict()`` for the JSON report and the pytest fixtures.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from rig.errors import ConfigError

if TYPE_CHECKING:
    from rig.board import FlashLayout
    from rig.image import Image

Buffer = Union[bytes, bytearray, memoryview, np.ndarray, "Image"]

KINDS = (
    "never_erased",
    "erased_not_written",
    "shifted",
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
#: Caps on per-item lists in results (the counts stay exact).
MAX_LIST = 64
MAX_RANGES_JSON = 1000

_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _num(n: int) -> str:
    """Group digits with spaces: 41203 -> '41 203'."""
    return f"{n:,}".replace(",", " ")


def _as_array(buf: Buffer) -> np.ndarray:
    data = (
        getattr(buf, "data", buf) if not isinstance(buf, (bytes, bytearray, memoryview, np.ndarray)) else buf
    )
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False).ravel()
    return np.frombuffer(data, dtype=np.uint8)


def _popcount_sum(x: np.ndarray) -> int:
    """Total number of set bits in a uint8 array."""
    if _HAS_BITCOUNT:
        return int(np.bitwise_count(x).sum(dtype=np.int64))
    return int(_POPCOUNT[x].sum(dtype=np.int64))


_HAS_BITCOUNT = hasattr(np, "bitwise_count")


def _runs(mask: np.ndarray, gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of runs of True, merging runs separated by <= gap False."""
    if mask.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty
    m = mask.view(np.int8)
    edges = np.flatnonzero(m[1:] != m[:-1]) + 1
    if m[0]:
        edges = np.concatenate(([0], edges))
    if m[-1]:
        edges = np.concatenate((edges, [mask.size]))
    starts, ends = edges[0::2], edges[1::2]
    if gap > 0 and starts.size > 1:
        keep = np.concatenate(([True], starts[1:] - ends[:-1] > gap))
        starts = starts[keep]
        ends = np.concatenate((ends[:-1][keep[1:]], [ends[-1]]))
    return starts, ends


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Range:
    """A run of differing bytes."""

    address: int
    length: int

    @property
    def end(self) -> int:
        """First address after the range."""
        return self.address + self.length

    def to_dict(self) -> dict[str, int]:
        """JSON-ready form."""
        return {"address": self.address, "length": self.length, "end": self.end}


@dataclass(frozen=True)
class SectorDiff:
    """Differences inside one sector (offsets relative to the sector base; None if no difference)."""

    index: int
    bank: int
    base: int
    size: int
    compared: int
    differing: int
    first_offset: int | None
    last_offset: int | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class DiffResult:
    """Byte comparison of expected vs actual from ``base`` over ``length`` bytes.

    ``ranges`` is built on first use from numpy arrays, so a diff with many thousand
    scattered ranges stays cheap until someone asks for them.
    """

    base: int
    length: int
    differing: int
    range_starts: np.ndarray = field(repr=False, compare=False)
    range_lengths: np.ndarray = field(repr=False, compare=False)
    sectors: tuple[SectorDiff, ...]
    bits_1_to_0: int
    bits_0_to_1: int
    erased: int
    missing: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def range_count(self) -> int:
        """Number of coalesced mismatch ranges."""
        return int(self.range_starts.size)

    @property
    def ranges(self) -> tuple[Range, ...]:
        """Coalesced runs of differing bytes, in address order."""
        if "ranges" not in self._cache:
            self._cache["ranges"] = self.first_ranges(self.range_count)
        return self._cache["ranges"]

    def first_ranges(self, count: int) -> tuple[Range, ...]:
        """The first ``count`` ranges."""
        return tuple(
            Range(self.base + s, n)
            for s, n in zip(
                self.range_starts[:count].tolist(), self.range_lengths[:count].tolist(), strict=True
            )
        )

    @property
    def ok(self) -> bool:
        """True if every byte matches and nothing is missing."""
        return self.differing == 0 and self.missing == 0

    def summary(self) -> str:
        """One human sentence."""
        span = (
            f"0x{self.base:08X}..0x{self.base + self.length - 1:08X}" if self.length else f"0x{self.base:08X}"
        )
        if self.ok:
            return f"{span}: all {_num(self.length)} bytes match"
        text = f"{span}: {_num(self.differing)} of {_num(self.length)} bytes differ in {_num(self.range_count)} range(s)"
        bad = [s.index for s in self.sectors if s.differing]
        if bad:
            text += f", sector(s) {_span_text(bad)}"
        if self.missing:
            text += f"; the readback is {_num(self.missing)} bytes short"
        return text

    def to_dict(self, max_ranges: int = MAX_RANGES_JSON) -> dict[str, Any]:
        """JSON-ready form; at most ``max_ranges`` ranges (``ranges_total`` has the count)."""
        return {
            "ok": self.ok,
            "base": self.base,
            "length": self.length,
            "differing": self.differing,
            "missing": self.missing,
            "bits_1_to_0": self.bits_1_to_0,
            "bits_0_to_1": self.bits_0_to_1,
            "erased": self.erased,
            "ranges_total": self.range_count,
            "ranges": [r.to_dict() for r in self.first_ranges(max_ranges)],
            "sectors": [s.to_dict() for s in self.sectors],
        }


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


@dataclass(frozen=True)
class Analysis:
    """:func:`diff_bytes` plus :func:`diagnose`; ``unexplained`` counts differing bytes no diagnosis covers."""

    diff: DiffResult
    diagnoses: tuple[Diagnosis, ...]
    unexplained: int

    @property
    def ok(self) -> bool:
        """True if the bytes match."""
        return self.diff.ok

    def kinds(self) -> list[str]:
        """Diagnosis kinds found, in order, without repeats."""
        return list(dict.fromkeys(d.kind for d in self.diagnoses))

    def summary(self) -> str:
        """The diff sentence, then one sentence per diagnosis."""
        lines = [self.diff.summary()]
        lines += [f"- {d.kind}: {d.summary()}" for d in self.diagnoses]
        if self.unexplained:
            lines.append(f"- {_num(self.unexplained)} differing byte(s) not explained by any diagnosis")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the diff keys plus ``diagnoses`` and ``unexplained``."""
        d = self.diff.to_dict()
        d["diagnoses"] = [x.to_dict() for x in self.diagnoses]
        d["unexplained"] = self.unexplained
        return d


def _span_text(indices: Sequence[int]) -> str:
    parts: list[str] = []
    for i in indices:
        if parts and isinstance(parts[-1], str) and parts[-1].split("-")[-1] == str(i - 1):
            head = parts[-1].split("-")[0]
            parts[-1] = f"{head}-{i}"
        else:
            parts.append(str(i))
    return ", ".join(parts)


# --------------------------------------------------------------------------- diff


def _prepare(expected: Buffer, actual: Buffer) -> tuple[np.ndarray, np.ndarray, int]:
    a, b = _as_array(expected), _as_array(actual)
    n = min(a.size, b.size)
    return a[:n], b[:n], a.size - n


def diff_bytes(
    expected: Buffer,
    actual: Buffer,
    base: int,
    layout: FlashLayout | None = None,
    regions: Iterable[str] | None = None,
) -> DiffResult:
    """Compare ``actual`` with ``expected``, both starting at address ``base``.

    Bytes beyond ``len(expected)`` in ``actual`` are ignored; if ``actual`` is shorter the
    shortfall is reported as ``missing``. With a ``layout`` the result has a per-sector table;
    ``regions`` (names in ``layout.regions``) restricts the comparison to those regions.
    """
    a, b, missing = _prepare(expected, actual)
    if regions is not None and layout is None:
        raise ConfigError(
            "diff_bytes(regions=...) needs a layout to know where the regions are",
            hint="pass layout=spec.layout()",
        )
    if regions is not None and layout is not None:
        keep = np.zeros(a.size, dtype=bool)
        for name in regions:
            if name not in layout.regions:
                raise ConfigError(
                    f"no region {name!r} in the {layout.mode} layout",
                    expected=" | ".join(layout.regions) or "a layout with regions",
                )
            reg = layout.regions[name]
            lo, hi = max(reg.base - base, 0), min(reg.end - base, a.size)
            if hi > lo:
                keep[lo:hi] = True
        neq = (a != b) & keep
    else:
        neq = a != b
    return _diff_from_mask(a, b, neq, base, layout, missing)


def _diff_from_mask(
    a: np.ndarray, b: np.ndarray, neq: np.ndarray, base: int, layout: FlashLayout | None, missing: int
) -> DiffResult:
    differing = int(np.count_nonzero(neq))
    sectors = _sector_table(neq, base, layout) if layout is not None else ()
    if differing == 0:
        empty = np.zeros(0, dtype=np.intp)
        return DiffResult(base, int(a.size), 0, empty, empty, sectors, 0, 0, 0, missing)
    starts, ends = _runs(neq)
    x = a ^ b
    bits_10 = _popcount_sum(x & a)
    bits_01 = _popcount_sum(x & b)
    erased = int(np.count_nonzero((b == 0xFF) & neq))
    return DiffResult(
        base, int(a.size), differing, starts, ends - starts, sectors, bits_10, bits_01, erased, missing
    )


def _first_last(mask: np.ndarray) -> tuple[int, int] | None:
    """First and last True index of a bool array, or None."""
    if mask.size == 0 or not mask.any():
        return None
    return int(np.argmax(mask)), int(mask.size - 1 - np.argmax(mask[::-1]))


def _sector_slices(base: int, n: int, layout: FlashLayout) -> list[tuple[Any, int, int]]:
    """(sector, lo, hi) with lo/hi offsets of the part of each sector inside [base, base+n)."""
    out = []
    for sec in layout.sectors:
        lo, hi = max(sec.base - base, 0), min(sec.end - base, n)
        if hi > lo:
            out.append((sec, lo, hi))
    return out


def _sector_table(neq: np.ndarray, base: int, layout: FlashLayout) -> tuple[SectorDiff, ...]:
    out = []
    for sec, lo, hi in _sector_slices(base, neq.size, layout):
        m = neq[lo:hi]
        fl = _first_last(m)
        cnt = int(np.count_nonzero(m)) if fl else 0
        first = fl[0] + lo + base - sec.base if fl else None
        last = fl[1] + lo + base - sec.base if fl else None
        out.append(SectorDiff(sec.index, sec.bank, sec.base, sec.size, hi - lo, cnt, first, last))
    return tuple(out)


# --------------------------------------------------------------------------- diagnosis


class _State:
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
        #: what each byte should be compared with once displacements are known (see _shifted)
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


def diagnose(
    expected: Buffer,
    actual: Buffer,
    base: int,
    layout: FlashLayout | None = None,
    previous: Buffer | None = None,
    tokens: Sequence[bytes] = DEFAULT_TOKENS,
    writable: Sequence[tuple[int, int]] | None = None,
) -> list[Diagnosis]:
    """Name the likely causes of the differences between ``expected`` and ``actual``.

    Args:
        expected: the bytes flash should hold from ``base``.
        actual: the readback from ``base``.
        layout: sector table (and OTA regions) for sector-level findings.
        previous: what flash held before the update; confirms ``never_erased``.
        tokens: protocol control tokens to look for in the data (``foreign_text``).
        writable: ``(address, size)`` ranges an OTA may change; default: the layout's
            OTA-writable regions. Differences elsewhere give ``region_touched``.
    """
    return list(_diagnose(expected, actual, base, layout, previous, tokens, writable)[0])


def analyze(
    expected: Buffer,
    actual: Buffer,
    base: int,
    layout: FlashLayout | None = None,
    previous: Buffer | None = None,
    tokens: Sequence[bytes] = DEFAULT_TOKENS,
    writable: Sequence[tuple[int, int]] | None = None,
) -> Analysis:
    """:func:`diff_bytes` and :func:`diagnose` in one pass."""
    diags, st, missing = _diagnose(expected, actual, base, layout, previous, tokens, writable)
    diff = _diff_from_mask(st.a, st.b, st.neq, base, layout, missing)
    unexplained = int(np.count_nonzero(st.open_mask()))
    return Analysis(diff, tuple(diags), unexplained)


def _diagnose(
    expected: Buffer,
    actual: Buffer,
    base: int,
    layout: FlashLayout | None,
    previous: Buffer | None,
    tokens: Sequence[bytes],
    writable: Sequence[tuple[int, int]] | None,
) -> tuple[list[Diagnosis], _State, int]:
    a, b, missing = _prepare(expected, actual)
    prev = None
    if previous is not None:
        p = _as_array(previous)
        prev = np.full(a.size, 0xFF, dtype=np.uint8)
        prev[: min(p.size, a.size)] = p[: a.size]
    st = _State(a, b, base, layout, prev)
    out: list[Diagnosis] = []
    if not st.neq.any():
        return out, st, missing
    out += _foreign_text(st, tokens)
    out += _shifted(st)
    out += _erased_not_written(st)
    out += _never_erased(st)
    out += _bit_flips(st)
    out += _sector_aligned(st)
    out += _region_touched(st, writable)
    return out, st, missing


def _foreign_text(st: _State, tokens: Sequence[bytes]) -> list[Diagnosis]:
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


def _find_shift(st: _State, s: int, e: int) -> tuple[int, int] | None:
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


def _shifted(st: _State) -> list[Diagnosis]:
    open_ = st.open_mask()
    starts, ends = _runs(open_, gap=64)
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
            what = f"{_num(k)} byte(s) missing (a receive chunk lost)"
        elif j0 == -k:
            what = (
                f"the data starts {_num(-k)} byte(s) late (written at 0x{st.base - k:08X} instead of "
                f"0x{st.base:08X}, or {_num(-k)} byte(s) inserted before it)"
            )
        else:
            what = f"{_num(-k)} byte(s) extra (a chunk duplicated or foreign bytes inserted)"
        out.append(
            Diagnosis(
                "shifted",
                st.base + j0,
                end - j0,
                f"from {st.where(j0)} on the data is displaced by {k:+d} bytes: {what}; "
                f"{_num(count)} differing bytes match the expected data {abs(k)} bytes "
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


def _erased_not_written(st: _State) -> list[Diagnosis]:
    ff = st.b == 0xFF
    er = st.open_mask() & ff
    if not er.any():
        return []
    starts, ends = _runs(ff)
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
                f"{_num(c)} byte(s) read back erased (0xFF) where data was expected, from {st.where(first_diff)}"
                f"{tail}",
                {"bytes": c, "run_start": st.base + s, "run_end": st.base + e, "to_end": to_end},
            )
        )
    return out


def _groups(st: _State) -> list[tuple[str, int, int, int | None]]:
    """(label, start, end, sector index) groups: sectors if a layout is known, else the whole span."""
    if st.layout is None:
        return [("the data", 0, st.n, None)]
    out = []
    for sec in st.layout.sectors:
        lo, hi = max(sec.base - st.base, 0), min(sec.end - st.base, st.n)
        if hi > lo:
            out.append((f"sector {sec.index}", lo, hi, sec.index))
    return out or [("the data", 0, st.n, None)]


def _never_erased(st: _State) -> list[Diagnosis]:
    open_ = st.open_mask()
    cleared_only = (st.b & ~st.ref) == 0
    out = []
    for label, lo, hi, sector in _groups(st):
        m = open_[lo:hi]
        cnt = int(np.count_nonzero(m))
        if cnt < 8:
            continue
        confirmed = None
        stale = 0
        if bool(np.all(cleared_only[lo:hi][m])):
            if st.prev is not None:
                anded = st.ref[lo:hi] & st.prev[lo:hi]
                confirmed = bool(np.all(st.b[lo:hi][m] == anded[m]))
        elif st.prev is not None:
            # Not erased and only partly (or not at all) programmed: every differing byte is
            # either the previous image's byte or expected AND previous.
            prev, act = st.prev[lo:hi][m], st.b[lo:hi][m]
            is_prev = act == prev
            if not bool(np.all(is_prev | (act == (st.ref[lo:hi][m] & prev)))):
                continue
            confirmed, stale = True, int(np.count_nonzero(is_prev))
        else:
            continue
        idx = np.flatnonzero(m)
        first, last = lo + int(idx[0]), lo + int(idx[-1])
        st.explained[lo:hi] |= m
        if stale:
            detail = (
                f"{label} was never erased: {_num(cnt)} bytes differ; {_num(stale)} still hold the "
                f"previous image and {_num(cnt - stale)} are expected AND previous "
                "(programmed over old content, then the write stopped)"
            )
        else:
            how = ""
            if confirmed is True:
                how = " (confirmed: every differing byte equals expected AND previous)"
            elif confirmed is False:
                how = " (not the AND of expected and the given previous image)"
            detail = (
                f"{label} was programmed without an erase: {_num(cnt)} bytes differ, only 1->0 changes{how}"
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


def _bit_flips(st: _State) -> list[Diagnosis]:
    m = st.open_mask()
    idx = np.flatnonzero(m)
    if idx.size == 0:
        return []
    x = st.ref[idx] ^ st.b[idx]
    pc = _POPCOUNT[x]
    single = float(np.mean(pc == 1))
    starts, ends = _runs(m)
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
            f"{_num(int(idx.size))} scattered byte(s) with single-bit errors ({_num(bits)} bits, rate {rate:.2e} "
            f"per bit) from {st.where(int(idx[0]))}: corruption on the link (e.g. SPI to the WiFi module)",
            {
                "bytes": int(idx.size),
                "bits": bits,
                "rate": rate,
                "single_bit_fraction": single,
                "bits_1_to_0": _popcount_sum(x & st.ref[idx]),
                "bits_0_to_1": _popcount_sum(x & st.b[idx]),
                "addresses": (idx[:MAX_LIST] + st.base).tolist(),
            },
        )
    ]


def _sector_aligned(st: _State) -> list[Diagnosis]:
    if st.layout is None:
        return []
    rows = []
    for sec, lo, hi in _sector_slices(st.base, st.n, st.layout):
        m = st.neq[lo:hi]
        fl = _first_last(m)
        cnt = int(np.count_nonzero(m)) if fl else 0
        rows.append(
            (
                sec,
                st.base + lo,
                st.base + hi,
                cnt,
                st.base + lo + fl[0] if fl else 0,
                st.base + lo + fl[1] if fl else 0,
            )
        )

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
                    f"the mismatches start and end on sector boundaries: sector(s) {_span_text(secs)} "
                    f"(0x{run_lo:08X}..0x{run_hi - 1:08X}), {_num(total)} bytes differ — a whole-sector "
                    f"step (erase count, sector number, copy loop) went wrong",
                    {"sectors": secs, "bytes": total, "first": rows[i][4], "last": rows[j][5]},
                )
            )
        i = j + 1
    return out


def _region_touched(st: _State, writable: Sequence[tuple[int, int]] | None) -> list[Diagnosis]:
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
        m = st.neq[seg_lo - st.base : seg_hi - st.base]
        fl = _first_last(m)
        if fl is None:
            continue
        name = next((r.name for r in regions if r.base <= seg_lo < r.end), None)
        found.setdefault(name, []).append((seg_lo + fl[0], seg_lo + fl[1], int(np.count_nonzero(m))))
    out = []
    for name, parts in found.items():
        first, last = parts[0][0], parts[-1][1]
        count = sum(p[2] for p in parts)
        label = name or "no region"
        sample: list[int] = []
        for p_lo, p_hi, _ in parts:
            if len(sample) < MAX_LIST:
                hits = np.flatnonzero(st.neq[p_lo - st.base : p_hi - st.base + 1])[: MAX_LIST - len(sample)]
                sample += (hits + p_lo).tolist()
        sel = np.array(sample, dtype=np.int64)
        out.append(
            Diagnosis(
                "region_touched",
                first,
                last - first + 1,
                f"{_num(count)} byte(s) changed outside the OTA-writable regions, in {label} "
                f"from 0x{first:08X}: the update wrote where it must not",
                {"region": name, "bytes": count, "addresses": sel.tolist()},
            )
        )
    return sorted(out, key=lambda d: d.address)
