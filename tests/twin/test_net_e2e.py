"""nettest firmware on the twin, over both network paths, against a real loopback server.

The firmware (firmware/progs/nettest) is built into a temporary directory with the
project Makefile, loaded with ``python -m twin --load``, and configured for eth or wifi
through the boot config record at 0x08020000 (rig.bootcfg), exactly as the rig does.
Ethernet is lwIP on the STM32 ETH MAC + LAN8742A, through libslirp to the host; WiFi the
WINC3400 driver (Microchip's SPI/HIF protocol) and the twin's module, through its NAT.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from rig.bootcfg import BootConfig
from rig.targets.twin import start_twin

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


def build_nettest(tmp_path_factory, *make_vars: str) -> Path:
    if shutil.which("arm-none-eabi-gcc") is None:  # part of the set-up, never optional: an error
        pytest.fail(
            "arm-none-eabi-gcc not found on PATH: install the Debian package gcc-arm-none-eabi "
            "(apt-get install gcc-arm-none-eabi; `make setup` does it)",
            pytrace=False,
        )
    out = tmp_path_factory.mktemp("fwbuild")
    proc = subprocess.run(
        ["make", "-s", "-C", str(ROOT / "firmware"), f"B={out}", *make_vars, f"{out}/nettest.elf"],
        check=False,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out / "nettest.elf"


@pytest.fixture(scope="session")
def nettest_elf(tmp_path_factory) -> Path:
    return build_nettest(tmp_path_factory)


@pytest.fixture(scope="session")
def nettest_elf_crc_off(tmp_path_factory) -> Path:
    """nettest with the WINC driver's SPI CRC negotiated off, as Microchip's driver does."""
    return build_nettest(tmp_path_factory, "WIFI_CRC=0")


class Session:
    """One firmware connection seen from the host server."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.rfile = conn.makefile("rb")

    def line(self) -> bytes:
        data = self.rfile.readline()
        assert data.endswith(b"\n"), f"connection ended: {data!r}"
        return data.rstrip(b"\n")

    def exact(self, n: int) -> bytes:
        data = self.rfile.read(n)
        assert len(data) == n
        return data

    def send(self, data: bytes) -> None:
        self.conn.sendall(data)

    def close(self) -> None:
        self.rfile.close()
        self.conn.close()


class Bench:
    """A twin running nettest plus the host server its forward points at."""

    def __init__(self, elf: Path, tmp: Path, transport: str, extra: list[str]) -> None:
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.srv.settimeout(60)
        port = self.srv.getsockname()[1]
        cfg = tmp / "cfg.bin"
        cfg.write_bytes(BootConfig(transport=transport).pack())
        self.log = tmp / "twin.log"
        self.twin = start_twin(
            extra_args=[
                "--load",
                str(elf),
                "--load",
                f"{cfg}@0x08020000",
                "--forward",
                f"192.168.1.10:5000=127.0.0.1:{port}",
                *extra,
            ],
            log_path=self.log,
        )
        self.sessions: list[Session] = []

    def accept(self, hello: bytes) -> Session:
        conn, _ = self.srv.accept()
        conn.settimeout(60)
        s = Session(conn)
        self.sessions.append(s)
        assert s.line() == b"HELLO " + hello
        return s

    def control(self, cmd: str, **args: object) -> dict:
        return self.twin.control(cmd, **args)

    def uart(self) -> str:
        return str(self.control("uart_log")["text"])

    def close(self) -> None:
        for s in self.sessions:
            s.close()
        self.twin.stop()
        self.srv.close()


@pytest.fixture
def bench_factory(nettest_elf, tmp_path):
    benches: list[Bench] = []

    def make(transport: str, *extra: str) -> Bench:
        b = Bench(nettest_elf, tmp_path, transport, list(extra))
        benches.append(b)
        return b

    yield make
    for b in benches:
        b.close()


