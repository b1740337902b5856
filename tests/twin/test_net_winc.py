"""SPI1 and the WINC3400-like module, driven through the SPI registers like firmware would."""

from __future__ import annotations

import os
import socket
import struct

import pytest
from net_harness import Gpio, HostServer, free_closed_port

from twin.net import spi as S
from twin.net import winc as W
from twin.net import winc_wire as WW
from twin.net.stack import NetStack
from twin.testing import ServicesDouble

GUEST_IP = 0xC0A8010A


class SpiFw:
    """What winc_spi.c does, in Python, through SPI1's registers and the GPIOs."""

    def __init__(self, m: ServicesDouble, spi: S.Stm32Spi, winc: W.WincModule) -> None:
        self.m, self.spi, self.winc = m, spi, winc
        self.gpiob, self.gpiod, self.gpiof = (m.devices[n] for n in ("gpiob", "gpiod", "gpiof"))
        self.gpiod.out[14] = True  # CS idle high
        self.spi.write(S.CR2, 4, 0x0700 | S.CR2_FRXTH)
        self.spi.write(S.CR1, 4, S.CR1_MSTR | S.CR1_SSM | S.CR1_SSI | S.CR1_SPE)

    def power_up(self) -> None:
        self.gpiof.out[13] = True
        self.gpiof.out[12] = True
        self.m.pump(lambda: self.winc.power == "ready")
        ev = self.event()
        assert ev is not None and ev[0] == W.EV_READY

    def xfer(self, b: int) -> int:
        self.spi.write(S.DR, 1, b)
        assert self.spi.read(S.SR, 4) & S.SR_RXNE
        return self.spi.read(S.DR, 1)

    def command(self, body: bytes, crc: int | None = None) -> int:
        self.gpiod.out[14] = False
        for b in bytes([WW.FRAME_CMD]) + struct.pack("<H", len(body)) + body:
            self.xfer(b)
        c = W.crc16(body) if crc is None else crc
        self.xfer(c & 0xFF)
        self.xfer(c >> 8)
        st = self.xfer(0)
        self.gpiod.out[14] = True
        return st

    def event(self) -> tuple[int, bytes, bool] | None:
        """(type, body, crc_ok) or None when the queue is empty."""
        self.gpiod.out[14] = False
        self.xfer(WW.FRAME_EVT)
        n = self.xfer(0) | (self.xfer(0) << 8)
        if n == 0:
            self.gpiod.out[14] = True
            return None
        assert n != 0xFFFF, "no answer"
        body = bytes(self.xfer(0) for _ in range(n))
        crc = self.xfer(0) | (self.xfer(0) << 8)
        self.gpiod.out[14] = True
        return body[0], body, crc == W.crc16(body)

    def irqn_low(self) -> bool:
        return self.gpiob.inputs.get(1) is False

    def wait_event(self, timeout: float = 10.0) -> tuple[int, bytes, bool]:
        self.m.pump(self.irqn_low, timeout=timeout)
        ev = self.event()
        assert ev is not None
        return ev

    def connect(self, sock: int, port: int, ip: int = GUEST_IP) -> int:
        assert self.command(struct.pack("<BBIH", W.OP_CONNECT, sock, ip, port)) == W.ST_ACK
        typ, body, _ = self.wait_event()
        assert typ == W.EV_CONNECT and body[1] == sock
        return struct.unpack_from("<b", body, 2)[0]

    def recv(self, sock: int, buflen: int, timeout_ms: int = 0) -> tuple[int, bytes]:
        st = self.command(struct.pack("<BBHI", W.OP_RECV, sock, buflen, timeout_ms))
        if st != W.ST_ACK:
            return -1000 - st, b""
        typ, body, _ok = self.wait_event()
        assert typ == W.EV_RECV and body[1] == sock
        size, _remaining = struct.unpack_from("<hH", body, 2)
        return size, body[6:]

    def send(self, sock: int, data: bytes) -> int:
        st = self.command(struct.pack("<BBH", W.OP_SEND, sock, len(data)) + data)
        if st != W.ST_ACK:
            return -1000 - st
        typ, body, _ = self.wait_event()
        assert typ == W.EV_SEND
        return struct.unpack_from("<h", body, 2)[0]


