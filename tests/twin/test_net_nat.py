"""The NAT host side on its own: forward parsing, CLI errors, and threads cleaned up."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from net_harness import HostServer

from twin.net.nat import NatHost, Reason, ip_to_str, parse_forward
from twin.testing import ServicesDouble


def test_parse_forward_ok():
    assert parse_forward("192.168.1.10:5000=127.0.0.1:40000") == (
        ("192.168.1.10", 5000),
        ("127.0.0.1", 40000),
    )


@pytest.mark.parametrize(
    "spec",
    [
        "192.168.1.10=127.0.0.1:5",
        "300.1.1.1:5=127.0.0.1:5",
        "1.2.3.4:0=127.0.0.1:5",
        "1.2.3.4:5=127.0.0.1:99999",
        "junk",
    ],
)
def test_parse_forward_rejects_with_the_expected_form(spec):
    with pytest.raises(ValueError, match=r"GUEST_IP:PORT=HOST:PORT|1..65535"):
        parse_forward(spec)


def test_ip_to_str_host_order():
    assert ip_to_str(0xC0A8010A) == "192.168.1.10"


def test_cli_bad_forward_exits_2_with_hint():
    proc = subprocess.run(
        [sys.executable, "-m", "twin", "--forward", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 2
    assert "GUEST_IP:PORT=HOST:PORT" in proc.stderr and proc.stdout == ""


class Sink:
    """Records what the NAT host reports (CPU thread)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def on_connected(self, conn):
        self.events.append(("connected", conn.id))

    def on_connect_failed(self, conn, reason):
        self.events.append(("failed", reason))

    def on_data(self, conn):
        self.events.append(("data", conn.available()))

    def on_closed(self, conn, reason):
        self.events.append(("closed", reason))

    def on_sent(self, conn, count):
        self.events.append(("sent", count))


def test_window_back_pressure_and_shutdown_joins_threads():
    srv = HostServer()
    m = ServicesDouble()
    nat = NatHost(
        m.post, {("192.168.1.10", 5000): ("127.0.0.1", srv.port)}, log=m.log, now_ns=m.now_ns, window=8192
    )
    sink = Sink()
    before = threading.active_count()
    try:
        conn = nat.open("t", 0xC0A8010A, 5000, sink)
        host = srv.accept()
        m.pump(lambda: ("connected", conn.id) in sink.events)
        host.setblocking(False)
        sent = 0
        try:
            while sent < 64 * 1024 * 1024:  # the host fills every buffer it can
                sent += host.send(b"x" * 65536)
        except BlockingIOError:
            pass
        m.pump(lambda: conn.available() >= 8192, timeout=10)
        for _ in range(50):
            m.run_posted()
        assert conn.available() < 8192 + 16384  # reader stopped at the window
        assert sent < 64 * 1024 * 1024  # so the host saw back-pressure
        got = conn.take(100_000)
        assert len(got) == conn.stats.bytes_to_fw and conn.stats.chunks_to_fw == 1
        conn.send(b"hello")
        m.pump(lambda: ("sent", 5) in sink.events)
        host.setblocking(True)
    finally:
        nat.shutdown()
        srv.close()
    for t in threading.enumerate():
        assert not t.name.startswith("net-conn") or not t.is_alive(), t.name
    assert threading.active_count() <= before


def test_unforwarded_is_unreachable_and_logged():
    m = ServicesDouble()
    nat = NatHost(m.post, {}, log=m.log, now_ns=m.now_ns)
    sink = Sink()
    nat.open("t", "10.0.0.1", 80, sink)
    m.pump(lambda: bool(sink.events))
    assert sink.events == [("failed", Reason.UNREACHABLE)]
    assert nat.snapshot()["ended"][0]["end_reason"] == "unreachable"
    assert "no forward" in m.logs[0] and "wall" in m.logs[0] and "virt" in m.logs[0]
