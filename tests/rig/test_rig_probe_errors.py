"""Probe errors carry what the rig was doing (issue 15: 11): a pyOCD error of a readback, a
register read or a flash write (core held in reset, locked up, a bus fault) becomes a
ProbeAccessError naming the access, its address and the core's state, and inside a HIL step
a PhaseFailure of that step's phase, so the report never says "unknown phase". Real pyOCD
errors from a running twin; nothing is faked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.board import load_board
from rig.console import Console
from rig.errors import PhaseFailure
from rig.evidence import Evidence
from rig.hil import Bench
from rig.image import Image
from rig.probe import Probe
from rig.probe_errors import ProbeAccessError, describe_dhcsr
from rig.targets.twin import TwinTarget

REPO = Path(__file__).resolve().parents[2]
UNMAPPED = 0x60000000  # FMC bank 1: nothing behind it on the NUCLEO (a bus fault)


def test_dhcsr_states_in_words() -> None:
    assert "held in reset" in describe_dhcsr(0x02030003)
    assert "locked up" in describe_dhcsr(0x00090001)
    assert "sleeping" in describe_dhcsr(0x00050001)
    assert "halted" in describe_dhcsr(0x00030003)
    assert "running" in describe_dhcsr(0x00010001)


def test_each_failed_access_names_itself_its_address_and_the_core(twin: TwinTarget) -> None:
    with Probe(twin.probe_uid) as p:
        with pytest.raises(ProbeAccessError) as err:
            p.read(UNMAPPED, 16)
        e = err.value
        assert (e.operation, e.address, e.length) == ("reading", UNMAPPED, 16)
        assert str(e).startswith("reading 0x60000000+16 failed: TransferFaultError") and "halted" in e.state

        p.resume()  # an empty flash: the core locks up on its first vector fetch
        with pytest.raises(ProbeAccessError) as err:
            p.registers(["pc", "msp"])
        assert "reading core register(s) pc, msp failed" in str(err.value)
        assert "locked up" in err.value.state and "HardFault" in (err.value.hint or "")

        p.session.probe.assert_reset(True)  # NRST held (a button, a supervisor, the probe)
        try:
            with pytest.raises(ProbeAccessError) as err:
                p.registers(["pc"])
            assert "held in reset" in err.value.state and "NRST" in (err.value.hint or "")
            with pytest.raises(ProbeAccessError) as err:
                p.flash(0x08040000, b"\x01" * 1024)
            assert str(err.value).startswith("programming 1024 bytes at 0x08040000 failed")
            assert "held in reset" in str(err.value)
        finally:
            p.session.probe.assert_reset(False)


def test_a_probe_error_in_a_step_fails_that_steps_phase(twin: TwinTarget, tmp_path: Path) -> None:
    spec = load_board()
    app = Image(bytes(range(256)) * 4, spec.region("app_slot").base)
    with Probe(twin.probe_uid) as p, Console(twin.serial_port) as con:
        bench = Bench(spec, twin, p, con, tmp_path)
        ev = Evidence(test_id="t")
        with pytest.raises(PhaseFailure) as err:
            bench.check_region(ev, "app_slot", app.data, base=UNMAPPED, phase="write")
        assert err.value.phase == "write" and ev.phase == "write" and err.value.evidence is ev
        assert "the probe failed: reading 0x60000000+1024 failed" in str(err.value)

        p.session.probe.assert_reset(True)
        try:
            # the app never halts at its entry, and then its registers cannot be read: "jump"
            with pytest.raises(PhaseFailure) as err:
                bench.await_app_entry(app, Evidence(), timeout=0.2)
            assert err.value.phase == "jump" and "reading core register(s)" in str(err.value)
            assert "held in reset" in str(err.value)
            # a step without evidence of its own uses the test's (the evidence fixture's)
            bench.evidence = Evidence(test_id="fixture's")
            with pytest.raises(PhaseFailure) as err:
                bench.install_app_direct(app)
            assert err.value.phase == "flash" and err.value.evidence is bench.evidence
            assert bench.evidence.phase == "flash"
        finally:
            p.session.probe.assert_reset(False)


TEST_FILE = """
def test_readback_of_nothing(bench, evidence):
    bench.check_region(evidence, "app_slot", bytes(64), base=0x60000000, phase="copy")
"""


def test_the_report_names_the_phase_of_a_probe_error(tmp_path: Path) -> None:
    (tmp_path / "test_probe_error.py").write_text(TEST_FILE)
    html = tmp_path / "report.html"
    proc = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                str(tmp_path / "test_probe_error.py"),
            ),
            *("--rootdir", str(REPO), "--report-dir", str(tmp_path / "r"), "--twin-timing", "fast"),
            *("--html", str(html), "--self-contained-html", "--tb=short"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "[copy] the probe failed: reading 0x60000000+64 failed" in proc.stdout
    page = html.read_text()
    assert "unknown phase" not in page and "reading 0x60000000+64 failed" in page
