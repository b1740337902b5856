"""Frame faults on the twin's Ethernet cable: each kind does what it says, is counted, and the
same seed gives the same faults (twin/net/frame_faults.py through twin/net/slirp.py)."""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator

import pytest
from frame_harness import BOARD_IP, BOARD_MAC, HOST_IP, Wire
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import ARP, Ether

from twin.net.frame_faults import FrameFaults, parse_rule
from twin.net.frames import fcs_ok, with_fcs
from twin.net.slirp import SlirpNetwork

PAYLOAD = bytes(range(64))  # long enough that no frame is padded: every bit is covered by a checksum


@pytest.fixture
def network() -> Iterator[SlirpNetwork]:
    net = SlirpNetwork()
    net.start()
    yield net
    net.close()


def _ping(wire: Wire, gw: str, seq: int) -> None:
    wire.send(Ether(src=BOARD_MAC, dst=gw) / IP(src=BOARD_IP, dst=HOST_IP) / ICMP(id=1, seq=seq) / PAYLOAD)


def _replies(wire: Wire, seconds: float = 0.4) -> list[Ether]:
    return [Ether(f[:-4]) for f in wire.quiet(seconds) if ICMP in Ether(f[:-4])]


def _counters(net: SlirpNetwork, direction: str) -> dict[str, int]:
    return net.snapshot()["faults"]["counters"][direction]


def _checksums_ok(pkt: Ether) -> bool:
    ip = pkt[IP]
    clean = IP(bytes(ip))
    del clean.chksum
    del clean[ICMP].chksum
    rebuilt = IP(bytes(clean))
    return rebuilt.chksum == ip.chksum and rebuilt[ICMP].chksum == ip[ICMP].chksum


def test_drop_the_nth_frame_to_the_board(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "drop", "direction": "to_board", "only": "icmp", "nth": 2})
    for seq in (1, 2, 3):
        _ping(wire, gw, seq)
    assert [p[ICMP].seq for p in _replies(wire)] == [1, 3]
    assert _counters(network, "to_board")["dropped"] == 1
    assert network.snapshot()["faults"]["armed"][0]["hits"] == 1


def _seeded_drops(seed: int) -> list[int]:
    net = SlirpNetwork()
    net.start()
    try:
        wire = Wire(net)
        gw = wire.arp()
        net.arm_fault({"kind": "drop", "direction": "from_board", "rate": 0.5, "seed": seed})
        for seq in range(1, 21):
            _ping(wire, gw, seq)
        answered = {p[ICMP].seq for p in _replies(wire, 0.6)}
        assert _counters(net, "from_board")["dropped"] == 20 - len(answered)
        return sorted(set(range(1, 21)) - answered)
    finally:
        net.close()


def test_random_drops_are_reproducible_from_the_seed() -> None:
    first = _seeded_drops(7)
    assert 0 < len(first) < 20
    assert _seeded_drops(7) == first
    assert _seeded_drops(8) != first


def test_duplicate(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "duplicate", "direction": "to_board", "only": "icmp", "copies": 2, "count": 1})
    _ping(wire, gw, 1)
    _ping(wire, gw, 2)
    assert [p[ICMP].seq for p in _replies(wire)] == [1, 1, 1, 2]
    assert _counters(network, "to_board")["duplicated"] == 2


def test_corrupt_with_a_bad_fcs_from_the_board_dies_at_the_switch(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "corrupt", "direction": "from_board", "only": "icmp", "nth": 1, "fcs": "bad"})
    _ping(wire, gw, 1)
    _ping(wire, gw, 2)
    assert [p[ICMP].seq for p in _replies(wire)] == [2]
    assert _counters(network, "from_board")["corrupted_fcs_bad"] == 1
    assert network.snapshot()["counters"]["from_board"]["fcs_errors"] == 1


def test_corrupt_with_a_good_fcs_reaches_the_board_damaged(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault(
        {"kind": "corrupt", "direction": "to_board", "only": "icmp", "nth": 1, "fcs": "good", "seed": 3}
    )
    _ping(wire, gw, 1)
    _ping(wire, gw, 2)
    damaged, clean = _replies(wire)  # Wire checked both FCSs
    assert not _checksums_ok(damaged) and _checksums_ok(clean)
    assert _counters(network, "to_board")["corrupted_fcs_good"] == 1


def test_corrupt_with_a_bad_fcs_to_the_board_arrives_with_a_crc_error(network: SlirpNetwork) -> None:
    got: queue.Queue[bytes] = queue.Queue()
    network.attach(got.put)
    network.arm_fault({"kind": "corrupt", "direction": "to_board", "only": "arp", "bits": 3})
    arp = Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=BOARD_MAC, psrc=BOARD_IP, pdst=HOST_IP
    )
    network.transmit(with_fcs(bytes(arp)))
    frame = got.get(timeout=5.0)
    assert not fcs_ok(frame) and len(frame) >= 64
    assert _counters(network, "to_board")["corrupted_fcs_bad"] == 1


