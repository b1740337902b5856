"""``twin_home`` finds the twin package this interpreter would run, not a folder that is
only named like it: pytest puts ``tests/`` on sys.path, and ``tests/twin/`` (no
``__init__.py``) is a namespace package to the path finder, which is asked before the finder
of an editable install. Running one file of ``tests/rig`` on its own failed with "the twin is
not installed"."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_folder_named_twin_on_sys_path_is_not_the_package(tmp_path: Path) -> None:
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "test_something.py").write_text("")
    code = (
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "assert importlib.util.find_spec('twin').origin is None or 'site-packages' in "
        "importlib.util.find_spec('twin').origin  # the shadow is there (editable install)\n"
        "from rig.targets.twin import twin_home\n"
        "print(twin_home())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    home = Path(proc.stdout.strip())
    assert (home / "twin" / "__init__.py").is_file()
    assert home != tmp_path
