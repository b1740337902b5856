"""The socket-offload Ethernet device, driven through its registers like firmware would."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from net_harness import HostServer, free_closed_port

from twin.net import eth as E
from twin.net.stack import NetStack
from twin.testing import RAM_BASE, ServicesDouble

GUEST_IP = 0xC0A8010A  # 192.168.1.10


class Fw:
    """Register-level helper: what eth_twin.c does, in Python."""

    def __init__(self, m: ServicesDouble, dev: E.EthOffload) -> None:
        self.m, self.d = m, dev

    def rd(self, off: int) -> int:
        return self.d.read(off, 4)

    def rds(self, off: int) -> int:
        return struct.unpack("<i", struct.pack("<I", self.rd(off)))[0]

    def wr(self, off: int, value: int) -> None:
        self.d.write(off, 4, value)

    def wait_isr(self, bits: int, timeout: float = 10.0) -> None:
        self.m.pump(lambda: bool(self.rd(E.ISR) & bits), timeout=timeout)

    def connect(self, port: int) -> int:
        self.wr(E.ISR, E.IF_ALL)
        self.wr(E.IP, GUEST_IP)
        self.wr(E.PORT, port)
        self.wr(E.CMD, E.CMD_CONNECT)
        self.wait_isr(E.IF_CONN)
        self.wr(E.ISR, E.IF_CONN)
        return self.rds(E.CONN_RES)

    def recv(self, addr: int, max_len: int) -> int:
        self.wr(E.ISR, E.IF_RX | E.IF_ERR)
        self.wr(E.RX_ADDR, addr)
        self.wr(E.RX_MAX, max_len)
        self.wr(E.CMD, E.CMD_RECV)
        if self.rd(E.ISR) & E.IF_ERR:
            return self.rds(E.ERR)
        self.wait_isr(E.IF_RX)
        self.wr(E.ISR, E.IF_RX)
        return self.rds(E.RX_RES)

    def send(self, addr: int, data: bytes) -> int:
        self.m.bus_master().write(addr, data)
        self.wr(E.ISR, E.IF_TX | E.IF_ERR)
        self.wr(E.TX_ADDR, addr)
        self.wr(E.TX_LEN, len(data))
        self.wr(E.CMD, E.CMD_SEND)
        if self.rd(E.ISR) & E.IF_ERR:
            return self.rds(E.ERR)
        self.wait_isr(E.IF_TX)
        self.wr(E.ISR, E.IF_TX)
        return self.rds(E.TX_RES)


@pytest.fixture
def server():
    srv = HostServer()
    yield srv
    srv.close()


@pytest.fixture
def rig(server):
    m = ServicesDouble()
    stack = NetStack([f"192.168.1.10:5000=127.0.0.1:{server.port}"])
    dev = E.EthOffload(stack)
    m.add(dev)
    fw = Fw(m, dev)
    fw.wr(E.CTRL, E.CTRL_EN)
    yield fw
    stack.shutdown()


def test_id_mss_and_reset_values(rig):
    assert rig.rd(E.ID) == E.ETH_ID
    assert rig.rd(E.MSS_REG) == 1460
    assert rig.rd(E.STATUS) & E.ST_LINK
    assert rig.rd(E.ISR) == 0
    assert rig.d.read(E.ID + 1, 1) == (E.ETH_ID >> 8) & 0xFF


def test_connect_send_recv_close(rig, server):
    assert rig.connect(5000) == 0
    conn = server.accept()
    assert rig.rd(E.STATUS) & E.ST_CONNECTED
    assert rig.send(RAM_BASE + 0x100, b"REQ_FW\n") == 7
    assert server.recv_exact(conn, 7) == b"REQ_FW\n"
    conn.sendall(b"FILE_SIZE:42\n")
    n = rig.recv(RAM_BASE + 0x1000, 512)
    assert n == 13
    assert rig.m.bus_master().read(RAM_BASE + 0x1000, n) == b"FILE_SIZE:42\n"
    rig.wr(E.CMD, E.CMD_CLOSE)
    assert server.recv_exact(conn, 1, timeout=5) == b""  # host sees FIN
    assert not rig.rd(E.STATUS) & E.ST_CONNECTED


def test_chunks_never_exceed_mss_or_buffer_and_coalesce(rig, server):
    rig.connect(5000)
    conn = server.accept()
    payload = os.urandom(100_000)
    conn.sendall(payload)
    got = bytearray()
    sizes = []
    while len(got) < len(payload):
        n = rig.recv(RAM_BASE + 0x2000, 4096)
        assert n > 0
        sizes.append(n)
        got += rig.m.bus_master().read(RAM_BASE + 0x2000, n)
    assert bytes(got) == payload
    assert max(sizes) <= 1460
    assert sizes.count(1460) >= len(sizes) - 20  # data waiting -> full segments
    small = rig.recv  # buffer smaller than MSS caps the delivery
    conn.sendall(b"x" * 3000)
    assert small(RAM_BASE, 100) == 100


def test_irq_line_follows_isr_and_ier(rig, server):
    rig.wr(E.IER, E.IF_CONN)
    rig.connect(5000)  # connect() clears IF_CONN after seeing it
    assert rig.m.irqs.get(E.ETH_IRQ) is False
    server.accept().sendall(b"hi")
    rig.wr(E.IER, E.IF_RX)
    rig.wr(E.RX_ADDR, RAM_BASE)
    rig.wr(E.RX_MAX, 64)
    rig.wr(E.CMD, E.CMD_RECV)
    rig.wait_isr(E.IF_RX)
    assert rig.m.irqs[E.ETH_IRQ] is True
    rig.wr(E.ISR, E.IF_RX)
    assert rig.m.irqs[E.ETH_IRQ] is False


def test_send_before_connect_is_state_error(rig):
    assert rig.send(RAM_BASE, b"abc") == E.E_STATE
    assert rig.rd(E.ISR) & E.IF_ERR


def test_recv_without_connection_is_state_error(rig):
    assert rig.recv(RAM_BASE, 64) == E.E_STATE


def test_unforwarded_address_is_unreachable(rig):
    rig.wr(E.IP, 0x08080808)
    rig.wr(E.PORT, 53)
    rig.wr(E.CMD, E.CMD_CONNECT)
    rig.wait_isr(E.IF_CONN)
    assert rig.rds(E.CONN_RES) == E.E_UNREACHABLE
    assert any("no forward" in line for line in rig.m.logs)


def test_forward_to_closed_port_is_refused():
    m = ServicesDouble()
    stack = NetStack([f"192.168.1.10:5000=127.0.0.1:{free_closed_port()}"])
    dev = E.EthOffload(stack)
    m.add(dev)
    fw = Fw(m, dev)
    fw.wr(E.CTRL, E.CTRL_EN)
    try:
        assert fw.connect(5000) == E.E_REFUSED
        assert not fw.rd(E.STATUS) & (E.ST_CONNECTED | E.ST_CONNECTING)
    finally:
        stack.shutdown()


def test_host_closes_mid_transfer_data_then_zero(rig, server):
    rig.connect(5000)
    conn = server.accept()
    conn.sendall(b"A" * 3000)
    conn.close()
    total = 0
    while True:
        n = rig.recv(RAM_BASE, 2048)
        if n == 0:
            break
        assert n > 0
        total += n
    assert total == 3000
    assert rig.rd(E.CLOSE_REASON) == E.CLOSE_FIN
    assert rig.recv(RAM_BASE, 2048) == 0  # stays "closed", never hangs


def test_host_reset_gives_aborted(rig, server):
    rig.connect(5000)
    conn = server.accept()
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # RST
    rig.m.pump(lambda: bool(rig.rd(E.ISR) & E.IF_CLOSED))
    assert rig.recv(RAM_BASE, 64) == E.E_ABORTED
    assert rig.send(RAM_BASE, b"x") == E.E_ABORTED
    assert rig.rd(E.CLOSE_REASON) == E.CLOSE_RESET


def test_link_down_aborts_and_blocks_connect(rig, server):
    rig.connect(5000)
    server.accept()
    rig.d.set_link(False)
    assert rig.rd(E.ISR) & E.IF_LINK
    assert not rig.rd(E.STATUS) & E.ST_LINK
    assert rig.recv(RAM_BASE, 64) == E.E_ABORTED
    rig.wr(E.CMD, E.CMD_CLOSE)
    assert rig.connect(5000) == E.E_UNREACHABLE
    rig.d.set_link(True)
    assert rig.connect(5000) == 0


def test_disabled_device_rejects_commands(rig):
    rig.wr(E.CTRL, 0)
    rig.wr(E.CMD, E.CMD_CONNECT)
    assert rig.rds(E.ERR) == E.E_DISABLED


def test_bad_dma_buffer_is_rejected_not_crash(rig, server):
    rig.connect(5000)
    server.accept()
    rig.wr(E.TX_LEN, 0)
    rig.wr(E.ISR, E.IF_ALL)
    rig.wr(E.CMD, E.CMD_SEND)
    assert rig.rds(E.ERR) == E.E_ARG  # zero length
    rig.wr(E.ERR, 0)
    rig.wr(E.TX_ADDR, 0x10000000)
    rig.wr(E.TX_LEN, 16)
    rig.wr(E.ISR, E.IF_ALL)
    rig.wr(E.CMD, E.CMD_SEND)
    assert rig.rds(E.ERR) == E.E_ARG


def test_stats_and_log_have_timestamps(rig, server):
    rig.connect(5000)
    conn = server.accept()
    conn.sendall(b"z" * 5000)
    got = 0
    while got < 5000:
        got += rig.recv(RAM_BASE, 1460)
    snap = rig.d.stack.nat.snapshot()
    c = snap["connections"][0]
    assert c["bytes_to_fw"] == 5000
    assert c["chunks_to_fw"] >= 4 and c["max_chunk_to_fw"] <= 1460
    assert any("wall" in line and "virt" in line for line in rig.m.logs)


def test_system_reset_aborts_connection(rig, server):
    rig.connect(5000)
    conn = server.accept()
    rig.d.reset("system")
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        conn.recv(10)
    assert rig.rd(E.CTRL) == 0
    assert not rig.rd(E.STATUS) & E.ST_CONNECTED


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(st.sampled_from(range(0, 0x60, 4)), st.integers(0, 2**32 - 1), st.booleans()), max_size=60
    )
)
def test_random_register_traffic_never_crashes(rig, ops):
    for off, value, is_write in ops:
        if is_write:
            rig.wr(off, value)
        else:
            rig.rd(off)
        rig.m.run_posted()
    rig.wr(E.CMD, E.CMD_CLOSE)
    rig.wr(E.CTRL, E.CTRL_EN)
    assert rig.rd(E.ID) == E.ETH_ID
