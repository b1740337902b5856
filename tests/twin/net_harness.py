"""Pieces for unit-testing the network devices without the CPU.

The services are the shared test double (``twin.testing.ServicesDouble``: virtual clock,
scheduled callbacks, a thread-safe post queue, RAM behind the bus-master port, IRQ
lines); this module adds GPIO ports with the agreed ``drive_input``/``output_level``
methods, a loopback TCP server and closed ports. Tests drive device registers directly,
as firmware would, and pump the services until a condition holds.
"""

from __future__ import annotations

import socket
import threading


class Gpio:
    """A GPIO port as seen from outside: output levels set by the test, inputs driven by devices."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.out: dict[int, bool] = {}
        self.inputs: dict[int, bool] = {}
        self.edges: list[tuple[int, bool]] = []

    def drive_input(self, pin: int, level: bool) -> None:
        if self.inputs.get(pin) != level:
            self.edges.append((pin, level))
        self.inputs[pin] = level

    def output_level(self, pin: int) -> bool:
        return self.out.get(pin, False)


class HostServer:
    """A real loopback TCP server run by a thread: records what it receives, sends on request."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.listener.settimeout(10)
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.received = bytearray()
        self._thread: threading.Thread | None = None

    def accept(self) -> socket.socket:
        conn, _ = self.listener.accept()
        conn.settimeout(10)
        self.conns.append(conn)
        return conn

    def recv_exact(self, conn: socket.socket, n: int, timeout: float = 10.0) -> bytes:
        buf = bytearray()
        conn.settimeout(timeout)
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)

    def close(self) -> None:
        for c in self.conns:
            c.close()
        self.listener.close()


_HELD: list[socket.socket] = []


def free_closed_port() -> int:
    """A loopback port with nothing listening: bound and never listened on, and kept bound
    for the rest of the test process, so connects are refused and no other test (another
    xdist worker) can be handed the port meanwhile."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    _HELD.append(s)
    return s.getsockname()[1]
