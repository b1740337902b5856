"""One test's report fragment (:func:`render_evidence`) and its pytest-html extras (:func:`extras_for`)."""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.report import artifacts, flashmap, hexdump, jumpview, mismatches
from rig.report._html import CSS, ROOT, esc, link, num, rel_href, section, size_text

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


def _scenario_chips(ev: Evidence) -> str:
    chips = []
    for k, v in ev.scenario.items():
        if k == "image_size" and isinstance(v, int):
            v = f"{size_text(v)} ({num(v)} B)"
        chips.append(f"<span>{esc(k)}: <b>{esc(v)}</b></span>")
    if ev.layout is not None:
        chips.append(f"<span>layout: <b>{esc(ev.layout.mode.replace('_', ' '))}</b></span>")
    return f'<div class="chips">{"".join(chips)}</div>' if chips else ""


def verdict(ev: Evidence) -> str:
    """The top box: phase and the diagnosis in words (every diagnosis, jump failures, the fault)."""
    bad = failed(ev)
    phase = ev.phase or ("unknown phase" if bad else "passed")
    items: list[str] = []
    for r in ev.regions:
        for d in r.analysis.diagnoses:
            items.append(f'<li><span class="kind">{esc(d.kind)}</span> {esc(r.name)}: {esc(d.detail)}</li>')
        if not r.analysis.ok and not r.analysis.diagnoses:
            items.append(f"<li>{esc(r.name)}: {esc(r.analysis.diff.summary())}</li>")
        if r.analysis.unexplained and r.analysis.diagnoses:
            items.append(
                f"<li>{esc(r.name)}: {esc(num(r.analysis.unexplained))} differing byte(s) not explained "
                "by any diagnosis</li>"
            )
    if ev.jump is not None and not ev.jump.ok:
        for row in ev.jump.failures:
            items.append(
                f'<li><span class="kind">jump.{esc(row.name)}</span> expected {esc(row.expected)}, '
                f"got {esc(row.actual)} — {esc(row.reason)}</li>"
            )
    if ev.fault is not None:
        from rig.report.faults import fault_summary

        regs = {k.lower(): int(v) for k, v in ev.fault.registers.items()}
        items.append(
            f'<li><span class="kind">fault</span> core {esc(ev.fault.state)} at PC 0x{ev.fault.pc:08X}; '
            f"fault bits: {esc(fault_summary(regs.get('cfsr', 0), regs.get('hfsr', 0)))}</li>"
        )
    if not bad:
        compared = sum(len(r.expected) for r in ev.regions)
        words = []
        if ev.regions:
            words.append(f"all {num(compared)} compared bytes match")
        if ev.jump is not None:
            words.append("the jump contract holds")
        items.append(f"<li>{esc(', '.join(words) or 'no failure recorded')}</li>")
    head = f'<span class="phase">{esc(phase)}</span>'
    if ev.message:
        head += esc(ev.message)
    elif bad:
        head += "failed"
    else:
        head += "OTA update verified"
    notes = "".join(f'<li class="muted">{esc(n)}</li>' for n in ev.notes)
    title = f'<div class="muted">{esc(ev.test_id)}</div>' if ev.test_id else ""
    return (
        f'<div class="verdict {"fail" if bad else "pass"}" data-section="verdict">{title}'
        f'<div class="head">{head}</div><ul class="diag">{"".join(items)}{notes}</ul>'
        f"{_scenario_chips(ev)}</div>"
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
) -> str:
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
        HTML: inline CSS and SVG, no script, no network; every device-originated string escaped.
    """
    ev = evidence
    adir = Path(artifact_dir)
    adir.mkdir(parents=True, exist_ok=True)
    base = Path(link_base) if link_base is not None else default_link_base(adir)

    def lnk(path: Path, label: str) -> str:
        return link(path, label, base)

    arrays = mismatches.arrays_for(ev.regions)
    rows = [mismatches.LineRows.of(a) for a in arrays]
    locator = mismatches.Locator(ev.layout)
    files: dict[str, Path] = {}
    if ev.regions:
        csv_path, json_path = mismatches.write_mismatch_files(rows, locator, adir)
        files["mismatches.csv"], files["mismatches.json"] = csv_path, json_path
    files.update(artifacts.write_evidence_files(ev, adir))

    out = [f"<style>{CSS}</style>", verdict(ev)]
    if ev.regions:
        table = mismatches.mismatch_table(
            rows, locator, {k: lnk(files[k], k) for k in ("mismatches.csv", "mismatches.json")}, inline_rows
        )
        out.append(section("Mismatches", table + mismatches.sector_table(arrays, ev.layout), "mismatches"))
    if ev.layout is not None:
        out.append(section("Flash map", flashmap.render_flash_map(ev.layout, arrays), "flashmap"))
    if ev.regions:
        out.append(
            section(
                "Hex dump around the first mismatches",
                hexdump.windows(arrays, ev.layout, max_windows),
                "hexdump",
            )
        )
    out.append(section("Jump state", jumpview.jump_table(ev), "jump"))
    if jumpview.jump_failed(ev):
        out.append(section("Where the core ended up", jumpview.fault_view(ev), "fault"))
    all_files: dict[str, Path] = dict(files)
    all_files.update({k: Path(v) for k, v in ev.artifacts.items()})
    out.append(section("Artifacts", artifacts.artifact_links(all_files, lnk), "artifacts"))
    out.append(section("Timings per phase", artifacts.timings_view(ev.timings), "timings"))
    out.append(section("Serial log", artifacts.uart_view(ev.uart), "serial"))
    out.append(section("OTA transcript", artifacts.transcript_view(ev.transcript), "transcript"))
    if ev.capture:
        out.append(section("Packet capture", artifacts.capture_view(ev.capture, lnk), "capture"))
    return f'<div class="{ROOT}" data-test="{esc(ev.test_id)}">{"".join(out)}</div>'


def error_fragment(evidence: Evidence, trace: str) -> str:
    """What the report shows when rendering the evidence failed: the error and the traceback, escaped."""
    return (
        f'<div class="{ROOT}"><style>{CSS}</style><div class="verdict fail"><div class="head">'
        f'<span class="phase">{esc(evidence.phase or "report")}</span>report rendering failed for '
        f"{esc(evidence.test_id)}: this is a bug in rig.report, the test result above is unaffected"
        f"</div><pre>{esc(trace)}</pre></div></div>"
    )


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
        return [ph.html(error_fragment(evidence, traceback.format_exc()))]
    out: list[dict[str, Any]] = [ph.html(fragment)]
    summary = json.loads(
        json.dumps(
            {k: v for k, v in evidence.to_dict().items() if k != "uart"}, default=artifacts.json_default
        )
    )
    out.append(ph.json(summary, name="evidence"))
    for name in ("mismatches.csv", "mismatches.json", "serial.log"):
        path = adir / name
        if path.exists():
            out.append(ph.url(rel_href(path, base), name=esc(name)))
    for label, path in evidence.artifacts.items():
        out.append(ph.url(rel_href(Path(path), base), name=esc(label)))
    return out
