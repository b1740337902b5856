"""How the server tells where one of the board's messages ends (its *framing*).

A :class:`rig.ota.protocol.Protocol` chooses the framing of what the board sends
(:meth:`Protocol.board_framing`); :class:`rig.ota.connection.BoardConnection` cuts the
received byte stream with it (``expect``, ``poll_line``, the NACK seen while sending).

* :class:`LineFraming` — docs/protocol.md: printable ASCII lines ending in ``\\n``, at
  most :data:`MAX_LINE` bytes with the ``\\n``. A line longer than that, or a byte that is not
  printable, is a protocol error.
* :class:`TokenFraming` — no terminators, as in the forum thread's code
  (``send(sock, "OTA_READY", strlen("OTA_READY"), 0)``): the board's messages are known
  words, recognised as soon as their bytes are there, whatever TCP did to the segments
  (a word split over two receives, two words in one). ``CR``/``LF`` between words are
  ignored (a board that adds them is still understood), and a word listed in
  ``reason_after`` may carry ``:<reason>`` (letters, digits, ``_``; up to 40) when the
  reason's bytes arrive with the word. Bytes that cannot begin any known word are a
  protocol error naming them.

A framing is stateless: ``split`` looks at the receive buffer and says how many bytes the
first complete message takes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from rig.ota.transcript import printable

#: longest control line, including the ``\n`` (docs/protocol.md)
MAX_LINE = 64
#: longest reason after ``NACK:`` in :class:`TokenFraming`
MAX_REASON = 40
_REASON_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_BLANK = frozenset(b"\r\n")


class FramingError(Exception):
    """The board's bytes cannot be a message of this framing (a protocol error)."""


class Framing(ABC):
    """Where the board's messages end."""

    #: short name for transcripts and errors
    name = "framing"

    @abstractmethod
    def split(self, rx: bytes | bytearray) -> tuple[str, int] | None:
        """The first complete message in ``rx`` and how many bytes it takes (its
        terminator and any ignorable bytes around it included), or None while it is
        incomplete. Raises :class:`FramingError` for bytes that cannot be a message."""

    def waiting(self, rx: bytes | bytearray) -> bool:
        """True if ``rx`` holds a complete message or bytes that are an error (the caller
        stops waiting and takes it)."""
        try:
            return self.split(rx) is not None
        except FramingError:
            return True

    def stray(self, rx: bytes | bytearray) -> int:
        """How many of ``rx``'s bytes count as unexpected after the final message."""
        return len(rx)

    def describe(self) -> str:
        return self.name


class LineFraming(Framing):
    """``\\n``-terminated printable ASCII lines of at most ``max_line`` bytes (docs/protocol.md)."""

    name = "lines"

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line

    def split(self, rx: bytes | bytearray) -> tuple[str, int] | None:
        nl = rx.find(b"\n", 0, self.max_line)
        if nl < 0:
            if len(rx) >= self.max_line:
                raise FramingError(
                    f"line longer than {self.max_line} bytes from the board: "
                    f"{printable(bytes(rx[: self.max_line]), 40)!r}"
                )
            return None
        raw = bytes(rx[: nl + 1])
        bad = [b for b in raw[:-1] if b < 0x20 or b > 0x7E]
        if bad:
            raise FramingError(
                f"invalid byte 0x{bad[0]:02x} in a line from the board "
                f"({printable(raw)!r}): lines are printable ASCII ending in \\n"
            )
        return raw[:-1].decode("ascii"), nl + 1

    def waiting(self, rx: bytes | bytearray) -> bool:
        return b"\n" in rx[: self.max_line] or len(rx) >= self.max_line


class TokenFraming(Framing):
    """Known words without terminators (the forum thread's wire format).

    Args:
        tokens: the words the board may send (e.g. ``REQ_FW``, ``OTA_READY``, ``ACK``, ``NACK``).
        reason_after: words that may be followed by ``:<reason>`` (e.g. ``NACK``).
    """

    name = "tokens"

    def __init__(self, tokens: Iterable[str], *, reason_after: Iterable[str] = ()) -> None:
        self.tokens = tuple(sorted({t.encode("ascii") for t in tokens}, key=len, reverse=True))
        if not self.tokens or any(not t for t in self.tokens):
            raise ValueError("TokenFraming needs at least one non-empty word")
        self.reason_after = frozenset(t.encode("ascii") for t in reason_after)

    def describe(self) -> str:
        return "tokens(" + ",".join(t.decode() for t in self.tokens) + ")"

    def split(self, rx: bytes | bytearray) -> tuple[str, int] | None:
        start = 0
        while start < len(rx) and rx[start] in _BLANK:
            start += 1
        body = bytes(rx[start : start + max(len(t) for t in self.tokens)])
        if not body:
            return None
        for tok in self.tokens:
            if body.startswith(tok):
                return self._take(rx, start, tok)
        if any(tok.startswith(body) for tok in self.tokens):
            return None  # the beginning of a word: wait for the rest
        raise FramingError(
            f"unexpected bytes from the board {printable(bytes(rx[start : start + 40]), 40)!r}: "
            f"expected one of {', '.join(t.decode() for t in self.tokens)} (no terminators)"
        )

    def _take(self, rx: bytes | bytearray, start: int, tok: bytes) -> tuple[str, int]:
        end = start + len(tok)
        message = tok.decode("ascii")
        if tok in self.reason_after and rx[end : end + 1] == b":":
            j = end + 1
            while j < len(rx) and j - end <= MAX_REASON and rx[j] in _REASON_BYTES:
                j += 1
            message = bytes(rx[start:j]).decode("ascii")
            end = j
        while end < len(rx) and rx[end] in _BLANK:
            end += 1
        return message, end

    def stray(self, rx: bytes | bytearray) -> int:
        return sum(1 for b in rx if b not in _BLANK)
