"""Resets and boot: what each kind of reset clears, and the core's reset sequence.

Kinds (``twin.device.ResetKind``): power (SRAM/ITCM/backup SRAM and plain-storage
registers lost, clock back to HSI, devices and debug logic reset), system (NRST,
SYSRESETREQ, watchdogs: devices reset, SRAM kept) and core (VECTRESET: exception model and
core only). Every reset then boots: vector table at the boot address (BOOT_ADD0 << 14
from the flash controller's option bytes), MSP and PC from it, and honours
DEMCR.VC_CORERESET through the debug unit.

A request from inside a slice (a device, a register write) stops the slice and is done
at the next slice boundary (unicorn pitfall U9: never inside a hook); a request from a
host thread holding the machine (debugger, control port) is done at once.

Owns: the pending request, the reset history and the boot address logic. Must not touch:
the slice loop (the CPU thread asks :attr:`Resets.pending`), device internals (only
``reset(kind)`` and ``reset_cause(kind, cause)``).
"""

from __future__ import annotations

import time

from twin import memory as mm
from twin.bus import Bus
from twin.clock import Clock
from twin.core_regs import CoreRegs
from twin.device import Device, ExceptionUnit, ResetKind
from twin.host_gate import HostGate
from twin.runner import CoreRunner
from twin.slice import Slice
from twin.stores import Stores

_ORDER = {ResetKind.CORE: 0, ResetKind.SYSTEM: 1, ResetKind.POWER: 2}


class Resets:
    """Reset requests, the reset sequence and boot for one machine.

    Args:
        uc: the unicorn engine; ``ctx0`` its register context right after creation.
        slice_, clock, regs, memory, bus, stores, runner, gate: the parts a reset touches.
    """

    def __init__(
        self,
        uc,
        ctx0,
        slice_: Slice,
        clock: Clock,
        regs: CoreRegs,
        memory: mm.MemoryMap,
        bus: Bus,
        stores: Stores,
        runner: CoreRunner,
        gate: HostGate,
    ) -> None:
        self.uc = uc
        self._ctx0 = ctx0
        self._slice = slice_
        self._clock = clock
        self._regs = regs
        self._memory = memory
        self._bus = bus
        self._stores = stores
        self._runner = runner
        self._gate = gate
        self._exc: ExceptionUnit | None = None
        self._exc_devs: list[Device] = []
        self.debug = None  # twin.scs.DebugUnit
        self.flash = None  # twin.flash.FlashController (boot address from its option bytes)
        self.pending: tuple[str, str] | None = None
        self.history: list[dict[str, object]] = []

    @property
    def exc(self) -> ExceptionUnit | None:
        """The exception model (its own register blocks are reset by ``exc.reset``)."""
        return self._exc

    @exc.setter
    def exc(self, unit: ExceptionUnit | None) -> None:
        self._exc = unit
        self._exc_devs = list(unit.devices()) if unit is not None else []

    def request(self, kind: str, cause: str) -> None:
        """Reset at the next slice boundary (never inside a hook, pitfall U9)."""
        if self.pending is None or _ORDER[kind] > _ORDER[self.pending[0]]:
            self.pending = (kind, cause)
        if self._slice.active:
            self._slice.stop("reset")
        elif not self._runner.reset_held and self._gate.host_holds_lock():
            # a debugger/control write (e.g. AIRCR.SYSRESETREQ through the probe): the CPU is
            # parked between slices, so reset now; a deferred reset could land after the
            # debugger already wrote registers for its next step.
            self.reset(*self.pending)
        self._gate.wake()

    def reset_pending(self) -> None:
        """Do the requested reset, if any and NRST is not held (lock held, between slices)."""
        if self.pending is not None and not self._runner.reset_held:
            self.reset(*self.pending)

    def reset(self, kind: str, cause: str) -> None:
        """Do a reset now (lock held, outside emu_start)."""
        clock, runner = self._clock, self._runner
        self.pending = None
        self.history.append({"kind": kind, "cause": cause, "cycles": clock.cycles, "wall": time.time()})
        del self.history[:-32]
        if kind == ResetKind.POWER:
            self._memory.power_loss()
            self._bus.clear_storage()
            clock.set_core_hz(clock.reset_core_hz)
        elif kind == ResetKind.SYSTEM:
            clock.set_core_hz(clock.reset_core_hz)
        self._stores.fixups.clear()
        runner.sleeping = False
        runner.deep_stop = False
        clock.end_wait()
        clock.break_pace()
        runner.locked_up = False
        runner.lockup_reason = ""
        if kind != ResetKind.CORE:
            clock.cancel_all()
            for dev in self._bus.dev_list:
                if self._exc is None or dev not in self._exc_devs:
                    clock.guard(lambda d=dev: d.reset(kind))
            for dev in self._bus.dev_list:
                rc = getattr(dev, "reset_cause", None)
                if rc is not None:
                    clock.guard(lambda f=rc: f(kind, cause))
        if self.debug is not None:
            self.debug.on_reset(kind)
        self.uc.context_restore(self._ctx0)
        self.uc.ctl_flush_tb()
        self._boot(kind)
        if self.debug is not None:
            self.debug.after_reset()
        runner.sync_stopped(force=True)  # DBGMCU freeze bits may have been cleared

    def boot_address(self) -> int:
        """Where the core fetches its vector table: BOOT_ADD0 << 14 (BOOT pin low)."""
        if self.flash is not None:
            return self.flash.boot_address()
        return mm.FLASH_ITCM_BASE

    def _boot(self, kind: str) -> None:
        """The core's reset sequence: MSP and PC from the vector table at the boot address.

        Like the hardware, an invalid reset vector does not fault here but when the first
        instruction executes (so a debugger halted by vector catch can still run code, e.g.
        pyOCD's flash algorithm on a board with garbage in flash).
        """
        boot = self.boot_address()
        exc = self._exc
        if exc is not None:
            if hasattr(exc, "boot_vtor"):
                exc.boot_vtor = boot
            self._clock.guard(lambda: exc.reset(kind))
        try:
            table = self._bus.read(boot, 8)
        except ValueError:
            self._runner.lockup(f"vector table at boot address 0x{boot:08X} is unreadable")
            return
        sp = int.from_bytes(table[:4], "little")
        pc = int.from_bytes(table[4:], "little")
        set_reg = self._regs.set_reg
        for name in ("control", "primask", "basepri", "faultmask", "psp"):
            set_reg(name, 0)
        set_reg("msp", sp & ~3)
        set_reg("lr", 0xFFFFFFFF)
        set_reg("pc", pc & ~1)
        set_reg("xpsr", 0x01000000 if pc & 1 else 0)
        if self._memory.region_at(pc & ~1, 2) is None or not pc & 1:
            msg = (
                f"reset vector 0x{pc:08X} at boot address 0x{boot:08X} is not executable "
                "Thumb code (erased or missing firmware?)"
            )
            if exc is None:
                self._runner.lockup(msg)
            else:
                self._clock.log(msg + "; the core will fault")
