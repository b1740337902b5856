"""Packet capture of the OTA TCP port (scapy).

:class:`Sniffer` runs a scapy ``AsyncSniffer`` on one interface (``lo`` for the twin, the
lab interface for a real board) with a Python ``lfilter`` (BPF filters would need
libpcap), and writes one pcap per TCP connection; :func:`wait_covered` and
:func:`wait_quiet` wait for the packets of a connection to be in. Reading a pcap back
(:func:`analyze_pcap`: segments, offsets, tokens, retransmissions) is
:mod:`rig.capture_analysis`; its names are re-exported here.

Capturing needs root or CAP_NET_RAW; without it :class:`CaptureUnavailable` is raised
(callers skip only the capture).
"""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig.capture_analysis import (
    CaptureAnalysis,
    Direction,
    TcpSegment,
    TokenSpan,
    analyze_pcap,
    find_tokens,
)
from rig.errors import RigError

__all__ = [
    "CaptureAnalysis",
    "CaptureUnavailable",
    "Direction",
    "RawFrame",
    "Sniffer",
    "TcpSegment",
    "TokenSpan",
    "analyze_pcap",
    "check_capture",
    "find_tokens",
    "iface_for_address",
    "stream_coverage",
    "tcp_fields",
    "wait_covered",
    "wait_quiet",
]

_CAP_HINT = (
    "run as root, or grant the interpreter capture rights: "
    "sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f $(which python3)); "
    "or turn capture off"
)


class CaptureUnavailable(RigError):
    """Capturing is not possible here (no root / CAP_NET_RAW, no such interface)."""


def check_capture(iface: str = "lo") -> None:
    """Raise CaptureUnavailable unless a raw packet socket can be opened on ``iface``."""
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    except PermissionError:
        raise CaptureUnavailable(
            f"capturing on {iface!r} needs root or CAP_NET_RAW", hint=_CAP_HINT
        ) from None
    except (OSError, AttributeError) as exc:
        raise CaptureUnavailable(f"raw packet sockets unavailable: {exc}", hint=_CAP_HINT) from None
    try:
        s.bind((iface, 0))
    except OSError as exc:
        raise CaptureUnavailable(
            f"cannot capture on interface {iface!r}: {exc}",
            hint="pass the interface that carries the board's traffic (`ip -br addr` lists them)",
        ) from None
    finally:
        s.close()


def interface_addresses() -> list[tuple[str, str]]:
    """Every (interface, IPv4 address) of this host, secondary addresses included (what
    ``ip addr`` lists; an address with a label such as ``eth0:1`` belongs to ``eth0``).

    Read with getifaddrs(3): the scapy helpers the rig used before see one address per
    interface (the primary), so a lab NIC whose OTA address is a secondary one was "no
    interface"."""
    import ctypes
    import ctypes.util

    class SockaddrIn(ctypes.Structure):
        _fields_ = [
            ("family", ctypes.c_ushort),
            ("port", ctypes.c_uint16),
            ("addr", ctypes.c_uint8 * 4),
        ]

    class Ifaddrs(ctypes.Structure):
        pass

    Ifaddrs._fields_ = [
        ("next", ctypes.POINTER(Ifaddrs)),
        ("name", ctypes.c_char_p),
        ("flags", ctypes.c_uint),
        ("addr", ctypes.POINTER(SockaddrIn)),
        ("netmask", ctypes.c_void_p),
        ("ifu", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
    ]
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    head = ctypes.POINTER(Ifaddrs)()
    if libc.getifaddrs(ctypes.byref(head)) != 0:
        raise CaptureUnavailable(f"getifaddrs failed: errno {ctypes.get_errno()}")
    out: list[tuple[str, str]] = []
    try:
        node = head
        while node:
            entry = node.contents
            if entry.addr and entry.addr.contents.family == socket.AF_INET and entry.name:
                name = entry.name.decode(errors="replace").split(":", 1)[0]  # eth0:1 -> eth0
                out.append((name, str(ipaddress.IPv4Address(bytes(entry.addr.contents.addr)))))
            node = entry.next
    finally:
        libc.freeifaddrs(head)
    return out


def iface_for_address(address: str) -> str:
    """The interface that owns ``address`` (``lo`` for loopback addresses), whether it is
    the interface's primary address or a secondary one (e.g. the lab's OTA address added
    next to the NIC's own, or an address on a VLAN interface such as ``eth0.42``)."""
    ip = ipaddress.ip_address(address)
    owners = list(dict.fromkeys(name for name, addr in interface_addresses() if addr == str(ip)))
    if owners:
        return owners[0]
    if ip.is_loopback:
        return "lo"
    raise CaptureUnavailable(
        f"no interface has address {address}", hint="pass capture_iface= / --capture-iface explicitly"
    )


@dataclass(frozen=True)
class RawFrame:
    """One captured Ethernet frame (kept raw: dissecting every frame in Python is too slow)."""

    time: float
    data: bytes


#: EtherTypes of a VLAN tag (802.1Q, 802.1ad, the pre-standard QinQ): 4 bytes to skip
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100)


