"""A word-register device base for the STM32 peripheral models.

Owns: word-register access helpers, the RAZ/WI default and the stopped-core time helper.
Must not touch: the machine (a device's Services only).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from twin.device import Device, merge_word, sub_word
from twin.status_poll import StatusPoll


class RegDevice(Device):
    """Device whose registers are 32-bit words; sub-word accesses are merged.

    Subclasses list ``RESET`` (offset → reset value) and ``WRITABLE`` (offset → mask of
    bits software may write); registers outside ``RESET`` are unmodelled (read 0, logged
    once). Override :meth:`on_write` / :meth:`on_read` for side effects.
    """

    RESET: ClassVar[dict[int, int]] = {}
    WRITABLE: ClassVar[dict[int, int]] = {}
    #: (RCC enable register offset, bit) gating this device, or None (always clocked).
    CLOCK: tuple[int, int] | None = None
    #: status registers whose reads have no side effect and whose value only a store or a
    #: scheduled event changes: polled in a tight loop they let the machine jump to its next
    #: event (:class:`StatusPoll`), as a HAL loop with a HAL_GetTick timeout needs
    POLLED: ClassVar[frozenset[int]] = frozenset()

    def __init__(self) -> None:
        super().__init__()
        self.regs: dict[int, int] = dict(self.RESET)
        self.gate = ClockGate(self, *self.CLOCK) if self.CLOCK else None
        self.status_poll = StatusPoll() if self.POLLED else None

    def reset(self, kind: str) -> None:
        self.regs = dict(self.RESET)

    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if self.gate is not None and not self.gate.enabled():
            return 0
        if aligned not in self.regs:
            self.unmodelled(aligned, "read")
            return 0
        value = self.on_read(aligned)
        if self.status_poll is not None and aligned in self.POLLED and self.services is not None:
            self.status_poll.read(self.services, aligned, value)
        return sub_word(value, offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if self.gate is not None and not self.gate.enabled():
            return
        if aligned not in self.regs:
            self.unmodelled(aligned, "write")
            return
        old = self.regs[aligned]
        value = merge_word(old, offset, size, value) if size != 4 else value & 0xFFFFFFFF
        mask = self.WRITABLE.get(aligned, 0xFFFFFFFF)
        self.regs[aligned] = (old & ~mask) | (value & mask)
        self.on_write(aligned, old, value)

    def on_read(self, offset: int) -> int:
        """Value of register ``offset`` for a read (default: stored value)."""
        return self.regs[offset]

    def on_write(self, offset: int, old: int, value: int) -> None:
        """Side effects after a store (``value`` is the full written word)."""

    def snapshot(self) -> dict[str, object]:
        return {f"0x{off:02X}": val for off, val in sorted(self.regs.items())}


class ClockGate:
    """RCC clock-enable check for a peripheral: with its clock off, reads give 0 and
    writes are ignored (as on the chip), and the first such access is logged with the fix.

    Args:
        device: the gated device (for its name, base and services).
        register: RCC enable register offset (0x30 AHB1ENR, 0x34 AHB2ENR, 0x40 APB1ENR,
            0x44 APB2ENR).
        bit: the enable bit in that register.
    """

    NAMES: ClassVar[dict[int, str]] = {0x30: "AHB1ENR", 0x34: "AHB2ENR", 0x40: "APB1ENR", 0x44: "APB2ENR"}

    def __init__(self, device: Device, register: int, bit: int) -> None:
        self.device = device
        self.register = register
        self.bit = bit
        self._rcc: Device | None = None
        self._warned = False

    def enabled(self) -> bool:
        """True if the clock is on (or no RCC model is present)."""
        rcc = self._rcc
        if rcc is None:
            services = self.device.services
            if services is None:
                return True
            try:
                rcc = self._rcc = services.device("rcc")
            except KeyError:
                return True
        regs = getattr(rcc, "regs", None)
        if regs is None or regs.get(self.register, 0) >> self.bit & 1:
            return True
        if not self._warned and self.device.services is not None:
            self._warned = True
            self.device.services.log(
                f"{self.device.name} (0x{self.device.base:08X}) accessed with its clock off: "
                f"reads 0, writes ignored. Enable RCC_{self.NAMES.get(self.register, '?')} "
                f"bit {self.bit} first (__HAL_RCC_{self.device.name.upper()}_CLK_ENABLE)"
            )
        return False


class StoppedTime:
    """Wall time that passes for a counter whose clock keeps running while the core is stopped.

    The twin's virtual time stands still while the core is in debug halt or locked up (the
    core clock, SysTick and DWT.CYCCNT stop on the chip too). The IWDG (LSI) and the WWDG
    (PCLK1) do not stop on the chip: they keep counting through a debug halt unless their
    DBGMCU_APB1_FZ bit is set (the "suspend watchdog counters while halted" switch of IDEs),
    and always through a lockup (which is how a watchdog rescues a locked-up board). Such a
    device owns one of these, forwards the machine's ``core_stopped(state)`` to :meth:`update`
    and adds :meth:`seconds` to its own clock.

    Args:
        device: the owning device (its services reach the DBGMCU model).
        freeze_bit: the device's bit in DBGMCU_APB1_FZ (or ``register``'s).
        register: the DBGMCU register holding that bit ("apb1_fz" or "apb2_fz").
        wall: the wall clock (seconds; replaceable in tests).
    """

    def __init__(
        self,
        device: Device,
        freeze_bit: int,
        register: str = "apb1_fz",
        wall: Callable[[], float] = time.monotonic,
        in_stop: bool = False,
    ) -> None:
        self.device = device
        #: the counter's clock runs in Stop mode (LSI, LSE: the IWDG, the RTC), not the
        #: timers' and the WWDG's (APB clocks)
        self.in_stop = in_stop
        self.freeze_bit = freeze_bit
        self.register = register  # DBGMCU_APB1_FZ, or APB2_FZ for the APB2 timers
        self.wall = wall
        self._extra = 0.0
        self._since: float | None = None
        self.state: str | None = None

    @property
    def counting(self) -> bool:
        """True while wall time is being added (core stopped and the counter not frozen)."""
        return self._since is not None

    def frozen_by_debugger(self) -> bool:
        """DBGMCU_APBx_FZ has this counter's stop bit set."""
        services = self.device.services
        try:
            dbg = services.device("dbgmcu") if services is not None else None
        except KeyError:
            return False
        return bool(getattr(dbg, self.register, 0) & self.freeze_bit)

    def update(self, state: str | None) -> bool:
        """The core is now ``state`` (None running, "halt", "lockup", "stop"), or the freeze
        bits changed: start or stop adding wall time. Returns :attr:`counting`."""
        counting = (
            state == "lockup"
            or (state == "halt" and not self.frozen_by_debugger())
            or (state == "stop" and self.in_stop)
        )
        now = self.wall()
        if counting and self._since is None:
            self._since = now
        elif not counting and self._since is not None:
            self._extra += now - self._since
            self._since = None
        self.state = state
        return counting

    def seconds(self) -> float:
        """Total wall seconds counted while the core was stopped (live while counting)."""
        if self._since is None:
            return self._extra
        return self._extra + (self.wall() - self._since)
