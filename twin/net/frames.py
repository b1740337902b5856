"""Ethernet frames in and out of the twin's ETH MAC: the host-side contract, FCS, pcap.

The MAC model (twin/net/ethmac*.py) talks to the outside world only through a
:class:`FrameNetwork`. The twin's implementation is ``twin.net.slirp.SlirpNetwork``
(libslirp); tests may pass any object with these four methods.

Frames cross the interface as they are on the wire: destination MAC first, FCS last
(4 bytes, the IEEE 802.3 CRC-32 in the byte order it is transmitted, i.e. little-endian
``zlib.crc32`` of the bytes before it). Frames to the board are at least 64 bytes long
(padded like a transmitting MAC pads). A frame from the board shorter than 64 bytes with
its FCS (a runt) or with a wrong FCS is dropped and counted, as a switch would.

The pcap (:class:`PcapWriter`, LINKTYPE_ETHERNET) holds frames without their FCS, both
directions, with wall-clock timestamps.

Owns: the FrameNetwork protocol, FCS helpers, the pcap writer, frame classification.
Must not touch: the machine, device registers, libslirp.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol

FCS_LEN = 4
#: shortest frame on the wire without its FCS (64 bytes with it)
MIN_FRAME = 60
ETH_HLEN = 14
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP = 1, 6, 17

LINKTYPE_ETHERNET = 1
PCAP_SNAPLEN = 65535


class FrameNetwork(Protocol):
    """What the ETH MAC model sees of the cable and everything behind it."""

    def attach(self, receive: Callable[[bytes], None]) -> None:
        """Give the function that takes each frame for the board (FCS included).

        ``receive(frame)`` is called on the network's own thread; the MAC hands the frame
        to the CPU thread itself (``services.post``). A later call replaces the receiver.
        """

    def attach_link(self, on_link: Callable[[bool], None]) -> None:
        """Give the function told about cable state changes (``True`` = link up).

        Called on the network's thread on every change (link faults, ``frames.link``).
        """

    def transmit(self, frame: bytes) -> None:
        """A frame the MAC sent, FCS included. Non-blocking; callable from any thread."""

    def link_up(self) -> bool:
        """Whether the cable is plugged in (the PHY's link state follows it)."""


# ----------------------------------------------------------------------------- FCS
def fcs(body: bytes) -> bytes:
    """The 4 FCS bytes of ``body`` (a frame without FCS), as transmitted."""
    return struct.pack("<I", zlib.crc32(body))


def pad(body: bytes) -> bytes:
    """``body`` padded with zeros to the minimum frame length (60 bytes without FCS)."""
    return body if len(body) >= MIN_FRAME else body + bytes(MIN_FRAME - len(body))


def with_fcs(body: bytes) -> bytes:
    """``body`` padded to the minimum length, FCS appended: a frame as on the wire."""
    body = pad(body)
    return body + fcs(body)


def fcs_ok(frame: bytes) -> bool:
    """True if the last 4 bytes of ``frame`` are the FCS of the bytes before them."""
    return len(frame) > FCS_LEN and frame[-FCS_LEN:] == fcs(frame[:-FCS_LEN])


# ----------------------------------------------------------------------------- classification
def classify(body: bytes) -> set[str]:
    """Classes of a frame (without FCS) for fault filters.

    Returns a subset of ``{"all", "arp", "ip", "icmp", "udp", "tcp", "tcp_data"}``
    (``tcp_data``: a TCP segment carrying payload bytes).
    """
    out = {"all"}
    if len(body) < ETH_HLEN:
        return out
    ethertype = int.from_bytes(body[12:14], "big")
    if ethertype == ETHERTYPE_ARP:
        out.add("arp")
    if ethertype != ETHERTYPE_IPV4 or len(body) < ETH_HLEN + 20:
        return out
    out.add("ip")
    ihl = (body[ETH_HLEN] & 0x0F) * 4
    total = int.from_bytes(body[ETH_HLEN + 2 : ETH_HLEN + 4], "big")
    proto = body[ETH_HLEN + 9]
    name = {IPPROTO_ICMP: "icmp", IPPROTO_UDP: "udp", IPPROTO_TCP: "tcp"}.get(proto)
    if name:
        out.add(name)
    l4 = ETH_HLEN + ihl
    if proto == IPPROTO_TCP and len(body) >= l4 + 20:
        doff = (body[l4 + 12] >> 4) * 4
        if total - ihl - doff > 0:
            out.add("tcp_data")
    return out


def describe(body: bytes) -> str:
    """A one-line summary of a frame for logs: ``tcp 192.168.1.100:49153 > 192.168.1.10:5000 S``."""
    cls = classify(body)
    if "ip" not in cls:
        return "arp" if "arp" in cls else f"ethertype 0x{int.from_bytes(body[12:14], 'big'):04x}"
    ihl = (body[ETH_HLEN] & 0x0F) * 4
    src = ".".join(str(b) for b in body[ETH_HLEN + 12 : ETH_HLEN + 16])
    dst = ".".join(str(b) for b in body[ETH_HLEN + 16 : ETH_HLEN + 20])
    l4 = ETH_HLEN + ihl
    if ("tcp" in cls or "udp" in cls) and len(body) >= l4 + 4:
        sport, dport = struct.unpack_from(">HH", body, l4)
        proto = "tcp" if "tcp" in cls else "udp"
        flags = ""
        if proto == "tcp" and len(body) >= l4 + 14:
            bits = body[l4 + 13]
            flags = " " + "".join(c for i, c in enumerate("FSRPAU") if bits & (1 << i))
        return f"{proto} {src}:{sport} > {dst}:{dport}{flags}"
    return f"{'icmp' if 'icmp' in cls else 'ip'} {src} > {dst}"


# ----------------------------------------------------------------------------- pcap
class PcapWriter:
    """A classic pcap file (microsecond timestamps, LINKTYPE_ETHERNET), thread-safe.

    Frames are written without their FCS. The file is flushed by :meth:`flush` (the
    network thread calls it whenever it goes idle) and on :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()
        self._file: BinaryIO | None = open(self.path, "wb")  # noqa: SIM115 (closed by close())
        self._file.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, PCAP_SNAPLEN, LINKTYPE_ETHERNET))
        self._file.flush()
        self.frames = 0
        self.bytes = 0
        self._dirty = False

    def write(self, body: bytes, timestamp: float | None = None) -> None:
        """Append one frame (without FCS); ``timestamp`` in seconds since the epoch."""
        ts = time.time() if timestamp is None else timestamp
        sec = int(ts)
        usec = min(999_999, round((ts - sec) * 1e6))
        data = body[:PCAP_SNAPLEN]
        with self._lock:
            if self._file is None:
                return
            self._file.write(struct.pack("<IIII", sec, usec, len(data), len(body)) + data)
            self.frames += 1
            self.bytes += len(body)
            self._dirty = True

    def flush(self) -> None:
        """Push written frames to the file (cheap when nothing was written)."""
        with self._lock:
            if self._file is not None and self._dirty:
                self._file.flush()
                self._dirty = False

    def close(self) -> None:
        """Flush and close (idempotent)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    @property
    def closed(self) -> bool:
        return self._file is None

    def snapshot(self) -> dict[str, object]:
        return {"path": self.path, "frames": self.frames, "bytes": self.bytes, "open": not self.closed}