@pytest.fixture
def server():
    srv = HostServer()
    yield srv
    srv.close()


def make_rig(port: int, seed: int = 0, split: float = 0.25) -> tuple[SpiFw, NetStack]:
    m = ServicesDouble()
    for n in ("gpiob", "gpiod", "gpiof"):
        m.devices[n] = Gpio(n)
    stack = NetStack([f"192.168.1.10:5000=127.0.0.1:{port}"])
    winc = W.WincModule(stack, seed=seed, split_prob=split)
    spi = S.Stm32Spi(winc)
    m.add(spi)
    return SpiFw(m, spi, winc), stack


@pytest.fixture
def rig(server):
    fw, stack = make_rig(server.port)
    fw.power_up()
    yield fw
    stack.shutdown()


# ---------------------------------------------------------------- SPI peripheral
def test_spi_disabled_sends_nothing(rig):
    rig.spi.write(S.CR1, 4, 0)
    rig.spi.write(S.DR, 1, WW.FRAME_EVT)
    assert not rig.spi.read(S.SR, 4) & S.SR_RXNE
    assert rig.winc.faults.counters["transactions"] == 1  # only power_up's read


# ---------------------------------------------------------------- module basics
def test_module_held_in_reset_answers_nothing(server):
    fw, stack = make_rig(server.port)
    try:
        fw.gpiof.out[12] = False  # RESET_N low
        fw.gpiof.out[13] = True
        fw.m.advance_ns(5_000_000)
        assert fw.winc.power == "off"
        assert fw.command(bytes([W.OP_NOP])) == 0xFF
        fw.power_up()
        assert fw.command(bytes([W.OP_NOP])) == W.ST_ACK
    finally:
        stack.shutdown()


def test_cs_high_means_not_selected(rig):
    assert rig.xfer(WW.FRAME_EVT) == 0xFF  # CS still high
    assert rig.command(bytes([W.OP_NOP])) == W.ST_ACK


def test_bad_crc_and_opcode_and_length(rig):
    assert rig.command(bytes([W.OP_NOP]), crc=0x1234) == W.ST_CRC
    assert rig.command(bytes([0x77])) == W.ST_OPCODE
    big = struct.pack("<BBH", W.OP_SEND, 0, 1401) + bytes(1401)
    assert rig.command(big) == W.ST_ARG  # length checked before the socket
    assert rig.connect(0, 5000) == 0
    assert rig.command(big) == W.ST_ARG  # over SOCKET_BUFFER_MAX_LENGTH


def test_irqn_falls_with_event_and_rises_when_drained(rig, server):
    assert not rig.irqn_low()
    assert rig.command(struct.pack("<BBIH", W.OP_CONNECT, 1, GUEST_IP, 5000)) == W.ST_ACK
    rig.m.pump(rig.irqn_low)
    assert (1, False) in rig.gpiob.edges
    rig.event()
    assert not rig.irqn_low()
    assert rig.event() is None


# ---------------------------------------------------------------- sockets
def test_connect_send_recv_close(rig, server):
    assert rig.connect(0, 5000) == 0
    conn = server.accept()
    assert rig.send(0, b"REQ_FW\n") == 7
    assert server.recv_exact(conn, 7) == b"REQ_FW\n"
    conn.sendall(b"FILE_SIZE:9\n")
    size, data = rig.recv(0, 1400)
    got = data
    while len(got) < 12:
        size, data = rig.recv(0, 1400)
        assert size > 0
        got += data
    assert got == b"FILE_SIZE:9\n"
    assert rig.command(bytes([W.OP_CLOSE, 0])) == W.ST_ACK
    assert server.recv_exact(conn, 1, timeout=5) == b""