def test_delay(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "delay", "direction": "to_board", "only": "icmp", "delay_ms": 300})
    start = time.monotonic()
    _ping(wire, gw, 1)
    wire.expect(lambda p: ICMP in p)
    assert time.monotonic() - start >= 0.3
    assert _counters(network, "to_board")["delayed"] == 1


def test_reorder(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "reorder", "direction": "to_board", "only": "icmp", "nth": 1, "depth": 1})
    _ping(wire, gw, 1)
    _ping(wire, gw, 2)
    assert [p[ICMP].seq for p in _replies(wire)] == [2, 1]
    assert _counters(network, "to_board")["reordered"] == 1


def test_a_held_frame_is_released_when_traffic_stops(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault(
        {"kind": "reorder", "direction": "to_board", "only": "icmp", "depth": 5, "max_hold_ms": 100}
    )
    _ping(wire, gw, 1)
    assert [p[ICMP].seq for p in _replies(wire)] == [1]


def test_clear_releases_held_frames_at_once(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault(
        {"kind": "reorder", "direction": "to_board", "only": "icmp", "depth": 5, "max_hold_ms": 60000}
    )
    _ping(wire, gw, 1)
    assert _replies(wire, 0.3) == []
    network.arm_fault({"kind": "clear"})
    assert [p[ICMP].seq for p in _replies(wire)] == [1]


def test_link_down_and_up(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "link", "up": False})
    _ping(wire, gw, 1)
    assert _replies(wire, 0.3) == [] and wire.links == [False] and not network.link_up()
    network.arm_fault({"kind": "link", "up": True})
    _ping(wire, gw, 2)
    assert [p[ICMP].seq for p in _replies(wire)] == [2] and wire.links == [False, True]
    snap = network.snapshot()
    assert snap["link_changes"] == {"downs": 1, "ups": 1}
    assert snap["counters"]["from_board"]["link_dropped"] == 1


def test_link_flap_comes_back_by_itself(network: SlirpNetwork) -> None:
    wire = Wire(network)
    network.arm_fault({"kind": "link_flap", "down_ms": 150})
    deadline = time.monotonic() + 5.0
    while len(wire.links) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert wire.links == [False, True] and network.link_up()


def test_clear_disarms_and_zeroes(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    network.arm_fault({"kind": "drop", "direction": "both", "only": "icmp"})
    _ping(wire, gw, 1)
    assert _replies(wire, 0.3) == []
    snap = network.arm_fault({"kind": "clear", "counters": True})
    assert snap["faults"]["armed"] == [] and _counters(network, "from_board")["dropped"] == 0
    _ping(wire, gw, 2)
    assert [p[ICMP].seq for p in _replies(wire)] == [2]


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "explode"},
        {"kind": "drop", "direction": "sideways"},
        {"kind": "drop", "only": "ipx"},
        {"kind": "drop", "rate": 1.5},
        {"kind": "corrupt", "fcs": "maybe"},
        {"kind": "delay"},
        {"kind": "duplicate", "copies": 0},
    ],
)
def test_bad_fault_specs_are_refused_with_a_reason(spec: dict) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        parse_rule(spec)


def test_fault_rules_are_a_pure_function_of_seed_and_frames() -> None:
    frames = [bytes([i % 256]) * 80 for i in range(200)]

    def run(seed: int) -> list[tuple[str, bytes, bytes | None, float]]:
        f = FrameFaults()
        f.arm({"kind": "corrupt", "rate": 0.2, "seed": seed, "bits": 2, "fcs": "good"})
        f.arm({"kind": "drop", "rate": 0.1, "seed": seed + 1})
        f.arm({"kind": "delay", "rate": 0.3, "seed": seed + 2, "delay_ms": 5, "jitter_ms": 10})
        out = []
        for i, body in enumerate(frames):
            for d, o in f.apply("to_board" if i % 3 else "from_board", body, 100.0):
                out.append((d, o.body, o.fcs, round(o.at, 9)))
        return out

    assert run(5) == run(5) and run(5) != run(6)
