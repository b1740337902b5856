"""A test board on the twin's Ethernet cable: real frames built with scapy, no MAC, no CPU.

:class:`Wire` attaches to a :class:`twin.net.frames.FrameNetwork` the way the ETH MAC does
(frames with FCS both ways), answers ARP for its own address, and waits for frames with a
bound. :class:`FrameTcp` is a minimal TCP endpoint over it (handshake, in-order data with
an ACK per segment, FIN), enough to move bytes to and from a real host socket.
"""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Callable

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from twin.net.frames import fcs_ok, with_fcs

BOARD_MAC = "02:00:00:00:00:01"
BOARD_IP = "192.168.1.100"
HOST_IP = "192.168.1.10"
WAIT_S = 5.0


class Wire:
    """The board's end of the cable (what the MAC would do with frames)."""

    def __init__(self, network, mac: str = BOARD_MAC, ip: str = BOARD_IP) -> None:
        self.network = network
        self.mac, self.ip = mac, ip
        self.frames: queue.Queue[bytes] = queue.Queue()
        self.seen: list[bytes] = []  # every frame received, FCS included
        self.links: list[bool] = []
        network.attach(self.frames.put)
        network.attach_link(self.links.append)

    def send(self, pkt) -> None:
        self.network.transmit(with_fcs(bytes(pkt)))

    def expect(self, match: Callable[[Ether], bool], timeout: float = WAIT_S) -> Ether:
        """The next frame for which ``match`` holds (others are skipped; ARP for us answered)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching frame within the bound")
            try:
                frame = self.frames.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append(frame)
            assert fcs_ok(frame), f"frame with a bad FCS reached the board: {frame.hex()}"
            pkt = Ether(frame[:-4])
            if ARP in pkt and pkt[ARP].op == 1 and pkt[ARP].pdst == self.ip:
                self.send(
                    Ether(src=self.mac, dst=pkt.src)
                    / ARP(op=2, hwsrc=self.mac, psrc=self.ip, hwdst=pkt[ARP].hwsrc, pdst=pkt[ARP].psrc)
                )
            if match(pkt):
                return pkt

    def quiet(self, seconds: float) -> list[bytes]:
        """Frames arriving within ``seconds`` (for "nothing comes" checks)."""
        out = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(self.frames.get(timeout=left))
            except queue.Empty:
                break
        return out

    def arp(self, ip: str = HOST_IP) -> str:
        """Resolve ``ip``; returns its MAC."""
        self.send(
            Ether(src=self.mac, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=self.mac, psrc=self.ip, pdst=ip)
        )
        reply = self.expect(lambda p: ARP in p and p[ARP].op == 2 and p[ARP].psrc == ip)
        return str(reply[ARP].hwsrc)


class FrameTcp:
    """A minimal TCP endpoint of the test board."""

    def __init__(self, wire: Wire, dst_ip: str, dst_port: int, sport: int | None = None) -> None:
        self.wire = wire
        self.dst_ip, self.dst_port = dst_ip, dst_port
        self.sport = sport or random.randint(20000, 60000)
        self.gw = wire.arp(HOST_IP)
        self.snd_nxt = random.randint(0, 2**31)
        self.rcv_nxt = 0
        self.received = bytearray()
        self.peer_fin = False

    def _seg(self, flags: str, payload: bytes = b"", seq: int | None = None) -> Ether:
        tcp = TCP(
            sport=self.sport,
            dport=self.dst_port,
            flags=flags,
            seq=self.snd_nxt if seq is None else seq,
            ack=self.rcv_nxt if "A" in flags else 0,
            window=65535,
        )
        pkt = Ether(src=self.wire.mac, dst=self.gw) / IP(src=self.wire.ip, dst=self.dst_ip) / tcp
        return pkt / Raw(payload) if payload else pkt

    def _ours(self, p: Ether) -> bool:
        return (
            TCP in p
            and p[IP].src == self.dst_ip
            and p[TCP].sport == self.dst_port
            and p[TCP].dport == self.sport
        )

    def connect(self) -> str:
        """Returns "open" or "refused"."""
        self.wire.send(self._seg("S"))
        reply = self.wire.expect(self._ours)
        if reply[TCP].flags.R:
            return "refused"
        assert reply[TCP].flags.S and reply[TCP].flags.A and reply[TCP].ack == self.snd_nxt + 1
        self.snd_nxt += 1
        self.rcv_nxt = reply[TCP].seq + 1
        self.wire.send(self._seg("A"))
        return "open"

    def send(self, data: bytes, mss: int = 1000) -> None:
        """Send ``data`` segment by segment, each acknowledged before the next."""
        for i in range(0, len(data), mss):
            chunk = data[i : i + mss]
            self.wire.send(self._seg("PA", chunk))
            self.snd_nxt += len(chunk)
            self.wire.expect(lambda p: self._ours(p) and self._take(p) and p[TCP].ack == self.snd_nxt)

    def _take(self, p: Ether) -> bool:
        """Accept in-order data and FIN of a segment (re-ACK anything else); True if it has an ACK."""
        tcp = p[TCP]
        data = bytes(tcp.payload) if tcp.payload else b""
        ip_len = p[IP].len - p[IP].ihl * 4 - tcp.dataofs * 4
        data = data[:ip_len]
        if data or tcp.flags.F:
            if tcp.seq == self.rcv_nxt:
                self.received += data
                self.rcv_nxt += len(data)
                if tcp.flags.F:
                    self.rcv_nxt += 1
                    self.peer_fin = True
            self.wire.send(self._seg("A"))
        return bool(tcp.flags.A)

    def recv_until(self, count: int, timeout: float = WAIT_S) -> bytes:
        """Collect at least ``count`` bytes (or until the peer's FIN)."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and not self.peer_fin:
            self.wire.expect(lambda p: self._ours(p) and (self._take(p) or True), deadline - time.monotonic())
        return bytes(self.received)

    def close(self) -> None:
        """Send FIN; returns once the peer acknowledged it."""
        self.wire.send(self._seg("FA"))
        self.snd_nxt += 1
        self.wire.expect(lambda p: self._ours(p) and self._take(p) and p[TCP].ack == self.snd_nxt)

    def wait_fin(self, timeout: float = WAIT_S) -> None:
        """Wait for the peer's FIN."""
        deadline = time.monotonic() + timeout
        while not self.peer_fin:
            self.wire.expect(lambda p: self._ours(p) and (self._take(p) or True), deadline - time.monotonic())
