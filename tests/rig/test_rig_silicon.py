"""The silicon revision in every report (issue 15: 14): DBGMCU_IDCODE read through the probe
(the twin reports a revision Z F767: REV_ID 0x1001), a chip of each test's report, and a
warning when an Ethernet test runs on revision A (errata ES0334: erroneous Ethernet data in
RMII configuration, fixed in revision Z)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rig.evidence import Evidence
from rig.probe import Probe
from rig.silicon import Silicon, record
from rig.targets.twin import start_twin

REPO = Path(__file__).resolve().parents[2]


def test_the_twin_is_a_revision_z_f767(tmp_path: Path) -> None:
    twin = start_twin(log_path=tmp_path / "twin.log")
    try:
        with Probe(twin.probe_uid) as p:
            chip = Silicon.read(p)
    finally:
        twin.stop()
    assert (chip.dev_id, chip.rev_id, chip.revision) == (0x451, 0x1001, "Z")
    assert chip.text() == "STM32F76x/F77x rev Z (DEV_ID 0x451, REV_ID 0x1001)"
    assert chip.ethernet_warning() is None


def test_revision_a_with_ethernet_is_warned_about() -> None:
    rev_a = Silicon(0x451, 0x1000)
    ev = Evidence()
    record(ev, rev_a, "eth")
    assert ev.scenario["silicon"] == "STM32F76x/F77x rev A (DEV_ID 0x451, REV_ID 0x1000)"
    assert len(ev.notes) == 1 and "ES0334" in ev.notes[0] and "RMII" in ev.notes[0]
    wifi = Evidence()
    record(wifi, rev_a, "wifi")  # the WiFi path does not use the MAC: recorded, no warning
    assert wifi.scenario["silicon"].endswith("REV_ID 0x1000)") and wifi.notes == []
    unknown = Silicon(0x451, 0x2001)
    assert unknown.revision is None and "unknown revision" in unknown.text()


TEST_FILE = """
def test_nothing_but_the_board(bench, evidence, transport):
    assert bench.silicon is not None
"""


def test_every_tests_report_names_the_silicon(tmp_path: Path) -> None:
    (tmp_path / "test_silicon.py").write_text(TEST_FILE)
    html = tmp_path / "report.html"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(tmp_path / "test_silicon.py")),
            *("--rootdir", str(REPO), "--report-dir", str(tmp_path / "r"), "--transport", "both"),
            *("--html", str(html), "--self-contained-html"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    page = html.read_text()
    assert page.count("STM32F76x/F77x rev Z (DEV_ID 0x451, REV_ID 0x1001)") >= 2  # eth and wifi
    assert "ES0334" not in page
