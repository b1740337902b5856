"""Packet capture on a lab network (issue 15: 10): the OTA address may be a secondary address
of the lab NIC (found with getifaddrs, in a network namespace of its own so nothing of the
host changes), and frames may carry VLAN tags (802.1Q, QinQ) when the capture runs on the
parent interface of a VLAN: real frames through the kernel's packet socket and BPF filter,
written to a pcap and analysed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rig.capture import (
    CaptureUnavailable,
    Sniffer,
    analyze_pcap,
    check_capture,
    iface_for_address,
    interface_addresses,
    stream_coverage,
    tcp_fields,
)

REPO = Path(__file__).resolve().parents[2]

try:
    check_capture("lo")
    CAPTURE, WHY = True, ""
except CaptureUnavailable as exc:  # pragma: no cover - CI runs as root
    CAPTURE, WHY = False, str(exc)


def _frames(port: int, client: int, tags: list[tuple[int, int]]) -> list[bytes]:
    """A client's SYN + REQ_FW and the server's SYN-ACK + FILE_SIZE, each Ethernet frame
    carrying ``tags`` [(TPID, VLAN id)...] between the MAC addresses and the IPv4 header."""
    from scapy.all import IP, TCP, Dot1AD, Dot1Q, Ether, Raw

    def frame(src: str, dst: str, sport: int, dport: int, flags: str, seq: int, load: bytes = b"") -> bytes:
        layer = Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01")
        for tpid, vid in tags:
            layer = layer / (Dot1AD(vlan=vid) if tpid == 0x88A8 else Dot1Q(vlan=vid))
        pkt = layer / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=1)
        return bytes(pkt / Raw(load) if load else pkt)

    board, host = "192.168.1.100", "192.168.1.10"
    return [
        frame(board, host, client, port, "S", 1000),
        frame(host, board, port, client, "SA", 5000),
        frame(board, host, client, port, "PA", 1001, b"REQ_FW\n"),
        frame(host, board, port, client, "PA", 5001, b"FILE_SIZE:16\n"),
        frame(board, host, client, port + 1, "PA", 1, b"not this port\n"),
    ]


@pytest.mark.parametrize("tags", [[(0x8100, 42)], [(0x88A8, 100), (0x8100, 42)]], ids=["802.1q", "qinq"])
def test_vlan_tagged_frames_are_parsed(tags: list[tuple[int, int]]) -> None:
    frames = _frames(5000, 40000, tags)
    assert tcp_fields(frames[2])[:2] == (40000, 5000) and tcp_fields(frames[2])[4] == 7
    assert tcp_fields(frames[3])[4] == len(b"FILE_SIZE:16\n")
    from scapy.all import ARP, Ether

    assert tcp_fields(bytes(Ether() / ARP())) is None


@pytest.mark.skipif(not CAPTURE, reason=f"capture unavailable: {WHY}")
@pytest.mark.parametrize(
    "tags", [[(0x8100, 42)], [(0x88A8, 100), (0x8100, 42)], []], ids=["802.1q", "qinq", "none"]
)
def test_tagged_frames_go_through_the_sniffer_into_the_pcap(
    tmp_path: Path, tags: list[tuple[int, int]]
) -> None:
    with socket.socket() as s:  # a port nobody else's test uses right now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = 10000 + (port + 7777) % 50000  # never the server's port nor the one beside it
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    raw.bind(("lo", 0))
    with Sniffer(port, "lo") as sniffer:
        for frame in _frames(port, client, tags):
            raw.send(frame)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and stream_coverage(sniffer.frames(client), port)["down"] < 13:
            time.sleep(0.05)
        mine = sniffer.frames(client)
        pcap = sniffer.write(tmp_path / "vlan.pcap", client)
    raw.close()
    assert stream_coverage(mine, port) == {"down": 13, "up": 7}
    assert all(tcp_fields(f.data)[1] in (port, client) for f in mine)  # the other port was dropped
    analysis = analyze_pcap(pcap, port, client_port=client)
    assert analysis.streams["up"] == b"REQ_FW\n" and analysis.streams["down"] == b"FILE_SIZE:16\n"
    assert [t.text for t in analysis.tokens] == ["FILE_SIZE:16", "REQ_FW"]


def test_interfaces_list_every_address() -> None:
    assert ("lo", "127.0.0.1") in interface_addresses()
    assert iface_for_address("127.0.0.1") == "lo"
    with pytest.raises(CaptureUnavailable, match=r"no interface has address 192\.0\.2\.77"):
        iface_for_address("192.0.2.77")


NETNS_SCRIPT = r"""
import subprocess, sys, socket, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[1])
ip = sys.argv[2]
subprocess.run([ip, "link", "set", "lo", "up"], check=True)
# the lab's OTA address as a secondary address of the NIC (with a label, and without one)
subprocess.run([ip, "addr", "add", "10.9.9.9/32", "dev", "lo", "label", "lo:ota"], check=True)
subprocess.run([ip, "addr", "add", "10.9.9.10/32", "dev", "lo"], check=True)
from rig.capture import iface_for_address
print("IFACE", iface_for_address("10.9.9.9"), iface_for_address("10.9.9.10"))
from rig.ota.server import OtaServer
image = bytes(range(256)) * 4
with tempfile.TemporaryDirectory() as tmp:
    with OtaServer(image, bind="10.9.9.9", port=0, capture=tmp) as srv:
        c = socket.create_connection(srv.address, timeout=5)
        c.sendall(b"REQ_FW\n")
        c.settimeout(5)
        got = b""
        while b"OTA_UPDATE\n" not in got:
            got += c.recv(4096)
        c.close()
        result = srv.wait_session(10)
        print("CAPTURE_ERROR", srv.capture_error)
    print("PCAP", bool(result.pcap) and Path(result.pcap).stat().st_size > 100)
