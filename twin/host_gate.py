"""Who may touch the machine when: the machine lock, the host handshake, posted work, wake-ups.

The CPU thread runs instruction slices holding the lock. A host thread (debug port,
control server) takes it between slices with :meth:`HostGate.host`; a small fairness
handshake (``host_waiting``) makes the CPU thread step aside instead of taking the lock
again at once. Work a host thread cannot do itself (socket data for a device) is queued
with :meth:`HostGate.post` and run on the CPU thread at the next slice boundary.

Owns: the lock, the fairness condition, the post queue (and how many posts ran), the
wake event and which thread is the CPU thread. Must not touch: the core, time or devices
(it runs posted work through the ``guard`` it is given).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class HostGate:
    """The machine lock and the hand-over between the CPU thread and host threads."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._gate = threading.Condition()
        self.host_waiting = 0
        self.wake_event = threading.Event()
        self.posted: deque[Callable[[], None]] = deque()
        self.posts_done = 0  # posted functions run so far (a host wait ends on a new one)
        self.cpu_thread_id: int | None = None

    def host(self, value: T) -> HostHold[T]:
        """``with gate.host(value) as v``: hold the machine between slices (debugger and
        control accesses); ``v`` is ``value``."""
        return HostHold(self, value)

    def _acquire(self) -> None:
        with self._gate:
            self.host_waiting += 1
        self.lock.acquire()
        with self._gate:
            self.host_waiting -= 1

    def _release(self) -> None:
        self.lock.release()
        with self._gate:
            self._gate.notify_all()

    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: run ``fn`` on the CPU thread at the next slice boundary."""
        self.posted.append(fn)
        self.wake_event.set()

    def drain(self, guard: Callable[[Callable[[], None]], Any]) -> None:
        """Run the posted work (CPU thread, lock held), each call through ``guard``."""
        while self.posted:
            fn = self.posted.popleft()
            self.posts_done += 1
            guard(fn)

    def wake(self) -> None:
        """Wake the CPU thread if it waits (WFI, idle, halted). Already set: nothing to do
        (an Event's set takes its lock; devices raise a line on every interrupt)."""
        if not self.wake_event.is_set():
            self.wake_event.set()

    def wait(self, seconds: float) -> None:
        """CPU thread, lock released: wait up to ``seconds`` for a wake-up."""
        self.wake_event.wait(seconds)
        self.wake_event.clear()

    def step_aside(self, quitting: Callable[[], bool]) -> None:
        """CPU thread, lock released: if a host waits for the lock, let it have it first."""
        if self.host_waiting:
            with self._gate:
                self._gate.wait_for(lambda: self.host_waiting == 0 or quitting(), 0.05)

    def release_waiters(self) -> None:
        """Wake everything waiting on the gate (machine stop)."""
        self.wake_event.set()
        with self._gate:
            self._gate.notify_all()

    def on_host_thread(self) -> bool:
        """True on a thread other than the running CPU thread (a debugger or control call
        while the CPU thread exists)."""
        return self.cpu_thread_id is not None and threading.get_ident() != self.cpu_thread_id

    def host_holds_lock(self) -> bool:
        """True when the calling thread is not the CPU thread and holds the machine lock
        (the CPU is parked between slices)."""
        return (
            threading.get_ident() != self.cpu_thread_id and self.lock._is_owned()
        )  # RLock has no public owner test


class HostHold(Generic[T]):
    """The context manager of :meth:`HostGate.host` (a class, not a generator: a debugger
    takes it for each of its tens of thousands of requests)."""

    __slots__ = ("_gate", "_value")

    def __init__(self, gate: HostGate, value: T) -> None:
        self._gate = gate
        self._value = value

    def __enter__(self) -> T:
        self._gate._acquire()
        return self._value

    def __exit__(self, *exc_info: object) -> None:
        self._gate._release()