def sink(s: Session, data: bytes, buf: int) -> dict[str, int]:
    s.send(b"SINK %d %d\n" % (len(data), buf))
    assert s.line() == b"READY"
    s.send(data)
    reply = s.line().decode()
    m = re.fullmatch(r"SINK (\d+) crc=([0-9a-f]{8}) chunks=(\d+) min=(\d+) max=(\d+) over=(\d+)", reply)
    assert m, reply
    return {
        "n": int(m[1]),
        "crc": int(m[2], 16),
        "chunks": int(m[3]),
        "min": int(m[4]),
        "max": int(m[5]),
        "over": int(m[6]),
    }


def echo(s: Session, data: bytes, buf: int) -> bytes:
    s.send(b"ECHO %d %d\n" % (len(data), buf))
    assert s.line() == b"READY"
    s.send(data)
    back = s.exact(len(data))
    assert s.line().startswith(b"ECHO %d " % len(data))
    return back


def stats(s: Session) -> dict[str, int]:
    s.send(b"STATS\n")
    line = s.line().decode()
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}


@pytest.mark.parametrize("link", ["eth", "wifi"])
def test_both_directions_close_and_reconnect(bench_factory, link):
    transport = link
    b = bench_factory(transport)
    s = b.accept(transport.encode())
    data = os.urandom(20_000)
    assert echo(s, data, 1460) == data  # host -> fw -> host
    s.send(b"SOURCE 30000\n")
    got = s.exact(30_000)
    assert got == bytes((i * 7 + 1) & 0xFF for i in range(30_000))
    assert s.line() == b"SOURCE 30000"
    s.send(b"CLOSE\n")
    assert s.rfile.read(1) == b""  # firmware closed: FIN
    s2 = b.accept(transport.encode())  # and connected again
    assert sink(s2, b"abc" * 100, 1460)["crc"] == zlib.crc32(b"abc" * 100)
    status = b.control("net.status")
    if transport == "eth":  # frames through the MAC (headers included), both connections
        counters = status["frames"]["counters"]
        assert counters["to_board"]["bytes"] >= 20_000 + 300
        assert counters["from_board"]["bytes"] >= 50_000
    else:
        conns = status["nat"]
        assert conns["ended"][0]["bytes_to_fw"] >= 20_000
        assert conns["ended"][0]["bytes_from_fw"] >= 50_000


@pytest.mark.parametrize("link", ["eth", "wifi"])
def test_512k_arrives_intact(bench_factory, link):
    transport = link
    b = bench_factory(transport)
    s = b.accept(transport.encode())
    data = os.urandom(512 * 1024)
    r = sink(s, data, 1460)
    assert r["n"] == len(data) and r["crc"] == zlib.crc32(data)
    limit = 1460 if transport == "eth" else 1400
    assert r["max"] <= limit and r["over"] == 0
    if transport == "wifi":  # a clean link needs no recovery
        st = stats(s)
        assert st["crc_errors"] == st["retries"] == st["bad_frames"] == st["resets"] == 0


def test_wifi_chunks_bounded_by_posted_buffer(bench_factory):
    b = bench_factory("wifi", "--winc-split", "0.5", "--winc-seed", "11")
    s = b.accept(b"wifi")
    for buf in (300, 1400, 4000):
        data = os.urandom(40_000)
        r = sink(s, data, buf)
        assert r["crc"] == zlib.crc32(data)
        assert r["over"] == 0 and r["max"] <= min(buf, 1400)
        assert r["min"] < r["max"]  # split where the module decided
    sizes = {int(k) for k in b.control("net.status")["wifi"]["recv_sizes"]}
    assert max(sizes) <= 1400


