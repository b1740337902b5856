"""The summary across tests: transport x image size x scenario -> result, as one HTML table."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rig.report._html import CSS, ROOT, attr, esc, num, size_text

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


def summary_html(rows: Iterable[SummaryRow], *, with_style: bool = True) -> str:
    """A pivot table: one row per scenario (and variant), one column per transport x image size.

    Each cell shows the result (the worst if several tests share it), the failing phase and the
    test count; the cell's tooltip lists the test ids. Outcome totals come first.
    """
    rows = list(rows)
    if not rows:
        return f'<div class="{ROOT}"><p class="muted">No OTA scenarios ran.</p></div>'
    cols = sorted({(r.transport, r.image_size) for r in rows}, key=lambda c: (c[0], _size_key(c[1])))
    lines = list(dict.fromkeys((r.scenario, r.variant) for r in rows))
    cells: dict[tuple[Any, ...], list[SummaryRow]] = {}
    for r in rows:
        cells.setdefault((r.scenario, r.variant, r.transport, r.image_size), []).append(r)
    transports = list(dict.fromkeys(c[0] for c in cols))
    head1 = '<th rowspan="2">scenario</th>' + "".join(
        f'<th colspan="{sum(1 for c in cols if c[0] == t)}">{esc(t)}</th>' for t in transports
    )
    head2 = "".join(f"<th>{esc(_size_label(c[1]))}</th>" for c in cols)
    body = []
    for scen, variant in lines:
        label = esc(scen) + (f' <span class="muted">({esc(variant)})</span>' if variant else "")
        tds = []
        for t, size in cols:
            group = cells.get((scen, variant, t, size), [])
            if not group:
                tds.append('<td class="muted">·</td>')
                continue
            worst = _worst(r.outcome for r in group)
            phases = sorted({r.phase for r in group if r.phase and r.outcome in ("failed", "error")})
            text = worst + (f" [{', '.join(phases)}]" if phases else "")
            if len(group) > 1:
                text += f" ×{len(group)}"
            tip = "\n".join(f"{r.test_id}: {r.outcome}" + (f" [{r.phase}]" if r.phase else "") for r in group)
            tds.append(
                f'<td style="{_STYLE.get(worst, "")}" title="{attr(tip)}" data-outcome="{attr(worst)}">'
                f"{esc(text)}</td>"
            )
        body.append(f"<tr><td>{label}</td>{''.join(tds)}</tr>")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.outcome] = counts.get(r.outcome, 0) + 1
    totals = ", ".join(f"{num(counts[o])} {o}" for o in OUTCOMES if o in counts)
    style = f"<style>{CSS}</style>" if with_style else ""
    return (
        f'{style}<div class="{ROOT}" data-section="summary"><h3>OTA scenarios: transport × image size × '
        f"scenario</h3><p>{esc(num(len(rows)))} test(s): {esc(totals)}</p>"
        f'<table class="summary"><thead><tr>{head1}</tr><tr>{head2}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
