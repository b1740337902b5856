"""The Ethernet cable's edges: the libslirp binding (a missing library is one clear error
naming the package; the C structures match libslirp.h), ``--hostfwd`` parsing, the
frame-level forward rewrite, and the twin's command line and control port."""

from __future__ import annotations

import ctypes
import ipaddress
import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from rig.targets.twin import start_twin
from twin.net import libslirp as ls
from twin.net.frame_nat import LanForwards, adjust_checksum, inet_checksum
from twin.net.hostfwd import HostFwd
from twin.net.slirp import SlirpNetwork


def test_a_missing_library_is_one_error_naming_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    def absent(names: tuple[str, ...]) -> ctypes.CDLL:
        raise OSError(f"{names[0]}: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(ls, "_open", absent)
    monkeypatch.setattr(ls, "_cache", {})
    with pytest.raises(ls.LibslirpMissing, match=r"apt-get install libslirp0"):
        SlirpNetwork()


_WITHOUT_LIBSLIRP = textwrap.dedent(
    """
    import sys
    import twin.net.libslirp as ls

    def absent(names):
        raise OSError(names[0] + ": cannot open shared object file: No such file or directory")

    ls._open = absent
    from twin.__main__ import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_the_twin_without_libslirp_stops_at_start_naming_the_package() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_LIBSLIRP], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twin: error: ") and "libslirp0" in lines[0], proc.stderr


#: offsetof() of libslirp.h 4.7 on x86-64/aarch64 Linux (LP64), from the C compiler
SLIRPCONFIG_OFFSETS = {
    "version": 0,
    "restricted": 4,
    "in_enabled": 8,
    "vnetwork": 12,
    "vnetmask": 16,
    "vhost": 20,
    "in6_enabled": 24,
    "vprefix_addr6": 28,
    "vprefix_len": 44,
    "vhost6": 48,
    "vhostname": 64,
    "vdhcp_start": 96,
    "vnameserver": 100,
    "vnameserver6": 104,
    "vdnssearch": 120,
    "vdomainname": 128,
    "if_mtu": 136,
    "if_mru": 144,
    "disable_host_loopback": 152,
    "enable_emu": 153,
    "outbound_addr": 160,
    "outbound_addr6": 168,
    "disable_dns": 176,
    "disable_dhcp": 177,
}


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="offsets listed for LP64 only")
def test_the_ctypes_structures_match_the_header() -> None:
    for name, offset in SLIRPCONFIG_OFFSETS.items():
        assert getattr(ls.SlirpConfig, name).offset == offset, name
    assert ctypes.sizeof(ls.SlirpConfig) == 184
    assert ls.SlirpCb.notify.offset == 64 and ls.SlirpCb.timer_new_opaque.offset == 80
    assert ctypes.sizeof(ls.SlirpCb) == 88
    assert ls.version().startswith("4.")


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tcp:127.0.0.1:8080-:80", HostFwd("tcp", "127.0.0.1", 8080, "", 80)),
        ("tcp::0-192.168.1.20:80", HostFwd("tcp", "127.0.0.1", 0, "192.168.1.20", 80)),
        (":localhost:9000-:7", HostFwd("tcp", "127.0.0.1", 9000, "", 7)),
        ("udp:127.0.0.1:5353-:53", HostFwd("udp", "127.0.0.1", 5353, "", 53)),
    ],
)
def test_hostfwd_uses_qemus_syntax(spec: str, expected: HostFwd) -> None:
    assert HostFwd.parse(spec) == expected


@pytest.mark.parametrize(
    "spec", ["tcp:8080:80", "sctp::1-:2", "tcp::99999-:80", "tcp::1-:0", "tcp:nowhere:1-:2"]
)
def test_a_bad_hostfwd_names_the_expected_form(spec: str) -> None:
    with pytest.raises(ValueError, match=r"\[tcp\|udp\]:\[HOSTADDR\]:HOSTPORT-\[GUESTADDR\]:GUESTPORT"):
        HostFwd.parse(spec)


def test_checksum_adjustment_equals_a_recomputation() -> None:
    data = bytes(range(40))
    new = data[:12] + b"\xc0\xa8\x01\x0a" + data[16:]
    assert adjust_checksum(inet_checksum(data), data[12:16], new[12:16]) == inet_checksum(new)


def _syn(payload: bytes = b"") -> Ether:
    return (
        Ether(src="02:00:00:00:00:01", dst="52:55:c0:a8:01:0a")
        / IP(src="192.168.1.100", dst="192.168.1.10")
        / TCP(sport=40000, dport=5000, flags="S", seq=1)
        / payload
    )


def test_the_forward_rewrite_keeps_checksums_valid_and_damage_damaged() -> None:
    lan = ipaddress.IPv4Network("192.168.1.0/24")
    nat = LanForwards("192.168.1.10", lan, {("192.168.1.10", 5000): ("127.0.0.1", 41000)})
    out, answer = nat.from_board(bytes(_syn(b"hello")))
    assert answer is None and out is not None
    p = Ether(out)
    assert p[TCP].dport == 41000 and p[IP].dst == "192.168.1.10"
    rebuilt = p.copy()
    del rebuilt[IP].chksum
    del rebuilt[TCP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (rebuilt[IP].chksum, rebuilt[TCP].chksum) == (p[IP].chksum, p[TCP].chksum)
    # a segment with a wrong TCP checksum stays wrong after the rewrite
    bad = bytearray(bytes(_syn(b"hello")))
    bad[-1] ^= 0x01
    out2, _ = nat.from_board(bytes(bad))
    p2 = Ether(out2)
    again = p2.copy()
    del again[TCP].chksum
    assert Ether(bytes(again))[TCP].chksum != p2[TCP].chksum


def test_the_twin_announces_hostfwds_and_serves_frames_commands(tmp_path: Path) -> None:
    pcap = tmp_path / "start.pcap"
    target = start_twin(
        ota_lan=("192.168.1.10", 5000),
        extra_args=[
            "--hostfwd",
            "tcp::0-:80",
            "--hostfwd",
            "tcp:127.0.0.1:0-192.168.1.20:8080",
            "--pcap",
            str(pcap),
        ],
        log_path=tmp_path / "twin.log",
    )
    try:
        fwds = target.info["hostfwd"]
        assert [f["guest"] for f in fwds] == ["192.168.1.100:80", "192.168.1.20:8080"]
        assert all(f["host_port"] > 0 and f["host"].startswith("127.0.0.1:") for f in fwds)
        socket.create_connection(("127.0.0.1", fwds[0]["host_port"]), timeout=5.0).close()
        status = target.control("frames.status")
        assert status["link"] is True and status["pcap"]["path"] == str(pcap)
        assert status["nat"]["forwards"] == {"192.168.1.10:5000": f"127.0.0.1:{target.ota_bind[1]}"}
        assert "frames" in target.control("net.status")
        armed = target.control("frames.fault", kind="drop", direction="to_board", nth=3)
        assert armed["faults"]["armed"][0]["nth"] == 3
        assert target.control("frames.link", up=False)["link"] is False
        assert target.control("net.status")["frames"]["link"] is False
        assert target.control("frames.pcap", stop=True)["open"] is False
        # a valid capture with nothing from the board (no firmware): at most libslirp's ARP
        # requests for the guest, which the connection to the first forward above sets off
        frames = rdpcap(str(pcap))
        assert all(f.haslayer(ARP) and f[ARP].op == 1 and f[ARP].psrc == "192.168.1.10" for f in frames)
        other = tmp_path / "second.pcap"
        assert target.control("frames.pcap", path=str(other))["open"] is True
    finally:
        target.stop()
    assert target.proc.returncode == 0


def test_a_bad_hostfwd_stops_the_twin_with_exit_code_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "--hostfwd", "tcp:80"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2 and "bad --hostfwd" in proc.stderr and proc.stdout == ""


def test_a_taken_hostfwd_port_stops_the_twin_with_exit_code_2() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "twin", "--hostfwd", f"tcp::{port}-:80"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr
    assert json.dumps(port) in proc.stderr and "--hostfwd" in proc.stderr