def ip_offset(frame: bytes) -> int | None:
    """Where the IPv4 header of an Ethernet frame starts: 14, or past its VLAN tags
    (802.1Q, QinQ: a lab network on a VLAN, captured on the parent interface); None if the
    frame carries no IPv4."""
    off = 12
    while len(frame) >= off + 2:
        ethertype = int.from_bytes(frame[off : off + 2], "big")
        if ethertype == 0x0800:
            return off + 2
        if ethertype not in VLAN_TPIDS or off > 12 + 4 * 4:
            return None
        off += 4
    return None


def tcp_fields(frame: bytes) -> tuple[int, int, int, int, int] | None:
    """``(sport, dport, seq, flags, payload_len)`` of an Ethernet/IPv4/TCP frame (VLAN tags
    skipped), else None."""
    ip = ip_offset(frame)
    if ip is None or len(frame) < ip + 40 or frame[ip + 9] != 6:
        return None
    ihl = (frame[ip] & 0x0F) * 4
    ip_len = int.from_bytes(frame[ip + 2 : ip + 4], "big")
    t = ip + ihl
    if len(frame) < t + 20:
        return None
    sport, dport, seq = struct.unpack_from("!HHI", frame, t)
    doff = (frame[t + 12] >> 4) * 4
    return sport, dport, seq, frame[t + 13], max(0, ip_len - ihl - doff)


class Sniffer:
    """Sniff TCP traffic to/from ``port`` on ``iface`` in a background scapy sniffer.

    Use as a context manager, or ``start()`` / ``stop()``. ``write(path, client_port=...)``
    writes the frames of one connection (all of them if ``client_port`` is None).
    """

    def __init__(self, port: int, iface: str = "lo", *, start_timeout: float = 5.0) -> None:
        self.port = port
        self.iface = iface
        self.start_timeout = start_timeout
        self._frames: list[RawFrame] = []
        self._lock = threading.Lock()
        self._sniffer: Any = None
        self._sock: Any = None

    def start(self) -> Sniffer:
        """Start sniffing; returns once the capture socket is open.

        Raises:
            CaptureUnavailable: no capture rights or no such interface.
        """
        check_capture(self.iface)
        from scapy.all import AsyncSniffer, Raw, conf

        port = self.port
        started = threading.Event()

        def keep(pkt: Any) -> bool:
            f = tcp_fields(pkt.load)
            return f is not None and port in (f[0], f[1])

        def store(pkt: Any) -> None:
            with self._lock:
                self._frames.append(RawFrame(float(pkt.time), pkt.load))

        self._sock = conf.L2listen(iface=self.iface)
        self._sock.LL = Raw  # no per-frame dissection; the BPF program already selected the port
        _tune_socket(self._sock.ins, port)
        self._sniffer = AsyncSniffer(
            opened_socket=self._sock, lfilter=keep, prn=store, store=False, started_callback=started.set
        )
        self._sniffer.start()
        if not started.wait(self.start_timeout):
            self.stop()
            raise CaptureUnavailable(
                f"sniffer on {self.iface!r} did not start within {self.start_timeout:g} s", hint=_CAP_HINT
            )
        return self

    def stop(self) -> None:
        """Stop the sniffer (idempotent)."""
        sn, self._sniffer = self._sniffer, None
        if sn is not None and getattr(sn, "running", False):
            try:
                sn.stop(join=True)
            except Exception:
                pass
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def frames(self, client_port: int | None = None) -> list[RawFrame]:
        """Frames seen so far (only those of one connection if ``client_port`` is given)."""
        with self._lock:
            frames = list(self._frames)
        if client_port is None:
            return frames
        out = []
        for fr in frames:
            f = tcp_fields(fr.data)
            if f is not None and client_port in (f[0], f[1]):
                out.append(fr)
        return out

    packets = frames

    def write(self, path: str | Path, client_port: int | None = None) -> Path:
        """Write the frames (of one connection) to a pcap file (Ethernet link type); returns the path."""
        from scapy.utils import RawPcapWriter

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = RawPcapWriter(str(path), linktype=1, sync=False)
        try:
            writer.write_header(None)
            for fr in self.frames(client_port):
                sec = int(fr.time)
                writer.write_packet(fr.data, sec=sec, usec=round((fr.time - sec) * 1e6))
        finally:
            writer.close()
        return path

    def __enter__(self) -> Sniffer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_filter(port: int) -> list[tuple[int, int, int, int]]:
    """Classic BPF for "IPv4, TCP, unfragmented, either port == ``port``" on Ethernet framing
    (``lo`` too); a VLAN-tagged frame (tag left in the data) is accepted whole and selected
    by the Python filter (:func:`tcp_fields` skips its tags). Hand-assembled, so no libpcap
    is needed to compile it."""
    return [
        (0x28, 0, 0, 12),  # 0  ldh [12]            ethertype
        (0x15, 13, 0, 0x8100),  # 1  jeq 802.1Q ? accept : 2
        (0x15, 12, 0, 0x88A8),  # 2  jeq 802.1ad ? accept : 3
        (0x15, 11, 0, 0x9100),  # 3  jeq QinQ ? accept : 4
        (0x15, 0, 9, 0x0800),  # 4  jeq IPv4 ? 5 : drop
        (0x30, 0, 0, 23),  # 5  ldb [23]            IP protocol
        (0x15, 0, 7, 6),  # 6  jeq TCP ? 7 : drop
        (0x28, 0, 0, 20),  # 7  ldh [20]            fragment offset
        (0x45, 5, 0, 0x1FFF),  # 8  jset frag ? drop : 9
        (0xB1, 0, 0, 14),  # 9  ldxb 4*([14]&0xf)   IP header length
        (0x48, 0, 0, 14),  # 10 ldh [x+14]          source port
        (0x15, 3, 0, port),  # 11 jeq port ? accept : 12
        (0x48, 0, 0, 16),  # 12 ldh [x+16]          destination port
        (0x15, 1, 0, port),  # 13 jeq port ? accept : drop
        (0x06, 0, 0, 0),  # 14 drop
        (0x06, 0, 0, 0x40000),  # 15 accept
    ]


