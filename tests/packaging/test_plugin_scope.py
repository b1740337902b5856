"""The ota-rig plugin auto-loads in every pytest run of its environment (``pytest11`` entry
point), so it must not disturb a run that does not use it (issue 13): its options are
validated only when the run uses the rig, it keeps its hands off fixture names it does not
own, and it raises no warning that ``-W error`` would turn into an aborted run. A bad value
the user gives explicitly is still a usage error (exit code 4).

Each case is a separate ``python -m pytest`` run of a small project in a temporary directory
(its own ``pytest.ini``, so neither this repository's configuration nor its tests apply).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLAIN = """
def test_plain(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("ota_rig")  # loaded, and harmless
    assert sorted([3, 1, 2]) == [1, 2, 3]
"""

OWN_TRANSPORT_CONFTEST = """
import pytest

@pytest.fixture
def transport():
    return "https"
"""

OWN_TRANSPORT_TEST = """
def test_uses_its_own_transport(transport):
    assert transport == "https"
"""

USES_RIG = """
def test_options(rig_options):
    assert rig_options.board == "twin" and rig_options.transports == ("eth", "wifi")
"""


def _project(root: Path, files: dict[str, str]) -> Path:
    (root / "pytest.ini").write_text("[pytest]\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def _pytest(proj: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH"))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=proj,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("args", [[], ["-W", "error"]], ids=["default", "warnings-are-errors"])
def test_unrelated_run_passes_with_the_plugin_loaded(tmp_path: Path, args: list[str]) -> None:
    proj = _project(tmp_path, {"test_plain.py": PLAIN})
    proc = _pytest(proj, *args)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "1 passed" in out and "warning" not in out.lower(), out


def test_unrelated_transport_fixture_is_left_alone(tmp_path: Path) -> None:
    """``transport`` is the rig's parameter only where no fixture of that name exists."""
    proj = _project(tmp_path, {"conftest.py": OWN_TRANSPORT_CONFTEST, "test_own.py": OWN_TRANSPORT_TEST})
    proc = _pytest(proj, "-v")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "test_own.py::test_uses_its_own_transport PASSED" in out and "[eth]" not in out, out


def test_rig_fixture_validates_on_first_use(tmp_path: Path) -> None:
    proj = _project(tmp_path, {"test_rig.py": USES_RIG})
    assert _pytest(proj).returncode == 0
    bad = _pytest(proj, "--transport=carrier-pigeon")
    assert bad.returncode == 4 and "allowed values are eth, wifi, both" in bad.stderr, bad.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["--board", "bogus"], ["--board 'bogus'", "allowed values are twin, nucleo"]),
        (["--transport", "x"], ["--transport 'x'", "allowed values are eth, wifi, both"]),
        (["--board-file=/nonexistent/board.yaml"], ["--board-file /nonexistent/board.yaml", "no such file"]),
        (["--bootloader=/nonexistent/bl.bin"], ["--bootloader /nonexistent/bl.bin", "no such file"]),
        (["--ota-bind", "nonsense"], ["--ota-bind 'nonsense'", "HOST:PORT"]),
    ],
    ids=["board", "transport", "board-file", "bootloader", "ota-bind"],
)
def test_explicit_bad_option_is_a_usage_error_even_in_an_unrelated_run(
    tmp_path: Path, args: list[str], words: list[str]
) -> None:
    """The user asked for the rig by naming its option: a bad value stops the run at start-up
    (exit 4, pytest's usage error) even though no collected test uses the rig."""
    proj = _project(tmp_path, {"test_plain.py": PLAIN})
    proc = _pytest(proj, *args)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert all(w in proc.stderr for w in words), proc.stderr
    assert "passed" not in proc.stdout
