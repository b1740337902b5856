"""Seeded faults on the microchip WINC3400 model (issue 17 §1): bit errors that pass silently
with CRC off and are refused with CRC on, dropped transfers, lost and late interrupts, a
module reset; driven by tests/twin/winc_host.py like Microchip's driver (CRC off) or like a
driver that keeps CRC on and checks it (``keep_crc``)."""

from __future__ import annotations

import os

import pytest
from net_harness import HostServer
from winc_host import BusError, M2mHost, MicrochipHost, SpiWire, make_services

from twin.net import spi as S
from twin.net.stack import NetStack
from twin.net.winc3400 import Winc3400

SERVER = "192.168.1.10"


class Rig:
    def __init__(self, port: int, keep_crc: bool = False, seed: int = 0, split: float = 0.25) -> None:
        self.m = make_services()
        self.stack = NetStack([f"{SERVER}:5000=127.0.0.1:{port}"])
        self.winc = Winc3400(self.stack, seed=seed, split_prob=split)
        self.spi = S.Stm32Spi(self.winc)
        self.m.add(self.spi)
        self.wire = SpiWire(self.m, self.spi)
        self.bus = MicrochipHost(self.wire, keep_crc=keep_crc)
        self.h = M2mHost(self.bus)
        self.faults = self.winc.faults

    def up(self, server: HostServer):
        self.h.reset_pins()
        self.h.init()
        assert self.h.wifi_connect("lab", "passphrase")[0][0] == 1
        self.h.socket(0)
        assert self.h.connect(0, SERVER, 5000)[1] == 0
        return server.accept()

    def receive(self, n: int, buflen: int = 1400) -> bytes:
        got = bytearray()
        while len(got) < n:
            status, data = self.h.recv(0, buflen)
            assert status > 0
            got += data
        return bytes(got)


@pytest.fixture
def server():
    srv = HostServer()
    yield srv
    srv.close()


@pytest.fixture
def rigs():
    made: list[Rig] = []

    def make(port: int, **kw) -> Rig:
        made.append(Rig(port, **kw))
        return made[-1]

    yield make
    for r in made:
        r.stack.shutdown()


def _bit_diff(a: bytes, b: bytes) -> int:
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


def test_miso_bit_errors_pass_silently_with_crc_off(rigs, server):
    r = rigs(server.port, seed=1)
    conn = r.up(server)
    r.faults.arm_bit_errors(1e-3, seed=42)  # payload only: recv data on MISO
    payload = os.urandom(40_000)
    conn.sendall(payload)
    got = r.receive(len(payload))
    flips = _bit_diff(payload, got)
    assert flips == r.faults.counters["bits_flipped_miso"]
    assert 0.7 * 320 < flips < 1.3 * 320
    assert r.bus.retries == 0  # nobody noticed


def test_miso_bit_errors_are_caught_with_crc_on(rigs, server):
    r = rigs(server.port, keep_crc=True)
    conn = r.up(server)
    assert r.winc.bus.crc16_on
    r.faults.arm_bit_errors(1e-4, seed=42)  # ~20 % of the 248-byte reads damaged
    payload = os.urandom(40_000)
    conn.sendall(payload)
    assert r.receive(len(payload)) == payload  # every damaged packet refused and read again
    assert r.bus.crc_mismatches > 5 and r.faults.counters["bits_flipped_miso"] > 0


def test_miso_bit_errors_are_reproducible(rigs, server):
    def flipped(seed: int) -> list[int]:
        r = rigs(server.port, split=0.0)
        conn = r.up(server)
        r.faults.arm_bit_errors(1e-3, seed=seed)
        conn.sendall(bytes(12_000))
        r.m.pump(lambda: r.winc.firmware.sockets.sockets[0].conn.available() == 12_000)
        return [i for i, b in enumerate(r.receive(12_000)) if b]

    assert flipped(5) == flipped(5) != flipped(6)


def test_mosi_bit_errors_on_send_data_silent_with_crc_off(rigs, server):
    r = rigs(server.port)
    conn = r.up(server)
    r.faults.arm_bit_errors(2e-3, seed=8, direction="mosi")
    sent = os.urandom(1400 * 10)
    for i in range(0, len(sent), 1400):
        assert r.h.send(0, sent[i : i + 1400]) == 1400
    got = server.recv_exact(conn, len(sent))
    assert _bit_diff(sent, got) == r.faults.counters["bits_flipped_mosi"] > 0