def test_wifi_bit_errors_refused_by_the_crc_and_read_again(bench_factory):
    """The reference driver keeps the WINC's SPI CRC on: receive data damaged on MISO fail
    their CRC16, the driver reads the packet again, and the data arrive intact."""
    b = bench_factory("wifi")
    s = b.accept(b"wifi")
    # one 1400-byte packet in five damaged: each is read again (10 attempts at most)
    rate = 2e-5
    armed = b.control("net.fault", kind="bit_errors", rate=rate, seed=9)
    assert armed["armed"]["bit_errors_miso"] == rate
    data = os.urandom(64 * 1024)
    assert echo(s, data, 1400) == data
    counters = b.control("net.status")["wifi"]["faults"]["counters"]
    assert counters["bits_flipped_miso"] > 0
    st = stats(s)  # crc_errors: data packets whose CRC16 did not match
    assert 0 < st["crc_errors"] <= counters["bytes_corrupted_miso"]
    assert st["retries"] >= st["crc_errors"]


def test_wifi_bit_errors_pass_silently_with_crc_off(nettest_elf_crc_off, tmp_path):
    """Built with WIFI_CRC=0 (the SPI CRC negotiated off, Microchip's default): the same
    damage reaches the firmware, as in the forum thread, and nothing counts it."""
    b = Bench(nettest_elf_crc_off, tmp_path, "wifi", [])
    try:
        s = b.accept(b"wifi")
        rate = 2e-4
        b.control("net.fault", kind="bit_errors", rate=rate, seed=9)
        data = os.urandom(64 * 1024)
        back = echo(s, data, 1400)
        flips = sum(bin(x ^ y).count("1") for x, y in zip(data, back, strict=True))
        counters = b.control("net.status")["wifi"]["faults"]["counters"]
        assert flips == counters["bits_flipped_miso"]
        expected = len(data) * 8 * rate  # ~105
        assert 0.6 * expected < flips < 1.4 * expected
        assert stats(s)["crc_errors"] == 0
    finally:
        b.close()


def test_host_closes_mid_transfer_then_firmware_reconnects(bench_factory):
    for transport in ("eth", "wifi"):
        b = bench_factory(transport)
        s = b.accept(transport.encode())
        s.send(b"SINK 100000 1460\n")
        assert s.line() == b"READY"
        s.send(os.urandom(5000))
        s.close()
        b.accept(transport.encode())
        assert "peer closed after 5000 of 100000 bytes" in b.uart()


def test_host_reset_mid_transfer_then_firmware_reconnects(bench_factory):
    b = bench_factory("wifi")
    s = b.accept(b"wifi")
    s.send(b"SINK 100000 1460\n")
    assert s.line() == b"READY"
    s.send(os.urandom(3000))
    s.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    b.accept(b"wifi")
    assert "error -12" in b.uart()  # TR_ERR_ABORTED seen by the firmware


