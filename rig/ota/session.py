"""One OTA session: what the server sends to a board, shaped by the link policy.

:class:`Session` is what a :class:`rig.ota.protocol.Protocol` talks to: it receives the
board's control lines through :class:`~rig.ota.connection.BoardConnection` (``expect``,
``poll_line``, ``linger``) and sends control messages and image data through the link
policy (``send``): segment boundaries, pauses, cuts (drop, RST, stall) and content faults.
It never waits without a timeout and ends the session by raising :class:`SessionEnd`.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence

from rig.ota.connection import MAX_LINE, TICK, BoardConnection, SessionEnd, Timeouts
from rig.ota.framing import Framing
from rig.ota.policy import Cut, LinkPolicy, Offer, Piece, Write
from rig.ota.transcript import Transcript, printable

__all__ = ["MAX_LINE", "ProgressFn", "Session", "SessionEnd", "Timeouts"]

#: Linux ioctl: bytes in the send queue not yet sent (falls back to SIOCOUTQ = TIOCOUTQ).
SIOCOUTQNSD = 0x894B
SIOCOUTQ = 0x5411

ProgressFn = Callable[[str, int, int], None]


class Session(BoardConnection):
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
        framing: where the board's messages end (the protocol's
            :meth:`~rig.ota.protocol.Protocol.board_framing`; default ``\\n``-terminated lines).
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
        framing: Framing | None = None,
    ) -> None:
        super().__init__(sock, transcript, timeouts, stop, framing=framing)
        self.policy = policy
        self.offer: Offer = policy.make_offer(image, crc=crc)
        self.crc_enabled = crc
        self._progress = progress
        self._rng = policy.new_rng()
        self._data_sent = 0
        self._writes = 0
        self._cut_done = False
        self.closed_by_policy: str | None = None

    # ------------------------------------------------------------------ helpers for protocols
    @staticmethod
    def control(text: str) -> Piece:
        """A control message piece (``\\n`` appended)."""
        return Piece("control", text.encode("ascii") + b"\n")

    @staticmethod
    def message(
        text: str, *, terminator: bytes = b"", separate: bool = False, pause_ms: float = 0.0
    ) -> Piece:
        """A control message piece framed by the protocol itself: ``terminator`` appended
        (none by default, as the forum thread's ``send(sock, "OTA_UPDATE", 10, 0)``);
        ``separate``: the protocol needs it in its own TCP segment; ``pause_ms``: wait that
        long (after everything before it was transmitted) before sending it. The natural
        and per-message policies keep both; the other segmenters replace the protocol's
        framing by their own (that is the fault they inject)."""
        return Piece("control", text.encode("ascii") + terminator, separate=separate, pause_ms=pause_ms)

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
            if w.separate or prev_sep or w.pause_ms > 0:
                self._drain()
            pause = self.policy.pause
            wait_ms = max(pause.ms if pause else 0.0, w.pause_ms)
            if wait_ms > 0 and self._stop.wait(wait_ms / 1000.0):
                self._check_stop()
        line = self.poll_line()
        if line is not None:
            return line
        if self._eof:
            self._check_aborted()
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
            select.select([], [self.sock], [], TICK)

    def _closed_while_sending(self, exc: OSError) -> None:
        self._ended_while_sending(f" ({exc.strerror or exc})")

    def _ended_while_sending(self, detail: str) -> None:
        """The connection ended under a write or a drain: a NACK the board sent before is
        its answer, otherwise the board closed or reset (the reason says which)."""
        try:
            while not self._eof:
                before = len(self._rx)
                self._fill(0)
                if len(self._rx) == before:
                    break
        except SessionEnd:
            pass
        try:
            line = self._take_line() if self._message_waiting() else None
        except SessionEnd:
            line = None
        reason = nack_reason(line)
        if reason is not None:
            raise self.fail("nack", reason or NO_REASON, nack_reason=reason or None)
        self._check_aborted()
        raise self.fail("closed", self._closed_text(detail))

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
        """Wait until the kernel has transmitted every queued byte (segment boundary).

        The wait also watches the connection: a reset (the board rebooted: RST) or a socket
        error ends the session at once as ``closed`` (the unsent count of a reset socket
        never drops, so polling it alone would wait ``Timeouts.send`` and blame the board for
        not reading); a board line that arrives ends the wait, for the caller to act on."""
        deadline = time.monotonic() + self.timeouts.send
        delay = 0.0001
        while (unsent := self._unsent()) > 0:
            self._watch_link(unsent)
            if self._message_waiting():
                return  # a board message (NACK?) or bytes that are an error: poll_line acts on it
            if time.monotonic() > deadline:
                raise self.fail(
                    "timeout",
                    f"board stopped reading: {unsent} bytes stayed unsent for {self.timeouts.send:g} s",
                )
            self._check_stop()
            time.sleep(delay)
            delay = min(delay * 2, 0.005)

    def _watch_link(self, unsent: int) -> None:
        """Raise ``closed`` if the connection was reset or failed; take what the board sent."""
        waiting = f" while {unsent} bytes waited to be sent"
        err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._eof = True
            self._rst = self._rst or err in (errno.ECONNRESET, errno.EPIPE)
            self._ended_while_sending(f"{waiting} ({os.strerror(err)})")
        if not self._eof:
            self._fill(0)  # sets _rst on a reset; a FIN alone may be a half-close: keep waiting
        if self._rst:
            self._ended_while_sending(waiting)

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
                self._fill(min(TICK, max(0.0, deadline - time.monotonic())))
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
                    reason = nack_reason(line)
                    if reason is not None:
                        nack = reason or NO_REASON
                    continue
                self._fill(min(TICK, max(0.0, deadline - time.monotonic())))
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


#: the reason of a NACK that carries none (the forum thread's bare ``NACK``)
NO_REASON = "(no reason given)"


def nack_reason(line: str | None) -> str | None:
    """``"flash"`` for ``NACK:flash``, ``""`` for a bare ``NACK``, None for anything else."""
    if line is None:
        return None
    if line == "NACK":
        return ""
    return line[5:] if line.startswith("NACK:") else None


def _layout(pieces: Sequence[Piece]) -> list[tuple[int, int, Piece]]:
    out = []
    pos = 0
    for p in pieces:
        out.append((pos, pos + len(p.payload), p))
        pos += len(p.payload)
    return out
