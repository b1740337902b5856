"""Flash diff and diagnosis: what differs between expected bytes and a readback, and why.

:func:`diff_bytes` gives coalesced mismatch ranges, a per-sector table and totals.
:func:`diagnose` names the likely causes (kinds in :data:`KINDS`) with their evidence.
:func:`analyze` does both and counts the differing bytes no diagnosis explains.
Everything is vectorised with numpy (2 MiB with 1% scattered errors takes milliseconds)
and has ``to_dict()`` for the JSON report and the pytest fixtures. Two images whose bytes
match are compared with one memcmp and never import numpy (``rig diff`` runs in scripts).

This module is the API and the byte diff; the detectors are in :mod:`rig.diagnosis` (data
patterns), :mod:`rig.diagnosis_text`, :mod:`rig.diagnosis_cache` and
:mod:`rig.diagnosis_sectors` (sectors and regions); the array helpers in
:mod:`rig.diff_arrays` and :mod:`rig.diff_sparse` (the differing bytes as sorted offsets,
which is what makes a few thousand scattered differences in 2 MiB cost milliseconds).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rig.diff_base import (
    DEFAULT_TOKENS,
    KINDS,
    MAX_LIST,
    Buffer,
    Diagnosis,
    equal_prefix,
    num,
    sector_slices,
    span_text,
)
from rig.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from rig import diagnosis as dg
    from rig.board import FlashLayout

__all__ = [
    "DEFAULT_TOKENS",
    "KINDS",
    "MAX_LIST",
    "MAX_RANGES_JSON",
    "Analysis",
    "Buffer",
    "Diagnosis",
    "DiffResult",
    "Range",
    "SectorDiff",
    "analyze",
    "diagnose",
    "diff_bytes",
]

#: Cap on the ranges listed in a result's JSON (the count stays exact).
MAX_RANGES_JSON = 1000


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

    ``ranges`` is built on first use from numpy arrays (empty tuples when nothing differs),
    so a diff with many thousand scattered ranges stays cheap until someone asks for them.
    """

    base: int
    length: int
    differing: int
    range_starts: np.ndarray | tuple[()] = field(repr=False, compare=False)
    range_lengths: np.ndarray | tuple[()] = field(repr=False, compare=False)
    sectors: tuple[SectorDiff, ...]
    bits_1_to_0: int
    bits_0_to_1: int
    erased: int
    missing: int = 0
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def range_count(self) -> int:
        """Number of coalesced mismatch ranges."""
        return len(self.range_starts)

    @property
    def ranges(self) -> tuple[Range, ...]:
        """Coalesced runs of differing bytes, in address order."""
        if "ranges" not in self._cache:
            self._cache["ranges"] = self.first_ranges(self.range_count)
        return self._cache["ranges"]

    def first_ranges(self, count: int) -> tuple[Range, ...]:
        """The first ``count`` ranges."""
        if isinstance(self.range_starts, tuple) or isinstance(self.range_lengths, tuple):
            return ()  # nothing differs
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
            return f"{span}: all {num(self.length)} bytes match"
        text = f"{span}: {num(self.differing)} of {num(self.length)} bytes differ in {num(self.range_count)} range(s)"
        bad = [s.index for s in self.sectors if s.differing]
        if bad:
            text += f", sector(s) {span_text(bad)}"
        if self.missing:
            text += f"; the readback is {num(self.missing)} bytes short"
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
            lines.append(f"- {num(self.unexplained)} differing byte(s) not explained by any diagnosis")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the diff keys plus ``diagnoses`` and ``unexplained``."""
        d = self.diff.to_dict()
        d["diagnoses"] = [x.to_dict() for x in self.diagnoses]
        d["unexplained"] = self.unexplained
        return d


# --------------------------------------------------------------------------- diff


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
    import numpy as np

    from rig.diff_arrays import prepare

    a, b, missing = prepare(expected, actual)
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
    import numpy as np

    return _diff_from_idx(a, b, np.flatnonzero(neq), base, layout, missing)


def _diff_from_idx(
    a: np.ndarray,
    b: np.ndarray,
    idx: np.ndarray,
    base: int,
    layout: FlashLayout | None,
    missing: int,
    runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    values: tuple[np.ndarray, np.ndarray] | None = None,
) -> DiffResult:
    """The result for the sorted differing offsets ``idx`` (``runs``: their runs, ``values``:
    ``a[idx]`` and ``b[idx]``, if known)."""
    import numpy as np

    from rig.diff_arrays import popcount_sum
    from rig.diff_sparse import idx_runs

    differing = int(idx.size)
    sectors = _sector_table(idx, base, a.size, layout) if layout is not None else ()
    if differing == 0:
        empty = np.zeros(0, dtype=np.intp)
        return DiffResult(base, int(a.size), 0, empty, empty, sectors, 0, 0, 0, missing)
    starts, ends, _ = runs if runs is not None else idx_runs(idx)
    if differing > a.size // 8:  # most bytes differ: whole-array operations are cheaper
        x, av, bv = a ^ b, a, b
        ff = b == 0xFF
        erased = int(np.count_nonzero(ff)) - int(np.count_nonzero(ff & (a == 0xFF)))
    else:
        av, bv = values if values is not None else (a[idx], b[idx])
        x = av ^ bv
        erased = int(np.count_nonzero(bv == 0xFF))
    bits_10 = popcount_sum(x & av)
    bits_01 = popcount_sum(x & bv)
    return DiffResult(
        base, int(a.size), differing, starts, ends - starts, sectors, bits_10, bits_01, erased, missing
    )


def _sector_table(idx: np.ndarray, base: int, n: int, layout: FlashLayout) -> tuple[SectorDiff, ...]:
    from rig.diff_sparse import spans_in

    out = []
    slices = sector_slices(base, n, layout)
    for (sec, lo, hi), (i0, i1) in zip(
        slices, spans_in(idx, [(lo, hi) for _, lo, hi in slices]), strict=True
    ):
        cnt = i1 - i0
        first = int(idx[i0]) + base - sec.base if cnt else None
        last = int(idx[i1 - 1]) + base - sec.base if cnt else None
        out.append(SectorDiff(sec.index, sec.bank, sec.base, sec.size, hi - lo, cnt, first, last))
    return tuple(out)


# --------------------------------------------------------------------------- diagnosis


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
    received: bool = False,
) -> Analysis:
    """:func:`diff_bytes` and :func:`diagnose` in one pass.

    ``received``: the data went to flash straight from the link's receive buffer (the staging
    area an update writes), not through a copy in flash: one block written again and again
    is then a receive buffer read through stale D-cache lines (``stale_cache_lines``) or never
    refilled, rather than a copy whose source pointer does not advance."""
    clean = equal_prefix(expected, actual)
    if clean is not None:  # one memcmp, no numpy: what diff_bytes gives when nothing differs
        compared, missing = clean
        return Analysis(_clean_diff(base, compared, layout, missing), (), 0)
    diags, st, missing = _diagnose(expected, actual, base, layout, previous, tokens, writable, received)
    values = (st.at("a"), st.at("b")) if st.idx.size <= st.n // 8 else None
    diff = _diff_from_idx(st.a, st.b, st.idx, base, layout, missing, st.all_runs(), values)
    return Analysis(diff, tuple(diags), st.open_count())


def _clean_diff(base: int, compared: int, layout: FlashLayout | None, missing: int) -> DiffResult:
    """The :class:`DiffResult` of ``compared`` matching bytes (with ``missing`` more expected)."""
    sectors = tuple(
        SectorDiff(sec.index, sec.bank, sec.base, sec.size, hi - lo, 0, None, None)
        for sec, lo, hi in (sector_slices(base, compared, layout) if layout is not None else ())
    )
    return DiffResult(base, compared, 0, (), (), sectors, 0, 0, 0, missing)


def _diagnose(
    expected: Buffer,
    actual: Buffer,
    base: int,
    layout: FlashLayout | None,
    previous: Buffer | None,
    tokens: Sequence[bytes],
    writable: Sequence[tuple[int, int]] | None,
    received: bool = False,
) -> tuple[list[Diagnosis], dg.State, int]:
    import numpy as np

    from rig import diagnosis as dg
    from rig import diagnosis_sectors as ds
    from rig.diagnosis_cache import stale_buffer, stale_cache_lines
    from rig.diagnosis_text import foreign_text
    from rig.diff_arrays import as_array, prepare

    a, b, missing = prepare(expected, actual)
    prev = None
    if previous is not None:
        p = as_array(previous)
        prev = np.full(a.size, 0xFF, dtype=np.uint8)
        prev[: min(p.size, a.size)] = p[: a.size]
    raw = tuple(x if isinstance(x, bytes) else None for x in (expected, actual))
    st = dg.State(a, b, base, layout, prev, raw=(raw[0], raw[1]))
    out: list[Diagnosis] = []
    if st.idx.size == 0:
        return out, st, missing
    # the order matters: each detector leaves the bytes the earlier ones explained alone
    out += foreign_text(st, tokens)
    repeated = dg.repeated_block(st)
    out += [stale_buffer(d) for d in repeated] if received else repeated
    out += stale_cache_lines(st)
    out += dg.shifted(st)
    out += dg.erased_not_written(st)
    out += ds.never_erased(st)
    out += dg.bit_flips(st)
    out += ds.sector_aligned(st)
    out += ds.region_touched(st, writable)
    return out, st, missing
