"""One twin's network: the NAT host side plus its devices and control commands.

Owns: the forwards, the window and the NAT host of one twin. Must not touch: device
registers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from twin.net.nat import NatHost, parse_forward


class NetStack:
    """Shared state of the twin's network devices.

    Created before the machine exists (from the command line); the first device that
    attaches gives it the machine's services, and the NAT host is built then.
    """

    def __init__(self, forwards: list[str] | None = None, window: int = 64 * 1024) -> None:
        self.forwards: dict[tuple[str, int], tuple[str, int]] = {}
        for spec in forwards or []:
            guest, host = parse_forward(spec)
            self.forwards[guest] = host
        self.window = window
        self.services: Any = None
        #: where log lines go; defaults to the first attaching device's ``services.log``
        self.log_sink: Callable[[str], None] | None = None
        self._nat: NatHost | None = None
        self._early: list[str] = []

    def attach(self, services: Any) -> None:
        """Take the machine's services (idempotent)."""
        if self.services is not None:
            return
        self.services = services
        self._nat = NatHost(
            post=services.post,
            forwards=self.forwards,
            log=self.log_sink or services.log,
            now_ns=services.now_ns,
            schedule_ns=self._schedule_ns,
            window=self.window,
        )

    def _schedule_ns(self, delay_ns: int, fn: Callable[[], None]) -> object:
        cycles = max(1, delay_ns * self.services.core_hz // 1_000_000_000)
        return self.services.schedule(cycles, fn)

    @property
    def nat(self) -> NatHost:
        """The NAT host (exists once a device is attached)."""
        if self._nat is None:
            raise RuntimeError("network devices are not attached to a machine yet")
        return self._nat

    def log(self, message: str) -> None:
        """Log through the NAT host (wall + virtual time), or stderr-less before attach."""
        if self._nat is not None:
            self._nat.log(message)
        else:
            self._early.append(f"net[wall {time.time():.6f}] {message}")

    def shutdown(self) -> None:
        """Close every host socket and join the threads (twin exit)."""
        if self._nat is not None:
            self._nat.shutdown()
