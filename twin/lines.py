"""The JSON-lines socket loop shared by the debug port and the control interface.

Owns: accepting clients, reading lines, writing replies, the line-length limit. Must not
touch: what the lines mean (the handler's job).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator

#: Longest request line accepted (bytes, without the ``\\n``). A longer line is answered
#: with one error and dropped up to its ``\\n``; the connection stays open.
MAX_LINE = 1 << 20


def request_batches(
    conn: socket.socket,
    stop: threading.Event,
    *,
    poll: float = 0.5,
    max_line: int = MAX_LINE,
    on_recv: Callable[[], None] | None = None,
    spin: Callable[[], float] | None = None,
) -> Iterator[list[bytes | None]]:
    """Yield the complete, non-blank lines of each receive on ``conn`` (without ``\\n``)
    until the peer closes or ``stop`` is set. Socket errors end the iteration.

    A line longer than ``max_line`` is never buffered whole: it appears once as ``None``
    (the caller answers an error) and the rest of it is discarded up to its ``\\n``.
    ``on_recv`` is called for every receive (activity). ``spin``: how long (s) to poll the
    socket without sleeping before each receive (0: block at once); a debugger's next
    request mostly follows its reply within tens of microseconds, and a thread woken from
    a blocking receive adds ~40 us to each round trip (pyOCD's flash loader makes ~33 000).
    The spin yields the core between polls: on a loaded host the client may be waiting for
    it (without the yield a 512 KiB pyOCD flash took 4.5 s there instead of 3.3 s)."""
    conn.settimeout(poll)
    buf = b""
    discarding = False
    while not stop.is_set():
        try:
            chunk = _spin_recv(conn, spin(), poll) if spin is not None else None
            if chunk is None:
                chunk = conn.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return
        if not chunk:
            return
        if on_recv is not None:
            on_recv()
        if discarding:
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk = chunk[nl + 1 :]
            discarding = False
        buf += chunk
        lines: list[bytes | None] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if len(line) > max_line:
                lines.append(None)
            elif line.strip():
                lines.append(line)
        buf = buf[start:]
        if len(buf) > max_line:
            buf = b""
            discarding = True
            lines.append(None)
        if lines:
            yield lines


def _spin_recv(conn: socket.socket, seconds: float, poll: float) -> bytes | None:
    """Receive on ``conn`` polling for up to ``seconds`` without sleeping; None if nothing
    came (the caller then blocks). OSError as ``recv`` raises it."""
    if seconds <= 0:
        return None
    end = time.perf_counter() + seconds
    conn.setblocking(False)
    try:
        while True:
            try:
                return conn.recv(65536)
            except BlockingIOError:
                if time.perf_counter() >= end:
                    return None
                os.sched_yield()  # a client on this core (a loaded host) runs first
    finally:
        conn.settimeout(poll)
