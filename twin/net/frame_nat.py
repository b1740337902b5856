"""The bench LAN's ``--forward`` rules at frame level, between the ETH MAC and libslirp.

libslirp carries a board TCP connection to an address of its virtual network (other than
its DNS address) to the *same port* on the host's loopback, and a connection to any other
address to that address. The bench needs more: the board dials 192.168.1.10:5000 and the
OTA server listens on 127.0.0.1:HOSTPORT, a free port chosen per run. So frames pass
through :class:`LanForwards`, which

* rewrites the destination of a board connection to a forwarded ``LAN_IP:PORT``
  (connection-tracked from its SYN) to the address libslirp should connect to: the slirp
  host address (192.168.1.10) with port HOSTPORT when the host side is 127.0.0.1 (libslirp
  turns that into 127.0.0.1:HOSTPORT), or the host address itself otherwise, and rewrites
  the source of the answers back, so the board only ever sees 192.168.1.10:5000. Checksums
  are adjusted incrementally (RFC 1624), so a segment damaged by a frame fault stays
  damaged;
* keeps the twin closed like the bench: a SYN to the slirp host on a port with no forward
  is answered with RST (a host with that port closed), a SYN elsewhere and UDP other than
  DHCP and ``--hostfwd udp`` answers is dropped (nothing listens there), ICMP only reaches
  the slirp host (ping). All counted in ``blocked``;
* answers ARP for forwarded LAN addresses other than the slirp host (libslirp answers
  only for its own addresses).

Owns: the forward table, the connection tracking and the blocked counters. Must not touch:
libslirp, threads, faults.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin.net.frames import ETH_HLEN, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP

_IPV4 = b"\x08\x00"
_ARP = b"\x08\x06"
TCP_SYN, TCP_RST, TCP_ACK = 0x02, 0x04, 0x10
DHCP_SERVER_PORT = 67
TRACK_MAX = 4096


def special_mac(ip: bytes) -> bytes:
    """The MAC libslirp gives its own addresses: 52:55 followed by the IPv4 address."""
    return b"\x52\x55" + ip


def inet_checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f">{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def adjust_checksum(checksum: int, old: bytes, new: bytes) -> int:
    """``checksum`` after the 16-bit words ``old`` became ``new`` (RFC 1624, eqn. 3)."""
    total = ~checksum & 0xFFFF
    for i in range(0, len(old), 2):
        total += ~int.from_bytes(old[i : i + 2], "big") & 0xFFFF
        total += int.from_bytes(new[i : i + 2], "big")
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip(text: str) -> bytes:
    return socket.inet_aton(str(ipaddress.IPv4Address(text)))


def _text(ip: bytes) -> str:
    return socket.inet_ntoa(ip)


@dataclass(frozen=True)
class Forward:
    """The board dials ``lan``; the connection lands on ``host``; libslirp is asked for ``inner``."""

    lan: tuple[bytes, int]
    host: tuple[str, int]
    inner: tuple[bytes, int]


class LanForwards:
    """Forward translation and the LAN guard (called on the network thread only).

    Args:
        vhost: libslirp's host address (192.168.1.10).
        network: the board's subnet (192.168.1.0/24).
        forwards: ``{(lan_ip, lan_port): (host_ip, host_port)}`` (``--forward``).
        udp_guest_ports: board UDP ports of ``--hostfwd udp`` rules (their answers pass).
        log: line logger.
    """

    def __init__(
        self,
        vhost: str,
        network: ipaddress.IPv4Network,
        forwards: dict[tuple[str, int], tuple[str, int]],
        udp_guest_ports: set[int] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.vhost = _ip(vhost)
        self.network = network
        self._log = log or (lambda _m: None)
        self.forwards: dict[tuple[bytes, int], Forward] = {}
        for (lan_ip, lan_port), (host_ip, host_port) in forwards.items():
            if host_ip == "localhost":
                host_ip = "127.0.0.1"
            inner = (self.vhost, host_port) if host_ip == "127.0.0.1" else (_ip(host_ip), host_port)
            fwd = Forward((_ip(lan_ip), lan_port), (host_ip, host_port), inner)
            self.forwards[fwd.lan] = fwd
        #: LAN addresses this side answers ARP for (libslirp answers for vhost itself)
        self.arp_answers = {
            ip for ip, _ in self.forwards if ip != self.vhost and ipaddress.IPv4Address(ip) in network
        }
        self.udp_guest_ports = set(udp_guest_ports or ())
        self._track: collections.OrderedDict[tuple[bytes, int, bytes, int], Forward] = (
            collections.OrderedDict()
        )
        self._reverse: dict[tuple[bytes, int, bytes, int], tuple[bytes, int]] = {}
        self.connections = 0
        self.blocked = {"tcp_closed": 0, "tcp_unreachable": 0, "udp": 0, "icmp": 0, "other": 0}

    # ------------------------------------------------------------------ board -> network
    def from_board(self, body: bytes) -> tuple[bytes | None, bytes | None]:
        """Returns (frame for libslirp or None, answer frame for the board or None)."""
        kind = body[12:14]
        if kind == _ARP:
            return self._arp(body)
        if kind != _IPV4 or len(body) < ETH_HLEN + 20:
            return body, None
        ihl = (body[ETH_HLEN] & 0x0F) * 4
        if int.from_bytes(body[ETH_HLEN + 6 : ETH_HLEN + 8], "big") & 0x1FFF:
            return body, None  # a later fragment: no L4 header; libslirp reassembles
        proto, src, dst = body[ETH_HLEN + 9], body[26:30], body[30:34]
        l4 = ETH_HLEN + ihl
        if proto == IPPROTO_TCP and len(body) >= l4 + 20:
            return self._tcp_out(body, ihl, src, dst)
        if proto == IPPROTO_UDP and len(body) >= l4 + 8:
            sport, dport = struct.unpack_from(">HH", body, l4)
            if dport == DHCP_SERVER_PORT or sport in self.udp_guest_ports:
                return body, None
            return self._block("udp", f"udp {_text(src)}:{sport} > {_text(dst)}:{dport}")
        if proto == IPPROTO_ICMP and dst == self.vhost:
            return body, None
        return self._block("icmp" if proto == IPPROTO_ICMP else "other", f"ip proto {proto} to {_text(dst)}")

    def _tcp_out(self, body: bytes, ihl: int, src: bytes, dst: bytes) -> tuple[bytes | None, bytes | None]:
        l4 = ETH_HLEN + ihl
        sport, dport = struct.unpack_from(">HH", body, l4)
        flags = body[l4 + 13]
        key = (src, sport, dst, dport)
        fwd = self._track.get(key)
        if fwd is None and flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            fwd = self.forwards.get((dst, dport))
            if fwd is None:
                what = f"tcp {_text(src)}:{sport} > {_text(dst)}:{dport} SYN: no --forward"
                if dst == self.vhost:
                    return self._block("tcp_closed", what + " (RST)", _rst_for(body, ihl))
                return self._block("tcp_unreachable", what + " (dropped)")
            self._remember(key, fwd)
        if fwd is None:
            return body, None
        return _rewrite(body, ihl, 30, l4 + 2, fwd.inner), None

    def _remember(self, key: tuple[bytes, int, bytes, int], fwd: Forward) -> None:
        src, sport = key[0], key[1]
        if key not in self._track:
            self.connections += 1
            self._log(
                f"frames: board {_text(src)}:{sport} -> {_text(fwd.lan[0])}:{fwd.lan[1]} "
                f"forwarded to {fwd.host[0]}:{fwd.host[1]}"
            )
        self._track[key] = fwd
        self._track.move_to_end(key)
        self._reverse[(src, sport, *fwd.inner)] = fwd.lan
        while len(self._track) > TRACK_MAX:
            (osrc, oport, _, _), old = self._track.popitem(last=False)
            self._reverse.pop((osrc, oport, *old.inner), None)

    def _arp(self, body: bytes) -> tuple[bytes | None, bytes | None]:
        if len(body) < ETH_HLEN + 28 or body[20:22] != b"\x00\x01":
            return body, None
        target = body[38:42]
        if target not in self.arp_answers:
            return body, None
        mac = special_mac(target)
        asker_mac, asker_ip = body[22:28], body[28:32]
        arp = b"\x00\x01\x08\x00\x06\x04\x00\x02" + mac + target + asker_mac + asker_ip
        return body, body[6:12] + mac + _ARP + arp  # libslirp learns the asker's address too

    def _block(self, what: str, line: str, answer: bytes | None = None) -> tuple[None, bytes | None]:
        self.blocked[what] += 1
        n = self.blocked[what]
        if n <= 5 or n & (n - 1) == 0:
            self._log(f"frames: blocked {line} (#{n} {what})")
        return None, answer

    # ------------------------------------------------------------------ network -> board
    def to_board(self, body: bytes) -> bytes:
        """A frame from libslirp with the forwarded connections' source put back."""
        if not self._reverse or body[12:14] != _IPV4 or len(body) < ETH_HLEN + 20 or body[23] != IPPROTO_TCP:
            return body
        ihl = (body[ETH_HLEN] & 0x0F) * 4
        l4 = ETH_HLEN + ihl
        if len(body) < l4 + 20:
            return body
        sport, dport = struct.unpack_from(">HH", body, l4)
        lan = self._reverse.get((body[30:34], dport, body[26:30], sport))
        if lan is None:
            return body
        out = _rewrite(body, ihl, 26, l4, lan)
        if ipaddress.IPv4Address(lan[0]) in self.network:
            out = out[:6] + special_mac(lan[0]) + out[12:]
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "forwards": {
                f"{_text(f.lan[0])}:{f.lan[1]}": f"{f.host[0]}:{f.host[1]}" for f in self.forwards.values()
            },
            "connections": self.connections,
            "tracked": len(self._track),
            "blocked": dict(self.blocked),
        }


