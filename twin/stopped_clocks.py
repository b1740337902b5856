"""Devices whose clock keeps running while the core is stopped (the watchdogs, the RTC, the
timers through a halt): told the core's stopped state, and polled while it lasts.

Virtual time stands still while the core is in debug halt, locked up or in Stop mode; such
a device counts wall time instead (``twin.periph.base.StoppedTime``) and may fire from the
polling (a watchdog's reset, the RTC's wake-up).

Owns: the list of such devices and the state last told. Must not touch: the core's run
state (twin/runner.py decides it).
"""

from __future__ import annotations

from typing import Any

from twin.device import Device


class StoppedClocks:
    """The stop watchers of one machine."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self.watchers: list[Device] = []
        self.state: str | None = None

    def tell(self, state: str | None, force: bool = False) -> None:
        """The core now runs (None), is in debug halt ("halt"), locked up ("lockup") or in
        Stop ("stop"); ``force`` re-sends the same state (the DBGMCU freeze bits changed)."""
        if state == self.state and not force:
            return
        if state != self.state:
            self._clock.break_pace()
        self.state = state
        for dev in self.watchers:
            self._clock.guard(lambda d=dev: d.core_stopped(state))  # type: ignore[attr-defined]

    def poll(self) -> float:
        """While the core is stopped: let the devices check their wall-time events (they may
        request a reset); return how long to sleep before the next check (0.05 s at most)."""
        wait = 0.05
        if not self.state:
            return wait
        for dev in self.watchers:
            left: float | None = None

            def tick(d: Device = dev) -> None:
                nonlocal left
                left = d.stopped_tick()  # type: ignore[attr-defined]

            self._clock.guard(tick)
            if left is not None:
                wait = min(wait, max(left, 0.001))
        return wait
