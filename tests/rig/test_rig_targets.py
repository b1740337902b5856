"""The NUCLEO path's board matching, exercised without a board (real pyserial/pyOCD
enumeration; no probe is attached to CI machines)."""

from __future__ import annotations

import pytest

from rig.errors import ProbeError, TargetError
from rig.probe import Probe, list_probes
from rig.targets.nucleo import PortInfo, find_vcp, nucleo_target

PORTS = [
    PortInfo("/dev/ttyACM0", "066DFF485151717867114355", "STM32 STLink"),
    PortInfo("/dev/ttyACM1", "0670FF534955857867204521", "STM32 STLink"),
    PortInfo("/dev/ttyUSB0", None, "CP2102"),
]


def test_vcp_is_matched_by_usb_serial_exactly() -> None:
    assert find_vcp("0670ff534955857867204521", PORTS) == "/dev/ttyACM1"
    with pytest.raises(TargetError) as err:
        find_vcp("0670FF53", PORTS)  # a prefix is not a match: never the wrong board
    assert "/dev/ttyACM0 (serial 066DFF485151717867114355)" in str(err.value)


def test_nucleo_needs_a_probe_uid() -> None:
    with pytest.raises(TargetError) as err:
        nucleo_target(
            probe_uid=None, serial_port="/dev/ttyACM0", usb_serial=None, ota_bind=("192.168.1.10", 5000)
        )
    assert "--probe-uid" in str(err.value)


def test_explicit_serial_port_wins() -> None:
    t = nucleo_target(
        probe_uid="066DFF485151717867114355",
        serial_port="/dev/ttyS9",
        usb_serial=None,
        ota_bind=("192.168.1.10", 5000),
    )
    assert t.serial_port == "/dev/ttyS9" and t.kind == "nucleo"


def test_missing_probe_is_a_clear_error() -> None:
    if list_probes():
        pytest.skip("a debug probe is attached to this machine")
    with pytest.raises(ProbeError) as err:
        Probe("066DFF485151717867114355").open()
    assert "no debug probe is connected" in str(err.value) and "udev" in str(err.value)


def test_unreachable_remote_probe_names_the_fix() -> None:
    from rig.targets.twin import free_port

    with pytest.raises(ProbeError) as err:
        Probe(f"remote:127.0.0.1:{free_port()}").open()
    assert "is the board" in str(err.value)


def test_one_board_per_xdist_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    from rig.fixtures.plugin import _uid_for_worker

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert _uid_for_worker("AAA, BBB") == "BBB"
    assert _uid_for_worker("AAA") == "AAA"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    with pytest.raises(pytest.UsageError, match="has no board"):
        _uid_for_worker("AAA,BBB")
