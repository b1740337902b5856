"""OTA session transcript and result.

A :class:`Transcript` records every control message each way with a monotonic
timestamp (seconds since the session started), the data progress, notes and the
outcome. :class:`SessionResult` is what :meth:`rig.ota.server.OtaServer.wait_session`
returns; both are JSON-ready through ``to_dict()`` and readable through ``to_text()``
(the HTML report embeds them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["rx", "tx", "info"]
Kind = Literal["msg", "data", "note", "error", "segment"]

#: Outcomes a session can end with.
OUTCOMES = ("ack", "nack", "timeout", "protocol", "closed", "aborted", "refused", "error")


@dataclass
class Event:
    """One transcript entry.

    Attributes:
        t: seconds since the session started (monotonic clock).
        direction: ``"rx"`` (board → server), ``"tx"`` (server → board) or ``"info"``.
        kind: ``"msg"`` control line, ``"data"`` image bytes, ``"note"`` or ``"error"``.
        text: the message (printable form) or note.
        nbytes: bytes on the wire for this entry.
        offset: for data, the image offset of the first byte.
    """

    t: float
    direction: Direction
    kind: Kind
    text: str
    nbytes: int = 0
    offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d: dict[str, Any] = {
            "t": round(self.t, 6),
            "dir": self.direction,
            "kind": self.kind,
            "text": self.text,
            "nbytes": self.nbytes,
        }
        if self.offset is not None:
            d["offset"] = self.offset
        return d


def printable(raw: bytes, limit: int = 80) -> str:
    """Render bytes from the wire as an escaped, bounded string."""
    text = raw[:limit].decode("ascii", "backslashreplace")
    text = text.replace("\n", "\\n").replace("\r", "\\r").replace("\x00", "\\x00")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    if len(raw) > limit:
        text += f"...(+{len(raw) - limit} bytes)"
    return text


def _strip_nl(line: bytes) -> bytes:
    return line[:-1] if line.endswith(b"\n") else line


class Transcript:
    """Append-only log of one OTA session (thread-safe enough: one writer thread)."""

    #: data events beyond this count are merged into the last one (bounded memory).
    MAX_DATA_EVENTS = 4000

    def __init__(
        self,
        *,
        policy: str = "natural",
        protocol: str = "thread",
        image_size: int = 0,
        clock: Any = time.monotonic,
    ) -> None:
        self._clock = clock
        self.t0 = clock()
        self.started_wall = time.time()
        self.policy = policy
        self.protocol = protocol
        self.image_size = image_size
        self.events: list[Event] = []
        self.peer: str | None = None
        self.data_sent = 0
        self.data_writes = 0
        self._data_events = 0

    def now(self) -> float:
        """Seconds since the session started."""
        return self._clock() - self.t0

    def rx(self, line: bytes) -> None:
        """Record a control line received from the board."""
        self.events.append(Event(self.now(), "rx", "msg", printable(_strip_nl(line)), len(line)))

    def tx(self, line: bytes) -> None:
        """Record a control message sent to the board."""
        self.events.append(Event(self.now(), "tx", "msg", printable(_strip_nl(line)), len(line)))

    def data(self, offset: int, nbytes: int) -> None:
        """Record ``nbytes`` image bytes written at image ``offset``."""
        self.data_sent = max(self.data_sent, offset + nbytes)
        self.data_writes += 1
        last = self.events[-1] if self.events else None
        if (
            self._data_events >= self.MAX_DATA_EVENTS
            and last is not None
            and last.kind == "data"
            and last.offset is not None
            and last.offset + last.nbytes == offset
        ):
            last.nbytes += nbytes
            last.text = f"data [{last.offset}, {last.offset + last.nbytes})"
            return
        self._data_events += 1
        self.events.append(
            Event(self.now(), "tx", "data", f"data [{offset}, {offset + nbytes})", nbytes, offset)
        )

    def note(self, text: str) -> None:
        """Record a free-form note (policy action, refused client...)."""
        self.events.append(Event(self.now(), "info", "note", text))

    def error(self, text: str) -> None:
        """Record the error that ends the session."""
        self.events.append(Event(self.now(), "info", "error", text))

    def messages(self, direction: Direction | None = None) -> list[str]:
        """Control messages in order (optionally one direction only)."""
        return [
            e.text for e in self.events if e.kind == "msg" and (direction is None or e.direction == direction)
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "policy": self.policy,
            "protocol": self.protocol,
            "peer": self.peer,
            "image_size": self.image_size,
            "data_sent": self.data_sent,
            "data_writes": self.data_writes,
            "started": self.started_wall,
            "events": [e.to_dict() for e in self.events],
        }

    def to_text(self) -> str:
        """Human-readable form; consecutive data writes are summarised on one line."""
        out = [
            (
                f"# OTA session peer={self.peer} protocol={self.protocol} policy={self.policy} "
                f"image={self.image_size} bytes"
            )
        ]
        run: list[Event] = []

        def flush() -> None:
            if run:
                first, last = run[0], run[-1]
                total = sum(e.nbytes for e in run)
                out.append(
                    f"{first.t:10.6f} -> data  [{first.offset}, "
                    f"{(last.offset or 0) + last.nbytes}) {total} bytes in {len(run)} "
                    f"write(s), until {last.t:.6f}"
                )
                run.clear()

        arrows = {"rx": "<-", "tx": "->", "info": "  "}
        for e in self.events:
            if e.kind == "data":
                run.append(e)
                continue
            flush()
            label = {"msg": "msg  ", "note": "note ", "error": "ERROR"}.get(e.kind, e.kind)
            out.append(f"{e.t:10.6f} {arrows[e.direction]} {label} {e.text}")
        flush()
        return "\n".join(out)


@dataclass
class SessionResult:
    """How one board session ended.

    Attributes:
        outcome: one of :data:`OUTCOMES` (``"ack"`` means the board acknowledged the image).
        reason: short human-readable reason (the NACK reason for ``"nack"``).
        phase: protocol phase the session ended in (``"connect"``, ``"request"``, ``"ready"``,
            ``"data"``, ``"ack"``, ``"done"``).
        bytes_sent: image bytes written to the socket.
        bytes_acked: image bytes the board acknowledged at application level (all of the
            declared size on ACK, else 0).
        duration: seconds from connect to the end.
        policy: canonical description of the link policy applied.
        transcript: the full transcript.
        peer: ``"ip:port"`` of the board.
        pcap: path of the capture of this session, if capture was on.
        refused: clients refused while this session ran (``"ip:port"``).
    """

    outcome: str
    reason: str
    phase: str
    bytes_sent: int
    bytes_acked: int
    duration: float
    policy: str
    transcript: Transcript
    peer: str | None = None
    pcap: str | None = None
    refused: list[str] = field(default_factory=list)
    nack_reason: str | None = None
    index: int = 0

    @property
    def ok(self) -> bool:
        """True when the board acknowledged the image."""
        return self.outcome == "ack"

    @property
    def throughput(self) -> float:
        """Image bytes sent per second over the session (0 when instantaneous)."""
        return self.bytes_sent / self.duration if self.duration > 0 else 0.0

    def summary(self) -> str:
        """One line: outcome, reason, bytes and throughput."""
        return (
            f"session {self.index}: {self.outcome} ({self.reason}) phase={self.phase} "
            f"sent={self.bytes_sent} acked={self.bytes_acked} "
            f"in {self.duration:.3f} s = {self.throughput / 1024:.1f} KiB/s policy={self.policy}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (includes the transcript)."""
        return {
            "index": self.index,
            "outcome": self.outcome,
            "reason": self.reason,
            "phase": self.phase,
            "nack_reason": self.nack_reason,
            "bytes_sent": self.bytes_sent,
            "bytes_acked": self.bytes_acked,
            "duration": round(self.duration, 6),
            "throughput": round(self.throughput, 1),
            "policy": self.policy,
            "peer": self.peer,
            "pcap": self.pcap,
            "refused": list(self.refused),
            "transcript": self.transcript.to_dict(),
        }

    def to_text(self) -> str:
        """Summary line followed by the transcript text."""
        return self.summary() + "\n" + self.transcript.to_text()
