"""Functions the ota-rig pytest plugin delegates its report hooks to (the plugin stays thin).

In ``fixtures/plugin.py``::

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(item, call):
        outcome = yield
        report = outcome.get_result()
        ev = pytest_hooks.find_evidence(item, call)
        pytest_hooks.on_makereport(item, report, ev, report_dir=opts.report_dir)

    def pytest_html_results_summary(prefix, summary, postfix, session):
        pytest_hooks.results_summary(prefix, session.config)

A test (or fixture) hands its evidence over either by raising an exception with an
``evidence`` attribute (:class:`rig.errors.PhaseFailure`) or with
``item.stash[EVIDENCE_KEY] = evidence``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from rig.evidence import Evidence
from rig.report.render import extras_for
from rig.report.summary import OUTCOMES, SummaryRow, summary_html

#: Where a test or fixture may leave its Evidence for the report.
EVIDENCE_KEY = pytest.StashKey[Evidence]()
#: Summary rows by node id (config.stash).
ROWS_KEY = pytest.StashKey[dict[str, SummaryRow]]()


def find_evidence(item: pytest.Item, call: pytest.CallInfo[Any] | None = None) -> Evidence | None:
    """The test's Evidence: from the raised exception's ``evidence`` attribute, else from the item stash."""
    if call is not None and call.excinfo is not None:
        ev = getattr(call.excinfo.value, "evidence", None)
        if isinstance(ev, Evidence):
            return ev
    return item.stash.get(EVIDENCE_KEY, None)


def artifact_dir_for(report_dir: str | Path, nodeid: str) -> Path:
    """``<report_dir>/artifacts/<node id made file-name safe>``."""
    slug = re.sub(r"[^A-Za-z0-9_.=-]+", "_", nodeid.replace("::", "__")).strip("_")[:150] or "test"
    return Path(report_dir) / "artifacts" / slug


def html_dir(config: pytest.Config, default: str | Path) -> Path:
    """Directory of the pytest-html report (``--html``), or ``default`` when no report is written."""
    path = getattr(config.option, "htmlpath", None)
    return Path(path).resolve().parent if path else Path(default)


def outcome_of(report: pytest.TestReport) -> str:
    """passed / failed / error / skipped / xfailed / xpassed, as pytest-html counts them."""
    xfail = hasattr(report, "wasxfail")
    if report.skipped:
        return "xfailed" if xfail else "skipped"
    if report.failed:
        return "failed" if report.when == "call" else "error"
    return "xpassed" if xfail else "passed"


def _scenario(item: pytest.Item, evidence: Evidence | None) -> dict[str, Any]:
    params = dict(getattr(getattr(item, "callspec", None), "params", {}) or {})
    sc = {k: params[k] for k in ("transport", "image_size", "scenario", "variant") if k in params}
    if evidence is not None:
        sc.update({k: v for k, v in evidence.scenario.items() if v is not None})
    return sc


def on_makereport(
    item: pytest.Item,
    report: pytest.TestReport,
    evidence: Evidence | None,
    *,
    report_dir: str | Path,
    link_base: str | Path | None = None,
) -> SummaryRow | None:
    """Attach the extras and record the summary row for one phase report (setup/call/teardown).

    Extras are attached to the ``call`` report, or to a failed ``setup`` report, when evidence
    exists. Returns the row recorded for the test (None for reports that change nothing).
    """
    if evidence is not None and (report.when == "call" or (report.when == "setup" and report.failed)):
        if not evidence.test_id:
            evidence.test_id = report.nodeid
        adir = artifact_dir_for(report_dir, report.nodeid)
        base = link_base if link_base is not None else html_dir(item.config, report_dir)
        report.extras = list(getattr(report, "extras", [])) + extras_for(evidence, adir, link_base=base)
    outcome = outcome_of(report)
    if report.when != "call" and outcome == "passed":
        return None
    rows = item.config.stash.setdefault(ROWS_KEY, {})
    old = rows.get(report.nodeid)
    if old is not None and OUTCOMES.index(old.outcome) <= OUTCOMES.index(outcome):
        return old
    phase = evidence.phase if evidence is not None else None
    row = SummaryRow.from_scenario(report.nodeid, outcome, _scenario(item, evidence), phase, report.duration)
    rows[report.nodeid] = row
    return row


def summary_rows(config: pytest.Config) -> list[SummaryRow]:
    """Rows recorded so far, in test order."""
    return list(config.stash.get(ROWS_KEY, {}).values())


def results_summary(prefix: list[str], config: pytest.Config) -> None:
    """Body of ``pytest_html_results_summary``: prepend the scenario summary table."""
    prefix.append(summary_html(summary_rows(config)))