def test_recv_chunks_follow_winc_rules(server):
    fw, stack = make_rig(server.port, seed=7, split=0.5)
    try:
        fw.power_up()
        assert fw.connect(0, 5000) == 0
        conn = server.accept()
        payload = os.urandom(60_000)
        conn.sendall(payload)
        got = bytearray()
        sizes = []
        for buflen in [2000, 1400, 700, 64, 1]:
            for _ in range(8):
                size, data = fw.recv(0, buflen)
                assert 0 < size <= min(buflen, 1400) and len(data) == size
                sizes.append(size)
                got += data
        while len(got) < len(payload):
            size, data = fw.recv(0, 4096)
            assert 0 < size <= 1400
            sizes.append(size)
            got += data
        assert bytes(got) == payload
        assert max(sizes) == 1400  # full events when data waits
        assert len(set(sizes)) > 5  # and splits where the module decides
    finally:
        stack.shutdown()


def test_chunking_is_reproducible_with_seed(server):
    def sizes_for(seed: int) -> list[int]:
        fw, stack = make_rig(server.port, seed=seed, split=0.5)
        try:
            fw.power_up()
            fw.connect(0, 5000)
            conn = server.accept()
            conn.sendall(b"q" * 20_000)
            fw.m.pump(lambda: fw.winc.sockets[0].conn.available() == 20_000)
            out = []
            total = 0
            while total < 20_000:
                size, _ = fw.recv(0, 1400)
                out.append(size)
                total += size
            return out
        finally:
            stack.shutdown()

    assert sizes_for(3) == sizes_for(3)
    assert sizes_for(3) != sizes_for(4)


def test_recv_must_be_rearmed(rig, server):
    rig.connect(0, 5000)
    conn = server.accept()
    conn.sendall(b"a" * 100)
    size, _ = rig.recv(0, 10)
    assert 0 < size <= 10
    conn.sendall(b"b" * 100)
    rig.m.pump(lambda: rig.winc.sockets[0].conn.available() >= 190)
    assert not rig.irqn_low() and rig.event() is None  # nothing without a new RECV


def test_recv_twice_without_event_is_state_error(rig, server):
    rig.connect(0, 5000)
    server.accept()
    assert rig.command(struct.pack("<BBHI", W.OP_RECV, 0, 100, 0)) == W.ST_ACK
    assert rig.command(struct.pack("<BBHI", W.OP_RECV, 0, 100, 0)) == W.ST_STATE


def test_recv_timeout_keeps_socket_open(rig, server):
    rig.connect(0, 5000)
    conn = server.accept()
    size, _ = rig.recv(0, 100, timeout_ms=20)
    assert size == W.SOCK_ERR_TIMEOUT
    conn.sendall(b"late")
    size, data = rig.recv(0, 100)
    assert data[:size] == b"late"[:size] and size > 0


def test_send_before_connect_and_recv_on_closed_socket(rig):
    assert rig.send(2, b"x") == -1000 - W.ST_STATE
    assert rig.recv(2, 10)[0] == -1000 - W.ST_STATE
    assert rig.command(struct.pack("<BBHI", W.OP_RECV, 9, 10, 0)) == W.ST_ARG


def test_peer_close_then_reset_errors(rig, server):
    rig.connect(0, 5000)
    conn = server.accept()
    conn.sendall(b"tail")
    conn.close()
    got = b""
    while True:
        size, data = rig.recv(0, 100)
        if size == 0:
            break
        got += data
    assert got == b"tail"
    rig.connect(1, 5000)
    conn2 = server.accept()
    conn2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn2.close()
    assert rig.recv(1, 100)[0] == W.SOCK_ERR_CONN_ABORTED


def test_connect_refused_and_unreachable(server):
    fw, stack = make_rig(free_closed_port())
    try:
        fw.power_up()
        assert fw.connect(0, 5000) == W.SOCK_ERR_CONN_ABORTED  # forward to a closed port
        assert fw.connect(1, 80, ip=0x0A000001) == W.SOCK_ERR_TIMEOUT  # no forward
    finally:
        stack.shutdown()


# ---------------------------------------------------------------- faults
def _echo_through(fw: SpiFw, server: HostServer, nbytes: int) -> tuple[bytes, bytes]:
    fw.connect(0, 5000)
    conn = server.accept()
    payload = os.urandom(nbytes)
    conn.sendall(payload)
    got = bytearray()
    while len(got) < nbytes:
        size, data = fw.recv(0, 1400)
        assert size > 0
        got += data
    return payload, bytes(got)