@pytest.mark.parametrize("link", ["eth", "wifi"])
@pytest.mark.parametrize("case", ["closed-port", "no-forward"])
def test_refused_or_unreachable_server_reported_and_retried(nettest_elf, tmp_path, link, case):
    # bound but never listening: connects are refused, and no other test can take the port
    # meanwhile (a closed port could be handed to another worker's server under -n)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    cfg = tmp_path / "cfg.bin"
    server_ip = "192.168.1.10" if case == "closed-port" else "10.9.8.7"
    cfg.write_bytes(BootConfig(transport=link, server_ip=server_ip).pack())
    twin = start_twin(
        extra_args=[
            "--load",
            str(nettest_elf),
            "--load",
            f"{cfg}@0x08020000",
            "--forward",
            f"192.168.1.10:5000=127.0.0.1:{port}",
        ],
        log_path=tmp_path / "twin.log",
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline and text.count("connect -3") < 2:
            time.sleep(0.2)
            text = str(twin.control("uart_log")["text"])
        assert text.count("nettest: connect -3") >= 2  # TR_ERR_REFUSED, and it retries
        if link == "wifi":
            ended = twin.control("net.status")["nat"]["ended"]
            assert ended and all(c["state"] == "failed" for c in ended)
            reasons = {c["end_reason"] for c in ended}
            assert reasons == ({"refused"} if case == "closed-port" else {"unreachable"})
    finally:
        twin.stop()
        closed.close()


def test_eth_link_down_aborts_then_reconnects_after_link_up(bench_factory):
    b = bench_factory("eth")
    s = b.accept(b"eth")
    s.send(b"SINK 100000 1460\n")
    assert s.line() == b"READY"
    b.control("net.link", up=False)  # the cable: the PHY reports the link down
    deadline = time.monotonic() + 30
    while "connect -3" not in b.uart() and time.monotonic() < deadline:
        time.sleep(0.1)
    # the driver aborts the connection on link loss (TR_ERR_ABORTED) and cannot connect
    # without a link (TR_ERR_REFUSED); the host's end of the old connection just idles
    assert "error -12" in b.uart() and "connect -3" in b.uart()
    b.control("net.link", up=True)
    b.accept(b"eth")


def test_wifi_survives_lost_irq_and_dropped_transfers(bench_factory):
    b = bench_factory("wifi")
    s = b.accept(b"wifi")
    b.control("net.fault", kind="irq", mode="lost", count=5)
    b.control("net.fault", kind="drop", rate=0.01, seed=4)
    data = os.urandom(100_000)
    r = sink(s, data, 1400)
    assert r["crc"] == zlib.crc32(data)
    st = stats(s)
    counters = b.control("net.status")["wifi"]["faults"]["counters"]
    assert counters["irqs_lost"] == 5 and counters["transfers_dropped"] > 0
    assert st["retries"] + st["bad_frames"] >= 1 and st["polls"] >= 1


def test_wifi_module_reset_breaks_connection_then_reconnects(bench_factory):
    b = bench_factory("wifi")
    s = b.accept(b"wifi")
    s.send(b"SINK 100000 1400\n")
    assert s.line() == b"READY"
    s.send(os.urandom(2000))
    b.control("net.fault", kind="module_reset")
    with pytest.raises(ConnectionResetError):  # the module dropped the socket
        s.rfile.read(1)
    b.accept(b"wifi")
    assert b.control("net.status")["wifi"]["faults"]["counters"]["module_resets"] == 1
    assert "error -12" in b.uart()


def _word(b: Bench, address: int) -> int:
    return int.from_bytes(bytes.fromhex(str(b.control("read", address=address, length=4)["hex"])), "little")


def test_wifi_irq_pending_while_up_and_quiesced_by_deinit(bench_factory):
    b = bench_factory("wifi")
    s = b.accept(b"wifi")
    exti_imr, exti_pr, nvic_ispr0, nvic_iser0 = 0x40013C00, 0x40013C14, 0xE000E200, 0xE000E100
    assert _word(b, exti_imr) & 2  # EXTI1 unmasked by the driver
    assert _word(b, nvic_ispr0) & (1 << 7)  # IRQN edges pended EXTI1 in the NVIC
    assert not _word(b, nvic_iser0) & (1 << 7)  # ...but the polled driver never enabled it
    s.send(b"QUIT\n")
    assert s.rfile.read(1) == b""
    deadline = time.monotonic() + 30
    while "nettest: done" not in b.uart() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "nettest: done" in b.uart()
    assert not _word(b, exti_imr) & 2 and not _word(b, exti_pr) & 2
    assert not _word(b, nvic_ispr0) & (1 << 7)
    assert not _word(b, nvic_ispr0 + 4) & (1 << (35 - 32))  # SPI1 not pending
    assert not _word(b, 0x40013000) & 0x40  # SPI1 CR1.SPE off


def test_eth_deinit_leaves_no_irq(bench_factory):
    b = bench_factory("eth")
    s = b.accept(b"eth")
    s.send(b"QUIT\n")
    assert s.rfile.read(1) == b""
    deadline = time.monotonic() + 30
    while "nettest: done" not in b.uart() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _word(b, 0x40030004) == 0  # CTRL.EN off
    assert _word(b, 0x40030010) == 0  # IER
    assert not _word(b, 0xE000E200 + 4) & (1 << (61 - 32))  # IRQ 61 not pending
