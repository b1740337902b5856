"""One test's report fragment (:func:`render_evidence`) and its pytest-html extras (:func:`extras_for`)."""

from __future__ import annotations

import html
import json
import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from rig.report import artifacts, flashmap, hexdump, jumpview, mismatches
from rig.report._html import num, rel_href, render, size_text

if TYPE_CHECKING:
    from rig.evidence import Evidence

log = logging.getLogger(__name__)


def failed(ev: Evidence) -> bool:
    """True if the evidence shows a failure: a phase was set, bytes differ or the jump contract broke."""
    return (
        ev.phase is not None
        or any(not r.analysis.ok for r in ev.regions)
        or (ev.jump is not None and not ev.jump.ok)
        or ev.fault is not None
    )


def _scenario_chips(ev: Evidence) -> list[tuple[str, Any]]:
    chips: list[tuple[str, Any]] = []
    for k, v in ev.scenario.items():
        if k == "image_size" and isinstance(v, int):
            v = f"{size_text(v)} ({num(v)} B)"
        chips.append((k, v))
    if ev.layout is not None:
        chips.append(("layout", ev.layout.mode.replace("_", " ")))
    return chips


def _findings(ev: Evidence) -> list[tuple[str | None, str]]:
    """(kind, text) of every finding: diagnoses, unexplained bytes, jump failures, the fault."""
    items: list[tuple[str | None, str]] = []
    for r in ev.regions:
        for d in r.analysis.diagnoses:
            items.append((d.kind, f"{r.name}: {d.detail}"))
        if not r.analysis.ok and not r.analysis.diagnoses:
            items.append((None, f"{r.name}: {r.analysis.diff.summary()}"))
        if r.analysis.unexplained and r.analysis.diagnoses:
            items.append(
                (
                    None,
                    f"{r.name}: {num(r.analysis.unexplained)} differing byte(s) not explained by any diagnosis",
                )
            )
    if ev.jump is not None and not ev.jump.ok:
        for row in ev.jump.failures:
            items.append((f"jump.{row.name}", f"expected {row.expected}, got {row.actual} — {row.reason}"))
    if ev.fault is not None:
        from rig.report.faults import fault_summary

        regs = {k.lower(): int(v) for k, v in ev.fault.registers.items()}
        bits = fault_summary(regs.get("cfsr", 0), regs.get("hfsr", 0))
        items.append(("fault", f"core {ev.fault.state} at PC 0x{ev.fault.pc:08X}; fault bits: {bits}"))
    return items


def verdict(ev: Evidence) -> Markup:
    """The top box: phase and the diagnosis in words (every diagnosis, jump failures, the fault)."""
    bad = failed(ev)
    items = _findings(ev)
    if not bad:
        words = []
        if ev.regions:
            words.append(f"all {num(sum(len(r.expected) for r in ev.regions))} compared bytes match")
        if ev.jump is not None:
            words.append("the jump contract holds")
        items.append((None, ", ".join(words) or "no failure recorded"))
    headline = ev.message or ("failed" if bad else "OTA update verified")
    return render(
        "verdict.html",
        bad=bad,
        test_id=ev.test_id,
        phase=ev.phase or ("unknown phase" if bad else "passed"),
        headline=headline,
        items=items,
        notes=ev.notes,
        chips=_scenario_chips(ev),
    )


def default_link_base(artifact_dir: Path) -> Path:
    """Where the HTML report is assumed to be when the caller does not say.

    ``<dir>/artifacts/<test>`` -> ``<dir>`` (the layout of the plugin,
    :mod:`rig.fixtures.report_hooks`: ``reports/artifacts/<test>`` next to ``reports/*.html``); otherwise the parent of
    ``artifact_dir``. Pass ``link_base`` explicitly when the report lives elsewhere.
    """
    artifact_dir = Path(artifact_dir)
    if artifact_dir.parent.name == "artifacts":
        return artifact_dir.parent.parent
    return artifact_dir.parent


