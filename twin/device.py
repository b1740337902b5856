"""The contract between the twin's machine and its peripherals.

Every memory-mapped peripheral is a :class:`Device`. The machine owns the CPU (unicorn),
the memory and the run loop; its bus routes each CPU or debugger access inside
``[base, base + size)`` to ``device.read``/``device.write`` with the offset from ``base``.
A device reaches the rest of the board only through the :class:`Services` it gets in
:meth:`Device.attach` (time, events, interrupts, its bus-master port, resets, log); the
machine's implementation is ``twin.services.DeviceServices``. A device never imports or
holds the machine.

A device that moves data itself (a DMA, the Ethernet offload device's buffers) is a bus
master: it reads and writes through the :class:`BusMaster` port ``services.bus_master()``,
which applies the bus's access checks and raises :class:`BusError`.

Threading rule: device methods are only ever called on the machine's CPU thread
(between or inside instruction slices). Host-side threads (sockets, PTY readers, the
control server) must hand work to the CPU thread with ``services.post(fn)``; they never
touch device state directly.

Owns: the contracts (Device, Services, BusMaster, BusError, Cpu, ExceptionUnit) and two
register-lane helpers. Must not touch: any other module of the twin (it imports none).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class ResetKind:
    """Kinds of reset a device sees in :meth:`Device.reset`."""

    POWER = "power"  #: power-on: everything to reset values, SRAM lost
    SYSTEM = "system"  #: NRST / SYSRESETREQ / watchdog: peripherals reset, SRAM kept
    CORE = "core"  #: VECTRESET: core only; peripherals keep their state


class BusError(ValueError):
    """A bus access answered with an error (unmapped address, read-only target, a region
    a bus master may not reach). The message says which access and why."""


class BusMaster(Protocol):
    """A bus master's port onto the system bus (``Services.bus_master()``).

    The accesses of a device that moves data on its own (DMA; the Ethernet offload
    device's TX/RX buffers). The port applies the bus's checks for bus masters: reads
    reach memory (RAM, flash, ROM; not peripheral registers), writes reach RAM only.
    Anything else raises :class:`BusError` and leaves memory untouched. Code the CPU may
    have translated from written memory is dropped (like a CPU store).
    """

    def read(self, address: int, length: int) -> bytes:
        """``length`` bytes at bus address ``address``."""

    def write(self, address: int, data: bytes) -> None:
        """Store ``data`` at bus address ``address``."""


class Services(Protocol):
    """What the machine offers to devices. Implemented by the machine."""

    @property
    def core_hz(self) -> int:
        """Current core clock (SYSCLK) in Hz; virtual time advances at this rate."""

    def set_core_hz(self, hz: int) -> None:
        """Change the core clock (called by the RCC model when SYSCLK changes)."""

    def now_cycles(self) -> int:
        """Virtual time in core cycles since power-on (monotonic, never reset)."""

    def now_ns(self) -> int:
        """Virtual time in nanoseconds since power-on."""

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        """Run ``callback`` on the CPU thread when virtual time reaches now + delay.

        Slices are cut so the callback runs at exactly that cycle. Returns a handle
        for :meth:`cancel`.
        """

    def cancel(self, handle: object) -> None:
        """Cancel a scheduled callback (no error if it already ran)."""

    def set_irq(self, irqn: int, level: bool) -> None:
        """Drive external interrupt line ``irqn`` (0..109). A rising level pends it in the NVIC."""

    def pend_irq(self, irqn: int) -> None:
        """Pend external interrupt ``irqn`` once (an edge/pulse)."""

    def bus_master(self) -> BusMaster:
        """This device's port for its own bus accesses (DMA); see :class:`BusMaster`."""

    def request_reset(self, kind: str, cause: str) -> None:
        """Ask for a reset of ``kind`` (ResetKind); done safely at the next slice boundary.

        ``cause`` is one of "pin", "software", "iwdg", "wwdg", "power", "lowpower" and
        feeds the RCC reset flags.
        """

    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: run ``fn`` on the CPU thread at the next slice boundary.

        Also wakes the CPU if it sleeps in WFI.
        """

    def log(self, message: str) -> None:
        """Log a line on the twin's stderr, prefixed with virtual time and the device name."""

    # Optional extras (devices look them up with getattr, so simple test doubles may omit
    # them; twin.services.DeviceServices has them all):
    #   ``bus_error(what)``: the CPU write being handled gets an error response
    #     (imprecise BusFault once the store retired); for a debugger's access only logged.
    #   ``poll_wait()`` / ``idle_wait()``: the firmware polls a flag only a scheduled event
    #     (poll) or the host (idle) can change; see docs/twin.md "Time".
    #   ``busy_cycles()``: virtual cycles less those spent in such waits (and WFI): to tell
    #     a tight polling loop by the gap between its reads, also right after a wait.
    #   ``time_looks()`` / ``next_event_in()``: how often the core has read the time from
    #     a device, and the cycles to the next event: a status poll jumps only for a loop
    #     that does not time itself, to a tick that is near (twin/status_poll.py).
    #   ``code_changed(address, length)``: memory changed behind the CPU (a flash erase):
    #     translated code there is dropped.
    #   ``set_backup_write_access(allowed)`` / ``set_backup_clock(enabled)``: PWR_CR1.DBP
    #     and RCC_AHB1ENR.BKPSRAMEN gate the CPU's stores to backup SRAM.

    def device(self, name: str) -> Device:
        """Find another device by name (e.g. the EXTI asks for "gpio"). KeyError if absent."""


class Device:
    """Base class of a memory-mapped peripheral.

    Subclasses set ``name``, ``base`` and ``size`` and override :meth:`read`,
    :meth:`write` and :meth:`reset`. Unknown offsets should read their reset value
    (usually 0), ignore writes and log once, never raise.
    """

    name: str = "device"
    base: int = 0
    size: int = 0x400

    def __init__(self) -> None:
        self.services: Services | None = None
        self._warned: set[int] = set()

    def attach(self, services: Services) -> None:
        """Called once by the machine before the first reset."""
        self.services = services

    def read(self, offset: int, size: int) -> int:
        """Return the value of an access of ``size`` bytes (1, 2 or 4) at ``offset``."""
        self.unmodelled(offset, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        """Handle a store of ``size`` bytes at ``offset``."""
        self.unmodelled(offset, "write")

    def reset(self, kind: str) -> None:
        """Return to reset state for a reset of ``kind`` (see :class:`ResetKind`)."""

    def unmodelled(self, offset: int, what: str) -> None:
        """Log, once per offset, that firmware touched something this model does not implement."""
        if offset in self._warned:
            return
        self._warned.add(offset)
        if self.services is not None:
            self.services.log(
                f"unmodelled {what} at +0x{offset:03X} (0x{self.base + offset:08X}); reads as reset value"
            )

    def snapshot(self) -> dict[str, object]:
        """State for the control interface (JSON-serialisable). Optional."""
        return {}


def peer(services: object, name: str) -> Any:
    """Another device of the board by name through ``services`` (anything with ``device``),
    or None when there are no services yet or the board has no such device."""
    if services is None:
        return None
    try:
        return services.device(name)  # type: ignore[attr-defined]
    except KeyError:
        return None


def sub_word(reg_value: int, offset: int, size: int) -> int:
    """Extract the ``size``-byte lane at byte ``offset`` (any alignment inside the word)."""
    shift = (offset & 3) * 8
    return (reg_value >> shift) & ((1 << (size * 8)) - 1)


def merge_word(old: int, offset: int, size: int, value: int) -> int:
    """Merge a ``size``-byte store at byte ``offset`` into the 32-bit register value ``old``."""
    if size == 4:
        return value & 0xFFFFFFFF
    shift = (offset & 3) * 8
    mask = ((1 << (size * 8)) - 1) << shift
    return (old & ~mask) | ((value << shift) & mask)


# --------------------------------------------------------------------------------------
# The exception model's contract (twin/exception_model.py implements ExceptionUnit; the
# machine implements Cpu and calls the unit at the points listed below).
# --------------------------------------------------------------------------------------


class Cpu(Protocol):
    """Core access the exception model needs. Implemented by the machine on the CPU thread.

    Register names: "r0".."r12", "sp", "lr", "pc", "xpsr", "ipsr", "msp", "psp",
    "control", "primask", "basepri", "faultmask", "fpscr", "s0".."s31".
    """

    def reg(self, name: str) -> int: ...

    def set_reg(self, name: str, value: int) -> None: ...

    def masks(self) -> tuple[int, int, int]:
        """PRIMASK, BASEPRI, FAULTMASK (the exception model asks before every slice)."""
        ...

    def read_mem(self, address: int, length: int) -> bytes:
        """Read through the system bus as the core would (RAM, flash, MMIO). BusError if unmapped."""

    def write_mem(self, address: int, data: bytes) -> None:
        """Write through the system bus as the core would. BusError if unmapped/read-only."""

    def flush_code_cache(self, lo: int = 0, hi: int = 0xFFFFFFFF) -> None:
        """Drop translated code in [lo, hi) (unicorn TB cache)."""

    # Optional (looked up with getattr): ``mpu_allows(address, length, write, privileged)``
    # -> bool, the MPU's answer for exception stacking/unstacking (twin/protection.py).


class ExceptionUnit(Protocol):
    """NVIC + SysTick + SCB fault logic + exception entry/return (issue 4).

    The machine calls, always on the CPU thread:
      * ``devices()`` once, and maps what it returns (NVIC, SysTick, SCB/fault/MPU/FPU
        register blocks inside 0xE000E000-0xE000EFFF that are not debug registers);
      * ``enter()`` at every slice boundary (unless the debugger masks interrupts): it
        takes the highest-priority pending exception if ``wants_entry()`` says one can
        preempt (stacking, vector fetch via VTOR, IPSR, LR) and returns True if it did;
      * ``exception_return(exc_return)`` when the core branches to 0xFFFFFFE0..0xFFFFFFFF;
      * ``fault(kind, detail)`` on a fault the core detected: kind is "bus" (detail: address,
        "precise"/"instr"), "usage" (detail: "undefinstr"/"invstate"/"unaligned"/"divbyzero"/
        "nocp"/"invpc"), "memmanage" (detail: address), "hard" (detail: reason);
      * ``svc()`` for an SVC instruction, ``reset(kind)`` on resets.
    ``is_locked_up()`` tells the debug port to show DHCSR.S_LOCKUP.
    ``next_event_cycles()`` lets the run loop cut slices so SysTick fires on time
    (None when nothing is scheduled).
    """

    def devices(self) -> list[Device]: ...

    def wants_entry(self) -> bool: ...

    def enter(self) -> bool: ...

    def exception_return(self, exc_return: int) -> None: ...

    def fault(self, kind: str, detail: object = None) -> None: ...

    def svc(self) -> None: ...

    def reset(self, kind: str) -> None: ...

    def is_locked_up(self) -> bool: ...

    def sleeping_can_wake(self) -> bool:
        """True if a WFI should end now (an exception is pending and enabled)."""