def _tune_socket(sock: socket.socket, port: int) -> None:
    """Attach the port filter and enlarge the receive buffer (both best effort)."""
    import ctypes

    class SockFilter(ctypes.Structure):
        _fields_ = [
            ("code", ctypes.c_uint16),
            ("jt", ctypes.c_uint8),
            ("jf", ctypes.c_uint8),
            ("k", ctypes.c_uint32),
        ]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(SockFilter))]

    prog = _port_filter(port)
    insns = (SockFilter * len(prog))(*[SockFilter(*i) for i in prog])
    try:
        sock.setsockopt(socket.SOL_SOCKET, 26, SockFprog(len(prog), insns))  # SO_ATTACH_FILTER
    except OSError:
        pass  # the Python lfilter still selects the packets
    for opt in (33, socket.SO_RCVBUF):  # SO_RCVBUFFORCE (root), then the capped one
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, 16 << 20)
            break
        except OSError:
            continue


def stream_coverage(frames: list[RawFrame], port: int) -> dict[str, int]:
    """Highest relative stream offset seen per direction (needs the SYNs among ``frames``)."""
    isn: dict[str, int] = {}
    cover = {"down": 0, "up": 0}
    for fr in frames:
        f = tcp_fields(fr.data)
        if f is None:
            continue
        sport, _, seq, flags, n = f
        d = "down" if sport == port else "up"
        if flags & 0x02:  # SYN
            isn[d] = seq + 1
            continue
        if d in isn and n:
            cover[d] = max(cover[d], ((seq - isn[d]) & 0xFFFFFFFF) + n)
    return cover


def wait_covered(
    sniffer: Sniffer, client_port: int, down: int, up: int, *, timeout: float = 5.0, settle: float = 0.1
) -> bool:
    """Wait until the sniffer saw ``down``/``up`` payload bytes of a connection, then ``settle``
    s more for its FIN/RST/ACKs; False if it did not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cover = stream_coverage(sniffer.frames(client_port), sniffer.port)
        if cover["down"] >= down and cover["up"] >= up:
            time.sleep(settle)
            return True
        time.sleep(0.05)
    return False


def wait_quiet(sniffer: Sniffer, client_port: int, settle: float = 0.1, timeout: float = 2.0) -> None:
    """Wait until no new packet of the connection arrived for ``settle`` s (bounded)."""
    deadline = time.monotonic() + timeout
    last = -1
    while time.monotonic() < deadline:
        n = len(sniffer.frames(client_port))
        if n == last:
            return
        last = n
        time.sleep(settle)
