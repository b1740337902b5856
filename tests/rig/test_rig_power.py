"""Power switches (issue 15: 12): uhubctl run from where Debian installs it (never by bare
name; missing, the error names the package), the user's relay script run with the board's
UID and the action in its environment, and each target's switch: the twin's own power, a
real board's from the board file's ``power:``. The relay script of these tests really cuts
a running twin's power through its control port."""

from __future__ import annotations

import json
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.board import PowerSpec
from rig.errors import TargetError
from rig.power import CommandPower, TwinPower, UhubctlPower, switch_for, uhubctl_path
from rig.targets.nucleo import nucleo_target
from rig.targets.twin import TwinTarget, start_twin

#: a relay script: cuts the twin's power (its control port) on "off", logs every call
RELAY = """#!{python}
import json, os, socket, sys
action = sys.argv[1]
with open(os.environ["RELAY_LOG"], "a") as log:
    log.write(json.dumps({{"arg": action, "env": os.environ.get("OTA_RIG_POWER"),
                          "uid": os.environ.get("OTA_RIG_PROBE_UID")}}) + "\\n")
if action == "fail":
    sys.exit("relay: no such channel 7")
if action == "off":
    host, port = os.environ["TWIN_CONTROL"].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b'{{"cmd": "power.cut", "after_ms": 0}}\\n')
        assert json.loads(s.makefile().readline())["ok"]
"""


BOOTLOADER = Path(__file__).resolve().parents[2] / "firmware" / "build" / "bootloader.bin"


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[TwinTarget]:
    if not BOOTLOADER.is_file():
        pytest.skip("firmware not built (make -C firmware)")
    # a running board (the bootloader asks for updates): its virtual time goes on
    t = start_twin(log_path=tmp_path / "twin.log", extra_args=["--load", f"{BOOTLOADER}@0x08000000"])
    try:
        yield t
    finally:
        t.stop()


def _relay(tmp_path: Path) -> Path:
    script = tmp_path / "lab" / "relay.py"
    script.parent.mkdir()
    script.write_text(RELAY.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _power_cuts(twin: TwinTarget, at_least: int = 0, wait: float = 5.0) -> int:
    """The power cuts the twin went through (its flash controller logs each one), waiting up
    to ``wait`` s for ``at_least`` of them (a cut takes effect on the twin's CPU thread)."""
    deadline = time.monotonic() + wait
    while True:
        n = sum(1 for c in twin.control("flash")["cuts"] if c.get("mode") == "power")
        if n >= at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_the_relay_script_cuts_the_power(twin: TwinTarget, tmp_path: Path, monkeypatch) -> None:
    script = _relay(tmp_path)
    log = tmp_path / "relay.log"
    monkeypatch.setenv("RELAY_LOG", str(log))
    monkeypatch.setenv("TWIN_CONTROL", str(twin.info["control"]))
    spec = PowerSpec(command=("./relay.py off", "./relay.py on"), off_time=0.1, base_dir=str(script.parent))
    switch = switch_for(spec, probe_uid="066DFF485151717867114355")
    assert isinstance(switch, CommandPower) and switch.commands["off"][0] == str(script)
    before = _power_cuts(twin)
    switch.cycle()
    assert _power_cuts(twin, before + 1) == before + 1  # the twin really lost power
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [
        {"arg": "off", "env": "off", "uid": "066DFF485151717867114355"},
        {"arg": "on", "env": "on", "uid": "066DFF485151717867114355"},
    ]


def test_a_failing_relay_script_is_an_error_with_its_words(tmp_path: Path, monkeypatch) -> None:
    script = _relay(tmp_path)
    monkeypatch.setenv("RELAY_LOG", str(tmp_path / "relay.log"))
    switch = CommandPower(f"{script} fail", f"{script} on")
    with pytest.raises(TargetError) as err:
        switch.off()
    assert "exited with 1: relay: no such channel 7" in str(err.value)
    with pytest.raises(TargetError, match="does not exist"):
        CommandPower("/nonexistent/relay off", "x").off()


def test_uhubctl_missing_names_the_debian_package(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr("rig.power.UHUBCTL_DEBIAN", str(tmp_path / "no-uhubctl"))
    monkeypatch.setattr("rig.power.UHUBCTL_DIRS", str(tmp_path / "sbin"))  # set-up installs it
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TargetError) as err:
        uhubctl_path()
    assert "Debian package uhubctl" in str(err.value) and "apt-get install uhubctl" in str(err.value)
    with pytest.raises(TargetError, match="uhubctl is not installed"):
        UhubctlPower("1-1.4", 2)


def test_uhubctl_off_the_debian_path_is_run_by_its_absolute_path(monkeypatch, tmp_path: Path) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    program = fake_bin / "uhubctl"
    program.write_text(f"#!{sys.executable}\nimport sys; print(' '.join(sys.argv[1:]))\n")
    program.chmod(0o755)
    monkeypatch.setattr("rig.power.UHUBCTL_DEBIAN", str(tmp_path / "no-uhubctl"))
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}/usr/bin")
    switch = UhubctlPower("1-1.4", 2, off_time=0)
    assert switch.argv("off") == [str(program), "-l", "1-1.4", "-p", "2", "-a", "off"]
    switch.cycle()  # runs it: exit 0


@pytest.mark.skipif(not Path("/usr/sbin/uhubctl").exists(), reason="uhubctl (Debian package) not installed")
def test_the_debian_uhubctl_is_preferred_and_its_error_shown() -> None:
    switch = UhubctlPower("250-9", 7, off_time=0)
    assert switch.program == "/usr/sbin/uhubctl"
    with pytest.raises(TargetError) as err:  # no such hub on this machine
        switch.off()
    assert "/usr/sbin/uhubctl -l 250-9 -p 7 -a off exited with" in str(err.value)


def test_each_target_provides_its_switch(twin: TwinTarget, tmp_path: Path) -> None:
    assert isinstance(twin.power_switch(), TwinPower)
    before = _power_cuts(twin)
    twin.power_switch().cycle()
    assert _power_cuts(twin, before + 1) == before + 1
    lab = ("127.0.0.1", 5000)
    bare = nucleo_target(
        probe_uid="remote:127.0.0.1:1", serial_port="/dev/null", usb_serial=None, ota_bind=lab
    )
    assert bare.power_switch() is None
    with pytest.raises(NotImplementedError, match="no power switch"):
        bare.power_cycle()
    relay = nucleo_target(
        probe_uid="remote:127.0.0.1:1",
        serial_port="/dev/null",
        usb_serial=None,
        ota_bind=lab,
        power=PowerSpec(command=("relay off", "relay on")),
    )
    switch = relay.power_switch()
    assert isinstance(switch, CommandPower) and switch.probe_uid == "remote:127.0.0.1:1"
    assert switch.takes_probe_down and relay.power_switch() is switch  # built once