"""


def test_capture_on_a_secondary_address(tmp_path: Path) -> None:
    """In a network namespace of its own (no root needed, the host's interfaces untouched),
    the OTA server listens on a secondary address of ``lo`` and its capture finds the
    interface and writes the session's pcap."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip") or "/usr/sbin/ip"
    if unshare is None or not os.path.exists(ip):
        pytest.skip("needs unshare(1) and ip(8) (util-linux, iproute2)")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no unprivileged network namespaces here: {probe.stderr.decode().strip()}")
    script = tmp_path / "netns.py"
    script.write_text(NETNS_SCRIPT)
    proc = subprocess.run(
        [unshare, "-rn", sys.executable, str(script), str(REPO), ip],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "IFACE lo lo" in proc.stdout
    assert "CAPTURE_ERROR None" in proc.stdout and "PCAP True" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.skipif(not CAPTURE, reason=f"capture unavailable: {WHY}")
def test_capture_iface_reaches_the_servers_sniffer(tmp_path: Path) -> None:
    """--capture-iface (the bench's capture_iface) is the interface the OTA server sniffs."""
    from rig.board import load_board
    from rig.hil import Bench
    from rig.targets.base import Target

    target = Target("nucleo", "X", "/dev/null", ("127.0.0.1", 0))
    bench = Bench(load_board(), target, probe=None, console=None, artifacts=tmp_path)  # type: ignore[arg-type]
    bench.capture_iface = "nosuch0"
    with bench.ota_server(bytes(64), capture=tmp_path) as server:
        assert server.capture_iface == "nosuch0"
        assert "nosuch0" in (server.capture_error or "")
    bench.capture_iface = None  # default: the interface that owns the bind address
    with bench.ota_server(bytes(64), capture=tmp_path) as server:
        assert server.capture_error is None


def test_capture_iface_is_a_pytest_option(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests_hil", "--collect-only", "-q"),
            *("--report-dir", str(tmp_path), "--capture-iface", "eth0.42"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
