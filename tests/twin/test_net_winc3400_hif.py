"""Every HIF exchange Microchip's driver makes with the microchip WINC3400 model, from
power-up to a received TCP payload (issue 17 §1/§4), driven through SPI1 and the GPIOs by
tests/twin/winc_host.py (a Python host that behaves like the driver)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct

import pytest
from net_harness import HostServer, free_closed_port
from winc_host import M2mHost, MicrochipHost, SpiWire, make_services

from twin import net
from twin.net import spi as S
from twin.net import winc_of
from twin.net.stack import NetStack
from twin.net.winc3400 import Winc3400

SERVER = "192.168.1.10"


class Rig:
    def __init__(self, port: int, seed: int = 0, split: float = 0.25, ap=None) -> None:
        self.m = make_services()
        self.stack = NetStack([f"{SERVER}:5000=127.0.0.1:{port}"])
        self.winc = Winc3400(self.stack, seed=seed, split_prob=split, ap=ap)
        self.spi = S.Stm32Spi(self.winc)
        self.m.add(self.spi)
        self.wire = SpiWire(self.m, self.spi)
        self.bus = MicrochipHost(self.wire)
        self.host = M2mHost(self.bus)

    def up(self, wifi: bool = True) -> M2mHost:
        self.host.reset_pins()
        self.host.init()
        if wifi:
            state, _ = self.host.wifi_connect("lab", "passphrase")
            assert state[0] == 1
        return self.host


@pytest.fixture
def server():
    srv = HostServer()
    yield srv
    srv.close()


@pytest.fixture
def rig(server):
    r = Rig(server.port)
    yield r
    r.stack.shutdown()


@pytest.fixture
def h(rig):
    return rig.up()


# ---------------------------------------------------------------- power-up and init
def test_power_up_to_firmware_ready(rig):
    h = rig.host
    h.reset_pins()
    b = rig.bus
    b.spi_init()
    assert rig.wire.log[0][0] == bytes.fromhex("CA 00 E8 24 BC")  # the first command on the wire
    assert b.read_reg(0x1000) == 0x1000F0 and h.chip_id() == 0x3400D2
    assert b.read_reg(0x13) & 4  # clocks on
    for addr in (0xC000C, 0x108C, 0x207AC):
        b.write_reg(addr, 0)
    assert b.read_reg(0x1400) & (1 << 10) == 0
    b.write_reg(0x1400, 1 << 10)  # CPU runs: boot ROM
    assert b.read_reg(0xC000C) == 0
    rig.m.advance_ns(2_000_000)
    assert b.read_reg(0x1014) & 0x80000000 and b.read_reg(0x207BC) & 1 == 0
    assert b.read_reg(0xC000C) == 0x10ADD09E
    b.write_reg(0xC000C, 0xEF522F61)
    rig.m.advance_ns(10_000_000)
    assert b.read_reg(0x108C) == 0  # still loading
    rig.m.advance_ns(10_000_000)
    assert b.read_reg(0x108C) == 0x02532636
    hif, rev = h.firmware_info()
    assert hif == 0x8104  # block 2, major 1, minor 4
    assert rev[:6] == bytes.fromhex("04 81 01 00 04 04") and rev[6:18] == b"Jan  1 2025\0"
    assert b.retries == 0


def test_full_init_like_m2m_wifi_init(rig):
    h = rig.up(wifi=False)
    assert rig.winc.chip.cpu == "running"
    assert rig.bus.read_reg(0x1408) & (1 << 8) and rig.bus.read_reg(0x1A00) & (1 << 16)
    assert rig.winc.bus.crc7_on is False and rig.winc.bus.crc16_on is False
    assert h.hif_send(1, 0x23, bytes(4)) == 0  # m2m_wifi_ble_set_gain_table: no reply
    rig.m.advance_ns(5_000_000)
    assert h.handle_events() == 0 and not rig.wire.irqn_low()


def test_irqn_is_driven_high_from_the_start(rig):
    # a released IRQN reads high (the shield's pull-up), so the first message is a falling edge
    assert rig.wire.gpiob.inputs.get(1) is True
    rig.wire.gpiof.out[12] = False
    rig.winc.sample_pins()
    assert rig.wire.gpiob.inputs.get(1) is True


def test_efuse_is_not_ready_at_once(rig):
    rig.wire.gpiof.out[13] = rig.wire.gpiof.out[12] = True
    rig.winc.sample_pins()
    rig.bus.spi_init()
    assert rig.bus.read_reg(0x1014) == 0
    rig.m.advance_ns(1_000_000)
    assert rig.bus.read_reg(0x1014) & 0x80000000


def test_start_firmware_before_the_boot_rom_finished_is_lost(rig):
    rig.host.reset_pins()
    b = rig.bus
    b.spi_init()
    b.write_reg(0x1400, 1 << 10)
    b.write_reg(0xC000C, 0xEF522F61)  # too early
    rig.m.advance_ns(50_000_000)
    assert b.read_reg(0x108C) != 0x02532636 and b.read_reg(0xC000C) == 0x10ADD09E


def test_clearing_cpu_run_stops_the_firmware(rig, server):
    h = rig.up()
    h.socket(0)
    assert h.connect(0, SERVER, 5000)[1] == 0
    conn = server.accept()
    rig.bus.write_reg(0x1400, 0)
    assert rig.winc.chip.cpu == "halted"
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        conn.recv(10)


# ---------------------------------------------------------------- HIF transport
def test_hif_buffer_request_and_bad_length(h, rig):
    b = rig.bus
    b.write_reg(0x108C, 1 | (0x03 << 8) | (2000 << 16))  # longer than 1596
    b.write_reg(0x1078, 2)
    b.write_reg(0x10AC, 1)
    assert b.read_reg(0x1078) & 2 == 0 and b.read_reg(0x150400) == 0  # M2M_ERR_MEM_ALLOC
    b.write_reg(0x108C, 1 | (0x03 << 8) | (8 << 16))
    b.write_reg(0x1078, 2)
    b.write_reg(0x10AC, 1)
    assert b.read_reg(0x150400) != 0


def test_wifi_connect_state_change_and_dhcp(rig):
    h = rig.up(wifi=False)
    state, dhcp = h.wifi_connect("lab", "secret-passphrase")
    assert state == bytes.fromhex("01 00 00 00")
    assert dhcp == bytes((192, 168, 1, 101, 192, 168, 1, 1, 192, 168, 1, 1, 255, 255, 255, 0)) + struct.pack(
        "<I", 86400
    )


@pytest.mark.parametrize(
    ("ssid", "passphrase", "state"),
    [
        ("lab", "right-one", "01 00 00 00"),
        ("other", "right-one", "00 01 00 00"),
        ("lab", "wrong", "00 03 00 00"),
    ],
)
def test_wifi_connect_against_a_configured_access_point(server, ssid, passphrase, state):
    r = Rig(server.port, ap=("lab", "right-one"))
    try:
        h = r.up(wifi=False)
        got, dhcp = h.wifi_connect(ssid, passphrase)
        assert got == bytes.fromhex(state) and bool(dhcp) == (got[0] == 1)
    finally:
        r.stack.shutdown()


def test_legacy_connect_request(rig):
    h = rig.up(wifi=False)
    msg = (
        b"passphrase".ljust(65, b"\0")
        + bytes((0, 0, 2))
        + struct.pack("<H", 255)
        + b"lab".ljust(33, b"\0")
        + b"\0"
    )
    assert len(msg) == 104
    assert h.hif_send(1, 0x28, msg) == 0
    assert h.wait_event(1, 0x2C)[0] == 1 and h.wait_event(1, 0x32)


def test_each_message_gets_its_own_falling_edge(h, rig):
    edges = rig.wire.falling_edges()
    for _ in range(2):
        assert h.hif_send(1, 0x03, bytes(4)) == 0  # two RSSI requests: two replies queued
    rig.m.pump(rig.wire.irqn_low)
    b = rig.bus
    assert rig.wire.falling_edges() == edges + 1
    reg = b.read_reg(0x1070)
    assert reg & 1 and (reg >> 2) & 0xFFF == 12  # 8 + 4 bytes
    b.write_reg(0x1070, reg & ~1)
    assert not rig.wire.irqn_low()  # the host cleared the interrupt
    rig.m.advance_ns(1_000_000)
    assert rig.wire.falling_edges() == edges + 1  # the second waits for RX done
    assert b.read_block(b.read_reg(0x1084), 12)[:4] == bytes.fromhex("01 04 0C 00")
    b.write_reg(0x10A8, 1)
    rig.m.advance_ns(100_000)
    assert rig.wire.irqn_low() and rig.wire.falling_edges() == edges + 2


def test_irqn_needs_the_interrupt_enable(h, rig):
    rig.bus.write_reg(0x1A00, 0)
    assert h.hif_send(1, 0x03, bytes(4)) == 0
    rig.m.advance_ns(1_000_000)
    assert not rig.wire.irqn_low() and rig.bus.read_reg(0x1070) & 1  # waiting, silently
    rig.bus.write_reg(0x1A00, 1 << 16)
    assert rig.wire.irqn_low()


def test_false_interrupt_and_rx_done_without_a_message(h, rig):
    assert rig.bus.read_reg(0x1070) & 1 == 0
    rig.bus.write_reg(0x10A8, 1)
    assert rig.winc.chip.stats["false_rx_done"] == 1


def test_connection_info_and_rssi(h):
    assert h.hif_send(1, 0x07, b"") == 0
    info = h.wait_event(1, 0x08)
    assert len(info) == 48 and info[:4] == b"lab\0" and info[34:38] == bytes((192, 168, 1, 101))
    assert h.hif_send(1, 0x03, bytes(4)) == 0
    assert h.wait_event(1, 0x04)[0] == 0xD8  # -40


# ---------------------------------------------------------------- sockets
def test_power_up_to_a_received_tcp_payload(rig, server):
    """The whole flow the thread's bootloader runs, with the messages in order."""
    h = rig.up()
    h.socket(0)
    assert h.connect(0, SERVER, 5000) == (0, 0, 88)
    conn = server.accept()
    assert h.send(0, b"REQ_FW\n") == 7
    assert server.recv_exact(conn, 7) == b"REQ_FW\n"
    conn.sendall(b"FILE_SIZE:9\n")
    got = b""
    while len(got) < 12:
        status, data = h.recv(0, 1024)
        assert 0 < status <= 1024 and len(data) == status
        got += data
    assert got == b"FILE_SIZE:9\n"
    h.close(0)
    assert server.recv_exact(conn, 1, timeout=5) == b""
    sent = [(g, o) for g, o in _requests(rig)]
    assert sent[:2] == [(1, 0x3D), (2, 0x44)] and sent[-1] == (2, 0x49)


