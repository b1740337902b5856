"""lwIP firmware on the twin's STM32 ETH MAC + LAN8742A and its libslirp network.

firmware/progs/lwiptest (built with ``make ETH=mac``: the project's MAC/PHY driver under
lwIP's raw API) gets a DHCP lease, resolves its gateway by ARP and serves three TCP ports
that the host reaches through ``--hostfwd`` (QEMU syntax, port 0 = a free one announced in
the twin's start-up line): HTTP on 80, echo on 7, a CRC sink on 9. The test moves 512 KiB
each way, then pulls the cable and plugs it back in, and checks the board recovers (link,
lease, server) and that the pcap shows the frames the MAC really exchanged.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest

from rig.targets.twin import TwinTarget, start_twin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(300)

BOARD_IP = "192.168.1.100"  # the twin's first DHCP lease
GATEWAY = "192.168.1.10"  # libslirp's own address: gateway, DHCP server, the OTA host
GUEST_PORTS = {"http": 80, "echo": 7, "sink": 9}


@pytest.fixture(scope="module")
def lwiptest_elf(tmp_path_factory) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:  # part of the set-up, never optional: an error
        pytest.fail(
            "arm-none-eabi-gcc not found on PATH: install the Debian package gcc-arm-none-eabi "
            "(apt-get install gcc-arm-none-eabi; `make setup` does it)",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("fwbuild-lwip")
    proc = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "firmware"), "ETH=mac", f"B={out}", f"{out}/lwiptest.elf"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "lwiptest.elf"


class LwipBench:
    """A twin running lwiptest with host forwards to its three servers."""

    def __init__(self, elf: Path, tmp: Path) -> None:
        self.pcap = tmp / "eth.pcap"
        self.log = tmp / "twin.log"
        fwd = [arg for port in GUEST_PORTS.values() for arg in ("--hostfwd", f"tcp:127.0.0.1:0-:{port}")]
        self.twin: TwinTarget = start_twin(
            extra_args=["--load", str(elf), *fwd, "--pcap", str(self.pcap)], log_path=self.log
        )
        bound = {int(h["guest_port"]): int(h["host_port"]) for h in self.twin.info["hostfwd"]}
        self.ports = {name: bound[guest] for name, guest in GUEST_PORTS.items()}

    def uart(self) -> str:
        return str(self.twin.control("uart_log")["text"])

    def wait_uart(self, pattern: str, timeout: float = 60.0, after: int = 0) -> re.Match[str]:
        """Wait for ``pattern`` in the console output past offset ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.uart()
            m = re.compile(pattern).search(text, after)
            if m:
                return m
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} on the console within {timeout} s:\n{text[-3000:]}")
            time.sleep(0.1)

    def connect(self, name: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.ports[name]), timeout=60)
        s.settimeout(60)
        return s

    def http_get(self, path: str) -> tuple[str, bytes]:
        with self.connect("http") as s:
            s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
            data = recv_all(s)
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode()
        length = re.search(rb"Content-Length: (\d+)", head)
        assert length and int(length[1]) == len(body), head
        return status, body

    def close(self) -> None:
        self.twin.stop()


def recv_all(s: socket.socket) -> bytes:
    chunks = []
    while True:
        b = s.recv(65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def pattern(n: int) -> bytes:
    return bytes((i * 7 + 1) & 0xFF for i in range(n))


@pytest.fixture(scope="module")
def bench(lwiptest_elf, tmp_path_factory):
    b = LwipBench(lwiptest_elf, tmp_path_factory.mktemp("lwip"))
    try:
        b.wait_uart(r"lwiptest: ready http=80 echo=7 sink=9")
        yield b
    finally:
        b.close()


def test_dhcp_lease_and_arp(bench):
    bench.wait_uart(r"lwiptest: link up 100FD")
    m = bench.wait_uart(r"lwiptest: dhcp bound (\S+) mask (\S+) gw (\S+)")
    assert m.groups() == (BOARD_IP, "255.255.255.0", GATEWAY)
    m = bench.wait_uart(r"lwiptest: arp (\S+) at ([0-9a-f:]{17})")
    # libslirp's MAC for its own address: 52:55 followed by the IPv4 address
    assert m.groups() == (GATEWAY, "52:55:c0:a8:01:0a")


def test_http_forward(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    status, body = bench.http_get("/")
    assert status == "HTTP/1.0 200 OK"
    assert body.startswith(f"lwiptest ip={BOARD_IP} link 100FD".encode()), body
    status, body = bench.http_get("/nothing")
    assert status.startswith("HTTP/1.0 404")


def test_512k_board_to_host(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    status, body = bench.http_get(f"/bytes/{512 * 1024}")
    assert status == "HTTP/1.0 200 OK"
    assert len(body) == 512 * 1024 and body == pattern(512 * 1024)


def test_512k_host_to_board(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    data = os.urandom(512 * 1024)
    with bench.connect("sink") as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = recv_all(s)
    assert reply == b"SINK %d %08x\n" % (len(data), zlib.crc32(data))


def test_echo_both_directions(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    data = os.urandom(256 * 1024)
    got = bytearray()
    with bench.connect("echo") as s:

        def reader() -> None:
            while len(got) < len(data):
                b = s.recv(65536)
                if not b:
                    return
                got.extend(b)

        t = threading.Thread(target=reader)
        t.start()
        s.sendall(data)
        t.join(timeout=120)
        s.shutdown(socket.SHUT_WR)
    assert bytes(got) == data


def test_link_loss_and_recovery(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    mark = len(bench.uart())
    bench.twin.control("net.link", up=False)
    bench.wait_uart(r"lwiptest: link down", after=mark)
    with pytest.raises(OSError), bench.connect("http") as s:  # nobody answers while the cable is out
        s.settimeout(2)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        if not recv_all(s):
            raise ConnectionError("closed without an answer")
    mark = len(bench.uart())
    bench.twin.control("net.link", up=True)
    bench.wait_uart(r"lwiptest: link up 100FD", after=mark)
    bench.wait_uart(rf"lwiptest: dhcp bound {re.escape(BOARD_IP)}", after=mark)
    assert bench.http_get("/")[0] == "HTTP/1.0 200 OK"


def test_pcap_shows_the_macs_frames(bench):
    bench.wait_uart(r"lwiptest: dhcp bound")
    bench.http_get("/")
    raw = bench.pcap.read_bytes()
    assert len(raw) > 24
    magic, _, _, _, _, _, linktype = struct.unpack("<IHHiIII", raw[:24])
    assert magic == 0xA1B2C3D4 and linktype == 1  # Ethernet
    frames, off = [], 24
    while off + 16 <= len(raw):
        _, _, incl, _ = struct.unpack("<IIII", raw[off : off + 16])
        frames.append(raw[off + 16 : off + 16 + incl])
        off += 16 + incl
    ours = bytes.fromhex("0280e1")
    sent = [f for f in frames if f[6:9] == ours]
    assert any(f[12:14] == b"\x08\x06" for f in sent), "no ARP from the board"
    # DHCP: UDP from port 68 to 67; TCP: the HTTP server's segments from port 80
    assert any(f[12:14] == b"\x08\x00" and f[23] == 17 and f[34:38] == b"\x00\x44\x00\x43" for f in sent)
    assert any(f[12:14] == b"\x08\x00" and f[23] == 6 and f[34:36] == b"\x00\x50" for f in sent)
