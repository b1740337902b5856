"""``rig summary``: the CI job summary from a JUnit XML file that pytest really wrote.

A small suite shaped like tests_hil (transport-size ids, a PhaseFailure in phase ``copy``,
an error in a fixture, a skip) runs in a subprocess with ``--junitxml``; the summary must
say pass/fail per scenario x size x transport and name the first failure's phase and
diagnosis, and its exit code must follow the outcome.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from rig.cli import main
from rig.job_summary import read_junit, render

SUITE = textwrap.dedent(
    """
    import pytest
    from rig.errors import PhaseFailure

    @pytest.fixture
    def board():
        raise RuntimeError("probe server at 127.0.0.1:1 refused the connection")

    @pytest.mark.parametrize("size", ["16k", "300k"])
    @pytest.mark.parametrize("transport", ["eth", "wifi"])
    def test_update_jumps_into_new_app(transport, size):
        if (transport, size) == ("eth", "300k"):
            raise PhaseFailure("copy", "app slot differs from the image: sectors 5-6 never erased")
        if transport == "wifi" and size == "300k":
            pytest.skip("the bootloader does not update over wifi")

    @pytest.mark.parametrize("transport", ["eth"])
    def test_boot_decision(transport, board):
        pass
    """
)


@pytest.fixture(scope="module")
def junit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("suite")
    (where / "test_fake_hil.py").write_text(SUITE)
    xml = where / "junit.xml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:ota_rig",
            "-q",
            str(where),
            f"--junitxml={xml}",
        ],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    return xml


def test_the_table_and_the_first_failure(junit: Path) -> None:
    cases = read_junit(junit)
    assert len(cases) == 5
    text = render(cases, title="HIL on nucleo")
    assert text.startswith("## HIL on nucleo: 1 error, 1 failed, 2 passed, 1 skipped")
    assert "| scenario | size / case | eth | wifi |" in text
    assert "| update_jumps_into_new_app | 16k | ✅ passed | ✅ passed |" in text
    assert "| update_jumps_into_new_app | 300k | ❌ failed | ⏭ skipped |" in text
    assert "| boot_decision | — | 💥 error |  |" in text
    first = next(line for line in text.splitlines() if line.startswith("**First failure:**"))
    assert "`test_update_jumps_into_new_app[eth-300k]`" in first
    assert "phase **copy**: app slot differs from the image: sectors 5-6 never erased" in first


def test_the_command_appends_to_the_step_summary(junit: Path, tmp_path: Path) -> None:
    out = tmp_path / "step-summary.md"
    out.write_text("earlier step\n")
    assert main(["summary", str(junit), "--output", str(out), "--title", "HIL"]) == 1
    text = out.read_text()
    assert text.startswith("earlier step\n## HIL: 1 error, 1 failed")


def test_all_passed_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    xml = tmp_path / "ok.xml"
    xml.write_text(
        '<testsuites><testsuite name="pytest" tests="1">'
        '<testcase classname="tests_hil.test_update" name="test_update_jumps_into_new_app[wifi-64k]" time="9"/>'
        "</testsuite></testsuites>"
    )
    assert main(["summary", str(xml)]) == 0
    out = capsys.readouterr().out
    assert "1 passed" in out and "| update_jumps_into_new_app | 64k |  | ✅ passed |" not in out
    assert "| update_jumps_into_new_app | 64k | ✅ passed |" in out  # only the transport that ran
    assert "First failure" not in out


def test_no_report_says_the_run_stopped_before_the_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(tmp_path / "missing.xml")]) == 2
    out = capsys.readouterr().out
    assert "no report" in out and "stopped before the tests" in out
    bad = tmp_path / "bad.xml"
    bad.write_text("<testsuites")
    assert main(["summary", str(bad)]) == 2
    assert "not JUnit XML" in capsys.readouterr().out
