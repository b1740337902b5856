"""The NUCLEO path's board matching, exercised without a board (real pyserial/pyOCD
enumeration; no probe is attached to CI machines)."""

from __future__ import annotations

import pytest

from rig.errors import ProbeError, TargetError
from rig.probe import Probe, ProbeInfo, list_probes, select_probe
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


A = ProbeInfo("066DFF485151717867114355", "STM32 STLink V2-1")
B = ProbeInfo("0670FF534955857867204521", "STM32 STLink V2-1")
LAB = ("192.168.1.10", 5000)


def test_no_uid_means_the_only_probe_connected() -> None:
    # boards/stm32f767.yaml: "probe_uid: null = the only probe connected"
    t = nucleo_target(probe_uid=None, serial_port="/dev/ttyACM0", usb_serial=None, ota_bind=LAB, probes=[B])
    assert t.probe_uid == B.uid and t.info["probe_uid"] == B.uid
    assert select_probe(None, [A]) == A


def test_no_uid_and_several_probes_lists_them() -> None:
    with pytest.raises(ProbeError) as err:
        nucleo_target(
            probe_uid=None, serial_port="/dev/ttyACM0", usb_serial=None, ota_bind=LAB, probes=[A, B]
        )
    text = str(err.value)
    assert "2 probes are connected" in text and A.uid in text and B.uid in text
    assert "--probe-uid" in text  # the fix


def test_explicit_uid_is_matched_exactly() -> None:
    assert select_probe(B.uid.lower(), [A, B]) == B  # case does not matter
    with pytest.raises(ProbeError) as err:
        select_probe("0670FF53", [A, B])  # a prefix is not a match: never the wrong board
    text = str(err.value)
    assert "'0670FF53'" in text and f"connected: {A.uid}" in text and B.uid in text
    assert "pyocd list" in text


def test_uid_not_found_names_where_it_came_from() -> None:
    with pytest.raises(ProbeError) as err:
        nucleo_target(
            probe_uid="DEADBEEF",
            uid_source="OTA_RIG_PROBE_UID",
            serial_port="/dev/ttyACM0",
            usb_serial=None,
            ota_bind=LAB,
            probes=[A],
        )
    text = str(err.value)
    assert "'DEADBEEF' (from OTA_RIG_PROBE_UID) is not connected" in text and "into OTA_RIG_PROBE_UID" in text


def test_no_probe_at_all_is_an_error_with_or_without_uid() -> None:
    for uid in (None, A.uid):
        with pytest.raises(ProbeError) as err:
            nucleo_target(probe_uid=uid, serial_port="/dev/ttyACM0", usb_serial=None, ota_bind=LAB, probes=[])
        assert "no debug probe is connected" in str(err.value) and "pyocd list" in str(err.value)
        assert uid is None or uid in str(err.value)


def test_console_found_by_the_chosen_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rig.targets.nucleo.list_serial_ports", lambda: PORTS)
    t = nucleo_target(probe_uid=None, serial_port=None, usb_serial=None, ota_bind=LAB, probes=[B])
    assert t.serial_port == "/dev/ttyACM1"


def test_remote_probe_is_taken_as_given() -> None:
    # pyOCD cannot list remote probes; opening one that is not there is Probe.open's error
    t = nucleo_target(
        probe_uid="remote:127.0.0.1:1", serial_port="/dev/pts/9", usb_serial=None, ota_bind=LAB, probes=[]
    )
    assert t.probe_uid == "remote:127.0.0.1:1"


def test_explicit_serial_port_wins() -> None:
    t = nucleo_target(
        probe_uid="066DFF485151717867114355",
        serial_port="/dev/ttyS9",
        usb_serial=None,
        ota_bind=("192.168.1.10", 5000),
        probes=[A],
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
    from rig.fixtures.plugin import _board_for_worker

    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw1")
    assert _board_for_worker(["AAA", "BBB"]) == "BBB"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw2")
    with pytest.raises(pytest.UsageError, match="has no board"):
        _board_for_worker(["AAA", "BBB"])
    monkeypatch.delenv("PYTEST_XDIST_WORKER")
    assert _board_for_worker(["AAA"]) == "AAA"
