"""OTA protocols: the interface and the default thread protocol (docs/protocol.md).

A protocol drives one board connection through a :class:`rig.ota.session.Session`:
``session.expect(what, timeout)`` waits for the board's next control line (``\\n``
terminated, at most 64 bytes, with a timeout), ``session.send(*pieces)`` sends control
messages and data through the link policy (which decides the TCP segmentation and injects
faults), and ``session.offer`` holds what to announce (size, CRC) and stream (data) after
the policy's content faults. A protocol returns a :class:`Verdict` or raises
``session.fail(outcome, reason)``.

Plugging in your own protocol (example: the board sends ``HELLO``, the server answers
``SIZE <n>``, streams the image and expects ``OK``)::

    from rig.ota.protocol import Protocol, Verdict

    class HelloProtocol(Protocol):
        name = "hello"

        def run(self, session):
            t = session.timeouts
            session.phase = "request"
            if session.expect("HELLO", t.request) != "HELLO":
                raise session.fail("protocol", "expected HELLO")
            session.phase = "data"
            offer = session.offer
            interrupted = session.send(session.control(f"SIZE {offer.declared_size}"),
                                       session.data(offer.data))
            session.phase = "ack"
            line = interrupted or session.expect("OK", t.ack)
            if line == "OK":
                return Verdict("ack", "board answered OK", acked=len(offer.data))
            raise session.fail("protocol", f"expected OK, got {line!r}")

    with OtaServer(image, protocol=HelloProtocol(), policy="split-tokens") as srv:
        ...

Every link policy applies to a custom protocol too: segmenters see your control pieces
and data pieces, cuts count data bytes, content faults change ``session.offer``.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass

from rig.ota.session import Session

#: NACK reasons documented in docs/protocol.md
NACK_REASONS = ("too_large", "bad_size", "protocol", "crc", "flash", "timeout", "short")
_NACK_RE = re.compile(r"^NACK:([A-Za-z0-9_]{1,40})$")


@dataclass(frozen=True)
class Verdict:
    """How the protocol ended the session when it did not raise."""

    outcome: str
    reason: str
    acked: int = 0
    nack_reason: str | None = None


class Protocol(ABC):
    """A board ↔ server OTA protocol (subclass it to plug in your own)."""

    name = "custom"
    #: whether the protocol announces a CRC (affects policies such as ``wrong-crc``)
    crc = False

    def describe(self) -> str:
        """Short description for transcripts."""
        return self.name

    @abstractmethod
    def run(self, session: Session) -> Verdict:
        """Drive one connection; return a Verdict or raise ``session.fail(...)``."""


class ThreadProtocol(Protocol):
    """The forum thread's protocol made strict (docs/protocol.md).

    ``REQ_FW`` → ``FILE_SIZE:<n>`` [``FILE_CRC:<8 hex>``] ``OTA_UPDATE`` → ``OTA_READY`` →
    n data bytes + ``OTA_DONE`` → ``ACK`` / ``NACK:<reason>``.

    Args:
        crc: announce ``FILE_CRC`` (CRC-32 as ``zlib.crc32``) before ``OTA_UPDATE``.
    """

    name = "thread"

    def __init__(self, crc: bool = True) -> None:
        self.crc = crc

    def describe(self) -> str:
        return f"thread(crc={'on' if self.crc else 'off'})"

    def run(self, session: Session) -> Verdict:
        t = session.timeouts
        session.phase = "request"
        line = session.expect("REQ_FW", t.request)
        self._nack_or(session, line, "REQ_FW")
        offer = session.offer
        msgs = [session.control(f"FILE_SIZE:{offer.declared_size}")]
        if offer.crc is not None:
            msgs.append(session.control(f"FILE_CRC:{offer.crc:08X}"))
        msgs.append(session.control("OTA_UPDATE"))
        session.phase = "ready"
        line = session.send(*msgs)
        if line is not None:
            self._nack_or(session, line, None, "before OTA_UPDATE was sent (wrong order)")
        line = session.expect("OTA_READY", t.ready)
        self._nack_or(session, line, "OTA_READY")
        session.phase = "data"
        line = session.send(session.data(offer.data), session.control("OTA_DONE"))
        if line is not None:
            self._nack_or(session, line, None, "while the image was being sent")
        session.phase = "ack"
        line = session.expect("ACK", t.ack)
        self._nack_or(session, line, "ACK")
        session.phase = "done"
        extra = session.linger()
        if extra:
            raise session.fail("protocol", f"board sent {extra} unexpected byte(s) after ACK")
        return Verdict("ack", "board acknowledged the image", acked=len(offer.data))

    @staticmethod
    def _nack_or(session: Session, line: str, expected: str | None, when: str = "") -> None:
        """Raise for a NACK or for anything other than ``expected`` (None: nothing expected)."""
        if line.startswith("NACK"):
            m = _NACK_RE.match(line)
            if not m:
                raise session.fail("protocol", f"malformed NACK {line!r} (expected NACK:<reason>)")
            reason = m.group(1)
            if reason not in NACK_REASONS:
                session.transcript.note(f"NACK reason {reason!r} is not one of {', '.join(NACK_REASONS)}")
            extra = session.linger()
            if extra:
                session.transcript.note(f"board sent {extra} byte(s) after NACK")
            raise session.fail("nack", reason, nack_reason=reason)
        if expected is None:
            raise session.fail("protocol", f"board sent {line!r} {when}")
        if line != expected:
            raise session.fail("protocol", f"expected {expected}, got {line!r}")
