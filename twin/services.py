"""The services a device gets: the only way a device reaches the machine.

:class:`DeviceServices` implements ``twin.device.Services`` (and its optional extras) for
one device, forwarding each call to the part of the machine that owns it: time and events
to the clock, interrupts to the exception unit, bus-master accesses to the bus's
:class:`~twin.bus.BusMasterPort`, resets to the reset unit, posted work to the host gate.

Owns: nothing but the device's name (for its log lines). Must not touch: any part's state
itself; a new need of a device is a new method here that forwards to the owning part,
documented in twin/device.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twin.device import BusMaster, Device

if TYPE_CHECKING:
    from twin.machine import Machine


class DeviceServices:
    """The :class:`twin.device.Services` a device gets: the machine, plus its own name for logs."""

    def __init__(self, machine: Machine, owner: str) -> None:
        self._m = machine
        self._clock = machine.clock
        self._owner = owner
        # The hot forwards are the clock's own bound methods (a flash download calls them for
        # every word): now_cycles, schedule(delay_cycles, callback) -> handle, cancel(handle)
        # and poll_wait(until=None): the firmware polls a flag only a scheduled event changes
        # (FLASH_SR.BSY); the slice ends and time jumps to the next event; only from
        # side-effect-free reads (the load runs again); ``until``, the handle of the event that
        # changes the flag, lets the read stall to it within the slice (Clock.poll_wait).
        self.now_cycles: Callable[[], int] = self._clock.now_cycles
        self.schedule: Callable[[int, Callable[[], None]], object] = self._clock.schedule
        self.cancel: Callable[[object], None] = self._clock.cancel
        self.poll_wait: Callable[..., None] = self._clock.poll_wait

    @property
    def core_hz(self) -> int:
        return self._clock.core_hz

    def set_core_hz(self, hz: int) -> None:
        self._clock.set_core_hz(hz)

    def now_ns(self) -> int:
        return self._clock.now_ns()

    def set_irq(self, irqn: int, level: bool) -> None:
        self._m.set_irq(irqn, level)

    def pend_irq(self, irqn: int) -> None:
        self._m.pend_irq(irqn)

    def bus_master(self) -> BusMaster:
        return self._m.bus.master_port

    def request_reset(self, kind: str, cause: str) -> None:
        self._m.resets.request(kind, cause)

    def post(self, fn: Callable[[], None]) -> None:
        self._m.gate.post(fn)

    def log(self, message: str) -> None:
        self._clock.log(message, self._owner)

    def device(self, name: str) -> Device:
        return self._m.bus.device(name)

    # ---- optional extras (see twin.device.Services)
    def bus_error(self, what: str) -> None:
        """The CPU write being handled gets an error response (imprecise BusFault)."""
        self._m.bus.device_bus_error(what)

    def set_backup_write_access(self, allowed: bool) -> None:
        """PWR: PWR_CR1.DBP changed; backup SRAM takes CPU stores only while set."""
        self._m.protection.set_backup_write_access(allowed)

    def set_backup_clock(self, enabled: bool) -> None:
        """RCC: RCC_AHB1ENR.BKPSRAMEN changed; without it CPU stores are ignored."""
        self._m.protection.set_backup_write_access(enabled, gate="clock")
        self._m.usage_checks.set_device_memory(backup_clock=enabled)  # Device memory in use

    def code_changed(self, address: int, length: int) -> None:
        """Memory changed behind the CPU (a flash erase): drop translated code there."""
        self._m.stores.mark_dirty(address, length)

    @property
    def dcache(self):
        """The D-cache model (twin/dcache.py) for a master that writes memory on its own
        (the flash controller): ``begin_write``/``end_write`` around its writes; the SCB
        registers: ``set_enabled``/``operation``/``reset``."""
        return self._m.bus.dcache

    def unalign_trap(self, on: bool) -> None:
        """CCR.UNALIGN_TRP changed (the SCB registers, a reset): the UsageFault checks of
        twin/usage_checks.py follow it."""
        self._m.usage_checks.set_unalign_trap(on)

    def busy_cycles(self) -> int:
        """Virtual cycles less those spent in waits (see Clock.busy_cycles)."""
        return self._clock.busy_cycles()

    def time_looks(self) -> int:
        """How many times the core has read the time from a device (CYCCNT, SysTick VAL, a
        timer's CNT) so far: a polling loop that reads it between two reads times itself."""
        return self._clock.looks

    def next_event_in(self) -> int | None:
        """Cycles from now to the next scheduled event (SysTick's tick...), or None."""
        nxt = self._clock.next_event()
        return None if nxt is None else max(0, nxt - self._clock.peek_cycles())

    def idle_wait(self) -> None:
        """The firmware waits for host input (socket data); after this slice idle until the
        next event or a post(), at wall pace (realtime)."""
        self._clock.idle_wait()
