"""The summary across tests: transport x image size x scenario -> result, as one HTML table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from rig.report._html import num, render, size_text

#: Outcomes from worst to best; a cell with several tests shows the worst.
OUTCOMES = ("error", "failed", "xpassed", "passed", "xfailed", "skipped")
_STYLE = {
    "error": "background:#cf222e;color:#fff",
    "failed": "background:#fdecea;color:#a40e26",
    "xpassed": "background:#fff8c5",
    "passed": "background:#e9f7ef;color:#1a7f37",
    "xfailed": "background:#f6f8fa",
    "skipped": "background:#f6f8fa;color:#6e7781",
}


@dataclass(frozen=True)
class SummaryRow:
    """One test's place in the summary and its result."""

    test_id: str
    transport: str
    image_size: int | str | None
    scenario: str
    outcome: str  #: passed / failed / error / skipped / xfailed / xpassed
    phase: str | None = None
    variant: str | None = None
    duration: float | None = None

    @classmethod
    def from_scenario(
        cls,
        test_id: str,
        outcome: str,
        scenario: Mapping[str, Any] | None,
        phase: str | None = None,
        duration: float | None = None,
    ) -> SummaryRow:
        """Build a row from an Evidence.scenario / callspec-params mapping (missing keys become '—')."""
        sc = dict(scenario or {})
        name = sc.get("scenario") or test_id.rsplit("::", 1)[-1].split("[", 1)[0]
        size = sc.get("image_size")
        return cls(
            test_id,
            str(sc.get("transport") or "—"),
            size if size not in ("", None) else None,
            str(name),
            outcome,
            phase,
            None if sc.get("variant") is None else str(sc.get("variant")),
            duration,
        )


def _size_label(size: int | str | None) -> str:
    if size is None:
        return "—"
    if isinstance(size, int):
        return size_text(size)
    return str(size)


def _size_key(size: int | str | None) -> tuple[int, float, str]:
    if isinstance(size, int):
        return (0, float(size), "")
    return (1, 0.0, str(size))


def _worst(outcomes: Iterable[str]) -> str:
    outs = list(outcomes)
    for o in OUTCOMES:
        if o in outs:
            return o
    return outs[0] if outs else "skipped"


def summary_html(rows: Iterable[SummaryRow], *, with_style: bool = True) -> Markup:
    """A pivot table: one row per scenario (and variant), one column per transport x image size.

    Each cell shows the result (the worst if several tests share it), the failing phase and the
    test count; the cell's tooltip lists the test ids. Outcome totals come first.
    """
    rows = list(rows)
    if not rows:
        return render("summary.html", rows=None, with_style=False)
    cols = sorted({(r.transport, r.image_size) for r in rows}, key=lambda c: (c[0], _size_key(c[1])))
    cells: dict[tuple[Any, ...], list[SummaryRow]] = {}
    for r in rows:
        cells.setdefault((r.scenario, r.variant, r.transport, r.image_size), []).append(r)
    transports = list(dict.fromkeys(c[0] for c in cols))
    body = []
    for scen, variant in dict.fromkeys((r.scenario, r.variant) for r in rows):
        body.append((scen, variant, [_cell(cells.get((scen, variant, t, size), [])) for t, size in cols]))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    return render(
        "summary.html",
        with_style=with_style,
        rows=body,
        transports=[(t, sum(1 for c in cols if c[0] == t)) for t in transports],
        sizes=[_size_label(c[1]) for c in cols],
        count=num(len(rows)),
        totals=", ".join(f"{num(counts[o])} {o}" for o in OUTCOMES if o in counts),
    )


def _cell(group: list[SummaryRow]) -> dict[str, str] | None:
    """What one cell shows (None: that combination did not run)."""
    if not group:
        return None
    worst = _worst(r.outcome for r in group)
    phases = sorted({r.phase for r in group if r.phase and r.outcome in ("failed", "error")})
    text = worst + (f" [{', '.join(phases)}]" if phases else "")
    if len(group) > 1:
        text += f" ×{len(group)}"
    tip = "\n".join(f"{r.test_id}: {r.outcome}" + (f" [{r.phase}]" if r.phase else "") for r in group)
    return {"outcome": worst, "style": _STYLE.get(worst, ""), "tip": tip, "text": text}
