"""Fault status and escalation: CFSR/HFSR/MMFAR/BFAR and where a fault ends up.

:class:`FaultLogic` is the part of :class:`twin.exception_model.ExceptionModel` that turns
a fault the core detected (``fault(kind, detail)``: usage, bus, memmanage, hard), a
failed stacking or vector fetch, an SVC that cannot preempt or an FP instruction with the
FPU disabled into status bits and a pending exception: the fault itself if SHCSR enables
it and its priority can preempt, else HardFault (HFSR.FORCED), else lockup (a fault while
HardFault or NMI is active, or with FAULTMASK set).

Owns: ``cfsr``, ``hfsr``, ``mmfar``, ``bfar`` (reset by ``ExceptionModel.reset``) and the
lockup decision (``locked_up``, ``on_lockup``). Must not touch: the stack (entry is
twin/exc_entry.py) or the machine's run state (the machine sees ``is_locked_up()``).
"""

from __future__ import annotations

from collections.abc import Callable

from twin.device import Cpu, Services
from twin.nvic import BUSFAULT, HARDFAULT, MEMMANAGE, NMI, SVCALL, USAGEFAULT

# CFSR bits.
# CFSR bits.
CFSR_BITS = {
    ("memmanage", "iaccviol"): 1 << 0,
    ("memmanage", "daccviol"): 1 << 1,
    ("memmanage", "munstkerr"): 1 << 3,
    ("memmanage", "mstkerr"): 1 << 4,
    ("bus", "instr"): 1 << 8,
    ("bus", "precise"): 1 << 9,
    ("bus", "imprecise"): 1 << 10,
    ("bus", "unstkerr"): 1 << 11,
    ("bus", "stkerr"): 1 << 12,
    ("usage", "undefinstr"): 1 << 16,
    ("usage", "invstate"): 1 << 17,
    ("usage", "invpc"): 1 << 18,
    ("usage", "nocp"): 1 << 19,
    ("usage", "unaligned"): 1 << 24,
    ("usage", "divbyzero"): 1 << 25,
}
MMARVALID = 1 << 7
BFARVALID = 1 << 15
HFSR_VECTTBL = 1 << 1
HFSR_FORCED = 1 << 30
HFSR_DEBUGEVT = 1 << 31


class FaultLogic:
    """Fault status registers, escalation and lockup (a mixin of ExceptionModel)."""

    cpu: Cpu
    services: Services
    on_lockup: Callable[[], None] | None

    def _check_fp_disabled(self) -> None:
        """FP instruction run while CPACR denies CP10/CP11 → UsageFault NOCP.

        unicorn executes FP instructions regardless of CPACR but sets CONTROL.FPCA when it
        runs one; the model notices that at the next slice boundary (imprecise: the stacked
        PC is after the FP instruction, not on it).
        """
        control = self.cpu.reg("control")
        if not control & 4:
            return
        access = (self.cpacr >> 20) & 3  # CP10 field (CP11 must match)
        if access == 3 or (access == 1 and not control & 1):
            return
        self.cpu.set_reg("control", control & ~4)
        self.services.log(
            "FP instruction executed with the FPU disabled in CPACR "
            "(CP10/CP11): UsageFault NOCP. Enable it (SCB->CPACR |= 0xF << 20) "
            "before any FP code; the stacked PC is after the FP instruction"
        )
        self._raise_fault("usage", "nocp", None)

    # ------------------------------------------------------------------ faults
    def svc(self) -> None:
        """An SVC instruction executed (PC is after it): pend SVCall or escalate."""
        if self.group_priority(self.priority(SVCALL)) < self.execution_priority():
            self.pending.add(SVCALL)
        else:
            self.services.log("SVC at or above its priority → HardFault")
            self.hfsr |= HFSR_FORCED
            self._escalate_to_hard()

    def fault(self, kind: str, detail: object = None) -> None:
        """A fault the core detected (PC = faulting instruction). See ExceptionUnit."""
        address = None
        if kind == "bus":
            if isinstance(detail, tuple):
                address, sub = detail[0], str(detail[1]) if len(detail) > 1 else "precise"
            elif isinstance(detail, int):
                address, sub = detail, "precise"
            else:
                sub = str(detail or "precise")
            # BFAR holds the address of a precise data access only (not IBUSERR, IMPRECISERR)
            self._raise_fault("bus", sub, address if sub == "precise" else None)
        elif kind == "memmanage":
            if isinstance(detail, int):
                self._raise_fault("memmanage", "daccviol", detail)
            else:
                self._raise_fault("memmanage", str(detail or "iaccviol"), None)
        elif kind == "usage":
            self._raise_fault("usage", str(detail or "undefinstr"), None)
        else:
            self.services.log(f"HardFault ({detail})")
            if detail == "bkpt":  # a BKPT with halting debug off: a debug event (DebugMonitor off)
                self.hfsr |= HFSR_DEBUGEVT
            self._escalate_to_hard()

    def _raise_fault(self, kind: str, sub: str, address: int | None) -> None:
        self.cfsr |= CFSR_BITS.get((kind, sub), 0)
        exc = {"memmanage": MEMMANAGE, "bus": BUSFAULT, "usage": USAGEFAULT}[kind]
        if address is not None:
            if kind == "bus":
                self.bfar, self.cfsr = address & 0xFFFFFFFF, self.cfsr | BFARVALID
            else:
                self.mmfar, self.cfsr = address & 0xFFFFFFFF, self.cfsr | MMARVALID
        if (
            self._exc_enabled(exc)
            and exc not in self.active
            and self.group_priority(self.priority(exc)) < self.execution_priority()
        ):
            self.pending.add(exc)
        else:
            self.hfsr |= HFSR_FORCED
            self._escalate_to_hard()

    def _escalate_to_hard(self) -> None:
        if HARDFAULT in self.active or NMI in self.active or self.execution_priority() <= -1:
            self._lockup()
        else:
            self.pending.add(HARDFAULT)

    def _lockup(self) -> None:
        self.locked_up = True
        self.services.log("core LOCKUP (fault while in HardFault/NMI); reset to recover")
        try:
            self.cpu.set_reg("pc", 0xFFFFFFFE)
        except Exception:
            pass
        if self.on_lockup is not None:
            self.on_lockup()
