"""A test double of the machine's :class:`twin.device.Services`, for unit tests of devices.

:class:`ServicesDouble` gives a device everything the contract promises without a CPU:
a virtual clock the test moves (:meth:`ServicesDouble.advance`), scheduled callbacks that
fire exactly at their cycle, a thread-safe post queue the test runs
(:meth:`ServicesDouble.run_posted`), RAM behind the bus-master port, and records of what
the device asked for (interrupt lines, resets, log lines, waits). Tests drive device
registers directly, as firmware would.

Owns: its fake time, event queue, post queue, RAM and records. Must not touch: the real
machine (it imports only the contract, twin/device.py); no device-specific behaviour
here (a test that needs more subclasses it).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from twin.device import BusError, Device

RAM_BASE = 0x20000000


class RamPort:
    """A :class:`twin.device.BusMaster` over a bytearray at ``base`` (RAM only)."""

    def __init__(self, ram: bytearray, base: int = RAM_BASE) -> None:
        self.ram = ram
        self.base = base

    def read(self, address: int, length: int) -> bytes:
        off = address - self.base
        if off < 0 or off + length > len(self.ram):
            raise BusError(f"0x{address:08X}+{length} is not RAM")
        return bytes(self.ram[off : off + length])

    def write(self, address: int, data: bytes) -> None:
        off = address - self.base
        if off < 0 or off + len(data) > len(self.ram):
            raise BusError(f"0x{address:08X}+{len(data)} is not RAM")
        self.ram[off : off + len(data)] = data


class ServicesDouble:
    """Services for devices under test: virtual time in cycles, moved by the test.

    Records: ``irq_calls`` (every ``set_irq``/``pend_irq`` as (n, level)), ``irqs`` (last
    level per line), ``resets`` ((kind, cause)), ``logs``, ``idle_waits``/``poll_waits``
    (counts; ``wait`` moves time as a wait, left out of ``busy_cycles``), ``bus_errors``, ``code_changes``, ``backup_gates``. ``unit``: an exception
    unit to forward interrupt lines to (optional). ``log`` asserts it is called on the
    thread that created the double (device code runs on the CPU thread only).
    """

    def __init__(self, core_hz: int = 16_000_000, ram_size: int = 0x80000) -> None:
        self.core_hz = core_hz
        self.cycles = 0
        self.looks = 0  # time_looks()
        self._events: list[tuple[int, int, Callable[[], None]]] = []
        self._seq = itertools.count(1)
        self._cancelled: set[int] = set()
        self._posted: deque[Callable[[], None]] = deque()
        self.cpu_thread = threading.current_thread()
        self.devices: dict[str, Any] = {}
        self.unit: Any = None
        self.irq_calls: list[tuple[int, bool]] = []
        self.irqs: dict[int, bool] = {}
        self.resets: list[tuple[str, str]] = []
        self.logs: list[str] = []
        self.idle_waits = 0
        self.poll_waits = 0
        self.waited = 0  # cycles moved by wait() (busy_cycles leaves them out)
        self.bus_errors: list[str] = []
        self.code_changes: list[tuple[int, int]] = []
        self.backup_gates: dict[str, bool] = {}
        self.ram = bytearray(ram_size)
        self._port = RamPort(self.ram)

    # ------------------------------------------------------------------ Services
    def set_core_hz(self, hz: int) -> None:
        self.core_hz = hz

    def now_cycles(self) -> int:
        return self.cycles

    def now_ns(self) -> int:
        return self.cycles * 1_000_000_000 // self.core_hz

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        handle = next(self._seq)
        heapq.heappush(self._events, (self.cycles + max(0, delay_cycles), handle, callback))
        return handle

    def cancel(self, handle: object) -> None:
        self._cancelled.add(handle)  # type: ignore[arg-type]

    def set_irq(self, irqn: int, level: bool) -> None:
        self.irq_calls.append((irqn, level))
        self.irqs[irqn] = level
        if self.unit is not None:
            self.unit.set_irq(irqn, level)

    def pend_irq(self, irqn: int) -> None:
        self.irq_calls.append((irqn, True))
        self.irqs[irqn] = True
        if self.unit is not None:
            self.unit.pend_irq(irqn)

    def bus_master(self) -> RamPort:
        return self._port

    def request_reset(self, kind: str, cause: str) -> None:
        self.resets.append((kind, cause))

    def post(self, fn: Callable[[], None]) -> None:
        self._posted.append(fn)

    def log(self, message: str) -> None:
        assert threading.current_thread() is self.cpu_thread, "log from a host thread"
        self.logs.append(message)

    def device(self, name: str) -> Device:
        return self.devices[name]

    # optional extras
    def bus_error(self, what: str) -> None:
        self.bus_errors.append(what)

    def idle_wait(self) -> None:
        self.idle_waits += 1

    def busy_cycles(self) -> int:
        return self.cycles - self.waited

    def time_looks(self) -> int:
        return self.looks

    def next_event_in(self) -> int | None:
        nxt = self.next_event()
        return None if nxt is None else max(0, nxt - self.cycles)

    def poll_wait(self, until: object = None) -> None:
        self.poll_waits += 1

    def code_changed(self, address: int, length: int) -> None:
        self.code_changes.append((address, length))

    def set_backup_write_access(self, allowed: bool) -> None:
        self.backup_gates["dbp"] = allowed

    def set_backup_clock(self, enabled: bool) -> None:
        self.backup_gates["clock"] = enabled

    # ------------------------------------------------------------------ test driving
    def add(self, *devs: Any) -> None:
        """Attach the devices (registered by name), then power-on reset them."""
        for d in devs:
            d.attach(self)
            self.devices[d.name] = d
        for d in devs:
            d.reset("power")

    def next_event(self) -> int | None:
        """The cycle of the next live scheduled callback, or None."""
        while self._events and self._events[0][1] in self._cancelled:
            heapq.heappop(self._events)
        return self._events[0][0] if self._events else None

    def advance(self, cycles: int) -> None:
        """Move virtual time ``cycles`` forward, firing due callbacks exactly on their cycle."""
        target = self.cycles + cycles
        while True:
            nxt = self.next_event()
            if nxt is None or nxt > target:
                break
            when, _, cb = heapq.heappop(self._events)
            self.cycles = max(self.cycles, when)
            cb()
        self.cycles = target

    def wait(self, cycles: int) -> None:
        """:meth:`advance` as the machine's waits do (a host wait, WFI): not busy cycles."""
        self.advance(cycles)
        self.waited += cycles

    def advance_ns(self, ns: int) -> None:
        """:meth:`advance` by ``ns`` nanoseconds at the current core clock."""
        self.advance(ns * self.core_hz // 1_000_000_000)

    def run_due(self) -> None:
        """Fire the callbacks due now (without moving time)."""
        self.advance(0)

    def run_posted(self) -> int:
        """Run the posted work; returns how many functions ran."""
        n = 0
        while self._posted:
            self._posted.popleft()()
            n += 1
        return n

    def pump(self, until: Callable[[], bool], timeout: float = 10.0, step_ns: int = 100_000) -> None:
        """Run posted work and advance virtual time until ``until()`` holds (wall timeout)."""
        deadline = time.monotonic() + timeout
        while not until():
            if time.monotonic() > deadline:
                raise TimeoutError("condition not reached in time")
            if not self.run_posted():
                self.advance_ns(step_ns)
                time.sleep(0.0005)
