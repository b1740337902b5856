"""Analysis of a captured OTA connection: what went on the wire, segment by segment.

:func:`analyze_pcap` reads a pcap back (written by :class:`rig.capture.Sniffer`) and lists
the TCP payload segments per direction, their stream offsets, the control tokens they contain
or split, retransmissions and RST/FIN, so a test can prove a link policy really happened on
the wire. Reading a file needs no capture rights; capturing is :mod:`rig.capture`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Direction = Literal["down", "up"]  # down: server -> board, up: board -> server


@dataclass
class TcpSegment:
    """One TCP packet of the connection after loopback de-duplication."""

    index: int
    time: float
    direction: Direction
    offset: int
    length: int
    flags: str
    retransmission: bool = False
    payload: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (payload omitted)."""
        return {
            "index": self.index,
            "time": round(self.time, 6),
            "dir": self.direction,
            "offset": self.offset,
            "length": self.length,
            "flags": self.flags,
            "retransmission": self.retransmission,
        }


@dataclass
class TokenSpan:
    """A control message found in a direction's byte stream."""

    direction: Direction
    text: str
    start: int
    end: int


@dataclass
class CaptureAnalysis:
    """What a pcap shows about one OTA connection.

    Attributes:
        port: the server port.
        client_port: the board's port of the analysed connection.
        packets_read: packets in the file; duplicates_removed: loopback copies dropped.
        segments: every packet of the connection (payload or not) in order.
        streams: reassembled bytes per direction.
        tokens: control messages located in the streams.
    """

    port: int
    client_port: int | None
    packets_read: int
    duplicates_removed: int
    segments: list[TcpSegment] = field(default_factory=list)
    streams: dict[str, bytes] = field(default_factory=dict)
    tokens: list[TokenSpan] = field(default_factory=list)
    connections: int = 0

    def payload_segments(
        self, direction: Direction = "down", *, include_retrans: bool = False
    ) -> list[TcpSegment]:
        """Segments carrying payload in one direction."""
        return [
            s
            for s in self.segments
            if s.direction == direction and s.length > 0 and (include_retrans or not s.retransmission)
        ]

    def sizes(self, direction: Direction = "down") -> list[int]:
        """Payload sizes of the (non-retransmitted) segments of one direction."""
        return [s.length for s in self.payload_segments(direction)]

    def boundaries(self, direction: Direction = "down") -> list[int]:
        """Stream offsets where payload segments start."""
        return [s.offset for s in self.payload_segments(direction)]

    @property
    def retransmissions(self) -> int:
        """Number of retransmitted payload segments."""
        return sum(1 for s in self.segments if s.retransmission)

    def flagged(self, flag: str, direction: Direction | None = None) -> list[TcpSegment]:
        """Packets carrying a TCP flag letter (``"R"``, ``"F"``, ``"S"``...)."""
        return [
            s for s in self.segments if flag in s.flags and (direction is None or s.direction == direction)
        ]

    def token(self, text: str, direction: Direction = "down", occurrence: int = 0) -> TokenSpan:
        """The ``occurrence``-th control message ``text`` (without ``\\n``) in a direction."""
        found = [t for t in self.tokens if t.direction == direction and t.text == text]
        if len(found) <= occurrence:
            raise KeyError(
                f"token {text!r} not found {direction} (have "
                f"{[t.text for t in self.tokens if t.direction == direction]})"
            )
        return found[occurrence]

    def segments_of(self, span: TokenSpan) -> list[TcpSegment]:
        """Payload segments holding at least one byte of ``span``."""
        return [
            s
            for s in self.payload_segments(span.direction)
            if s.offset < span.end and span.start < s.offset + s.length
        ]

    def token_split(self, text: str, direction: Direction = "down") -> bool:
        """True if the token's bytes are spread over more than one segment."""
        return len(self.segments_of(self.token(text, direction))) > 1

    def token_alone(self, text: str, direction: Direction = "down") -> bool:
        """True if one segment holds exactly the token (``text\\n``) and nothing else."""
        span = self.token(text, direction)
        segs = self.segments_of(span)
        return len(segs) == 1 and segs[0].offset == span.start and segs[0].length == span.end - span.start

    def token_glued(self, text: str, direction: Direction = "down") -> bool:
        """True if the token shares a segment with other bytes (and is not split)."""
        span = self.token(text, direction)
        segs = self.segments_of(span)
        return len(segs) == 1 and not self.token_alone(text, direction)

    def summary(self) -> str:
        """A few lines for reports."""
        down, up = self.sizes("down"), self.sizes("up")
        lines = [
            (
                f"connection :{self.client_port} <-> :{self.port}: {len(self.segments)} packets "
                f"({self.duplicates_removed} loopback duplicates removed), "
                f"{self.retransmissions} retransmissions, RST={len(self.flagged('R'))} "
                f"FIN={len(self.flagged('F'))}"
            ),
            (
                f"server->board: {len(down)} payload segments, {sum(down)} bytes, sizes "
                f"{down[:20]}{'...' if len(down) > 20 else ''}"
            ),
            f"board->server: {len(up)} payload segments, {sum(up)} bytes",
        ]
        for t in self.tokens:
            segs = self.segments_of(t)
            how = (
                "alone"
                if self.token_alone(t.text, t.direction) and t is self.token(t.text, t.direction)
                else f"in {len(segs)} segment(s)"
            )
            lines.append(f"  {t.direction:4} {t.text!r} @[{t.start},{t.end}) {how}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "port": self.port,
            "client_port": self.client_port,
            "packets_read": self.packets_read,
            "duplicates_removed": self.duplicates_removed,
            "retransmissions": self.retransmissions,
            "rst": len(self.flagged("R")),
            "fin": len(self.flagged("F")),
            "sizes_down": self.sizes("down"),
            "sizes_up": self.sizes("up"),
            "tokens": [
                {
                    "dir": t.direction,
                    "text": t.text,
                    "start": t.start,
                    "end": t.end,
                    "segments": len(self.segments_of(t)),
                }
                for t in self.tokens
            ],
            "segments": [s.to_dict() for s in self.segments],
        }


