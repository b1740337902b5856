"""NVIC and exception priorities: which exception is pending, enabled, active, and which
one the core takes next (ARMv7-M B1.5.4, the STM32F7's 4 priority bits).

:class:`NvicState` is the part of :class:`twin.exception_model.ExceptionModel` that decides
*whether* and *what*: configured and group priorities (AIRCR.PRIGROUP), the execution
priority (active exceptions, PRIMASK, BASEPRI, FAULTMASK), external interrupt lines (a
high level keeps an IRQ pending), the pending/active views of ICSR and SHCSR and the AIRCR
actions. Exception numbers and the NVIC's size are defined here.

Owns: (attributes set by ``ExceptionModel.reset``) ``enabled``, ``pending``, ``active``,
``levels``, ``ipr``, ``shpr``, ``prigroup``, ``shcsr_ena``. Must not touch: the stack or
the core's registers other than reading the masks (entry and return are
twin/exc_entry.py), fault status (twin/faults.py).
"""

from __future__ import annotations

from collections.abc import Callable

from twin.device import Cpu, Services

# Exception numbers.
RESET, NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 1, 2, 3, 4, 5, 6
SVCALL, DEBUGMON, PENDSV, SYSTICK = 11, 12, 14, 15
NUM_IRQS = 110
FIRST_IRQ = 16
PRIO_BITS_MASK = 0xF0  # 4 implemented priority bits (STM32F7)


