"""``rig summary JUNIT``: a CI job summary (Markdown) from the HIL suite's JUnit XML.

One table: a row per scenario and case (image size or variant), a column per transport, each
cell the outcome; then the first failure's test, phase and diagnosis (the ``[phase] message``
the rig's failures start with, rig.errors.PhaseFailure). GitHub shows it on the run's page
when the workflow appends it to ``$GITHUB_STEP_SUMMARY`` (.github/workflows/hil-nucleo.yml).
Reads only the XML: no pytest, no board.
"""

from __future__ import annotations

import argparse
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.errors import PHASES, ConfigError

TRANSPORTS = ("eth", "wifi")
#: a cell's outcome, worst first
OUTCOMES = ("error", "failed", "passed", "skipped")
MARK = {"error": "💥 error", "failed": "❌ failed", "passed": "✅ passed", "skipped": "⏭ skipped"}
_PHASE = re.compile(r"\[(" + "|".join(re.escape(p) for p in PHASES) + r")\]\s*(.*)", re.S)


@dataclass(frozen=True)
class Case:
    """One test case of the JUnit file."""

    name: str  #: ``test_update_jumps_into_new_app[eth-16k]``
    classname: str
    outcome: str  #: one of OUTCOMES
    message: str = ""  #: the failure's message and text (empty when it passed)

    @property
    def scenario(self) -> str:
        base = self.name.split("[", 1)[0]
        return base[5:] if base.startswith("test_") else base

    @property
    def params(self) -> list[str]:
        inside = self.name.partition("[")[2].rstrip("]")
        return [p for p in inside.split("-") if p] if inside else []

    @property
    def transport(self) -> str:
        found = [p for p in self.params if p in TRANSPORTS]
        return found[0] if found else "—"

    @property
    def case(self) -> str:
        """The parameters other than the transport (an image size such as ``16k``, a variant)."""
        return "-".join(p for p in self.params if p not in TRANSPORTS) or "—"

    @property
    def phase(self) -> str | None:
        found = _PHASE.search(self.message)
        return found.group(1) if found else None

    @property
    def diagnosis(self) -> str:
        """The failure's first line, after its phase."""
        found = _PHASE.search(self.message)
        text = found.group(2) if found else self.message
        lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
        return lines[0] if lines else "(no message)"


def read_junit(path: Path) -> list[Case]:
    """Every test case of a JUnit XML file (pytest's, xunit1 or xunit2)."""
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file", hint="the run stopped before the tests (set-up, board lock, no probe)"
        ) from None
    except ET.ParseError as exc:
        raise ConfigError(f"{path}: not JUnit XML ({exc})") from None
    cases = []
    for tc in root.iter("testcase"):
        outcome, message = "passed", ""
        for child in tc:
            if child.tag in ("error", "failure", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                message = "\n".join(filter(None, (child.get("message"), child.text)))
                if outcome != "skipped":
                    break
        cases.append(Case(tc.get("name", "?"), tc.get("classname", ""), outcome, message))
    return cases


def _worst(outcomes: Sequence[str]) -> str:
    return next(o for o in OUTCOMES if o in outcomes)


def render(cases: Sequence[Case], *, title: str = "HIL suite") -> str:
    """The job summary in Markdown."""
    counts = {o: sum(c.outcome == o for c in cases) for o in OUTCOMES}
    head = ", ".join(f"{n} {o}" for o, n in counts.items() if n) or "no tests"
    lines = [f"## {title}: {head}", ""]
    if not cases:
        return "\n".join([*lines, "The JUnit report holds no test case: nothing ran.", ""])
    transports = [t for t in (*TRANSPORTS, "—") if any(c.transport == t for c in cases)]
    cells: dict[tuple[str, str], dict[str, list[str]]] = {}
    for c in cases:
        cells.setdefault((c.scenario, c.case), {}).setdefault(c.transport, []).append(c.outcome)
    lines += ["| scenario | size / case | " + " | ".join(transports) + " |"]
    lines += ["|---|---|" + "---|" * len(transports)]
    for (scenario, case), by_t in cells.items():
        row = [MARK[_worst(by_t[t])] if t in by_t else "" for t in transports]
        lines.append(f"| {scenario} | {case} | " + " | ".join(row) + " |")
    lines.append("")
    failed = [c for c in cases if c.outcome in ("failed", "error")]
    if failed:
        first = failed[0]
        lines += [
            (
                f"**First failure:** `{first.name}` ({first.classname}), phase "
                f"**{first.phase or 'not a scenario phase'}**: {first.diagnosis}"
            ),
            "",
            (
                "The HTML report, console logs, pcaps and flash backups are in the run's artifacts "
                "(docs/lab.md: reading a failed run)."
            ),
            "",
        ]
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "summary",
        help="a CI job summary (Markdown) from the HIL suite's JUnit XML",
        description="Print pass/fail per scenario x size x transport and the first failure's "
        "phase and diagnosis, as Markdown (append it to $GITHUB_STEP_SUMMARY).",
    )
    p.add_argument("junit", type=Path, help="the JUnit XML, e.g. reports/hil-junit.xml")
    p.add_argument("--title", default="HIL suite", help="the summary's heading")
    p.add_argument("--output", type=Path, help="append to this file instead of printing")
    p.set_defaults(func=_cmd_summary)


def _cmd_summary(args: argparse.Namespace) -> int:
    """Exit 0 when every test passed or was skipped, 1 when one failed, 2 without a report
    (the summary then says so)."""
    try:
        cases = read_junit(args.junit)
        text, code = (
            render(cases, title=args.title),
            int(any(c.outcome in ("failed", "error") for c in cases)),
        )
    except ConfigError as exc:
        text, code = f"## {args.title}: no report\n\n{exc}\n", 2
    if args.output is not None:
        with args.output.open("a", encoding="utf-8") as out:
            out.write(text + "\n")
    else:
        print(text)
    return code
