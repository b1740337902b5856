"""The connection to one board: its socket and the control lines it sends.

:class:`BoardConnection` receives the board's lines with the protocol's limits (at most
:data:`MAX_LINE` bytes, printable ASCII, ``\\n``-terminated), never waits without a timeout,
checks the server's stop flag while waiting, tells an orderly close (FIN) from a reset (RST),
and ends the session by raising :class:`SessionEnd` with an outcome and a reason. What the
server sends through the link policy is :class:`rig.ota.session.Session`, built on it.
"""

from __future__ import annotations

import errno
import select
import socket
import threading
import time
from dataclasses import dataclass

from rig.errors import ConfigError
from rig.ota.framing import MAX_LINE, Framing, FramingError, LineFraming
from rig.ota.transcript import Transcript, printable

__all__ = ["MAX_LINE", "TICK", "BoardConnection", "SessionEnd", "Timeouts"]
#: longest single wait between checks of the stop flag, in seconds
TICK = 0.05


@dataclass(frozen=True)
class Timeouts:
    """Every wait of the server, in seconds.

    Attributes:
        connect: default for ``wait_session``: a board must connect within this.
        request: connect → first message (``REQ_FW``).
        ready: ``OTA_UPDATE`` sent → ``OTA_READY`` (the board erases flash meanwhile).
        ack: ``OTA_DONE`` sent → ``ACK``/``NACK`` (the board checks the CRC).
        send: a write (or draining the send queue) making no progress: the board stopped reading.
        stall: how long a ``stall`` policy without ``ms`` holds the link waiting for the board.
        linger: after the final ``ACK``/``NACK`` (or a cut), how long to watch for stray bytes / EOF.
        session: the longest one session may last, connect to end, whatever the board does
            (a board reading one byte now and then never trips ``send``, but must not hold the
            single-board server for ever): 600 s, ten times what a 2 MiB image takes over the
            reference WiFi path.
    """

    connect: float = 60.0
    request: float = 10.0
    ready: float = 60.0
    ack: float = 60.0
    send: float = 20.0
    stall: float = 15.0
    linger: float = 0.3
    session: float = 600.0

    def __post_init__(self) -> None:
        for name in ("connect", "request", "ready", "ack", "send", "stall", "linger", "session"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e9:
                raise ConfigError(
                    f"Timeouts.{name} = {value!r}",
                    source="timeouts",
                    expected="a number of seconds, 0 <= s < 1e9 (not NaN or infinite)",
                )

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        """Every timeout set to ``seconds`` (linger stays short; the session limit is
        the default or ``seconds``, whichever is longer)."""
        return cls(
            seconds, seconds, seconds, seconds, seconds, seconds, min(0.3, seconds), max(600.0, seconds)
        )


class SessionEnd(Exception):
    """Ends a session; ``outcome`` is one of transcript.OUTCOMES."""

    def __init__(
        self, outcome: str, reason: str, *, phase: str | None = None, nack_reason: str | None = None
    ) -> None:
        super().__init__(f"{outcome}: {reason}")
        self.outcome = outcome
        self.reason = reason
        self.phase = phase
        self.nack_reason = nack_reason


class BoardConnection:
    """The receiving side of one board connection.

    Args:
        sock: the accepted socket (made non-blocking here, TCP_NODELAY on).
        transcript: where every message goes.
        timeouts: the waits.
        stop: set by the server to abort (close / Ctrl-C).
        framing: where the board's messages end (default :class:`LineFraming`, the
            ``\\n``-terminated lines of docs/protocol.md; the protocol chooses it).
    """

    def __init__(
        self,
        sock: socket.socket,
        transcript: Transcript,
        timeouts: Timeouts,
        stop: threading.Event,
        *,
        framing: Framing | None = None,
    ) -> None:
        self.sock = sock
        #: how the board's byte stream is cut into messages
        self.framing: Framing = framing or LineFraming()
        self.transcript = transcript
        self.timeouts = timeouts
        #: the protocol phase, named in every SessionEnd
        self.phase = "request"
        self._stop = stop
        #: Timeouts.session: every wait checks it, whatever the board does
        self._session_deadline = time.monotonic() + timeouts.session
        self._rx = bytearray()
        self._eof = False
        #: the end of the stream was a reset (RST), not an orderly close (FIN)
        self._rst = False
        #: bytes written to / read from the socket (capture waits until it saw them all)
        self.wire_tx = 0
        self.wire_rx = 0
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def fail(self, outcome: str, reason: str, **kw: object) -> SessionEnd:
        """Build a SessionEnd for the current phase (``raise session.fail(...)``)."""
        return SessionEnd(outcome, reason, phase=self.phase, **kw)  # type: ignore[arg-type]

    def _check_aborted(self) -> None:
        if self._stop.is_set():
            raise self.fail("aborted", "server closed (shutdown or Ctrl-C) during the session")

    def _check_stop(self) -> None:
        """Called in every wait: the server's stop flag, then the session limit."""
        self._check_aborted()
        if time.monotonic() > self._session_deadline:
            raise self.fail(
                "timeout",
                f"the session exceeded its limit of {self.timeouts.session:g} s (Timeouts.session) "
                f"in phase {self.phase}, after {self.wire_tx} bytes sent: the board is too slow or "
                "stuck, and one board may not hold the server for ever",
            )

    # ------------------------------------------------------------------ receiving
    def expect(self, what: str, timeout: float) -> str:
        """Wait for the next control line from the board.

        Args:
            what: what is awaited, for the reason text (e.g. ``"REQ_FW"``).
            timeout: seconds.

        Returns:
            The line without its ``\\n``.

        Raises:
            SessionEnd: timeout, EOF, line too long or invalid bytes.
        """
        deadline = time.monotonic() + timeout
        while True:
            line = self._take_line()
            if line is not None:
                return line
            if self._eof:
                self._check_aborted()
                partial = f" (partial line {printable(bytes(self._rx))!r})" if self._rx else ""
                raise self.fail(
                    "closed",
                    f"board {self._ended()} in phase {self.phase} while the server waited "
                    f"for {what}{partial}",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                partial = f"; partial line {printable(bytes(self._rx))!r}" if self._rx else ""
                raise self.fail("timeout", f"no {what} from the board within {timeout:g} s{partial}")
            self._check_stop()
            self._fill(min(remaining, TICK))

    def poll_line(self) -> str | None:
        """A complete line if one already arrived (non-blocking), else None."""
        line = self._take_line()
        if line is None and not self._eof:
            self._fill(0)
            line = self._take_line()
        return line

    def _take_line(self) -> str | None:
        """The board's next complete message (cut by :attr:`framing`), or None."""
        try:
            found = self.framing.split(self._rx)
        except FramingError as exc:
            raise self.fail("protocol", str(exc)) from None
        if found is None:
            return None
        message, used = found
        raw = bytes(self._rx[:used])
        del self._rx[:used]
        self.transcript.rx(raw)
        return message

    def _message_waiting(self) -> bool:
        """A complete message (or bytes that are an error) is in the receive buffer."""
        return self.framing.waiting(self._rx)

    def _fill(self, wait: float) -> None:
        try:
            r, _, _ = select.select([self.sock], [], [], max(0.0, wait))
        except (OSError, ValueError) as exc:
            raise self.fail("aborted", f"socket closed: {exc}") from None
        if not r:
            return
        try:
            chunk = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as exc:
            self._eof = True
            if exc.errno == errno.ECONNRESET:
                # A board that closes with unread bytes in its receive buffer sends RST,
                # not FIN. What it sent before is already in _rx (the kernel hands queued
                # data out before the error), so treat it as an end of stream and let the
                # caller say which phase and what partial line it ended in.
                self._rst = True
                return
            raise self.fail("closed", f"receive failed: {exc}") from None
        if not chunk:
            self._eof = True
        else:
            self._rx += chunk
            self.wire_rx += len(chunk)

    def linger(self) -> int:
        """After the final message: watch ``timeouts.linger`` s for stray bytes; return their
        count (bytes the framing ignores, e.g. a CR/LF after a word, do not count)."""
        extra = self.framing.stray(self._rx)
        deadline = time.monotonic() + self.timeouts.linger
        while not self._eof and time.monotonic() < deadline and not extra:
            try:
                self._fill(min(TICK, max(0.0, deadline - time.monotonic())))
            except SessionEnd:
                break
            extra = self.framing.stray(self._rx)
        return extra

    def _ended(self) -> str:
        return "reset the connection (RST)" if self._rst else "closed the connection"
