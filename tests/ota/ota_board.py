"""A scripted board-side OTA client written from docs/protocol.md only.

It shares no code with rig.ota (the server under test): it is what a correct bootloader
does on the wire, with knobs to misbehave. Used by the tests/ota suite.
"""

from __future__ import annotations

import socket
import time
import zlib
from dataclasses import dataclass, field

MAX_LINE = 64


@dataclass
class BoardRun:
    """What the scripted board saw and did."""

    outcome: str = ""  # "ack", "nack:<reason>", "closed", "reset", "busy"
    lines_in: list[str] = field(default_factory=list)
    lines_out: list[str] = field(default_factory=list)
    size: int | None = None
    crc: int | None = None
    data: bytes = b""
    chunks: list[int] = field(default_factory=list)  # sizes recv() returned
    trailing: bytes = b""
    error: str = ""


class ScriptedBoard:
    """Behaves like a correct bootloader unless told otherwise.

    Args:
        address: (host, port) of the OTA server.
        max_size: scratch/slot size: larger FILE_SIZE → NACK:too_large.
        timeout: receive timeout (the protocol's 10 s, shortened for tests).
        nack_after: send NACK:flash after receiving this many data bytes.
        read_delay: sleep before each recv (a slow board).
        recv_size: bytes asked per recv.
    """

    def __init__(
        self,
        address: tuple[str, int],
        *,
        max_size: int = 1 << 20,
        timeout: float = 5.0,
        nack_after: int | None = None,
        read_delay: float = 0.0,
        recv_size: int = 4096,
    ) -> None:
        self.address = address
        self.max_size = max_size
        self.timeout = timeout
        self.nack_after = nack_after
        self.read_delay = read_delay
        self.recv_size = recv_size
        self.run_ = BoardRun()
        self._buf = bytearray()
        self.sock: socket.socket | None = None
        self._partial = bytearray()

    # -- wire helpers
    def _recv(self) -> bytes:
        assert self.sock is not None
        if self.read_delay:
            time.sleep(self.read_delay)
        chunk = self.sock.recv(self.recv_size)
        if chunk:
            self.run_.chunks.append(len(chunk))
        return chunk

    def _line(self) -> str | None:
        while True:
            nl = self._buf.find(b"\n")
            if 0 <= nl < MAX_LINE:
                line = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                text = line.decode("ascii", "replace")
                self.run_.lines_in.append(text)
                return text
            if len(self._buf) >= MAX_LINE:
                raise ValueError("line too long")
            chunk = self._recv()
            if not chunk:
                return None
            self._buf += chunk

    def send(self, text: str) -> None:
        assert self.sock is not None
        self.run_.lines_out.append(text)
        self.sock.sendall(text.encode() + b"\n")

    def nack(self, reason: str) -> BoardRun:
        self.send(f"NACK:{reason}")
        self.run_.outcome = f"nack:{reason}"
        return self.run_

    # -- the bootloader's OTA state machine
    def run(self) -> BoardRun:
        """Connect, update, and return what happened (the socket is closed on return)."""
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        try:
            return self._run()
        except TimeoutError:
            if not self.run_.data:
                self.run_.data = bytes(self._partial)
            try:
                return self.nack("timeout")
            except OSError:
                self.run_.outcome = "timeout"
                return self.run_
        except ConnectionResetError:
            self.run_.outcome = "reset"
            return self.run_
        except ValueError:
            return self.nack("protocol")
        finally:
            self.sock.close()

    def _run(self) -> BoardRun:
        r = self.run_
        self.send("REQ_FW")
        line = self._line()
        if line is None:
            r.outcome = "closed"
            return r
        if line == "BUSY":
            r.outcome = "busy"
            return r
        if not line.startswith("FILE_SIZE:") or not line[10:].isdigit() or line[10:11] in ("", "+"):
            return self.nack("bad_size")
        size = int(line[10:])
        if size < 1:
            return self.nack("bad_size")
        r.size = size
        line = self._line()
        if line is not None and line.startswith("FILE_CRC:"):
            hexpart = line[9:]
            if len(hexpart) != 8 or any(c not in "0123456789abcdefABCDEF" for c in hexpart):
                return self.nack("protocol")
            r.crc = int(hexpart, 16)
            line = self._line()
        if line is None:
            r.outcome = "closed"
            return r
        if line != "OTA_UPDATE":
            return self.nack("protocol")
        if size > self.max_size:
            return self.nack("too_large")
        self.send("OTA_READY")
        data = self._partial
        while len(data) < size:
            if not self._buf:
                chunk = self._recv()
                if not chunk:
                    r.data = bytes(data)
                    return self.nack("short")
                self._buf += chunk
            take = min(size - len(data), len(self._buf))
            data += self._buf[:take]
            del self._buf[:take]
            if self.nack_after is not None and len(data) >= self.nack_after:
                r.data = bytes(data)
                return self.nack("flash")
        r.data = bytes(data)
        try:
            line = self._line()
        except ValueError:
            return self.nack("protocol")
        if line is None:
            return self.nack("short")
        if line != "OTA_DONE":
            return self.nack("protocol")
        if r.crc is not None and zlib.crc32(r.data) & 0xFFFFFFFF != r.crc:
            return self.nack("crc")
        self.send("ACK")
        r.outcome = "ack"
        return r