def _requests(rig) -> list[tuple[int, int]]:
    """(gid, op) of the HIF requests the host announced in 0x108C, in order."""
    out = []
    for mosi, _ in rig.wire.log:
        if len(mosi) == 8 and mosi[0] == 0xC9 and mosi[1:4] == bytes.fromhex("00108C"):
            value = int.from_bytes(mosi[4:8], "big")
            if value:
                out.append((value & 0xFF, (value >> 8) & 0x7F))
    return out


def test_recv_reply_layout(h, rig, server):
    h.socket(3)
    h.connect(3, SERVER, 5000)
    conn = server.accept()
    conn.sendall(b"abc")
    h.recv_request(3, 100)
    rep = h.wait_event(2, 0x46)
    status, offset, sock, session = struct.unpack_from("<hHBxH", rep, 8)
    assert rep[:8] == struct.pack("<H", 2) + (5000).to_bytes(2, "big") + bytes((192, 168, 1, 10))
    assert (offset, sock, session) == (48, 3, h.sessions[3]) and 0 < status <= 3


def test_receives_follow_the_winc_rules(server):
    r = Rig(server.port, seed=7, split=0.5)
    try:
        h = r.up()
        h.socket(0)
        h.connect(0, SERVER, 5000)
        conn = server.accept()
        payload = os.urandom(40_000)
        conn.sendall(payload)
        got, sizes = bytearray(), []
        for buflen in [2000, 1400, 1024, 64, 1]:
            for _ in range(4):
                status, data = h.recv(0, buflen)
                assert 0 < status <= min(buflen, 1400) and len(data) == status
                sizes.append(status)
                got += data
        while len(got) < len(payload):
            status, data = h.recv(0, 4096)
            assert 0 < status <= 1400
            sizes.append(status)
            got += data
        assert bytes(got) == payload
        assert max(sizes) == 1400 and len(set(sizes)) > 5
    finally:
        r.stack.shutdown()


