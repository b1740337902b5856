"""The plugin's report hooks (rig.fixtures.report_hooks) in a real pytest-html run, no board.

A subprocess runs a small test file under the installed ota-rig plugin. Its tests hand over
evidence the ways the HIL suite does: a session fixture that fails in setup with a
PhaseFailure (as ``flashed_bench`` does), a test that fails and whose fixture then fails in
teardown, a passing test with stashed evidence, and a plain test with none. The page's
pytest-html data says which row got which extras; the browser test checks the rendering.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

TEST_FILE = """
import sys
sys.path.insert(0, {samples!r})
import pytest
from report_samples import never_erased_evidence, passing_evidence
from rig.errors import PhaseFailure
from rig.evidence import Evidence
from rig.fixtures.report_hooks import EVIDENCE_KEY


@pytest.fixture(scope="session")
def board_flashed():
    ev = Evidence(test_id="session: flash bootloader", message="readback <differs> [/] {{{{x}}}} %s")
    raise PhaseFailure("flash", "readback differs", evidence=ev)


@pytest.mark.parametrize("link", ["eth", "wifi"])
def test_needs_the_board(board_flashed, link):
    pass


@pytest.fixture
def stashed(request, tmp_path):
    ev = never_erased_evidence(tmp_path)
    request.node.stash[EVIDENCE_KEY] = ev
    yield ev
    raise RuntimeError("teardown broke")


def test_fails_then_teardown_fails(stashed):
    raise PhaseFailure(stashed.phase, stashed.message, evidence=stashed)


def test_passes(request):
    request.node.stash[EVIDENCE_KEY] = passing_evidence()


def test_plain():
    pass
"""


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    tmp = tmp_path_factory.mktemp("hooks")
    (tmp / "pytest.ini").write_text("[pytest]\n")
    (tmp / "test_hooks.py").write_text(TEST_FILE.format(samples=str(Path(__file__).parent)))
    report = tmp / "out" / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--html={report}",
            "--self-contained-html",
            "test_hooks.py",
        ],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert res.returncode == 1, res.stdout[-3000:] + res.stderr[-3000:]
    assert "1 failed, 2 passed, 3 errors" in res.stdout, res.stdout[-3000:]
    text = report.read_text()
    m = re.search(r'data-jsonblob="([^"]*)"', text)
    assert m
    return report, text, json.loads(html.unescape(m.group(1)))["tests"]


def _fragments(row: dict) -> list[str]:
    return [e["content"] for e in row["extras"] if e["format_type"] == "html"]


def test_a_failed_setup_carries_the_fixtures_evidence(page: tuple[Path, str, dict]) -> None:
    report, _, tests = page
    for transport in ("eth", "wifi"):
        (row,) = tests[f"test_hooks.py::test_needs_the_board[{transport}]"]
        assert 'col-result">Error' in row["resultsTableRow"][0]
        (fragment,) = _fragments(row)
        assert 'data-section="verdict"' in fragment and '<span class="phase">flash</span>' in fragment
        assert "session: flash bootloader" in fragment
        # the message is device/test text: inert in the page
        assert "readback &lt;differs&gt; [/] {{x}} %s" in fragment
        data = next(e["content"] for e in row["extras"] if e["format_type"] == "json")
        assert json.loads(base64.b64decode(data.split(",", 1)[1]))["phase"] == "flash"
    # no --report-dir resolved (no rig fixture used): artifacts go next to the report
    adirs = sorted(p.name for p in (report.parent / "artifacts").iterdir())
    assert "test_hooks.py__test_needs_the_board_eth" in adirs
    assert (
        report.parent / "artifacts" / "test_hooks.py__test_needs_the_board_eth" / "evidence.json"
    ).is_file()


def test_evidence_is_shown_once_per_test(page: tuple[Path, str, dict]) -> None:
    _, _, tests = page
    rows = tests["test_hooks.py::test_fails_then_teardown_fails"]
    assert [r["resultsTableRow"][0] for r in rows] == [
        '<td class="col-result">Failed</td>',
        '<td class="col-result">Error</td>',
    ]
    for row in rows:  # pytest-html shows all of a test's extras on each of its rows
        (fragment,) = _fragments(row)
        assert "sector 6 was programmed without an erase" in fragment


def test_passing_and_plain_tests(page: tuple[Path, str, dict]) -> None:
    _, _, tests = page
    (row,) = tests["test_hooks.py::test_passes"]
    (fragment,) = _fragments(row)
    assert 'class="verdict pass"' in fragment
    (row,) = tests["test_hooks.py::test_plain"]
    assert row["extras"] == []


def test_summary_has_the_worst_outcome_and_phase_per_test(page: tuple[Path, str, dict]) -> None:
    _, text, _ = page
    summary = text[
        text.index('data-section="summary"') : text.index("</table>", text.index('data-section="summary"'))
    ]
    assert "4 test(s): 3 error, 1 passed" in summary  # the plain test has no evidence, no row
    assert ">error [flash] ×2<" in summary  # both parametrized tests, one cell
    assert "error [copy]" in summary  # failed in call [copy], then the teardown errored