def test_mosi_bit_errors_refused_with_crc_on(rigs, server):
    r = rigs(server.port, keep_crc=True)
    conn = r.up(server)
    r.faults.arm_bit_errors(1e-4, seed=8, direction="mosi")
    sent = os.urandom(1400 * 10)
    for i in range(0, len(sent), 1400):
        assert r.h.send(0, sent[i : i + 1400]) == 1400
    assert server.recv_exact(conn, len(sent)) == sent  # nothing damaged got through
    assert r.winc.bus.stats["crc16_errors"] > 0 and r.bus.retries >= r.winc.bus.stats["crc16_errors"]


def test_bit_errors_on_commands_refused_by_crc7(rigs, server):
    r = rigs(server.port, keep_crc=True)
    conn = r.up(server)
    r.faults.arm_bit_errors(3e-4, seed=3, direction="both", scope="all")
    conn.sendall(b"x" * 5000)
    assert r.receive(5000) == b"x" * 5000
    assert r.winc.bus.stats["crc7_errors"] > 0


def test_dropped_transfers_are_retried_by_the_driver(rigs, server):
    r = rigs(server.port)
    conn = r.up(server)
    r.faults.arm_drop(rate=0.05, seed=4)
    assert r.h.send(0, b"hello") == 5
    assert server.recv_exact(conn, 5) == b"hello"
    conn.sendall(b"y" * 3000)
    assert r.receive(3000) == b"y" * 3000
    dropped = r.faults.counters["transfers_dropped"]
    assert dropped > 0 and r.bus.retries > 0 and r.winc.bus.stats["dropped"] == dropped


def test_dropped_write_swallows_its_data(rigs, server):
    r = rigs(server.port)
    r.up(server)
    r.faults.arm_drop(nth=1)
    looks_like_a_command = bytes.fromhex("C9 00 14 A0 12 34 56 78")  # write 0x14A0
    r.bus.write_block(0xD0000, looks_like_a_command)
    assert r.bus.read_reg(0x14A0) == 0  # the swallowed data did not execute
    assert r.bus.read_block(0xD0000, 8) == looks_like_a_command  # the retry wrote it
    assert r.faults.counters["transfers_dropped"] == 1


def test_lost_interrupt_leaves_the_message_in_0x1070(rigs, server):
    r = rigs(server.port)
    r.up(server)
    r.faults.arm_irq("lost", count=1)
    edges = r.wire.falling_edges()
    assert r.h.hif_send(1, 0x03, bytes(4)) == 0
    r.m.advance_ns(2_000_000)
    assert r.wire.falling_edges() == edges and not r.wire.irqn_low()
    assert r.bus.read_reg(0x1070) & 1  # a polling host still finds it
    r.h.hif_isr()
    assert r.h.events[-1][:2] == (1, 0x04) and r.faults.counters["irqs_lost"] == 1


def test_delayed_interrupt(rigs, server):
    r = rigs(server.port)
    r.up(server)
    r.faults.arm_irq("delay", count=1, delay_us=3000)
    assert r.h.hif_send(1, 0x03, bytes(4)) == 0
    r.m.pump(lambda: r.bus.read_reg(0x1070) & 1, step_ns=10_000)
    t0 = r.m.now_ns()
    r.m.pump(r.wire.irqn_low, step_ns=10_000)
    assert r.m.now_ns() - t0 >= 2_900_000 and r.faults.counters["irqs_delayed"] == 1


def test_module_reset_needs_a_new_init(rigs, server):
    r = rigs(server.port)
    conn = r.up(server)
    r.winc.fault_reset()
    conn.settimeout(5)
    with pytest.raises(ConnectionResetError):
        conn.recv(10)
    assert r.winc.bus.crc7_on and r.winc.chip.cpu == "halted"
    with pytest.raises(BusError):
        r.bus.read_reg(0x1070)  # the host still sends without CRC: every command refused
    r.h.init()  # nm_spi_init falls back, ... the firmware starts again
    assert r.h.wifi_connect("lab", "passphrase")[0][0] == 1
    r.h.socket(0)
    assert r.h.connect(0, SERVER, 5000)[1] == 0
    assert r.faults.counters["module_resets"] == 1