def test_split_points_are_reproducible_with_the_seed(server):
    def sizes(seed: int) -> list[int]:
        r = Rig(server.port, seed=seed, split=0.5)
        try:
            h = r.up()
            h.socket(0)
            h.connect(0, SERVER, 5000)
            conn = server.accept()
            conn.sendall(b"q" * 8000)
            r.m.pump(lambda: r.winc.firmware.sockets.sockets[0].conn.available() == 8000)
            out, total = [], 0
            while total < 8000:
                status, _ = h.recv(0, 1400)
                out.append(status)
                total += status
            return out
        finally:
            r.stack.shutdown()

    assert sizes(3) == sizes(3) != sizes(4)


def test_nothing_arrives_without_a_recv_request(h, rig, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    conn.sendall(b"a" * 100)
    status, _ = h.recv(0, 10)
    assert 0 < status <= 10
    rig.m.pump(lambda: rig.winc.firmware.sockets.sockets[0].conn.available() >= 90)
    rig.m.advance_ns(5_000_000)
    assert h.handle_events() == 0 and not rig.wire.irqn_low()


def test_two_recv_requests_get_two_replies_in_order(h, rig, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    h.recv_request(0, 5)
    h.recv_request(0, 5)
    conn.sendall(b"0123456789")
    first = h.wait_event(2, 0x46)
    second = h.wait_event(2, 0x46)
    data = first[16:] + second[16:]
    assert data == b"0123456789"[: len(data)] and len(first[16:]) <= 5


def test_recv_timeout_keeps_the_socket_open(h, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    assert h.recv(0, 100, timeout_ms=20) == (-13, b"")
    conn.sendall(b"late")
    status, data = h.recv(0, 100)
    assert status > 0 and data == b"late"[:status]


def test_peer_close_gives_the_data_then_zero_and_reset_gives_minus_12(h, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    conn.sendall(b"tail")
    conn.close()
    got = b""
    while (reply := h.recv(0, 100))[0] != 0:
        got += reply[1]
    assert got == b"tail" and h.recv(0, 100) == (0, b"")
    h.socket(1)
    h.connect(1, SERVER, 5000)
    conn2 = server.accept()
    conn2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn2.close()
    assert h.recv(1, 100)[0] == -12
    assert h.send(1, b"x") == -12


def test_send_limits_and_states(h, server):
    h.socket(0)
    assert h.send(0, b"x") == -9  # not connected
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    assert h.send(0, bytes(1401)) == -6  # more than SOCKET_BUFFER_MAX_LENGTH: nothing sent
    assert h.send(0, bytes(range(256)) * 5 + bytes(120)) == 1400
    assert server.recv_exact(conn, 1400) == bytes(range(256)) * 5 + bytes(120)


def test_connect_errors(rig, server):
    h = rig.up(wifi=False)
    h.socket(0)
    assert h.connect(0, SERVER, 5000)[1] == -9  # no WiFi/IP yet
    h.wifi_connect("lab", "passphrase")
    assert h.connect(0, "10.0.0.1", 80)[1] == -13  # no forward: unreachable
    h.socket(1)
    assert h.connect(1, SERVER, 5000)[1] == 0
    server.accept()
    assert h.connect(1, SERVER, 5000)[1] == -9  # already connected


def test_connect_refused(server):
    r = Rig(free_closed_port())
    try:
        h = r.up()
        h.socket(0)
        assert h.connect(0, SERVER, 5000) == (0, -12, 0)
    finally:
        r.stack.shutdown()


def test_bind_listen_and_udp(h):
    h.socket(7)
    bind = (
        struct.pack("<H", 2) + (6000).to_bytes(2, "big") + bytes(4) + struct.pack("<BBH", 7, 0, h.sessions[7])
    )
    assert h.hif_send(2, 0x41, bind) == 0
    assert h.wait_event(2, 0x41) == struct.pack("<bbH", 7, 0, h.sessions[7])
    assert h.send(7, b"datagram", op=0x47) == 8  # reported sent; nothing leaves the twin
    assert h.hif_send(2, 0x42, struct.pack("<BBH", 7, 1, h.sessions[7])) == 0
    assert h.wait_event(2, 0x42) == struct.pack("<bbH", 7, -9, h.sessions[7])


def test_recvfrom_on_tcp_answers_with_its_own_opcode(h, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    server.accept().sendall(b"hi")
    status, data = h.recv(0, 10, op=0x48)
    assert status > 0 and data == b"hi"[:status]


def test_close_sends_fin_after_pending_data(h, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    assert (
        h.hif_send(2, 0x45 | 0x80, struct.pack("<BBH8sHH", 0, 0, 3, bytes(8), h.sessions[0], 0), b"end", 80)
        == 0
    )
    h.close(0)
    assert server.recv_exact(conn, 10, timeout=5) == b"end"


def test_wifi_disconnect_resets_sockets(h, rig, server):
    h.socket(0)
    h.connect(0, SERVER, 5000)
    conn = server.accept()
    assert h.hif_send(1, 0x2B, b"") == 0
    assert h.wait_event(1, 0x2C)[:2] == b"\0\0"
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        conn.recv(10)


# ---------------------------------------------------------------- board wiring
def test_twin_option_selects_the_module_and_status_is_json(server):
    parser = argparse.ArgumentParser()
    net.add_arguments(parser)
    args = parser.parse_args(
        [
            "--winc-protocol",
            "microchip",
            "--winc-ap",
            "lab:pw",
            "--forward",
            f"{SERVER}:5000=127.0.0.1:{server.port}",
        ]
    )
    devs = net.devices(args)
    spi = next(d for d in devs if isinstance(d, S.Stm32Spi))
    winc = winc_of(spi)
    assert isinstance(winc, Winc3400) and winc.firmware.ap == ("lab", "pw")
    m = make_services()
    m.add(*devs)
    cmds = net.commands(devs)
    status = cmds["net.status"]({})
    assert status["wifi"]["protocol"] == "microchip"
    json.dumps(status)
    cmds["net.fault"]({"kind": "module_reset"})
    assert cmds["net.status"]({})["wifi"]["faults"]["counters"]["module_resets"] == 1
    net.shutdown(devs)
    default = parser.parse_args([])
    assert default.winc_protocol == "microchip"  # the only protocol (the old framing is gone)
    with pytest.raises(SystemExit):
        parser.parse_args(["--winc-protocol", "legacy"])


def test_requests_without_trailing_padding_are_taken(h, server):
    """tstrRecvCmd is 12 bytes with its padding (what Microchip's driver sends); a host that
    sends only the 10 bytes of fields is served the same."""
    h.socket(0)
    h.connect(0, SERVER, 5000)
    server.accept().sendall(b"ten")
    h.recv_buf[0] = 10
    assert h.hif_send(2, 0x46, struct.pack("<IBBHH", 0xFFFFFFFF, 0, 0, h.sessions[0], 10)) == 0
    rep = h.wait_event(2, 0x46)
    assert 0 < struct.unpack_from("<h", rep, 8)[0] <= 3


@pytest.mark.parametrize(
    ("name", "ip"), [(b"192.168.1.10", bytes((192, 168, 1, 10))), (b"ota.example", bytes(4))]
)
def test_gethostbyname(h, name, ip):
    assert h.hif_send(2, 0x4A | 0x80, name + b"\0") == 0
    reply = h.wait_event(2, 0x4A)
    assert len(reply) == 104 and reply[:100].rstrip(b"\0") == name and reply[100:] == ip


def test_irqn_read_while_a_message_is_due_is_a_poll_wait(h, rig):
    """Between RX done and the next message (20 µs) only that event changes IRQN: the read
    hook of the IRQN port asks for a poll wait (the read stalls to it)."""
    assert h.hif_send(1, 0x03, bytes(4)) == 0  # an RSSI request: its reply is due
    assert not rig.wire.irqn_low()
    waits = rig.m.poll_waits
    rig.winc._irqn_polled()  # what the IRQN port's read hook calls
    assert rig.m.poll_waits == waits + 1
    rig.m.pump(rig.wire.irqn_low)
    rig.winc._irqn_polled()  # presented: nothing to wait for
    assert rig.m.poll_waits == waits + 1
