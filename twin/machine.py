"""The virtual STM32F767's core, wired together: unicorn Cortex-M7 plus the parts that run it.

:class:`Machine` builds the parts and connects them; each part owns one job (see the map
in docs/twin.md):

* twin/bus.py: memory map in unicorn, device pages, MMIO dispatch, debugger and DMA
  accesses and their errors (with twin/memory.py for the regions);
* twin/stores.py: CPU stores to flash/ROM/gated RAM, the U4 fix-ups, the code cache;
* twin/protection.py: MPU enforcement (with twin/mpu.py), PPB privilege, backup SRAM gates;
* twin/clock.py: virtual time, the event queue, wall pacing and host waits, the log;
* twin/runner.py: slices, halt/step/lockup, the hand-off of faults to the exception model;
* twin/reset.py: reset requests, the reset sequence and boot;
* twin/cpu_thread.py and twin/host_gate.py: the CPU thread, the lock hosts take between
  slices, posted work;
* twin/core_regs.py: the core registers by name; twin/slice.py: what a running slice's
  hooks recorded; twin/services.py: what a device gets (its only way in).

The methods below are the machine's public face (the debug port, the control server, the
board, the exception model's ``Cpu`` view, tests); each forwards to the part that owns
the job. Threading: the CPU thread runs slices holding the lock; host threads use
:meth:`Machine.host`. Devices are only called with the lock held.

Owns: the wiring and the late-attached parts (exception unit, debug unit, flash
controller). Must not touch: any part's state on its own behalf (no logic here beyond
forwarding; a new job gets its own module).
"""

from __future__ import annotations

from collections.abc import Callable

import unicorn as uc_mod
import unicorn.arm_const as A

from twin import memory as mm
from twin.bus import Bus
from twin.clock import Clock
from twin.core_regs import CoreRegs
from twin.cpu_thread import CpuThread
from twin.device import Device, ExceptionUnit
from twin.exc_fast import ExcFast, machine_regions
from twin.flash_fast import FlashFast
from twin.host_gate import HostGate, HostHold
from twin.low_power import LowPower
from twin.protection import Protection
from twin.reset import Resets
from twin.runner import CoreRunner
from twin.services import DeviceServices
from twin.slice import SHORT_SLICE, Slice
from twin.stores import Stores
from twin.usage_checks import UsageChecks

__all__ = ["SHORT_SLICE", "DeviceServices", "Machine"]


class _Forward:
    """``machine.<name>`` reads and writes ``machine.<part>.<name>``."""

    def __init__(self, part: str, doc: str) -> None:
        self._part = part
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, objtype: type | None = None):
        if obj is None:
            return self
        return getattr(getattr(obj, self._part), self._name)

    def __set__(self, obj: object, value: object) -> None:
        setattr(getattr(obj, self._part), self._name, value)


