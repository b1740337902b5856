"""HTML mismatch reports: what differs in flash, where, why, and where the core ended up.

Public API:

- :func:`render_evidence` (evidence, artifact_dir) -> HTML fragment (inline CSS + SVG, no script);
- :func:`extras_for` (evidence, artifact_dir) -> pytest-html extras for one test;
- :func:`summary_html` (rows) -> the transport x image size x scenario table; :class:`SummaryRow`;

The markup is jinja2 templates (``rig/report/templates/``, autoescaped; see :mod:`rig.report._html`).
The pytest side (evidence into pytest-html, the summary rows) is the plugin's
:mod:`rig.fixtures.report_hooks`. See docs/report.md for what each section shows.
"""

from __future__ import annotations

from rig.report.render import extras_for, failed, render_evidence
from rig.report.summary import SummaryRow, summary_html

__all__ = ["SummaryRow", "extras_for", "failed", "render_evidence", "summary_html"]
