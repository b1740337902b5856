"""Delays of the Ethernet parts that keep their own clocks while the core is stopped.

On the chip the MAC, its MDIO state machine, the DMA and the external LAN8742A PHY run on
HCLK, the RMII reference clock and the PHY's crystal: a debugger halt or a lockup stops the
core, not them (a debugger that starts an MDIO read or a MAC reset sees it finish; the PHY
finishes auto-negotiation). The twin's virtual time stands still while the core is
stopped, so a delay started on it would never end. :class:`StopAwareTimers` runs each
delay on virtual time (``services.schedule``, exact to the cycle) while the core runs and
on wall time while it is stopped, converting what is left at every change, the way the
watchdogs and TIM6/TIM7 count through a halt (``twin.periph.base.StoppedTime``). The
owning device forwards the machine's ``core_stopped(state)`` and ``stopped_tick()``
hooks here.

Owns: the pending delays and the stopped/running state they were started under.
Must not touch: device registers (a delay's callback does that).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Delay:
    fn: Callable[[], None]
    due_cycles: int = 0  # while running: the virtual cycle it fires at
    handle: object | None = None  # while running: the machine's scheduled event
    deadline: float | None = None  # while stopped: the wall time it fires at


class StopAwareTimers:
    """Named one-shot delays on virtual time, on wall time while the core is stopped.

    Args:
        services_of: returns the owning device's Services (None before attach).
        wall: the wall clock in seconds (replaceable in tests).
    """

    def __init__(self, services_of: Callable[[], Any], wall: Callable[[], float] = time.monotonic) -> None:
        self._services_of = services_of
        self.wall = wall
        self._delays: dict[str, _Delay] = {}
        self.stopped = False

    # ------------------------------------------------------------------ delays
    def start(self, key: str, delay_ns: int, fn: Callable[[], None]) -> None:
        """Run ``fn`` after ``delay_ns`` (replacing a pending delay of the same ``key``)."""
        self.cancel(key)
        d = _Delay(fn)
        self._delays[key] = d
        if self.stopped:
            d.deadline = self.wall() + delay_ns / 1e9
            svc = self._services_of()
            if svc is not None:  # wake the stopped CPU thread: it polls stopped_tick() sooner
                svc.post(lambda: None)
        else:
            self._schedule(key, d, delay_ns)

    def cancel(self, key: str) -> None:
        """Forget the delay ``key`` (no error if none)."""
        d = self._delays.pop(key, None)
        if d is not None and d.handle is not None:
            svc = self._services_of()
            if svc is not None:
                svc.cancel(d.handle)

    def cancel_all(self) -> None:
        """Forget every delay (a reset)."""
        for key in list(self._delays):
            self.cancel(key)

    def pending(self, key: str) -> bool:
        """True while the delay ``key`` has not fired."""
        return key in self._delays

    def _schedule(self, key: str, d: _Delay, delay_ns: int) -> None:
        svc = self._services_of()
        if svc is None:  # not attached: nothing can run it later, run it now
            self._fire(key, d)
            return
        cycles = max(1, delay_ns * svc.core_hz // 1_000_000_000)
        d.due_cycles = svc.now_cycles() + cycles
        d.deadline = None
        d.handle = svc.schedule(cycles, lambda: self._fire(key, d))

    def _fire(self, key: str, d: _Delay) -> None:
        if self._delays.get(key) is not d:
            return  # replaced or cancelled meanwhile
        del self._delays[key]
        d.fn()

    # ------------------------------------------------------------------ core state
    def core_stopped(self, state: str | None) -> None:
        """The core now runs (None) or is stopped ("halt", "lockup"): move every pending
        delay onto the other clock with the time it had left."""
        stopped = state is not None
        if stopped == self.stopped:
            return
        self.stopped = stopped
        svc = self._services_of()
        if svc is None:
            return
        now_wall = self.wall()
        for key, d in list(self._delays.items()):
            if stopped:
                left_ns = max(0, d.due_cycles - svc.now_cycles()) * 1_000_000_000 // max(svc.core_hz, 1)
                if d.handle is not None:
                    svc.cancel(d.handle)
                d.handle = None
                d.deadline = now_wall + left_ns / 1e9
            else:
                left_s = max(0.0, (d.deadline or now_wall) - now_wall)
                self._schedule(key, d, int(left_s * 1e9))

    def stopped_tick(self) -> float | None:
        """While the core is stopped: fire the delays whose wall time came; return the
        seconds until the next one (None: nothing pending or the core runs)."""
        if not self.stopped:
            return None
        now_wall = self.wall()
        for key, d in list(self._delays.items()):
            if d.deadline is not None and d.deadline <= now_wall:
                self._fire(key, d)
        left = [d.deadline - now_wall for d in self._delays.values() if d.deadline is not None]
        return max(0.0, min(left)) if left else None
