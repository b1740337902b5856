"""A minimal machine for unit-testing the network devices without the CPU.

It implements the Services contract for real (virtual clock, scheduled callbacks, a
thread-safe post queue, RAM for bus-master access, IRQ lines) and two GPIO ports with
the agreed ``drive_input``/``output_level`` methods. Tests drive device registers
directly, as firmware would, and pump the machine until a condition holds.
"""

from __future__ import annotations

import heapq
import itertools
import queue
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

RAM_BASE = 0x20000000


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


class Machine:
    """Services for devices, with a virtual clock advanced by :meth:`pump`."""

    def __init__(self, core_hz: int = 16_000_000) -> None:
        self.core_hz = core_hz
        self.cycles = 0
        self._timers: list[tuple[int, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._seq = itertools.count()
        self._posted: queue.Queue[Callable[[], None]] = queue.Queue()
        self.ram = bytearray(0x80000)
        self.irqs: dict[int, bool] = {}
        self.lines: list[str] = []
        self.devices: dict[str, Any] = {}
        self.cpu_thread = threading.current_thread()

    # ---- Services
    def set_core_hz(self, hz: int) -> None:
        self.core_hz = hz

    def now_cycles(self) -> int:
        return self.cycles

    def now_ns(self) -> int:
        return self.cycles * 1_000_000_000 // self.core_hz

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        handle = next(self._seq)
        heapq.heappush(self._timers, (self.cycles + max(1, delay_cycles), handle, callback))
        return handle

    def cancel(self, handle: object) -> None:
        self._cancelled.add(handle)  # type: ignore[arg-type]

    def set_irq(self, irqn: int, level: bool) -> None:
        self.irqs[irqn] = level

    def pend_irq(self, irqn: int) -> None:
        self.irqs[irqn] = True

    def read_mem(self, address: int, length: int) -> bytes:
        off = address - RAM_BASE
        if off < 0 or off + length > len(self.ram):
            raise ValueError(f"0x{address:08X}+{length} is not RAM")
        return bytes(self.ram[off : off + length])

    def write_mem(self, address: int, data: bytes) -> None:
        off = address - RAM_BASE
        if off < 0 or off + len(data) > len(self.ram):
            raise ValueError(f"0x{address:08X}+{len(data)} is not RAM")
        self.ram[off : off + len(data)] = data

    def request_reset(self, kind: str, cause: str) -> None:
        raise AssertionError("no device here should reset the machine")

    def post(self, fn: Callable[[], None]) -> None:
        self._posted.put(fn)

    def log(self, message: str) -> None:
        assert threading.current_thread() is self.cpu_thread, "log from a host thread"
        self.lines.append(message)

    def device(self, name: str) -> Any:
        return self.devices[name]

    # ---- test driving
    def attach(self, *devs: Any) -> None:
        for d in devs:
            d.attach(self)
            d.reset("power")

    def advance(self, ns: int) -> None:
        """Move virtual time forward, firing due timers (CPU thread)."""
        target = self.cycles + ns * self.core_hz // 1_000_000_000
        while self._timers and self._timers[0][0] <= target:
            at, handle, cb = heapq.heappop(self._timers)
            self.cycles = max(self.cycles, at)
            if handle in self._cancelled:
                self._cancelled.discard(handle)
                continue
            cb()
        self.cycles = target

    def run_posted(self) -> int:
        n = 0
        while True:
            try:
                fn = self._posted.get_nowait()
            except queue.Empty:
                return n
            fn()
            n += 1

    def pump(self, until: Callable[[], bool], timeout: float = 10.0, step_ns: int = 100_000) -> None:
        """Run posted work and advance virtual time until ``until()`` holds (wall timeout)."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            if not self.run_posted():
                self.advance(step_ns)
                time.sleep(0.0005)


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
