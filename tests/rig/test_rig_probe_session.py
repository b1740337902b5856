"""The board file's pyOCD settings (``targets.<kind>.pyocd_target``, ``swd_frequency``) reach
the pyOCD session the rig opens: from the board file to :class:`rig.probe.Probe` through the
plugin's ``probe`` fixture, and from the Probe into pyOCD's session options on a running twin
(stock pyOCD, remote probe)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from rig.board import default_board_path, load_board
from rig.errors import ProbeError
from rig.fixtures.plugin import probe_for
from rig.probe import Probe
from rig.targets.base import Target
from rig.targets.twin import TwinTarget, start_twin


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwinTarget]:
    t = start_twin(log_path=tmp_path_factory.mktemp("twin") / "twin.log")
    try:
        yield t
    finally:
        t.stop()


def _board(tmp_path: Path, **nucleo: object):
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["targets"]["nucleo"].update(nucleo)
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_board(path)


def test_the_probe_fixture_takes_target_and_swd_clock_from_the_board_file(tmp_path: Path) -> None:
    spec = _board(tmp_path, pyocd_target="stm32f767zitx", swd_frequency=4_000_000)
    nucleo = Target(
        kind="nucleo", probe_uid="066DFF485151717867114355", serial_port="/dev/ttyACM0", ota_bind=("h", 1)
    )
    p = probe_for(nucleo, spec)
    assert (p.uid, p.target_name, p.frequency) == ("066DFF485151717867114355", "stm32f767zitx", 4_000_000)
    twin = Target(kind="twin", probe_uid="remote:127.0.0.1:1", serial_port="/dev/pts/1", ota_bind=("h", 1))
    p = probe_for(twin, spec)
    assert (p.target_name, p.frequency) == ("stm32f767zi", None)  # the twin entry: no SWD clock key
    # the shipped board file: pyOCD's default clock
    assert probe_for(nucleo, load_board()).frequency is None


def test_target_and_frequency_reach_the_pyocd_session(twin: TwinTarget) -> None:
    with Probe(twin.probe_uid, target="stm32f767zi", frequency=2_000_000) as p:
        assert p.session.options.get("target_override") == "stm32f767zi"
        assert p.session.options.get("frequency") == 2_000_000
        assert p.session.target.part_number == "STM32F767xx"
    with Probe(twin.probe_uid) as p:  # no clock given: pyOCD's own default stays
        assert p.session.options.get("frequency") == p.session.options.get_default("frequency")


def test_an_unknown_pyocd_target_is_refused_with_the_fix(twin: TwinTarget) -> None:
    with pytest.raises(ProbeError) as err:
        Probe(twin.probe_uid, target="nosuchchip").open()
    text = str(err.value)
    assert (
        "pyOCD has no target 'nosuchchip'" in text
        and "pyocd_target" in text
        and "pyocd list --targets" in text
    )


def test_readback_hides_a_software_breakpoint_and_skips_the_filter_without_one(twin: TwinTarget) -> None:
    """Probe.read goes straight to the core's memory AP unless a pyOCD provider holds a
    software breakpoint; with one (a BKPT written into SRAM by pyOCD) the bytes read are
    still the original ones, as pyOCD's own filtered read gives them."""
    from pyocd.core.target import Target as PyocdTarget

    from rig.probe import _software_breakpoints

    addr = 0x2007F000
    original = bytes(range(64))
    with Probe(twin.probe_uid) as probe:
        probe.reset(halt=True)
        probe.write_ram(addr, original)
        core = probe.target.selected_core
        assert not _software_breakpoints(core.bp_manager)
        assert probe.read(addr, 64) == original
        assert probe.target.set_breakpoint(addr + 8, PyocdTarget.BreakpointType.SW)
        core.bp_manager.flush()  # pyOCD writes the BKPT now (else at the next resume)
        assert _software_breakpoints(core.bp_manager)
        raw = bytes(core.ap.read_memory_block8(addr + 8, 2))
        assert raw == b"\x00\xbe", "pyOCD did not write its BKPT: the test proves nothing"
        assert probe.read(addr, 64) == original
        probe.target.remove_breakpoint(addr + 8)
        core.bp_manager.flush()
        assert probe.read(addr, 64) == original
