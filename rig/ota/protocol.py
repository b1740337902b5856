"""OTA protocols: the interface, the reference protocol (docs/protocol.md), the forum
thread's own protocol, and :func:`load_protocol` (``reference``, ``thread``, ``module:Class``).

A protocol drives one board connection through a :class:`rig.ota.session.Session`:
``session.expect(what, timeout)`` waits for the board's next message (cut by the
protocol's :meth:`Protocol.board_framing`: ``\\n``-terminated lines of at most 64 bytes by
default, or known words without terminators), ``session.send(*pieces)`` sends control
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

What the protocol lets a board notice is declared in three class attributes the HIL suite
reads to skip fault scenarios a protocol cannot detect by design (never a bootloader bug):
``crc`` (it announces a CRC of the image), ``end_marker`` (something follows the data, so
a size announced too small shows), ``nack_reasons`` (the board's refusal carries a reason).
A protocol object is shared by every session of a server (and a HIL run): keep per-session
state in ``run``'s locals, not on ``self``.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from rig.errors import ConfigError
from rig.ota.framing import Framing, LineFraming, TokenFraming
from rig.ota.session import NO_REASON, Session, nack_reason

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
    #: whether something follows the image data, so a board can tell a short FILE_SIZE
    end_marker = False
    #: whether the board's refusal names a reason (``NACK:too_large``)
    nack_reasons = False

    def describe(self) -> str:
        """Short description for transcripts."""
        return self.name

    def board_framing(self) -> Framing:
        """Where the board's messages end (default: docs/protocol.md's ``\\n``-terminated lines)."""
        return LineFraming()

    @abstractmethod
    def run(self, session: Session) -> Verdict:
        """Drive one connection; return a Verdict or raise ``session.fail(...)``."""


class ReferenceProtocol(Protocol):
    """The reference protocol: the forum thread's protocol made strict (docs/protocol.md).

    ``REQ_FW`` → ``FILE_SIZE:<n>`` [``FILE_CRC:<8 hex>``] ``OTA_UPDATE`` → ``OTA_READY`` →
    n data bytes + ``OTA_DONE`` → ``ACK`` / ``NACK:<reason>``, every message a line.

    Args:
        crc: announce ``FILE_CRC`` (CRC-32 as ``zlib.crc32``) before ``OTA_UPDATE``.
    """

    name = "reference"
    end_marker = True
    nack_reasons = True

    def __init__(self, crc: bool = True) -> None:
        self.crc = crc

    def describe(self) -> str:
        return f"reference(crc={'on' if self.crc else 'off'})"

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
        early = session.send(*msgs)  # a line the board sent while these went out
        if early is not None:
            self._nack_or(session, early, None, "before OTA_UPDATE was sent (wrong order)")
        line = session.expect("OTA_READY", t.ready)
        self._nack_or(session, line, "OTA_READY")
        session.phase = "data"
        early = session.send(session.data(offer.data), session.control("OTA_DONE"))
        if early is not None:
            self._nack_or(session, early, None, "while the image was being sent")
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


#: the reference protocol's former name (it is the thread's protocol made strict); kept so
#: existing ``OtaServer(protocol=ThreadProtocol())`` code keeps working. The forum thread's
#: own wire format is :class:`ForumThreadProtocol` (``thread`` in :func:`load_protocol`).
ThreadProtocol = ReferenceProtocol


class ForumThreadProtocol(Protocol):
    """The forum thread's protocol to the letter, as its bootloader speaks it.

    ``REQ_FW`` → ``FILE_SIZE:<n>`` → ``OTA_UPDATE`` → ``OTA_READY`` → n data bytes →
    ``ACK`` (the board counts the data bytes and acknowledges after the n-th) or ``NACK``.
    No terminators anywhere: the server sends ``FILE_SIZE:<n>`` and ``OTA_UPDATE`` each
    in its own TCP segment, ``pause_ms`` apart (the thread's board takes one message per
    receive: ``strncmp(msg, "FILE_SIZE:", 10)``), and recognises the board's words as
    soon as their bytes are there (:class:`~rig.ota.framing.TokenFraming`; a ``NACK`` may
    carry ``:<reason>``, the thread's does not). No ``FILE_CRC``: a corrupted byte or a
    size announced too small cannot be noticed by the board (``crc`` and ``end_marker``
    are false), and the HIL suite skips those fault scenarios for this protocol.

    The link policies apply as to any protocol: ``natural`` and ``per-message`` keep the
    protocol's segments and pause, ``glued``, ``split-tokens``, ``tiny`` and ``random``
    cut the stream their own way (what a board must survive if TCP does it).

    Args:
        pause_ms: pause between the two control messages (after the first was transmitted).
        send_done: send ``OTA_DONE`` (its own segment, after the data and a pause) as the
            thread's server seems to; off by default, because the thread's board
            acknowledges and closes after the n-th byte, before it could arrive.
    """

    name = "thread"
    crc = False
    end_marker = False
    nack_reasons = False
    BOARD_WORDS = ("REQ_FW", "OTA_READY", "ACK", "NACK")

    def __init__(self, pause_ms: float = 50.0, send_done: bool = False) -> None:
        if (
            isinstance(pause_ms, bool)
            or not isinstance(pause_ms, (int, float))
            or not 0 <= pause_ms <= 10_000
        ):
            raise ConfigError(
                f"thread protocol: pause_ms={pause_ms!r}",
                source="protocol",
                expected="milliseconds, 0..10000",
            )
        if not isinstance(send_done, bool):
            raise ConfigError(
                f"thread protocol: send_done={send_done!r}", source="protocol", expected="true or false"
            )
        self.pause_ms = float(pause_ms)
        self.send_done = send_done

    def describe(self) -> str:
        return f"thread(pause={self.pause_ms:g}ms{', OTA_DONE' if self.send_done else ''})"

    def board_framing(self) -> Framing:
        return TokenFraming(self.BOARD_WORDS, reason_after=("NACK",))

    def run(self, session: Session) -> Verdict:
        t = session.timeouts
        session.phase = "request"
        self._expect(session, "REQ_FW", t.request)
        offer = session.offer
        session.phase = "ready"
        line = session.send(
            session.message(f"FILE_SIZE:{offer.declared_size}", separate=True),
            session.message("OTA_UPDATE", separate=True, pause_ms=self.pause_ms),
        )
        if line is not None:
            self._refused_or(session, line, "before OTA_UPDATE was sent (wrong order)")
        self._expect(session, "OTA_READY", t.ready)
        session.phase = "data"
        pieces = [session.data(offer.data)]
        if self.send_done:
            pieces.append(session.message("OTA_DONE", separate=True, pause_ms=self.pause_ms))
        line = session.send(*pieces)
        if line is not None and line != "ACK":
            self._refused_or(session, line, "while the image was being sent")
        if line == "ACK" and session.data_sent < len(offer.data):
            session.transcript.note(
                f"the board acknowledged after {session.data_sent} of {len(offer.data)} data bytes "
                f"(FILE_SIZE:{offer.declared_size})"
            )
        session.phase = "ack"
        if line is None:
            self._expect(session, "ACK", t.ack)
        session.phase = "done"
        extra = session.linger()
        if extra:
            raise session.fail("protocol", f"board sent {extra} unexpected byte(s) after ACK")
        return Verdict("ack", "board acknowledged the image", acked=session.data_sent)

    def _expect(self, session: Session, word: str, timeout: float) -> None:
        line = session.expect(word, timeout)
        if line != word:
            self._refused_or(session, line, f"while the server waited for {word}")

    @staticmethod
    def _refused_or(session: Session, line: str, when: str) -> None:
        reason = nack_reason(line)
        if reason is not None:
            extra = session.linger()
            if extra:
                session.transcript.note(f"board sent {extra} byte(s) after NACK")
            raise session.fail("nack", reason or NO_REASON, nack_reason=reason or None)
        raise session.fail("protocol", f"board sent {line!r} {when}")


#: the protocols :func:`load_protocol` knows by name
BUILTIN_PROTOCOLS: dict[str, type[Protocol]] = {
    "reference": ReferenceProtocol,
    "thread": ForumThreadProtocol,
}


def load_protocol(spec: str, options: Mapping[str, object] | None = None) -> Protocol:
    """The protocol named ``spec`` with ``options`` as constructor keyword arguments.

    ``spec`` is ``reference`` (docs/protocol.md), ``thread`` (the forum thread's own wire
    format, :class:`ForumThreadProtocol`) or ``module:Class`` / ``path/to/file.py:Class``
    for a user's own :class:`Protocol` subclass. Raises :class:`ConfigError` naming what is
    allowed: an unknown name, a module that does not import, a class that is not a
    Protocol, options the class does not take.
    """
    options = dict(options or {})
    allowed = ", ".join(BUILTIN_PROTOCOLS) + ", module:Class or path/to/file.py:Class"
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"OTA protocol {spec!r}", source="protocol", expected=allowed)
    spec = spec.strip()
    if spec in BUILTIN_PROTOCOLS:
        cls: object = BUILTIN_PROTOCOLS[spec]
    elif ":" in spec:
        cls = _import_class(spec, allowed)
    else:
        raise ConfigError(f"unknown OTA protocol {spec!r}", source="protocol", expected=allowed)
    if not (isinstance(cls, type) and issubclass(cls, Protocol)):
        raise ConfigError(
            f"{spec} is not a subclass of rig.ota.protocol.Protocol",
            source="protocol",
            expected="a class deriving from rig.ota.protocol.Protocol (see its docstring)",
        )
    try:
        return cls(**options)
    except ConfigError:
        raise
    except TypeError as exc:
        given = ", ".join(options) or "none"
        raise ConfigError(
            f"protocol {spec}: {exc}",
            source="protocol",
            expected=f"options the class's constructor takes (given: {given})",
        ) from None


def _import_class(spec: str, allowed: str) -> object:
    module_name, _, attr = spec.rpartition(":")
    if not module_name or not attr.isidentifier():
        raise ConfigError(f"OTA protocol {spec!r}", source="protocol", expected=allowed)
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ImportError(f"no such file {path}")
            name = f"ota_rig_user_protocol_{abs(hash(str(path.resolve())))}"
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            loader_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(
            f"OTA protocol {spec}: cannot import {module_name}: {exc}",
            source="protocol",
            expected="an importable module (on sys.path) or a .py file, then :ClassName",
        ) from None
    if not hasattr(module, attr):
        raise ConfigError(
            f"OTA protocol {spec}: {module_name} has no {attr!r}",
            source="protocol",
            expected="the name of a Protocol subclass defined in that module",
        )
    return getattr(module, attr)