def render_evidence(
    evidence: Evidence,
    artifact_dir: str | Path,
    *,
    link_base: str | Path | None = None,
    inline_rows: int = mismatches.INLINE_ROWS,
    max_windows: int = hexdump.MAX_WINDOWS,
) -> Markup:
    """Render one test's evidence as a self-contained HTML fragment and write its files.

    Args:
        evidence: what the test observed.
        artifact_dir: where the full mismatch list (CSV, JSON), readbacks, serial log, transcript and
            ``evidence.json`` are written (created if needed).
        link_base: directory of the HTML file the fragment goes into; links are relative to it
            (default: :func:`default_link_base`).
        inline_rows: mismatch rows shown inline.
        max_windows: hexdump windows shown.

    Returns:
        HTML: inline CSS and SVG, no script, no network; every device-originated string escaped
        (the templates escape whatever they are given).
    """
    ev = evidence
    adir = Path(artifact_dir)
    adir.mkdir(parents=True, exist_ok=True)
    base = Path(link_base) if link_base is not None else default_link_base(adir)

    arrays = mismatches.arrays_for(ev.regions)
    rows = [mismatches.LineRows.of(a) for a in arrays]
    locator = mismatches.Locator(ev.layout)
    files: dict[str, Path] = {}
    if ev.regions:
        csv_path, json_path = mismatches.write_mismatch_files(rows, locator, adir)
        files["mismatches.csv"], files["mismatches.json"] = csv_path, json_path
    files.update(artifacts.write_evidence_files(ev, adir))

    sections: list[tuple[str, str, Markup]] = []
    if ev.regions:
        links = [(k, rel_href(files[k], base)) for k in ("mismatches.csv", "mismatches.json")]
        table = mismatches.mismatch_table(rows, locator, links, inline_rows)
        sections.append(("Mismatches", "mismatches", table + mismatches.sector_table(arrays, ev.layout)))
    if ev.layout is not None:
        sections.append(("Flash map", "flashmap", flashmap.render_flash_map(ev.layout, arrays)))
    if ev.regions:
        dump = hexdump.windows(arrays, ev.layout, max_windows)
        sections.append(("Hex dump around the first mismatches", "hexdump", dump))
    sections.append(("Jump state", "jump", jumpview.jump_table(ev)))
    if jumpview.jump_failed(ev):
        sections.append(("Where the core ended up", "fault", jumpview.fault_view(ev)))
    all_files: dict[str, Path] = dict(files)
    all_files.update({k: Path(v) for k, v in ev.artifacts.items()})
    sections += [
        ("Artifacts", "artifacts", artifacts.artifact_links(all_files, base)),
        ("Timings per phase", "timings", artifacts.timings_view(ev.timings)),
        ("Serial log", "serial", artifacts.uart_view(ev.uart)),
        ("OTA transcript", "transcript", artifacts.transcript_view(ev.transcript)),
    ]
    if ev.capture:
        sections.append(("Packet capture", "capture", artifacts.capture_view(ev.capture, base)))
    return render("evidence.html", test_id=ev.test_id, verdict=verdict(ev), sections=sections)


def error_fragment(evidence: Evidence, trace: str) -> Markup:
    """What the report shows when rendering the evidence failed: the error and the traceback."""
    return render("error.html", phase=evidence.phase or "report", test_id=evidence.test_id, trace=trace)


def extras_for(
    evidence: Evidence, artifact_dir: str | Path, *, link_base: str | Path | None = None
) -> list[dict[str, Any]]:
    """pytest-html extras for one test: the HTML fragment, the evidence as JSON, links to the full lists.

    ``link_base`` is the directory of the HTML report (default: :func:`default_link_base`); the
    URL extras are relative to it so the report and its artifacts can be moved together.
    """
    from pytest_html import extras as ph

    adir = Path(artifact_dir)
    base = Path(link_base) if link_base is not None else default_link_base(adir)
    try:
        fragment = render_evidence(evidence, adir, link_base=base)
    except Exception:  # a report bug must not hide the test's own result
        log.exception("rendering the evidence of %s failed", evidence.test_id)
        return [ph.html(str(error_fragment(evidence, traceback.format_exc())))]
    out: list[dict[str, Any]] = [ph.html(str(fragment))]
    summary = json.loads(
        json.dumps(
            {k: v for k, v in evidence.to_dict().items() if k != "uart"}, default=artifacts.json_default
        )
    )
    out.append(ph.json(summary, name="evidence"))
    links = [(name, adir / name) for name in ("mismatches.csv", "mismatches.json", "serial.log")]
    links = [(name, path) for name, path in links if path.exists()]
    links += [(label, Path(path)) for label, path in evidence.artifacts.items()]
    for label, path in links:
        # pytest-html puts a link's name into its page as HTML: this is the one value escaped here
        out.append(ph.url(rel_href(path, base), name=html.escape(label)))
    return out