class NvicState:
    """Priorities, pending/enabled/active state and IRQ lines (a mixin of ExceptionModel)."""

    cpu: Cpu
    services: Services
    on_kick: Callable[[], None] | None
    #: called when an exception becomes pending that only PRIMASK/BASEPRI/FAULTMASK hold
    #: back (the runner then watches the unmasking instructions; see masked_pending)
    on_masked_pend: Callable[[], None] | None = None
    #: whether telling the machine can change anything now (None: always ask); the runner
    #: says no between the slices it is stepping, whose next start looks anyway
    kick_matters: Callable[[], bool] | None = None
    locked_up: bool

    # ------------------------------------------------------------------ priorities
    def priority(self, exc: int) -> int:
        """Configured priority of exception ``exc`` (negative for fixed ones)."""
        if exc == RESET:
            return -3
        if exc == NMI:
            return -2
        if exc == HARDFAULT:
            return -1
        if exc >= FIRST_IRQ:
            return self.ipr[exc - FIRST_IRQ]
        return self.shpr[exc]

    def group_priority(self, prio: int) -> int:
        """Group priority of a priority value under AIRCR.PRIGROUP."""
        if prio < 0:
            return prio
        return prio & ~((2 << self.prigroup) - 1) & 0xFF

    def execution_priority(self, ignore_primask: bool = False) -> int:
        """Current execution priority (256 = thread mode, nothing masked)."""
        prio = 256
        for exc in self.active:
            prio = min(prio, self.group_priority(self.priority(exc)))
        primask, basepri, faultmask = self.cpu.masks()
        if not ignore_primask and primask & 1:
            prio = min(prio, 0)
        basepri &= PRIO_BITS_MASK
        if basepri:
            prio = min(prio, self.group_priority(basepri))
        if faultmask & 1:
            prio = min(prio, -1)
        return prio

    def _exc_enabled(self, exc: int) -> bool:
        if exc >= FIRST_IRQ:
            return bool(self.enabled >> (exc - FIRST_IRQ) & 1)
        if exc == MEMMANAGE:
            return bool(self.shcsr_ena & (1 << 16))
        if exc == BUSFAULT:
            return bool(self.shcsr_ena & (1 << 17))
        if exc == USAGEFAULT:
            return bool(self.shcsr_ena & (1 << 18))
        return True

    def _sort_key(self, exc: int) -> tuple[int, int, int]:
        prio = self.priority(exc)
        return (self.group_priority(prio), prio, exc)

    def highest_pending(self) -> int | None:
        """The enabled pending exception that would be taken next (any priority)."""
        best = None
        for exc in self.pending:
            if self._exc_enabled(exc) and (best is None or self._sort_key(exc) < self._sort_key(best)):
                best = exc
        return best

    # ------------------------------------------------------------------ IRQ lines
    def set_irq(self, irqn: int, level: bool) -> None:
        """Drive external interrupt line ``irqn``; a high level keeps it pending."""
        if not 0 <= irqn < NUM_IRQS:
            return
        bit = 1 << irqn
        if level:
            if not self.levels & bit:
                self.pending.add(FIRST_IRQ + irqn)
                self.kick()
            self.levels |= bit
        else:
            self.levels &= ~bit

    def pend_irq(self, irqn: int) -> None:
        """Pend external interrupt ``irqn`` once (pulse)."""
        if 0 <= irqn < NUM_IRQS:
            self.pending.add(FIRST_IRQ + irqn)
            self.kick()

    def pend(self, exc: int) -> None:
        """Set an exception pending by number (SysTick, PendSV, NMI...)."""
        self.pending.add(exc)

    def kick(self) -> None:
        """Tell the machine (``on_kick``) if an exception can be taken now, or
        (``on_masked_pend``) if one is held back only by PRIMASK/BASEPRI/FAULTMASK."""
        if self.on_kick is not None and self.pending and (self.kick_matters is None or self.kick_matters()):
            if self.wants_entry():
                self.on_kick()
            elif self.on_masked_pend is not None and self.masked_pending():
                self.on_masked_pend()

    def masked_pending(self) -> bool:
        """True if a pending, enabled exception would preempt but for PRIMASK, BASEPRI or
        FAULTMASK: unmasking (CPSIE, MSR) must then take it at once."""
        if self.locked_up or not self.pending:
            return False
        exc = self.highest_pending()
        if exc is None:
            return False
        prio = 256
        for a in self.active:
            prio = min(prio, self.group_priority(self.priority(a)))
        return self.group_priority(self.priority(exc)) < prio

    # ------------------------------------------------------------------ entry
    def wants_entry(self) -> bool:
        """True if a pending, enabled exception has higher priority than the current one."""
        return self.takeable() is not None

    def takeable(self, check_fp: bool = True) -> int | None:
        """The pending, enabled exception the core would take now (it has higher priority
        than the current one), or None. ``check_fp``: first look for an FP instruction run
        with the FPU disabled (False only where CONTROL.FPCA is known clear)."""
        if self.locked_up:
            return None
        if check_fp and self.cpacr & 0x00F00000 != 0x00F00000:
            self._check_fp_disabled()
        if not self.pending:
            return None
        exc = self.highest_pending()
        if exc is not None and self.group_priority(self.priority(exc)) < self.execution_priority():
            return exc
        return None

    def sleeping_can_wake(self) -> bool:
        """True if a WFI should end: a pending exception would preempt if PRIMASK were 0.

        (ARMv7-M: ``cpsid i; wfi; cpsie i`` wakes on an interrupt masked only by PRIMASK;
        BASEPRI/FAULTMASK and priority still apply.)
        """
        if self.locked_up or not self.pending:
            return False
        exc = self.highest_pending()
        return exc is not None and self.group_priority(self.priority(exc)) < self.execution_priority(
            ignore_primask=True
        )

    def is_locked_up(self) -> bool:
        """True after an unrecoverable fault (cleared by reset)."""
        return self.locked_up

    def _ipsr(self) -> int:
        return self.cpu.reg("xpsr") & 0x1FF

    # ------------------------------------------------------------------ scheduling
    def next_event_cycles(self) -> int | None:
        """Cycles until SysTick's next wrap (None when it is stopped)."""
        return self.systick.next_event_cycles()

    # ------------------------------------------------------------------ registers
    def icsr(self) -> int:
        """ICSR value composed from the live state."""
        ipsr = self._ipsr()
        val = ipsr
        if len(self.active) <= 1:
            val |= 1 << 11  # RETTOBASE
        pend = self.highest_pending()
        if pend is not None:
            val |= (pend & 0x1FF) << 12
        if any(e >= FIRST_IRQ for e in self.pending):
            val |= 1 << 22
        if SYSTICK in self.pending:
            val |= 1 << 26
        if PENDSV in self.pending:
            val |= 1 << 28
        if NMI in self.pending:
            val |= 1 << 31
        return val

    def write_icsr(self, value: int) -> None:
        """Apply the set/clear-pending bits of an ICSR write."""
        if value & (1 << 31):
            self.pending.add(NMI)
        if value & (1 << 28):
            self.pending.add(PENDSV)
        if value & (1 << 27):
            self.pending.discard(PENDSV)
        if value & (1 << 26):
            self.pending.add(SYSTICK)
        if value & (1 << 25):
            self.pending.discard(SYSTICK)

    def shcsr(self) -> int:
        """SHCSR composed from active/pending/enable state."""
        val = self.shcsr_ena
        for exc, bit in (
            (MEMMANAGE, 0),
            (BUSFAULT, 1),
            (USAGEFAULT, 3),
            (SVCALL, 7),
            (DEBUGMON, 8),
            (PENDSV, 10),
            (SYSTICK, 11),
        ):
            if exc in self.active:
                val |= 1 << bit
        for exc, bit in ((USAGEFAULT, 12), (MEMMANAGE, 13), (BUSFAULT, 14), (SVCALL, 15)):
            if exc in self.pending:
                val |= 1 << bit
        return val

    def write_shcsr(self, value: int) -> None:
        """Apply an SHCSR write (enables and pending bits; active bits kept)."""
        self.shcsr_ena = value & (0x7 << 16)
        for exc, bit in ((USAGEFAULT, 12), (MEMMANAGE, 13), (BUSFAULT, 14), (SVCALL, 15)):
            if value & (1 << bit):
                self.pending.add(exc)
            else:
                self.pending.discard(exc)

    def write_aircr(self, value: int) -> None:
        """AIRCR write: needs VECTKEY; PRIGROUP, VECTCLRACTIVE, SYSRESETREQ, VECTRESET."""
        if value >> 16 != 0x05FA:
            return
        self.prigroup = (value >> 8) & 7
        if value & 2:
            self.active.clear()
        if value & 4:
            self.services.request_reset("system", "software")
        elif value & 1:
            self.services.request_reset("core", "software")

    def flush_icache(self) -> None:
        """Instruction cache maintenance: drop translated code."""
        self.cache_ops += 1
        self.cpu.flush_code_cache()
