"""One board connection: line reception with limits and timeouts, and policy-driven sending.

:class:`Session` is what a :class:`rig.ota.protocol.Protocol` talks to. It never waits
without a timeout, checks a stop flag while waiting, and ends the session by raising
:class:`SessionEnd` with an outcome and a reason.
"""

from __future__ import annotations

import errno
import fcntl
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rig.ota.policy import Cut, LinkPolicy, Offer, Piece, Write
from rig.ota.transcript import Transcript, printable

#: Linux ioctl: bytes in the send queue not yet sent (falls back to SIOCOUTQ = TIOCOUTQ).
SIOCOUTQNSD = 0x894B
SIOCOUTQ = 0x5411
#: longest control line, including the ``\n`` (docs/protocol.md)
MAX_LINE = 64
_TICK = 0.05


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
    """

    connect: float = 60.0
    request: float = 10.0
    ready: float = 60.0
    ack: float = 60.0
    send: float = 20.0
    stall: float = 15.0
    linger: float = 0.3

    @classmethod
    def all(cls, seconds: float) -> Timeouts:
        """Every timeout set to ``seconds`` (linger stays short)."""
        return cls(seconds, seconds, seconds, seconds, seconds, seconds, min(0.3, seconds))


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


ProgressFn = Callable[[str, int, int], None]


class Session:
    """The server side of one board connection, driven by a protocol.

    Args:
        sock: the accepted socket (made non-blocking here, TCP_NODELAY on).
        image: the configured image.
        policy: the link policy for this session.
        transcript: where every message goes.
        timeouts: the waits.
        stop: set by the server to abort (close / Ctrl-C).
        crc: whether the protocol announces FILE_CRC.
        progress: optional ``fn(phase, data_sent, data_total)``.
    """

    def __init__(
        self,
        sock: socket.socket,
        image: bytes,
        policy: LinkPolicy,
        transcript: Transcript,
        timeouts: Timeouts,
        stop: threading.Event,
        *,
        crc: bool = True,
        progress: ProgressFn | None = None,
    ) -> None:
        self.sock = sock
        self.policy = policy
        self.transcript = transcript
        self.timeouts = timeouts
        self.phase = "request"
        self.offer: Offer = policy.make_offer(image, crc=crc)
        self.crc_enabled = crc
        self._stop = stop
        self._progress = progress
        self._rx = bytearray()
        self._eof = False
        #: the end of the stream was a reset (RST), not an orderly close (FIN)
        self._rst = False
        self._rng = policy.new_rng()
        self._data_sent = 0
        self._writes = 0
        self._cut_done = False
        self.closed_by_policy: str | None = None
        #: bytes written to / read from the socket (capture waits until it saw them all)
        self.wire_tx = 0
        self.wire_rx = 0
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ------------------------------------------------------------------ helpers for protocols
    @staticmethod
    def control(text: str) -> Piece:
        """A control message piece (``\\n`` appended)."""
        return Piece("control", text.encode("ascii") + b"\n")

    @staticmethod
    def data(payload: bytes) -> Piece:
        """A data piece."""
        return Piece("data", bytes(payload))

    @property
    def writes(self) -> int:
        """Application writes made so far."""
        return self._writes

    @property
    def data_sent(self) -> int:
        """Image bytes written so far."""
        return self._data_sent

    def fail(self, outcome: str, reason: str, **kw: object) -> SessionEnd:
        """Build a SessionEnd for the current phase (``raise session.fail(...)``)."""
        return SessionEnd(outcome, reason, phase=self.phase, **kw)  # type: ignore[arg-type]

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise self.fail("aborted", "server closed (shutdown or Ctrl-C) during the session")

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
                self._check_stop()
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
            self._fill(min(remaining, _TICK))

    def poll_line(self) -> str | None:
        """A complete line if one already arrived (non-blocking), else None."""
        line = self._take_line()
        if line is None and not self._eof:
            self._fill(0)
            line = self._take_line()
        return line

    def _take_line(self) -> str | None:
        nl = self._rx.find(b"\n", 0, MAX_LINE)
        if nl < 0:
            if len(self._rx) >= MAX_LINE:
                raise self.fail(
                    "protocol",
                    f"line longer than {MAX_LINE} bytes from the board: "
                    f"{printable(bytes(self._rx[:MAX_LINE]), 40)!r}",
                )
            return None
        raw = bytes(self._rx[: nl + 1])
        del self._rx[: nl + 1]
        self.transcript.rx(raw)
        body = raw[:-1]
        bad = [b for b in body if b < 0x20 or b > 0x7E]
        if bad:
            raise self.fail(
                "protocol",
                f"invalid byte 0x{bad[0]:02x} in a line from the board "
                f"({printable(raw)!r}): lines are printable ASCII ending in \\n",
            )
        return body.decode("ascii")

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
        """After the final message: watch ``timeouts.linger`` s for stray bytes; return their count."""
        extra = len(self._rx)
        deadline = time.monotonic() + self.timeouts.linger
        while not self._eof and time.monotonic() < deadline and not extra:
            before = len(self._rx)
            try:
                self._fill(min(_TICK, max(0.0, deadline - time.monotonic())))
            except SessionEnd:
                break
            extra += len(self._rx) - before
        return extra

    # ------------------------------------------------------------------ sending
    def send(self, *pieces: Piece) -> str | None:
        """Send pieces through the link policy.

        Returns:
            None when everything was sent; otherwise the control line the board sent
            meanwhile (sending stopped there, e.g. a ``NACK``).

        Raises:
            SessionEnd: the board closed or stopped reading, or a cut action ended the link.
        """
        writes = self.policy.segmenter.plan(pieces, self._rng)
        layout = _layout(pieces)
        cut_pos = self._cut_position(layout)
        pos = 0
        prev_separate = False
        for w in writes:
            end = pos + len(w.payload)
            if cut_pos is not None and pos <= cut_pos < end:
                head = w.payload[: cut_pos - pos]
                if head:
                    line = self._write(Write(head, w.separate), pos, layout, prev_separate)
                    if line is not None:
                        return line
                cut = self.policy.cut
                assert cut is not None
                line = self._act(cut)
                if line is not None:
                    return line
                rest = w.payload[cut_pos - pos :]
                cut_pos = None
                line = self._write(Write(rest, w.separate), pos + len(head), layout, True)
                if line is not None:
                    return line
            else:
                line = self._write(w, pos, layout, prev_separate)
                if line is not None:
                    return line
            prev_separate = w.separate
            pos = end
        return None

    def _cut_position(self, layout: list[tuple[int, int, Piece]]) -> int | None:
        cut = self.policy.cut
        if cut is None or self._cut_done:
            return None
        count = self._data_sent
        for start, end, piece in layout:
            if piece.kind != "data":
                continue
            if count <= cut.byte < count + (end - start):
                return start + (cut.byte - count)
            count += end - start
        return None

    def _write(self, w: Write, pos: int, layout: list[tuple[int, int, Piece]], prev_sep: bool) -> str | None:
        self._check_stop()
        if self._writes:
            if w.separate or prev_sep:
                self._drain()
            if self.policy.pause and self.policy.pause.ms > 0:
                if self._stop.wait(self.policy.pause.ms / 1000.0):
                    self._check_stop()
        line = self.poll_line()
        if line is not None:
            return line
        if self._eof:
            self._check_stop()
            raise self.fail("closed", self._closed_text())
        self._sendall(w.payload)
        self._writes += 1
        self._account(pos, len(w.payload), layout)
        return None

    def _account(self, pos: int, n: int, layout: list[tuple[int, int, Piece]]) -> None:
        end = pos + n
        for start, stop, piece in layout:
            lo, hi = max(start, pos), min(stop, end)
            if lo >= hi:
                continue
            if piece.kind == "data":
                self.transcript.data(self._data_sent, hi - lo)
                self._data_sent += hi - lo
                if self._progress:
                    self._progress(self.phase, self._data_sent, len(self.offer.data))
            elif hi == stop:
                self.transcript.tx(piece.payload)

    def _sendall(self, payload: bytes) -> None:
        view = memoryview(payload)
        deadline = time.monotonic() + self.timeouts.send
        while view:
            try:
                n = self.sock.send(view)
                self.wire_tx += n
                view = view[n:]
                deadline = time.monotonic() + self.timeouts.send
                continue
            except BlockingIOError:
                pass
            except (BrokenPipeError, ConnectionResetError, OSError) as exc:
                self._closed_while_sending(exc)
            if time.monotonic() > deadline:
                raise self.fail(
                    "timeout",
                    f"board stopped reading: a write made no progress for "
                    f"{self.timeouts.send:g} s after {self._data_sent} data bytes",
                )
            self._check_stop()
            select.select([], [self.sock], [], _TICK)

    def _closed_while_sending(self, exc: OSError) -> None:
        try:
            while not self._eof:
                before = len(self._rx)
                self._fill(0)
                if len(self._rx) == before:
                    break
        except SessionEnd:
            pass
        line = self._take_line() if self._rx else None
        if line is not None and line.startswith("NACK:"):
            raise self.fail("nack", line[5:], nack_reason=line[5:])
        self._check_stop()
        raise self.fail("closed", self._closed_text(f" ({exc.strerror or exc})"))

    def _ended(self) -> str:
        return "reset the connection (RST)" if self._rst else "closed the connection"

    def _closed_text(self, extra: str = "") -> str:
        partial = f"; partial line {printable(bytes(self._rx))!r}" if self._rx else ""
        return (
            f"board {self._ended()} in phase {self.phase} after {self._data_sent} of "
            f"{len(self.offer.data)} data bytes{extra}{partial}"
        )

    def _unsent(self) -> int:
        for req in (SIOCOUTQNSD, SIOCOUTQ):
            try:
                buf = fcntl.ioctl(self.sock.fileno(), req, b"\0\0\0\0")
                return int(struct.unpack("i", buf)[0])
            except OSError:
                continue
        return 0

    def _drain(self) -> None:
        """Wait until the kernel has transmitted every queued byte (segment boundary)."""
        deadline = time.monotonic() + self.timeouts.send
        delay = 0.0001
        while self._unsent() > 0:
            if time.monotonic() > deadline:
                raise self.fail(
                    "timeout",
                    f"board stopped reading: {self._unsent()} bytes stayed "
                    f"unsent for {self.timeouts.send:g} s",
                )
            self._check_stop()
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def _act(self, cut: Cut) -> str | None:
        self._cut_done = True
        self._drain()
        desc = cut.describe()
        if cut.action == "stall":
            hold = (
                cut.ms / 1000.0
                if cut.ms is not None
                else cut.wait
                if cut.wait is not None
                else self.timeouts.stall
            )
            self.transcript.note(
                f"policy {desc}: stalling after {self._data_sent} data bytes for up to {hold:g} s"
            )
            deadline = time.monotonic() + hold
            while time.monotonic() < deadline:
                line = self._take_line()
                if line is not None:
                    return line
                if self._eof:
                    raise self.fail(
                        "closed", f"board {self._ended()} during the stall after {self._data_sent} data bytes"
                    )
                self._check_stop()
                self._fill(min(_TICK, max(0.0, deadline - time.monotonic())))
            if cut.ms is not None:
                self.transcript.note(f"policy {desc}: resuming")
                return None
            raise self.fail(
                "timeout",
                f"policy {desc}: the board sent nothing during a "
                f"{hold:g} s stall after {self._data_sent} data bytes",
            )
        if cut.action == "rst":
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
            self.closed_by_policy = "rst"
            self.transcript.note(f"policy {desc}: sent RST after {self._data_sent} data bytes")
            raise self.fail(
                "aborted", f"policy {desc} reset the connection (RST) after {self._data_sent} data bytes"
            )
        # drop: orderly close; record what the board says about it
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.transcript.note(f"policy {desc}: closed the connection (FIN) after {self._data_sent} data bytes")
        self.closed_by_policy = "drop"
        nack = None
        deadline = time.monotonic() + max(self.timeouts.linger, 1.0)
        try:
            while time.monotonic() < deadline and not self._eof:
                line = self._take_line()
                if line is not None:
                    if line.startswith("NACK:"):
                        nack = line[5:]
                    continue
                self._fill(min(_TICK, max(0.0, deadline - time.monotonic())))
            while self._take_line() is not None:
                pass
        except SessionEnd:
            pass
        raise self.fail(
            "aborted",
            f"policy {desc} closed the connection after {self._data_sent} "
            f"data bytes" + (f"; board answered NACK:{nack}" if nack else ""),
            nack_reason=nack,
        )


def _layout(pieces: Sequence[Piece]) -> list[tuple[int, int, Piece]]:
    out = []
    pos = 0
    for p in pieces:
        out.append((pos, pos + len(p.payload), p))
        pos += len(p.payload)
    return out
