"""The order `pytest tests_hil` runs its scenarios in: quick targeted ones first, so that with
``-x`` a bug stops the run at the scenario that names it, not at the long ten-updates run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _collected(tmp_path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    args = ["tests_hil", "--collect-only", "-q", "-p", "no:cacheprovider", "-o", "addopts="]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--report-dir", str(tmp_path / "reports")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return [line for line in proc.stdout.splitlines() if line.startswith("tests_hil/")]


def test_quick_targeted_scenarios_run_first(tmp_path: Path) -> None:
    ids = _collected(tmp_path)
    pos = {i: n for n, i in enumerate(ids)}

    def first(part: str) -> int:
        return min(n for i, n in pos.items() if part in i)

    def last(part: str) -> int:
        return max(n for i, n in pos.items() if part in i)

    # the ten consecutive updates (slow) come after everything else
    assert first("test_ten_consecutive_updates") > max(n for i, n in pos.items() if "consecutive" not in i), (
        ids
    )
    # every slow case (512 KiB images) after every quick one
    slow = [pos[i] for i in ids if "512k" in i or "2-sectors" in i or "consecutive" in i]
    assert min(slow) > max(n for i, n in pos.items() if pos[i] not in slow), ids
    # the bootloader on its own, then the boot decision, then the first update (16 KiB)
    assert last("test_bootloader.py") < first("test_boot_decision.py") < first("16k]"), ids
    # targeted updates before the link policies and the power cuts
    assert last("16k]") < first("test_edge_sizes.py") < first("test_link_policies.py"), ids
    assert last("test_link_policies.py") < first("test_power_cut.py"), ids