def _bit_diff(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=False))


def test_bit_errors_corrupt_payload_at_rate_and_are_counted(server):
    fw, stack = make_rig(server.port, seed=1)
    try:
        fw.power_up()
        fw.winc.faults.arm_bit_errors(1e-3, seed=42)
        sent, got = _echo_through(fw, server, 50_000)
        flips = _bit_diff(sent, got)
        counted = fw.winc.faults.counters["bits_flipped_miso"]
        assert flips == counted
        expected = 50_000 * 8 * 1e-3  # 400
        assert 0.7 * expected < flips < 1.3 * expected
    finally:
        stack.shutdown()


def test_bit_errors_reproducible(server):
    def run(seed: int) -> list[int]:
        fw, stack = make_rig(server.port, seed=1, split=0.0)
        try:
            fw.power_up()
            fw.winc.faults.arm_bit_errors(1e-3, seed=seed)
            fw.connect(0, 5000)
            conn = server.accept()
            conn.sendall(bytes(20_000))
            fw.m.pump(lambda: fw.winc.sockets[0].conn.available() == 20_000)
            got = bytearray()
            while len(got) < 20_000:
                got += fw.recv(0, 1400)[1]
            return [i for i, b in enumerate(got) if b]
        finally:
            stack.shutdown()

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_crc_reveals_payload_corruption(rig, server):
    rig.winc.faults.arm_bit_errors(0.01, seed=3, scope="payload")
    rig.connect(0, 5000)
    conn = server.accept()
    conn.sendall(b"\x00" * 1400)
    assert rig.command(struct.pack("<BBHI", W.OP_RECV, 0, 1400, 0)) == W.ST_ACK
    _typ, body, ok = rig.wait_event()
    assert not ok and any(body[6:])  # CRC over the clean data exposes the flips


def test_dropped_transfer_is_not_executed(rig, server):
    rig.winc.faults.arm_drop(nth=1)
    assert rig.command(struct.pack("<BBIH", W.OP_CONNECT, 0, GUEST_IP, 5000)) == 0xFF
    assert rig.winc.faults.counters["transfers_dropped"] == 1
    assert rig.winc.sockets[0].phase == "idle"
    assert rig.connect(0, 5000) == 0  # the retry works


def test_lost_interrupt_event_still_readable(rig, server):
    rig.winc.faults.arm_irq("lost", count=1)
    assert rig.command(struct.pack("<BBIH", W.OP_CONNECT, 0, GUEST_IP, 5000)) == W.ST_ACK
    rig.m.pump(lambda: len(rig.winc.events) > 0)
    assert not rig.irqn_low()
    typ, _body, _ = rig.event()
    assert typ == W.EV_CONNECT and rig.winc.faults.counters["irqs_lost"] == 1


def test_delayed_interrupt(rig, server):
    rig.winc.faults.arm_irq("delay", count=1, delay_us=3000)
    rig.command(struct.pack("<BBIH", W.OP_CONNECT, 0, GUEST_IP, 5000))
    rig.m.pump(lambda: len(rig.winc.events) > 0)
    t0 = rig.m.now_ns()
    rig.m.pump(rig.irqn_low)
    assert rig.m.now_ns() - t0 >= 2_000_000


def test_module_reset_fault_drops_sockets_and_reports_ready(rig, server):
    rig.connect(0, 5000)
    conn = server.accept()
    rig.winc.fault_reset()
    with pytest.raises(ConnectionResetError):
        conn.settimeout(5)
        conn.recv(10)
    assert rig.command(bytes([W.OP_NOP])) == 0xFF  # booting
    typ, _, _ = rig.wait_event()
    assert typ == W.EV_READY
    assert rig.send(0, b"x") == -1000 - W.ST_STATE
    assert rig.winc.faults.counters["module_resets"] == 1


