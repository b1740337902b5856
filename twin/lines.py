"""The JSON-lines socket loop shared by the debug port and the control interface.

Owns: accepting clients, reading lines, writing replies. Must not touch: what the lines
mean (the handler's job).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator


def request_batches(
    conn: socket.socket, stop: threading.Event, *, poll: float = 0.5
) -> Iterator[list[bytes]]:
    """Yield the complete, non-blank lines of each receive on ``conn`` (without ``\\n``)
    until the peer closes or ``stop`` is set. Socket errors end the iteration."""
    conn.settimeout(poll)
    buf = b""
    while not stop.is_set():
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not chunk:
            return
        buf += chunk
        lines = []
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                lines.append(line)
        if lines:
            yield lines
