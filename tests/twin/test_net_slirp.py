"""The twin's Ethernet cable (twin/net/slirp.py): real frames through libslirp, driven from
Python the way the ETH MAC drives it. DHCP, ARP, the bench forward 192.168.1.10:5000 ->
127.0.0.1:HOSTPORT with data both ways, the LAN guard, host -> board forwards, pcap."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
from frame_harness import BOARD_IP, BOARD_MAC, HOST_IP, FrameTcp, Wire
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.utils import rdpcap

from twin.net.frames import fcs, fcs_ok, with_fcs
from twin.net.hostfwd import HostFwd
from twin.net.slirp import SlirpNetwork


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4)
    s.settimeout(5.0)
    yield s
    s.close()


@pytest.fixture
def network(listener: socket.socket, tmp_path) -> Iterator[SlirpNetwork]:
    port = listener.getsockname()[1]
    net = SlirpNetwork(
        forwards={(HOST_IP, 5000): ("127.0.0.1", port)},
        hostfwds=[HostFwd.parse("tcp::0-:80")],
        pcap=str(tmp_path / "eth.pcap"),
    )
    net.start()
    yield net
    net.close()


def _dhcp(kind: str, xid: int = 0x1234, **opts) -> Ether:
    options = [("message-type", kind), *opts.items(), "end"]
    return (
        Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff")
        / IP(src="0.0.0.0", dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=bytes.fromhex(BOARD_MAC.replace(":", "")), xid=xid, flags=0x8000)
        / DHCP(options=options)
    )


def _opt(pkt: Ether, name: str):
    return next(v for o in pkt[DHCP].options if isinstance(o, tuple) and o[0] == name for v in [o[1]])


def test_dhcp_discover_gets_an_offer_on_the_bench_subnet_then_an_ack(network: SlirpNetwork) -> None:
    wire = Wire(network)
    wire.send(_dhcp("discover"))
    offer = wire.expect(lambda p: DHCP in p)
    assert _opt(offer, "message-type") == 2  # OFFER
    assert offer[BOOTP].yiaddr == "192.168.1.100" and offer[BOOTP].xid == 0x1234
    assert _opt(offer, "subnet_mask") == "255.255.255.0"
    assert _opt(offer, "router") == HOST_IP and _opt(offer, "server_id") == HOST_IP
    wire.send(_dhcp("request", requested_addr="192.168.1.100", server_id=HOST_IP))
    ack = wire.expect(lambda p: DHCP in p)
    assert _opt(ack, "message-type") == 5 and ack[BOOTP].yiaddr == "192.168.1.100"
    # frames to the board carry a correct FCS and are padded to the 64-byte minimum
    assert all(fcs_ok(f) and len(f) >= 64 for f in wire.seen)


def test_arp_for_the_host_is_answered_with_the_slirp_mac(network: SlirpNetwork) -> None:
    wire = Wire(network)
    assert wire.arp(HOST_IP) == "52:55:c0:a8:01:0a"
    # a static address outside the DHCP pool works the same
    static = Wire(network, mac="02:00:00:00:00:22", ip="192.168.1.22")
    assert static.arp(HOST_IP) == "52:55:c0:a8:01:0a"


def test_ping_of_the_host_is_answered(network: SlirpNetwork) -> None:
    wire = Wire(network)
    gw = wire.arp()
    wire.send(Ether(src=BOARD_MAC, dst=gw) / IP(src=BOARD_IP, dst=HOST_IP) / ICMP(id=7, seq=1) / b"ping")
    reply = wire.expect(lambda p: ICMP in p)
    assert reply[ICMP].type == 0 and reply[IP].src == HOST_IP and bytes(reply[ICMP].payload)[:4] == b"ping"


def test_the_bench_forward_carries_a_tcp_exchange_to_the_host_port(
    network: SlirpNetwork, listener: socket.socket
) -> None:
    wire = Wire(network)
    conn = FrameTcp(wire, HOST_IP, 5000)
    assert conn.connect() == "open"
    peer, _ = listener.accept()
    peer.settimeout(5.0)
    with peer:
        upload = bytes(range(256)) * 20  # 5120 bytes in 1000-byte segments
        conn.send(upload)
        got = b""
        while len(got) < len(upload):
            got += peer.recv(65536)
        assert got == upload
        download = b"from the host " * 300
        peer.sendall(download)
        assert conn.recv_until(len(download)) == download
        conn.close()
        assert peer.recv(10) == b""  # the board's FIN reached the host socket
    conn.wait_fin()  # and the host's close reached the board
    # the board only ever saw 192.168.1.10:5000, never the host port
    for frame in wire.seen:
        p = Ether(frame[:-4])
        if TCP in p:
            assert (p[IP].src, p[TCP].sport) == (HOST_IP, 5000)
    snap = network.snapshot()
    assert snap["nat"]["connections"] == 1
    assert snap["counters"]["from_board"]["fcs_errors"] == 0


def test_a_board_with_a_static_address_uses_the_forward_too(
    network: SlirpNetwork, listener: socket.socket
) -> None:
    wire = Wire(network, mac="02:00:00:00:00:22", ip="192.168.1.22")
    conn = FrameTcp(wire, HOST_IP, 5000)
    assert conn.connect() == "open"
    peer, _ = listener.accept()
    with peer:
        peer.settimeout(5.0)
        conn.send(b"static hello")
        assert peer.recv(100) == b"static hello"


def test_a_forward_whose_host_port_is_closed_is_refused() -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    net = SlirpNetwork(forwards={(HOST_IP, 5000): ("127.0.0.1", port)})
    net.start()
    try:
        assert FrameTcp(Wire(net), HOST_IP, 5000).connect() == "refused"
    finally:
        net.close()


def test_the_lan_stays_closed_where_there_is_no_forward(network: SlirpNetwork) -> None:
    wire = Wire(network)
    # the host on a port without a forward: RST, like a closed port (never 127.0.0.1:22)
    assert FrameTcp(wire, HOST_IP, 22).connect() == "refused"
    # any other address: nothing answers
    gw = wire.arp()
    wire.send(
        Ether(src=BOARD_MAC, dst=gw) / IP(src=BOARD_IP, dst="10.1.2.3") / TCP(sport=4000, dport=80, flags="S")
    )
    wire.send(
        Ether(src=BOARD_MAC, dst=gw) / IP(src=BOARD_IP, dst="8.8.8.8") / UDP(sport=4000, dport=53) / b"q"
    )
    assert not [f for f in wire.quiet(0.5) if TCP in Ether(f[:-4]) or UDP in Ether(f[:-4])]
    blocked = network.snapshot()["nat"]["blocked"]
    assert blocked["tcp_closed"] == 1 and blocked["tcp_unreachable"] == 1 and blocked["udp"] == 1


def test_a_forward_to_another_lan_address_is_arp_answered_and_carried(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    net = SlirpNetwork(forwards={("192.168.1.20", 6000): ("127.0.0.1", port)})
    net.start()
    try:
        wire = Wire(net)
        assert wire.arp("192.168.1.20") == "52:55:c0:a8:01:14"
        assert FrameTcp(wire, "192.168.1.20", 6000).connect() == "open"
        listener.accept()[0].close()
    finally:
        net.close()


def test_a_host_client_reaches_the_board_through_hostfwd(network: SlirpNetwork) -> None:
    wire = Wire(network)
    wire.send(
        Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff")
        / ARP(op=1, psrc=BOARD_IP, pdst=BOARD_IP, hwsrc=BOARD_MAC)
    )
    (fwd,) = network.bound
    assert fwd.host_addr == "127.0.0.1" and fwd.host_port > 0 and fwd.guest_addr == BOARD_IP
    client = socket.create_connection(("127.0.0.1", fwd.host_port), timeout=5.0)
    with client:
        syn = wire.expect(lambda p: TCP in p and p[TCP].flags == "S")
        assert syn[IP].dst == BOARD_IP and syn[TCP].dport == 80 and syn[IP].src == HOST_IP
        # answer as a server would, then data from the host client arrives as a segment
        seq = 5000
        wire.send(
            Ether(src=BOARD_MAC, dst=syn.src)
            / IP(src=BOARD_IP, dst=syn[IP].src)
            / TCP(sport=80, dport=syn[TCP].sport, flags="SA", seq=seq, ack=syn[TCP].seq + 1, window=65535)
        )
        wire.expect(lambda p: TCP in p and p[TCP].flags == "A" and p[TCP].ack == seq + 1)
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = wire.expect(lambda p: TCP in p and len(p[TCP].payload) > 0)
        assert bytes(data[TCP].payload).startswith(b"GET / HTTP/1.0")


def test_the_pcap_holds_both_directions_without_fcs(network: SlirpNetwork, tmp_path) -> None:
    wire = Wire(network)
    wire.arp()
    wire.send(_dhcp("discover"))
    wire.expect(lambda p: DHCP in p)
    network.stop_pcap()
    pkts = rdpcap(str(tmp_path / "eth.pcap"))
    kinds = [(p.src, "ARP" if ARP in p else "DHCP" if DHCP in p else "?") for p in pkts]
    assert (BOARD_MAC, "ARP") in kinds and ("52:55:c0:a8:01:0a", "ARP") in kinds
    assert (BOARD_MAC, "DHCP") in kinds and ("52:55:c0:a8:01:0a", "DHCP") in kinds
    assert all(p.time > 1e9 for p in pkts)  # wall-clock timestamps
    # no FCS in the file: every frame to the board is exactly what arrived minus its 4 bytes
    bodies = {bytes(p) for p in pkts}
    assert all(f[:-4] in bodies for f in wire.seen)


def test_the_pcap_starts_and_stops_on_command(network: SlirpNetwork, tmp_path) -> None:
    wire = Wire(network)
    second = tmp_path / "second.pcap"
    network.start_pcap(str(second))
    wire.arp()
    snap = network.stop_pcap()
    assert snap["frames"] == 2 and not snap["open"]
    assert len(rdpcap(str(second))) == 2
    wire.arp()
    assert len(rdpcap(str(second))) == 2  # stopped: nothing more written


def test_runts_and_frames_with_a_bad_fcs_from_the_board_are_dropped_and_counted(
    network: SlirpNetwork,
) -> None:
    wire = Wire(network)
    arp = bytes(Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, psrc=BOARD_IP, pdst=HOST_IP))
    arp = arp + bytes(60 - len(arp))
    network.transmit(arp + bytes(4))  # wrong FCS
    network.transmit(arp[:40] + fcs(arp[:40]))  # runt
    assert wire.quiet(0.3) == []
    c = network.snapshot()["counters"]["from_board"]
    assert c["fcs_errors"] == 1 and c["runts"] == 1


def test_frames_for_a_board_without_a_receiver_are_counted() -> None:
    net = SlirpNetwork()
    net.start()
    try:
        arp = Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
            op=1, hwsrc=BOARD_MAC, psrc=BOARD_IP, pdst=HOST_IP
        )
        net.transmit(with_fcs(bytes(arp)))
        # the engine runs queued calls before it drains the frames queued with them, so
        # wait for the count rather than for one round of the engine
        deadline = time.monotonic() + 5.0
        while net.snapshot()["counters"]["to_board"]["no_receiver"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert net.snapshot()["counters"]["to_board"]["no_receiver"] == 1
    finally:
        net.close()


def test_a_receiver_that_raises_does_not_stop_the_cable(network: SlirpNetwork) -> None:
    calls: list[bytes] = []

    def broken(frame: bytes) -> None:
        calls.append(frame)
        raise RuntimeError("MAC bug")

    network.attach(broken)
    arp = Ether(src=BOARD_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(
        op=1, hwsrc=BOARD_MAC, psrc=BOARD_IP, pdst=HOST_IP
    )
    network.transmit(with_fcs(bytes(arp)))
    # the reply reaches the receiver on the network's thread, when slirp gets round to it (on a
    # loaded machine, after a call queued behind the transmit): wait for it, bounded
    deadline = time.monotonic() + 10
    while not calls and time.monotonic() < deadline:
        done = threading.Event()
        network.call(done.set)
        done.wait(1.0)
    assert len(calls) == 1
    assert network.snapshot()["callback_errors"] == 1
    assert Wire(network).arp() == "52:55:c0:a8:01:0a"  # still working
