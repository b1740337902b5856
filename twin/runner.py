"""The core runner: instruction slices, the run state (halt, sleep, lockup) and the hand-off
of what stopped a slice to the exception model or the debug logic.

A slice is one ``emu_start`` of N instructions (counted by twin/code_hook.py);
:meth:`CoreRunner.step_slice` picks N (short after MMIO, cut at the next scheduled event),
takes a pending exception first, runs the slice, charges the executed instructions to virtual time and then handles what the hooks
recorded on the :class:`~twin.slice.Slice`: faults (``ExceptionUnit.fault``), SVC,
exception return, BKPT, breakpoints and watchpoints (the debug unit halts), WFI (sleep).
An exception return is done inside the slice when nothing needs its boundary
(``_return_in_slice``). A slice is charged the instructions it retired, counted by the
twin's C code hook (an instruction a hook stopped before it completed is not; one that
goes on past an exception return is charged the handler's too); where no C compiler
works, a slice that stops early is charged approximately (MMIO accesses + 1).

Owns: halted / sleeping / locked up / held in reset, the lockup reason, the instruction
count, the devices told when the core stops (watchdogs), the slice budget and its end
handling. Must not touch: device registers (only the stop notifications), memory contents
(stores replay through twin/stores.py), resets (twin/reset.py performs them; a slice only
records the request).
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

import unicorn as uc_mod
import unicorn.arm_const as A

from twin.bus import Bus
from twin.clock import Clock
from twin.core_regs import CoreRegs
from twin.cpu_errors import fault_for, fault_for_intr
from twin.device import ExceptionUnit
from twin.fastreg import reg_reader
from twin.host_gate import HostGate
from twin.protection import Protection
from twin.slice import LONG_SLICE, SHORT_SLICE, SHORT_SLICES_AFTER_IO, Slice
from twin.stopped_clocks import StoppedClocks
from twin.stores import Stores
from twin.unmask import UnmaskWatch

_UNTIL = 0xFFFFFFFF
WFI_T16 = 0xBF30
WFE_T16 = 0xBF20


def _charge(budget: int, retired: int | None, ticks: int, stopped: bool, wfi: bool) -> int:
    """The instructions a slice of ``budget`` is charged: those it ``retired`` (the C code
    hook counts them); uncounted, the budget if it ran to its end, else approximately the
    MMIO accesses (``ticks``, stalls excluded) + 1 (one if it ended at a WFI)."""
    if retired is not None:
        return max(1, min(budget, retired))
    if not stopped:
        return max(1, ticks) if wfi else budget
    return max(1, min(budget, ticks + 1))


def _after_wfi(bus: Bus, pc: int) -> bool:
    """The instruction before ``pc`` is a 16-bit WFI or WFE (not the second half of a 32-bit
    instruction)."""
    try:
        prev = int.from_bytes(bus.read(pc - 2, 2), "little")
        if prev not in (WFI_T16, WFE_T16):
            return False
        before = int.from_bytes(bus.read(pc - 4, 2), "little")
        return before >> 11 not in (0b11101, 0b11110, 0b11111)
    except ValueError:
        return False


class CoreRunner:
    """Runs the core in slices and keeps its run state.

    Args:
        uc, slice_, clock, regs, bus, stores, protection, gate: the machine's parts this
            one drives (see twin/machine.py for the wiring).
    """

    def __init__(
        self,
        uc,
        slice_: Slice,
        clock: Clock,
        regs: CoreRegs,
        bus: Bus,
        stores: Stores,
        protection: Protection,
        gate: HostGate,
    ) -> None:
        self.uc = uc
        self._reg = reg_reader(uc)  # fast core register reads (twin/fastreg.py)
        self._slice = slice_
        self._clock = clock
        self._regs = regs
        self._bus = bus
        self._stores = stores
        self._prot = protection
        self._gate = gate
        self.exc: ExceptionUnit | None = None
        self.debug = None  # twin.scs.DebugUnit
        self.halted = False
        self.sleeping = False
        #: in Stop mode (twin/low_power.py): stopped as in a halt until an interrupt wakes it
        self.deep_stop = False
        #: at a WFI/WFE that put the core to sleep: True if it enters Stop (twin/low_power.py)
        self.on_sleep: Callable[[], bool] = lambda: False
        #: while in Stop: True when it ends
        self.stop_wake: Callable[[], bool] = lambda: False
        self.locked_up = False
        self.reset_held = False
        self._unmask_watch = False  # the running slice is watched for unmasking (twin/unmask.py)
        self._stepping = False  # inside step_slice (see kick_matters)
        self.lockup_reason = ""
        self.arm: Callable[[int], int] = int  # a slice's count for emu_start (twin/code_hook.py)
        #: after emu_start, given PC: the instructions the slice retired, None if uncounted
        self.retired: Callable[[int], int | None] = lambda _pc: None
        #: given PC after a slice: its last instruction may have been a WFI (twin/code_hook.py)
        self.wfi_possible: Callable[[int], bool] = lambda _pc: True
        self.instructions = 0  # executed instructions since start (statistics)
        self.on_halt: list[Callable[[str], None]] = []
        #: devices whose clock runs on while the core is stopped: see sync_stopped
        self.stopped = StoppedClocks(clock)
        self.unmask = UnmaskWatch(uc, slice_, self.wants_entry)

    # ------------------------------------------------------------------ run state
    def runnable(self) -> bool:
        """Not halted, not held in reset, not locked up, not in Stop."""
        return not (self.halted or self.reset_held or self.is_locked_up() or self.deep_stop)

    def is_locked_up(self) -> bool:
        """True if the core is locked up (here or in the exception unit)."""
        return self.locked_up or (self.exc is not None and self.exc.is_locked_up())

    def lockup(self, reason: str) -> None:
        """Lock the core up: it stops executing; the debugger can still halt and read it."""
        if not self.locked_up:
            self.locked_up = True
            self.lockup_reason = reason
            self._clock.log(f"LOCKUP: {reason} (pc=0x{self._regs.reg('pc'):08X}); halt or reset to recover")
            self.sync_stopped()

    def halt(self, reason: str = "halted") -> None:
        """Enter debug halt (called with the lock held)."""
        if not self.halted:
            self.halted = True
            self.sleeping = False
            self._clock.end_wait()
            # entering debug state exits lockup (ARMv7-M); resuming at the same PC may
            # lock up again
            self.locked_up = False
            if self.exc is not None and getattr(self.exc, "locked_up", False):
                self.exc.locked_up = False
            for cb in self.on_halt:
                cb(reason)
            self.sync_stopped()

    def resume(self, wake: bool = True) -> None:
        """Leave debug halt (called with the lock held)."""
        self.halted = False
        self._slice.short = SHORT_SLICES_AFTER_IO
        self.sync_stopped()
        if self.debug is not None:
            self.debug.arm_skip(self._regs.reg("pc"))
        if wake:
            self._gate.wake()

    def kick_matters(self) -> bool:
        """Whether a kick can change anything now: not within :meth:`step_slice` between
        slices (the clock's events after one): the next slice start takes it anyway."""
        return self._slice.active or not self._stepping

    def kick(self) -> None:
        """The exception unit says an exception became takeable (``on_kick``): end the
        slice right after the current store so it is taken without delay."""
        s = self._slice
        if s.active:
            s.kicked = True
            s.short = SHORT_SLICES_AFTER_IO
        self._gate.wake()

    def sync_stopped(self, force: bool = False) -> None:
        """Tell the stop watchers (twin/stopped_clocks.py) that the core now runs (None), is
        in debug halt ("halt"), locked up ("lockup") or in Stop ("stop", twin/low_power.py);
        ``force`` re-sends the same state. NRST held counts as running (devices held in reset)."""
        if self.reset_held:
            state = None
        elif self.halted:
            state = "halt"
        elif self.is_locked_up():
            state = "lockup"
        else:
            state = "stop" if self.deep_stop else None
        self.stopped.tell(state, force)

    def stopped_wait(self) -> float:
        """While the core is stopped: poll the stop watchers, end Stop when an interrupt can
        wake it; returns how long to sleep before the next check."""
        wait = self.stopped.poll()
        if self.deep_stop and not self.halted and self.stop_wake():
            self.deep_stop = False  # an EXTI line (RTC, button) woke the system
            self.sync_stopped()
            return 0.0
        return wait

    def wants_entry(self) -> bool:
        """An exception can be taken now (and the debugger does not mask interrupts)."""
        return (
            self.exc is not None
            and self.exc.wants_entry()
            and not (self.debug is not None and self.debug.maskints())
        )

    def idle(self) -> float:
        """One iteration of a WFI sleep, a device poll or a host wait: returns wall seconds
        to wait (0 = go on). A WFI ends when the exception model says an exception can
        wake the core, a poll or host wait when one can be taken; the rest is the clock's
        (``Clock.idle_step``)."""
        if self.sleeping and self.exc is not None and self.exc.sleeping_can_wake():
            self.sleeping = False
            self._clock.end_sleep()
            return 0.0
        if not self.sleeping and self.wants_entry():  # pended as the wait began
            self._clock.end_wait()
            return 0.0
        return self._clock.idle_step(self.sleeping)

    # ------------------------------------------------------------------ slices
    def step_slice(self, max_count: int | None = None) -> int:
        """Run one slice (lock held). Returns instructions charged.

        A pending poll/idle wait (when slices are stepped by hand, e.g. in tests) is
        resolved first by jumping to the next event.
        """
        self._stepping = True
        try:
            return self._step(max_count)
        finally:
            self._stepping = False

    def _step(self, max_count: int | None) -> int:
        clock = self._clock
        if clock.wait_mode is not None:
            clock.settle_wait()
        exc = self.exc
        # enter() asks the model's wants_entry() itself: asking here too cost a second
        # priority evaluation per interrupt
        if (
            exc is not None
            and not (self.debug is not None and self.debug.maskints())
            and clock.guard(exc.enter)
            and not self.runnable()
        ):
            return 0
        nxt = clock.next_event()
        s = self._slice
        budget = SHORT_SLICE if s.short else LONG_SLICE
        if s.short:
            s.short -= 1
        if nxt is not None:
            budget = max(1, min(budget, nxt - clock.cycles))
        if max_count is not None:
            budget = min(budget, max_count)
        return self.execute(budget)

    def execute(self, budget: int) -> int:
        """Run at most ``budget`` instructions now, then hand over what stopped them."""
        s = self._slice
        clock = self._clock
        pc = self._reg(A.UC_ARM_REG_PC)
        s.begin(clock.cycles + budget, budget)
        self._prot.sync()
        if self.debug is not None:
            self.debug.before_execute(pc)
        if not self._reg(A.UC_ARM_REG_XPSR) & 0x01000000:
            # EPSR.T = 0 (e.g. a reset vector without the Thumb bit): INVSTATE UsageFault
            self.fault("usage", "invstate", f"execution with EPSR.T=0 at 0x{pc:08X}")
            return 0
        if self._watch_unmask():
            self._unmask_watch = True
            try:
                err = self.unmask.run(self._emulate, pc, budget)
            finally:
                self._unmask_watch = False
        else:
            err = self._emulate(pc, budget)
        end_pc: int | None = self._reg(A.UC_ARM_REG_PC)
        s.base = (retired := self.retired(end_pc)) or 0  # replays count on
        if s.reasons:
            replays = (("fixup", self._replay_store), ("watchpoint", self._complete_watched_access))
            for reason, complete in replays:
                if err is None and any(r == reason for r, _ in s.reasons):
                    err = complete()  # that one instruction again
                    retired = None if retired is None or err is not None else retired + 1
                    s.base = retired or 0
                    end_pc = None
        stores = self._stores
        if stores.fixups:
            stores.apply_fixups()
        stores.flush_dirty()
        reasons = s.reasons
        if s.early_event:  # scheduled outside a device write (a read, a flash store, a hook)
            s.early_event = False
            s.short = SHORT_SLICES_AFTER_IO
        stopped = bool(reasons) or err is not None
        # a slice the C count says ran its whole budget ended at a WFI only if that was its
        # last instruction (PC right after it): only then look at the code
        if end_pc is None:  # a replay moved it
            end_pc = self._reg(A.UC_ARM_REG_PC)
        wfi = (
            not stopped and (retired != budget or self.wfi_possible(end_pc)) and _after_wfi(self._bus, end_pc)
        )
        executed = _charge(budget, retired, s.accesses() - s.stalled, stopped, wfi)
        self.instructions += executed
        if self.debug is not None:
            self.debug.retired(executed)
        clock.advance(clock.cycles + executed + s.stalled)
        if err is not None:
            self._on_error(err)
        for reason, detail in reasons:
            self._on_stop(reason, detail)
        if wfi and not self.halted:
            self.sleeping = True
            clock.sleep_begins()
            if self.on_sleep():
                self.deep_stop = True
                self.sync_stopped()
        return executed

    def _watch_unmask(self) -> bool:
        """Run this slice watched (twin/unmask.py): an exception is held back only by
        PRIMASK/BASEPRI/FAULTMASK, and not by the debugger (DHCSR.C_MASKINTS)."""
        exc = self.exc
        return bool(
            exc is not None
            and getattr(exc, "pending", None)
            and getattr(exc, "masked_pending", bool)()
            and not (self.debug is not None and self.debug.maskints())
        )

    def _emulate(self, pc: int, count: int) -> BaseException | None:
        """``emu_start`` with the slice marked active; returns what it raised."""
        s = self._slice
        s.active = True
        try:
            self.uc.emu_start(pc | 1, _UNTIL, 0, self.arm(count))
        except Exception as e:  # UcError, or a Python error inside a hook
            return e
        finally:
            s.active = False
        return None

    def _replay_store(self) -> BaseException | None:
        """A flash store whose raw value must not be seen stopped the slice *before* the
        instruction retired (unicorn restarts it). Execute that one instruction again with
        the already-modelled addresses replayed (no second flash operation), so writeback
        happens, then the fix-ups restore the modelled bytes."""
        s = self._slice
        s.reasons = [r for r in s.reasons if r[0] != "fixup"]
        self._stores.begin_replay()
        try:
            err = self._emulate(self._reg(A.UC_ARM_REG_PC), 1)
        finally:
            self._stores.end_replay()
        if err is not None:
            return err
        s.reasons = [r for r in s.reasons if r[0] != "fixup"]
        return None

    def _complete_watched_access(self) -> BaseException | None:
        """A DWT data watchpoint stopped the core *before* the access (unicorn restarts the
        instruction); like the hardware, let that access complete, then halt."""
        s = self._slice
        reasons = s.reasons
        s.reasons = []
        self.debug.suppress = True
        try:
            err = self._emulate(self._reg(A.UC_ARM_REG_PC), 1)
        finally:
            self.debug.suppress = False
            s.reasons = reasons + [r for r in s.reasons if r[0] != "watchpoint"]
        return err

    # ------------------------------------------------------------------ hand-off
    def hook_intr(self, uc, intno: int, _ud) -> None:
        """UC_HOOK_INTR: the CPU raised an exception of its own (BKPT, SVC, EXC_RETURN,
        anything else is an undefined instruction)."""
        s = self._slice
        if intno == 7:  # BKPT
            s.stop("bkpt")
        elif intno == 2:  # SVC: PC is after the SVC
            s.stop("svc")
        elif intno == 8:  # exception exit (EXC_RETURN)
            value = self._reg(A.UC_ARM_REG_PC) | 1
            if not self._return_in_slice(value):
                s.stop("excret", value)
        else:
            s.stop("fault", fault_for_intr(intno, self._reg(A.UC_ARM_REG_PC)))

    def _return_in_slice(self, value: int) -> bool:
        """Do the exception return ``value`` inside the running slice when nothing needs
        the slice boundary (no other stop recorded, no unmask watch, no single step): an
        interrupt then costs one slice, not two. unicorn resumes at the unstacked PC; the
        slice still ends if the return left anything pending, faulted, locked up or changed
        the MPU's page rights (set per slice: to unprivileged code). False: stop, return there."""
        s = self._slice
        exc = self.exc
        if exc is None or s.reasons or s.budget <= 1 or self._unmask_watch:
            return False
        self._clock.guard(lambda: exc.exception_return(value))
        if exc.pending or exc.is_locked_up() or self._prot.stale():
            s.stop("returned")
        return True

    def _on_error(self, err: BaseException) -> None:
        """``emu_start`` raised: turn unicorn's error (and what the hooks recorded) into the
        fault the core would take; a Python error inside a hook locks the core up."""
        s = self._slice
        mpu, s.mpu_fault = s.mpu_fault, None
        if not isinstance(err, uc_mod.UcError):
            self._clock.log(
                "internal error inside a device hook:\n" + "".join(traceback.format_exception(err)).rstrip()
            )
            self.lockup(f"internal error: {err!r}")
            return
        thumb = bool(self._reg(A.UC_ARM_REG_XPSR) & 0x01000000)
        self.fault(*fault_for(err, self._reg(A.UC_ARM_REG_PC), s.fault_addr, mpu, thumb))

    def fault(self, kind: str, detail: object, text: str) -> None:
        """Hand a fault to the exception model (without one: lockup)."""
        if self.exc is not None:
            self._clock.guard(lambda: self.exc.fault(kind, detail))
            if self.exc.is_locked_up():
                self._clock.log(f"LOCKUP after {kind} fault: {text}")
            return
        self.lockup(f"{kind} fault: {text} (no exception model installed)")

    def _on_stop(self, reason: str, detail: object) -> None:
        guard = self._clock.guard
        if reason == "bkpt":
            if self.debug is not None and self.debug.debug_enabled():
                self.debug.halt_for("bkpt")
            else:
                self.fault("hard", "bkpt", "BKPT executed with debug disabled")
        elif reason == "svc":
            if self.exc is not None:
                guard(self.exc.svc)
            else:
                self.lockup("SVC without an exception model")
        elif reason == "excret":
            if self.exc is not None:
                guard(lambda: self.exc.exception_return(int(detail)))
            else:
                self.lockup(f"exception return 0x{int(detail):08X} without an exception model")
        elif reason == "fault":
            kind, det, text = detail
            self.fault(kind, det, text)
        elif reason in ("breakpoint", "watchpoint") and self.debug is not None:
            self.debug.halt_for(reason)