def _rewrite(body: bytes, ihl: int, ip_at: int, port_at: int, new: tuple[bytes, int]) -> bytes:
    """Replace the IPv4 address at ``ip_at`` and the TCP port at ``port_at`` (checksums adjusted)."""
    l4 = ETH_HLEN + ihl
    old_ip, old_port = body[ip_at : ip_at + 4], body[port_at : port_at + 2]
    new_ip, new_port = new[0], new[1].to_bytes(2, "big")
    if old_ip == new_ip and old_port == new_port:
        return body
    data = bytearray(body)
    data[ip_at : ip_at + 4] = new_ip
    data[port_at : port_at + 2] = new_port
    ip_sum = int.from_bytes(body[ETH_HLEN + 10 : ETH_HLEN + 12], "big")
    data[ETH_HLEN + 10 : ETH_HLEN + 12] = adjust_checksum(ip_sum, old_ip, new_ip).to_bytes(2, "big")
    tcp_sum = int.from_bytes(body[l4 + 16 : l4 + 18], "big")
    fixed = adjust_checksum(tcp_sum, old_ip + old_port, new_ip + new_port)
    data[l4 + 16 : l4 + 18] = fixed.to_bytes(2, "big")
    return bytes(data)


def _rst_for(syn: bytes, ihl: int) -> bytes:
    """The RST+ACK a host with a closed port sends for ``syn`` (a frame from the board)."""
    l4 = ETH_HLEN + ihl
    src, dst = syn[26:30], syn[30:34]
    sport, dport, seq = struct.unpack_from(">HHI", syn, l4)
    total = int.from_bytes(syn[ETH_HLEN + 2 : ETH_HLEN + 4], "big")
    doff = (syn[l4 + 12] >> 4) * 4
    ack = (seq + 1 + max(0, total - ihl - doff)) & 0xFFFFFFFF
    tcp = struct.pack(">HHIIBBHHH", dport, sport, 0, ack, 5 << 4, TCP_RST | TCP_ACK, 0, 0, 0)
    pseudo = dst + src + struct.pack(">BBH", 0, IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + inet_checksum(pseudo + tcp).to_bytes(2, "big") + tcp[18:]
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 0, 0x4000, 64, IPPROTO_TCP, 0, dst, src)
    ip = ip[:10] + inet_checksum(ip).to_bytes(2, "big") + ip[12:]
    return syn[6:12] + special_mac(dst) + _IPV4 + ip + tcp
