"""``rig doctor``'s findings from facts made up here (rig.doctor, rig.doctor_checks): what
blocks a real-board run and what only warns, one line per finding with its fix, the exit
codes and ``--json``; and the command itself on this host, which has no board."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rig import doctor
from rig.board import load_board
from rig.cli import main
from rig.doctor_facts import Facts, Iface, ProbeRead, SerialPort, UsbDevice, parse_ip_addr, try_bind

UID = "066DFF485550755187121723"
SINGLE_BANK_OPTCR = 0xFFFFAAFD  # the F767's factory value: nDBANK=1, RDP=0xAA
OPTCR1 = 0x00400080  # BOOT_ADD0 = 0x0080


@pytest.fixture(scope="module")
def spec():
    return load_board(None)


def ready_host() -> Facts:
    """A lab host where nothing blocks: one NUCLEO, its rights, its VCP, the lab address up."""
    return Facts(
        probes=[(UID, "STM32 STLink")],
        usb=[UsbDevice("374b", UID, "/dev/bus/usb/001/004", True)],
        udev_rules=["/etc/udev/rules.d/49-stlink.rules"],
        user="ci",
        groups=["ci", "plugdev", "dialout"],
        host_groups=["plugdev", "dialout"],
        serial_ports=[
            SerialPort("/dev/ttyACM0", UID, "STLink VCP", f"/dev/serial/by-id/usb-STM_{UID}-if02", True)
        ],
        cap_net_raw=True,
        ifaces=[Iface("lo", True, ("127.0.0.1",)), Iface("enp3s0", True, ("10.0.0.5", "192.168.1.10"))],
        bind_errors={"192.168.1.10:5000": None},
        tools={
            "arm-none-eabi-gcc": "/usr/bin/arm-none-eabi-gcc",
            "libslirp": "libslirp.so.0",
            "chromium": None,
        },
        board_file="boards/stm32f767.yaml",
        probe_read=ProbeRead(UID, SINGLE_BANK_OPTCR, OPTCR1),
    )


def _by(found: list[doctor.Finding], check: str, level: str | None = None) -> list[doctor.Finding]:
    return [f for f in found if f.check == check and (level is None or f.level == level)]


def test_a_ready_host_has_nothing_blocking(spec) -> None:
    found = doctor.findings(ready_host(), spec, None)
    assert doctor.blocking(found) == []
    text = "\n".join(f.message for f in found)
    assert f"probe {UID}" in text and "/dev/ttyACM0" in text and f"belongs to probe {UID}" in text
    assert "enp3s0 holds 192.168.1.10:5000" in text and "is up" in text and "free to listen" in text
    assert "RDP level 0" in text and "nDBANK: single-bank" in text and "BOOT_ADD0 0x0080" in text
    chromium = _by(found, "tools", "info")
    assert chromium and "chromium not found" in chromium[0].message and chromium[0].fix


def test_no_probe_says_so_and_blocks(spec) -> None:
    facts = Facts(probes=[], board_file="b.yaml", tools={}, ifaces=[], probe_read=None)
    found = doctor.findings(facts, spec, None)
    (probe,) = _by(found, "probe")
    assert probe.level == "fail" and probe.message.startswith("no probe found")
    assert "plug the NUCLEO's ST-LINK USB" in (probe.fix or "")
    assert "probe" in doctor.blocking(found) and "network" in doctor.blocking(found)
    assert _by(found, "option bytes", "info")


def test_an_st_link_the_user_may_not_open(spec) -> None:
    facts = ready_host()
    facts.probes = []
    facts.usb = [UsbDevice("374b", UID, "/dev/bus/usb/001/004", False)]
    facts.udev_rules = []
    facts.groups = ["ci"]
    found = doctor.findings(facts, spec, None)
    (probe,) = _by(found, "probe")
    assert "1 ST-LINK(s) on USB that pyOCD cannot open" in probe.message
    usb = _by(found, "usb")
    assert any(
        f.level == "fail" and "/dev/bus/usb/001/004" in f.message and "udev" in (f.fix or "") for f in usb
    )
    assert any(f.level == "warn" and "no udev rule" in f.message for f in usb)
    assert any("not in plugdev" in f.message and "usermod -aG plugdev ci" in (f.fix or "") for f in usb)
    assert any("not in dialout" in f.message for f in usb)


def test_each_vcp_and_its_probe(spec) -> None:
    facts = ready_host()
    other = "0670FF123456"
    facts.probes = [(UID, "STLink"), (other, "STLink")]
    facts.serial_ports.append(SerialPort("/dev/ttyUSB0", "A50285BI", "FTDI", None, True))
    found = doctor.findings(facts, spec, UID)
    vcp = _by(found, "vcp")
    assert any(
        f.level == "ok" and f"belongs to probe {UID}" in f.message and "by-id" in f.message for f in vcp
    )
    assert any(f.level == "info" and "/dev/ttyUSB0" in f.message and "no probe" in f.message for f in vcp)
    assert any(f.level == "warn" and f"probe {other} has no virtual COM port" in f.message for f in vcp)
    facts.serial_ports[0] = SerialPort("/dev/ttyACM0", UID, "VCP", None, False)
    assert "vcp" in doctor.blocking(doctor.findings(facts, spec, UID))


def test_probes_several_or_the_wrong_one(spec) -> None:
    facts = ready_host()
    facts.probes = [(UID, "a"), ("0670FF", "b")]
    assert any(f.level == "warn" and "none chosen" in f.message for f in doctor.probe_findings(facts, None))
    assert any(
        f.level == "fail" and "not connected" in f.message for f in doctor.probe_findings(facts, "ABC")
    )
    assert not any(f.blocks for f in doctor.probe_findings(facts, UID.lower()))


def test_a_remote_probe_needs_no_usb(spec) -> None:
    facts = ready_host()
    facts.probes, facts.usb, facts.serial_ports = [], [], []
    found = doctor.probe_findings(facts, "remote:127.0.0.1:5555")
    assert [f.level for f in found] == ["info"] and "probe server" in found[0].message


def test_option_bytes_against_the_board_file(spec) -> None:
    # dual bank (nDBANK=0), read-protected (RDP 0xBB), booting from 0x08000000
    read = ProbeRead(UID, (SINGLE_BANK_OPTCR & ~(1 << 29) & ~0xFF00) | 0xBB00, 0x00402000)
    found = doctor.option_byte_findings(read, spec)
    assert [f.level for f in found] == ["fail", "fail", "fail"]
    text = " ".join(f.message for f in found)
    assert "RDP level 1" in text and "dual-bank, the board file expects single-bank" in text
    assert "BOOT_ADD0 is 0x2000 (boots from 0x08000000), the board file expects 0x0080" in text
    assert all("STM32CubeProgrammer" in (f.fix or "") for f in found)
    busy = doctor.option_byte_findings(ProbeRead(UID, busy="pid 42 on lab1"), spec)
    assert [f.level for f in busy] == ["warn"] and "in use by pid 42" in busy[0].message
    error = doctor.option_byte_findings(ProbeRead(UID, error="no ACK"), spec)
    assert error[0].blocks and "no ACK" in error[0].message


def test_the_network_interface_and_the_port(spec) -> None:
    facts = ready_host()
    facts.ifaces = [Iface("enp3s0", False, ("192.168.1.10",))]
    found = doctor.findings(facts, spec, None)
    down = [f for f in _by(found, "network", "fail") if "down" in f.message]
    assert down and "ip link set enp3s0 up" in (down[0].fix or "")
    facts = ready_host()
    facts.bind_errors = {"192.168.1.10:5000": "EADDRINUSE: Address already in use"}
    (busy,) = _by(doctor.findings(facts, spec, None), "network", "fail")
    assert "cannot listen" in busy.message and "ss -ltnp" in (busy.fix or "")
    facts.ifaces = [Iface("lo", True, ("127.0.0.1",))]
    (missing,) = _by(doctor.findings(facts, spec, None), "network", "fail")
    assert "no interface holds 192.168.1.10:5000" in missing.message and "ip addr add" in (missing.fix or "")


def test_capture_and_tools_only_warn(spec) -> None:
    facts = ready_host()
    facts.cap_net_raw = False
    facts.raw_socket_error = "[Errno 1] Operation not permitted"
    facts.tools = {"arm-none-eabi-gcc": None, "libslirp": None, "chromium": None}
    found = doctor.findings(facts, spec, None)
    assert doctor.blocking(found) == []
    (cap,) = _by(found, "capture")
    assert cap.level == "warn" and "setcap" in (cap.fix or "")
    assert [f.level for f in _by(found, "tools")] == ["warn", "warn", "info"]


def test_a_bad_board_file_blocks(spec) -> None:
    facts = ready_host()
    facts.board_error = "ota.server: expected HOST:PORT"
    assert "board" in doctor.blocking(doctor.findings(facts, None, None))


def test_parse_ip_addr() -> None:
    text = json.dumps(
        [
            {"ifname": "lo", "flags": ["LOOPBACK", "UP", "LOWER_UP"], "operstate": "UNKNOWN",
             "addr_info": [{"family": "inet", "local": "127.0.0.1"}, {"family": "inet6", "local": "::1"}]},
            {"ifname": "eth0", "flags": ["BROADCAST", "UP", "NO-CARRIER"], "operstate": "DOWN",
             "addr_info": [{"family": "inet", "local": "192.168.1.10", "label": "eth0:ota"}]},
            {"ifname": "eth1", "flags": ["BROADCAST", "UP", "LOWER_UP"], "operstate": "UP", "addr_info": []},
        ]
    )  # fmt: skip
    assert parse_ip_addr(text) == [
        Iface("lo", True, ("127.0.0.1",)),
        Iface("eth0", False, ("192.168.1.10",)),
        Iface("eth1", True, ()),
    ]


def test_try_bind_names_a_port_in_use() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        assert (try_bind("127.0.0.1", port) or "").startswith("EADDRINUSE")
    assert try_bind("127.0.0.1", 0) is None


def test_the_command_exit_codes_and_json(
    spec, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rig import doctor_facts

    facts = ready_host()
    monkeypatch.setattr(doctor_facts, "gather", lambda board_file, uid: (facts, spec, uid))
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert (
        "nothing blocks a --board nucleo run" in out
        and out.count("\n") == len(doctor.findings(facts, spec, None)) + 1
    )
    facts.probe_read = ProbeRead(UID, SINGLE_BANK_OPTCR, 0x00402000)
    assert main(["doctor", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and doc["blocking"] == ["option bytes"]
    assert {"check", "level", "message", "fix"} <= set(doc["findings"][0])
    with pytest.raises(SystemExit) as exc:
        main(["doctor", "--no-such-option"])
    assert exc.value.code == 2


def test_on_this_host_without_a_board() -> None:
    """The real command, on a host with no probe (skipped where one is plugged in)."""
    from rig.probe_discovery import list_probes

    if list_probes():
        pytest.skip("a debug probe is connected to this host")
    proc = subprocess.run(
        [sys.executable, "-m", "rig.cli", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert "probe" in doc["blocking"]
    (probe,) = [f for f in doc["findings"] if f["check"] == "probe"]
    assert probe["message"].startswith("no probe found") and "ST-LINK USB" in probe["fix"]
    checks = {f["check"] for f in doc["findings"]}
    assert {"board", "usb", "vcp", "option bytes", "network", "capture", "tools"} <= checks


NFT_DROP = """table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		tcp dport { 22, 5000 } accept
	}
}
"""


def test_the_firewall_and_the_ota_port(spec) -> None:
    facts = ready_host()
    facts.firewall = NFT_DROP
    assert [f.level for f in doctor.firewall_findings(facts, [5000])] == ["ok"]
    (closed,) = doctor.firewall_findings(facts, [5001])
    assert closed.blocks and "TCP 5001" in closed.message and "dport 5001 accept" in (closed.fix or "")
    facts.firewall = NFT_DROP.replace("policy drop", "policy accept").replace("{ 22, 5000 }", "22")
    assert [f.level for f in doctor.firewall_findings(facts, [5000])] == ["ok"]
    facts.firewall = "*filter\n:INPUT DROP [0:0]\n-A INPUT -p tcp -m tcp --dport 5000 -j ACCEPT\nCOMMIT\n"
    assert [f.level for f in doctor.firewall_findings(facts, [5000, 6000])] == ["ok", "fail"]
    facts.firewall, facts.firewall_error = None, "`nft list ruleset`: Operation not permitted"
    (unread,) = doctor.firewall_findings(facts, [5000])
    assert unread.level == "info" and "sudo" in (unread.fix or "")
    facts = ready_host()
    facts.firewall = NFT_DROP.replace("5000", "5001")
    assert doctor.blocking(doctor.findings(facts, spec, None)) == ["firewall"]