def analyze_pcap(
    path: str | Path, port: int, *, client_port: int | None = None, dedupe_window: float = 0.05
) -> CaptureAnalysis:
    """Read a pcap and describe the OTA connection on ``port``.

    Args:
        path: the pcap file.
        port: the server's TCP port (tells the directions apart).
        client_port: which connection to analyse (default: the first one seen).
        dedupe_window: identical IP packets closer than this (s) are one loopback copy.
    """
    from scapy.all import rdpcap  # scapy.all: every layer a capture's packets may decode to
    from scapy.layers.inet import IP, TCP  # the classes scapy.all re-exports (untyped there)

    pkts = [p for p in rdpcap(str(path)) if IP in p and TCP in p and port in (p[TCP].sport, p[TCP].dport)]
    ports = []
    for p in pkts:
        cp = p[TCP].dport if p[TCP].sport == port else p[TCP].sport
        if cp not in ports:
            ports.append(cp)
    if client_port is None and ports:
        client_port = ports[0]
    conn = [p for p in pkts if client_port in (p[TCP].sport, p[TCP].dport)]
    analysis = CaptureAnalysis(
        port=port,
        client_port=client_port,
        packets_read=len(pkts),
        duplicates_removed=0,
        connections=len(ports),
    )
    last_seen: dict[bytes, float] = {}
    unique = []
    for p in conn:
        key = bytes(p[IP])
        t = float(p.time)
        if key in last_seen and t - last_seen[key] <= dedupe_window:
            analysis.duplicates_removed += 1
            continue
        last_seen[key] = t
        unique.append(p)
    isn: dict[str, int] = {}
    covered: dict[str, int] = {"down": 0, "up": 0}
    streams: dict[str, bytearray] = {"down": bytearray(), "up": bytearray()}
    for i, p in enumerate(unique):
        tcp = p[TCP]
        direction: Direction = "down" if tcp.sport == port else "up"
        flags = str(tcp.flags)
        payload = bytes(tcp.payload)
        if "S" in flags:
            isn[direction] = tcp.seq + 1
        base = isn.get(direction)
        if base is None:  # capture started mid-connection: first packet defines offset 0
            base = isn[direction] = tcp.seq
        offset = 0 if "S" in flags else (tcp.seq - base) & 0xFFFFFFFF
        retrans = bool(payload) and offset + len(payload) <= covered[direction]
        if payload and not retrans:
            stream = streams[direction]
            if offset > len(stream):
                stream += b"\0" * (offset - len(stream))  # a hole: bytes never captured
            stream[offset : offset + len(payload)] = payload
            covered[direction] = max(covered[direction], offset + len(payload))
        analysis.segments.append(
            TcpSegment(i, float(p.time), direction, offset, len(payload), flags, retrans, payload)
        )
    analysis.streams = {k: bytes(v) for k, v in streams.items()}
    analysis.tokens = find_tokens(analysis.streams["down"], "down") + find_tokens(
        analysis.streams["up"], "up", all_lines=True
    )
    return analysis


def find_tokens(
    stream: bytes,
    direction: Direction,
    *,
    all_lines: bool = False,
    leading_end: bytes = b"OTA_UPDATE\n",
    trailer: bytes = b"OTA_DONE\n",
    max_line: int = 64,
) -> list[TokenSpan]:
    """Locate control messages in a stream.

    Board → server (``all_lines``) is all lines. Server → board is the leading control
    lines up to ``OTA_UPDATE`` and the trailing ``OTA_DONE`` (never searched inside data).
    """
    out: list[TokenSpan] = []
    pos = 0
    while pos < len(stream):
        nl = stream.find(b"\n", pos, pos + max_line)
        if nl < 0:
            break
        line = stream[pos : nl + 1]
        if not all(0x20 <= b <= 0x7E for b in line[:-1]):
            break
        out.append(TokenSpan(direction, line[:-1].decode("ascii"), pos, nl + 1))
        pos = nl + 1
        if not all_lines and line == leading_end:
            break
    if not all_lines and stream.endswith(trailer) and len(stream) - len(trailer) >= pos:
        out.append(
            TokenSpan(direction, trailer[:-1].decode("ascii"), len(stream) - len(trailer), len(stream))
        )
    return out