class Machine:
    """A Cortex-M7 with the STM32F767ZI memory map, devices, a scheduler and a run loop.

    Args:
        core_hz: initial core clock (HSI 16 MHz after reset).
        idle: "realtime" (idle waits take wall time) or "skip" (jump to the next event).
        log_stream: where :meth:`log` writes (stderr).
    """

    def __init__(self, core_hz: int = 16_000_000, idle: str = "realtime", log_stream=None) -> None:
        uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
        uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M7)
        self.uc = uc
        ctx0 = uc.context_save()
        self.gate = HostGate()
        self.slice = Slice(uc)
        self.clock = clock = Clock(self.slice, self.gate, core_hz, idle, log_stream)
        self.regs = CoreRegs(uc)
        self.memory = mm.MemoryMap()
        self.protection = Protection(uc, self.slice, self.memory, clock.log)
        self.stores = Stores(uc, self.slice, self.memory, self.protection)
        self.bus = Bus(uc, self.slice, clock, self.memory, self.protection, self.stores, clock.log)
        self.runner = CoreRunner(
            uc, self.slice, clock, self.regs, self.bus, self.stores, self.protection, self.gate
        )
        self.resets = Resets(
            uc, ctx0, self.slice, clock, self.regs, self.memory, self.bus, self.stores, self.runner, self.gate
        )
        self.cpu_thread = CpuThread(self.gate, self.runner, self.resets, clock)
        #: Stop mode at a WFI/WFE with SLEEPDEEP (twin/low_power.py)
        self.low_power = LowPower(self)
        self.runner.on_sleep = self.low_power.on_sleep
        self.runner.stop_wake = self.low_power.wake
        self._exc: ExceptionUnit | None = None
        self._debug = None
        self._flash = None
        #: UsageFaults unicorn does not raise (unaligned LDRD/LDM..., DIV_0_TRP)
        self.usage_checks = UsageChecks(
            uc, self.memory, self.slice, self._ccr, clock.log, self.stores.flush_code_cache
        )
        self.protection.on_fetch = self.usage_checks.on_fetch
        self.protection.on_mpu = lambda mpu: self.usage_checks.set_device_memory(mpu=mpu)
        hook = self.usage_checks.code_hook
        self.runner.arm = hook.arm  # the hook counts the slices' instructions
        #: exception entry/return of the plain case in C (twin/exc_fast.py), None without C
        self.exc_fast: ExcFast | None = None
        #: FLASH_SR/CR's plain accesses in C (twin/flash_fast.py), None without C
        self.flash_fast: FlashFast | None = None
        if hook.native:
            self.runner.retired = hook.retired
            self.runner.wfi_possible = hook.last_was_t16
            self.slice.counter = hook.counter_view()
            self.runner.unmask.use_native(hook)
            self.exc_fast = ExcFast(uc, machine_regions(self.memory), self.stores, self.bus.dcache)
        self.bus.add_store_hook(self.stores.hook_write_prot)
        uc.hook_add(uc_mod.UC_HOOK_MEM_UNMAPPED, self.bus.hook_unmapped)
        uc.hook_add(
            uc_mod.UC_HOOK_MEM_FETCH_PROT | uc_mod.UC_HOOK_MEM_READ_PROT, self.protection.hook_prot_other
        )
        uc.hook_add(uc_mod.UC_HOOK_INTR, self.runner.hook_intr)

    # ------------------------------------------------------------------ late-attached parts
    @property
    def exc(self) -> ExceptionUnit | None:
        """The exception model (twin/exception_model.py), or None (faults lock up)."""
        return self._exc

    @exc.setter
    def exc(self, unit: ExceptionUnit | None) -> None:
        self._exc = self.runner.exc = self.resets.exc = self.protection.exc = unit

    def _ccr(self) -> int:
        exc = self._exc
        return int(getattr(exc, "ccr", 0)) if exc is not None else 0

    @property
    def debug(self):
        """The debug unit (twin.scs.DebugUnit), set by the board."""
        return self._debug

    @debug.setter
    def debug(self, unit) -> None:
        self._debug = self.runner.debug = self.resets.debug = unit

    @property
    def flash(self):
        """The flash controller (twin.flash.FlashController), set by the board."""
        return self._flash

    @flash.setter
    def flash(self, controller) -> None:
        self._flash = self.stores.flash = self.resets.flash = controller

    def add_device(self, dev: Device, first: bool = False) -> None:
        """Attach and map a device; ``first`` gives it priority over earlier ones."""
        self.bus.add_device(dev, DeviceServices(self, dev.name), first)
        if dev is self._flash and self.usage_checks.code_hook.native:  # C works here
            self.flash_fast = FlashFast(self.bus, dev, self.protection, self.stores, self.slice)
        if hasattr(dev, "core_stopped") and hasattr(dev, "stopped_tick"):
            self.runner.stopped.watchers.append(dev)

    def set_exception_unit(self, unit: ExceptionUnit) -> None:
        """Install the exception model; its register blocks take over the SCS."""
        self.exc = unit
        if hasattr(unit, "on_kick"):
            unit.on_kick = self.runner.kick
        if hasattr(unit, "on_masked_pend"):
            unit.on_masked_pend = self.runner.kick
        if hasattr(unit, "kick_matters"):
            unit.kick_matters = self.runner.kick_matters
        for dev in unit.devices():
            self.add_device(dev)

    # ------------------------------------------------------------------ state (forwarded)
    core_hz = _Forward("clock", "Current core clock in Hz.")
    idle_mode = _Forward("clock", '"realtime" or "skip" (what a WFI sleep does with wall time).')
    halted = _Forward("runner", "In debug halt.")
    sleeping = _Forward("runner", "In WFI/WFE, waiting for an exception.")
    reset_held = _Forward("runner", "NRST held low (by the probe or the control port).")
    lockup_reason = _Forward("runner", "Why the core locked up (empty when it did not).")
    instructions = _Forward("runner", "Executed instructions since start (statistics).")
    on_halt = _Forward("runner", "Callbacks ``fn(reason)`` run when the core halts.")
    devices = _Forward("bus", "Devices by name.")

    @property
    def reset_history(self) -> list[dict[str, object]]:
        """The last 32 resets: kind, cause, cycles, wall time."""
        return self.resets.history

    @property
    def in_slice(self) -> bool:
        """True while unicorn executes (inside a hook)."""
        return self.slice.active

    @property
    def flash_region(self) -> mm.Region:
        """Flash at 0x08000000."""
        return self.memory.flash

    @property
    def flash_buf(self):
        """Flash's backing buffer (shared with the flash controller)."""
        return self.memory.flash_buf

    # ------------------------------------------------------------------ time
    def now_cycles(self) -> int:
        """Virtual time in cycles (inside a slice: slice start + MMIO accesses so far)."""
        return self.clock.now_cycles()

    def now_ns(self) -> int:
        """Virtual time in nanoseconds since power-on."""
        return self.clock.now_ns()

    def set_core_hz(self, hz: int) -> None:
        """Change the core clock (RCC)."""
        self.clock.set_core_hz(hz)

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        """Run ``callback`` on the CPU thread ``delay_cycles`` from now."""
        return self.clock.schedule(delay_cycles, callback)

    def cancel(self, handle: object) -> None:
        """Cancel a scheduled callback."""
        self.clock.cancel(handle)

    def log(self, message: str, who: str = "twin") -> None:
        """One line on stderr with virtual time and origin."""
        self.clock.log(message, who)

    # ------------------------------------------------------------------ host side
    def host(self) -> HostHold[Machine]:
        """``with machine.host() as m``: hold the machine between slices (for debugger and
        control access)."""
        return self.gate.host(self)

    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: run ``fn`` on the CPU thread at the next slice boundary."""
        self.gate.post(fn)

    def wake(self) -> None:
        """Wake the CPU thread (after a host changed what it waits for)."""
        self.gate.wake()

    def start(self) -> None:
        """Start the CPU thread (free-running)."""
        self.cpu_thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the CPU thread and wait for it."""
        self.cpu_thread.stop(timeout)

    # ------------------------------------------------------------------ run control
    def halt(self, reason: str = "halted") -> None:
        """Enter debug halt (lock held)."""
        self.runner.halt(reason)

    def resume(self, wake: bool = True) -> None:
        """Leave debug halt (lock held)."""
        self.runner.resume(wake)

    def step_slice(self, max_count: int | None = None) -> int:
        """Run one slice (lock held); returns instructions charged."""
        return self.runner.step_slice(max_count)

    def step_instruction(self) -> None:
        """Debugger single step (lock held, core halted)."""
        self.cpu_thread.step_instruction()

    def run_burst(self, seconds: float = 0.004) -> None:
        """Run the core on the calling host thread for up to ``seconds`` (after a resume)."""
        self.cpu_thread.run_burst(seconds)

    def is_locked_up(self) -> bool:
        """True if the core is locked up (machine or exception unit)."""
        return self.runner.is_locked_up()

    def lockup(self, reason: str) -> None:
        """Lock the core up."""
        self.runner.lockup(reason)

    def kick(self) -> None:
        """An exception became takeable inside a register write: end the slice after it."""
        self.runner.kick()

    def set_irq(self, irqn: int, level: bool) -> None:
        """Drive an external interrupt line (forwarded to the exception unit)."""
        fn = getattr(self._exc, "set_irq", None)
        if fn is not None:
            fn(irqn, level)
        if level:
            self.gate.wake()

    def pend_irq(self, irqn: int) -> None:
        """Pend an external interrupt once."""
        fn = getattr(self._exc, "pend_irq", None)
        if fn is not None:
            fn(irqn)
        self.gate.wake()

    # ------------------------------------------------------------------ resets
    def request_reset(self, kind: str, cause: str) -> None:
        """Reset at the next slice boundary (at once from a host thread holding the lock)."""
        self.resets.request(kind, cause)

    def reset(self, kind: str, cause: str) -> None:
        """Do a reset now (lock held, outside emu_start)."""
        self.resets.reset(kind, cause)

    def boot_address(self) -> int:
        """Where the core fetches its vector table: BOOT_ADD0 << 14."""
        return self.resets.boot_address()

    # ------------------------------------------------------------------ bus
    def device(self, name: str) -> Device:
        """A device by name (KeyError if absent)."""
        return self.bus.device(name)

    def add_storage_range(self, base: int, size: int) -> None:
        """Addresses in the range no device claims act as plain storage (not bus faults)."""
        self.bus.add_storage_range(base, size)

    def region_at(self, address: int, length: int = 1) -> mm.Region | None:
        """The memory region holding ``[address, address + length)``, or None."""
        return self.memory.region_at(address, length)

    def bus_read(self, address: int, length: int, width: int = 4) -> bytes:
        """Read as the debugger does; MMIO in ``width``-byte accesses. BusError if unmapped."""
        return self.bus.read(address, length, width)

    def bus_write(self, address: int, data: bytes, width: int = 4) -> None:
        """Write as the debugger does (flash through the controller). BusError if refused."""
        self.bus.write(address, data, width)

    # ------------------------------------------------------------------ Cpu (exception model)
    def reg(self, name: str) -> int:
        """Read a core register by name (see twin.device.Cpu)."""
        return self.regs.reg(name)

    def set_reg(self, name: str, value: int) -> None:
        """Write a core register by name (PC: bit 0 dropped)."""
        self.regs.set_reg(name, value)

    def masks(self) -> tuple[int, int, int]:
        """PRIMASK, BASEPRI, FAULTMASK (one privilege check for the three)."""
        return self.regs.masks()

    def read_regs(self, names: tuple[str, ...]) -> list[int]:
        """Plain registers (r0-r12, sp, lr, pc, xpsr, ipsr, control) with one engine call."""
        return self.regs.read_regs(names)

    def write_context(self, names: tuple[str, ...], values: list[int] | tuple[int, ...]) -> None:
        """Registers written in order with one engine call (exception entry and return;
        see CoreRegs.write_context for the order they need)."""
        self.regs.write_context(names, values)

    def read_mem(self, address: int, length: int) -> bytes:
        """The core's own read (RAM, flash, MMIO): it sees its D-cache lines.
        ValueError (BusError) if unmapped."""
        return self.bus.read(address, length, cpu=True)

    def write_mem(self, address: int, data: bytes) -> None:
        """The core's own write (flash goes through the controller): through its D-cache
        like a store instruction."""
        dc = self.bus.dcache
        if dc is not None and dc.enabled:
            dc.cpu_write(address, data)
        self.bus.write(address, data)

    def flush_code_cache(self, lo: int = 0, hi: int = 0xFFFFFFFF) -> None:
        """Drop translated code in [lo, hi)."""
        self.stores.flush_code_cache(lo, hi)

    def mpu_allows(self, address: int, length: int, write: bool, privileged: bool) -> bool:
        """Whether the MPU lets this access through (exception stacking and unstacking)."""
        return self.protection.mpu_allows(address, length, write, privileged)