def test_reset_pin_low_resets_module(rig, server):
    rig.connect(0, 5000)
    conn = server.accept()
    rig.gpiof.out[12] = False
    rig.m.advance_ns(2_000_000)
    assert rig.winc.power == "off"
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        conn.recv(10)


def test_mosi_bit_errors_caught_by_command_crc_and_retried(rig, server):
    rig.winc.faults.arm_bit_errors(5e-5, seed=8, direction="mosi")
    rig.connect(0, 5000)
    conn = server.accept()
    sent = os.urandom(1400 * 30)
    rejected = 0
    for i in range(0, len(sent), 1400):
        while (res := rig.send(0, sent[i : i + 1400])) == -1000 - W.ST_CRC:
            rejected += 1  # what winc_spi.c does: send again
        assert res == 1400
    assert server.recv_exact(conn, len(sent)) == sent  # nothing corrupt got through
    assert rejected == rig.winc.stats["crc_errors"] > 0
    assert rig.winc.faults.counters["bits_flipped_mosi"] >= rejected
    assert rig.winc.faults.counters["bits_flipped_miso"] == 0


class ListeningGpio(Gpio):
    """A port that reports output changes to listeners, like twin.periph.gpio."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.listeners = []

    def add_listener(self, fn) -> None:
        self.listeners.append(fn)

    def set_out(self, pin: int, level: bool) -> None:
        self.out[pin] = level
        for fn in self.listeners:
            fn(pin, level)


def test_pins_followed_through_gpio_listeners(server):
    m = ServicesDouble()
    for n in ("gpiob", "gpiod", "gpiof"):
        m.devices[n] = ListeningGpio(n)
    stack = NetStack([f"192.168.1.10:5000=127.0.0.1:{server.port}"])
    winc = W.WincModule(stack)
    spi = S.Stm32Spi(winc)
    try:
        m.add(spi)
        assert winc._hooked and winc._poll_handle is None  # no polling timer
        fw = SpiFw(m, spi, winc)
        m.devices["gpiof"].set_out(13, True)
        m.devices["gpiof"].set_out(12, True)
        assert winc.power == "booting"  # seen at once, no time passed
        m.pump(lambda: winc.power == "ready")
        assert fw.event()[0] == W.EV_READY
        m.devices["gpiof"].set_out(12, False)
        assert winc.power == "off"
    finally:
        stack.shutdown()


# ---------------------------------------------------------------- robustness
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(0, 255), max_size=400), st.integers(0, 2**32 - 1))
def test_random_spi_bytes_never_crash_the_module(server, data, cr2):
    fw, stack = make_rig(server.port)
    try:
        fw.power_up()
        fw.gpiod.out[14] = False
        fw.spi.write(S.CR2, 4, cr2 & 0x7FFF)
        for b in data:
            fw.spi.write(S.DR, 1 + (b & 1), b)
            fw.spi.read(S.SR, 4)
            fw.spi.read(S.DR, 1 + (b >> 7))
        fw.gpiod.out[14] = True
        fw.winc.sample_pins()
        fw.spi.write(S.CR2, 4, 0x0700 | S.CR2_FRXTH)
        fw.spi.read(S.DR, 2)
        fw.spi.read(S.DR, 2)
        assert fw.command(bytes([W.OP_NOP])) == W.ST_ACK  # framing recovers after CS high
    finally:
        stack.shutdown()


def _crc16_table_reference(data: bytes, crc: int = 0xFFFF) -> int:
    """The table-driven CRC-16/CCITT-FALSE twin/net/winc.py used before binascii.crc_hqx,
    kept here only as the reference."""
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else c << 1
        table.append(c & 0xFFFF)
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ b) & 0xFF]
    return crc


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=1500), st.integers(0, 0xFFFF))
def test_crc16_is_the_table_crc(data: bytes, start: int) -> None:
    assert W.crc16(data) == _crc16_table_reference(data)
    assert W.crc16(data, start) == _crc16_table_reference(data, start)


def test_crc16_check_value() -> None:
    assert W.crc16(b"123456789") == 0x29B1  # CRC-16/CCITT-FALSE check value (CRC catalogue)
