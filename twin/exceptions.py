"""ARMv7-M exception model of the twin's Cortex-M7: NVIC, SysTick, SCB, MPU, FPU/cache regs.

:class:`ExceptionModel` implements :class:`twin.device.ExceptionUnit`. It owns the
exception state (enabled/pending/active, priorities, fault status) and performs exception
entry (stacking into the CPU's memory, vector fetch through VTOR, IPSR/LR/CONTROL) and
return (unstacking, tail-chaining). Its register blocks are ordinary :class:`Device`\\ s
returned by :meth:`ExceptionModel.devices` and mapped by the machine.

Simplifications (see docs/twin-peripherals.md): FP context is stacked eagerly (lazy
stacking is not modelled: FPCCR.LSPACT never sets), the MPU registers live here and the
machine enforces them (twin/mpu.py) except for exception stacking, CPACR is stored but
unicorn executes FP instructions regardless.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from twin.device import Cpu, Device, Services, merge_word, sub_word

# Exception numbers.
RESET, NMI, HARDFAULT, MEMMANAGE, BUSFAULT, USAGEFAULT = 1, 2, 3, 4, 5, 6
SVCALL, DEBUGMON, PENDSV, SYSTICK = 11, 12, 14, 15
NUM_IRQS = 110
FIRST_IRQ = 16
PRIO_BITS_MASK = 0xF0  # 4 implemented priority bits (STM32F7)

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

# Values read from the Cortex-M7 r1p0 of the STM32F767 (see stm32f767-facts.md §4).
CPUID = 0x411FC270
CLIDR = 0x09000003
CTR = 0x8303C003
CCSIDR_D = 0xF00FE019  # 16 KB, 4-way, 128 sets, 32 B lines
CCSIDR_I = 0xF01FE009  # 16 KB, 2-way, 256 sets, 32 B lines
ID_REGS = {  # offsets from 0xE000ED00
    0x40: 0x00000030,
    0x44: 0x00000200,
    0x48: 0x00100000,
    0x4C: 0x00000000,
    0x50: 0x00100030,
    0x54: 0x00000000,
    0x58: 0x01000000,
    0x5C: 0x00000000,
    0x60: 0x01101110,
    0x64: 0x02112000,
    0x68: 0x20232231,
    0x6C: 0x01111131,
    0x70: 0x01310132,
}
MVFR = {0x40: 0x10110221, 0x44: 0x12000011, 0x48: 0x00000040}  # offsets from 0xE000EF00
CCR_RESET = 0x00040200  # BP=1, STKALIGN=1
CCR_WRITABLE = 0x0007031B
FPCCR_RESET = 0xC0000000  # ASPEN | LSPEN
EXC_RETURN_BASE = 0xFFFFFFE1


def _u32(data: bytes, i: int) -> int:
    return struct.unpack_from("<I", data, 4 * i)[0]


class ExceptionModel:
    """NVIC + SysTick + SCB/MPU/FPU register state and the exception entry/return logic.

    Args:
        cpu: core register and memory access (implemented by the machine).
        services: the machine's services (time, scheduling, resets, log).
    """

    def __init__(self, cpu: Cpu, services: Services) -> None:
        self.cpu = cpu
        self.services = services
        self.boot_vtor = 0x00200000
        self.on_lockup: Callable[[], None] | None = None
        #: Called (inside a register write or set_irq) when an exception just became
        #: takeable, so the machine can end the current slice early. None: not needed.
        self.on_kick: Callable[[], None] | None = None
        self.systick = SysTick(self)
        self._devices: list[Device] = [
            ScnRegs(self),
            self.systick,
            NvicRegs(self),
            ScbRegs(self, 0xE000ED00, 0x30),
            ScbRegs(self, 0xE000ED34, 0x5C, "scb_fault"),
            MpuRegs(self),
            ScbExtRegs(self),
        ]
        self.history: list[tuple[int, int]] = []  # (cycle, exception number) of entries
        self.keep_history = 0  # >0: keep that many entries (tests)
        self.reset("power")

    # ------------------------------------------------------------------ state / reset
    def reset(self, kind: str) -> None:
        """Reset all exception state (every reset kind resets the core's NVIC/SCB)."""
        self.enabled = 0  # bit n = IRQ n enabled
        self.pending: set[int] = set()  # exception numbers
        self.active: list[int] = []  # nesting order, innermost last
        self.levels = 0  # bit n = IRQ n line asserted (level-sensitive)
        self.ipr = bytearray(NUM_IRQS)
        self.shpr = bytearray(16)  # indexed by exception number 4..15
        self.prigroup = 0
        self.vtor = self.boot_vtor & 0xFFFFFF80
        self.scr = 0
        self.ccr = CCR_RESET
        self.shcsr_ena = 0  # bits 16..18 of SHCSR
        self.cfsr = 0
        self.hfsr = 0
        self.mmfar = 0
        self.bfar = 0
        self.cpacr = 0
        self.csselr = 0
        self.actlr = 0
        self.fpccr = FPCCR_RESET
        self.fpcar = 0
        self.fpdscr = 0
        self.mpu_ctrl = 0
        # bumped on every MPU register change and reset, never back to an old value (the
        # machine caches protections and stacking checks on it)
        self.mpu_gen = getattr(self, "mpu_gen", 0) + 1
        self.mpu_rnr = 0
        self.mpu_rbar = [0] * 8
        self.mpu_rasr = [0] * 8
        self.tcm = {0x90: 0, 0x94: 0, 0x98: 0, 0x9C: 0, 0xA0: 0}
        self.locked_up = False
        self.cache_ops = 0
        self.systick.reset(kind)

    def devices(self) -> list[Device]:
        """The SCS register blocks to map (all but the debug registers)."""
        return list(self._devices)

    def load_reset_vector(self) -> None:
        """Do the core's reset sequence: MSP and PC from the table at VTOR, thread mode."""
        try:
            table = self.cpu.read_mem(self.vtor, 8)
        except ValueError:
            self.services.log(f"reset vector at 0x{self.vtor:08X} unreadable; lockup")
            self._lockup()
            return
        sp, pc = _u32(table, 0), _u32(table, 1)
        if pc == 0xFFFFFFFF or sp == 0xFFFFFFFF:
            self.services.log(
                f"vector table at 0x{self.vtor:08X} is erased (SP=0x{sp:08X}, "
                f"PC=0x{pc:08X}): no firmware there? The core will lock up"
            )
        self.cpu.set_reg("control", 0)
        self.cpu.set_reg("xpsr", 0x01000000)
        self.cpu.set_reg("psp", 0)
        self.cpu.set_reg("msp", sp & ~3)
        self.cpu.set_reg("primask", 0)
        self.cpu.set_reg("basepri", 0)
        self.cpu.set_reg("faultmask", 0)
        self.cpu.set_reg("lr", 0xFFFFFFFF)
        self.cpu.set_reg("pc", pc & ~1)
        if not pc & 1:
            self.fault("usage", "invstate")

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
        if not ignore_primask and self.cpu.reg("primask") & 1:
            prio = min(prio, 0)
        basepri = self.cpu.reg("basepri") & PRIO_BITS_MASK
        if basepri:
            prio = min(prio, self.group_priority(basepri))
        if self.cpu.reg("faultmask") & 1:
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
        """Tell the machine (``on_kick``) if an exception can be taken now."""
        if self.on_kick is not None and self.pending and self.wants_entry():
            self.on_kick()

    # ------------------------------------------------------------------ entry
    def wants_entry(self) -> bool:
        """True if a pending, enabled exception has higher priority than the current one."""
        if self.locked_up:
            return False
        if self.cpacr & 0x00F00000 != 0x00F00000:
            self._check_fp_disabled()
        if not self.pending:
            return False
        exc = self.highest_pending()
        return exc is not None and self.group_priority(self.priority(exc)) < self.execution_priority()

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

    def enter(self) -> None:
        """Take the highest-priority pending exception if it can preempt."""
        if not self.wants_entry():
            return
        exc = self.highest_pending()
        assert exc is not None
        self._take(exc)

    def _ipsr(self) -> int:
        return self.cpu.reg("xpsr") & 0x1FF

    def _take(self, exc: int) -> None:
        cpu = self.cpu
        self.pending.discard(exc)
        control = cpu.reg("control")
        xpsr = cpu.reg("xpsr")
        thread = (xpsr & 0x1FF) == 0
        use_psp = thread and bool(control & 2)
        fpca = bool(control & 4)
        sp = cpu.reg("psp" if use_psp else "msp")
        size = 0x68 if fpca else 0x20
        frame_ptr = (sp - size) & 0xFFFFFFFF
        if self.ccr & (1 << 9) and frame_ptr & 4:
            frame_ptr &= ~7
            xpsr |= 1 << 9
        else:
            xpsr &= ~(1 << 9)
        frame = [
            cpu.reg("r0"),
            cpu.reg("r1"),
            cpu.reg("r2"),
            cpu.reg("r3"),
            cpu.reg("r12"),
            cpu.reg("lr"),
            cpu.reg("pc") & ~1,
            xpsr,
        ]
        if fpca:
            frame += [cpu.reg(f"s{i}") for i in range(16)] + [cpu.reg("fpscr"), 0]
            self.fpcar = (frame_ptr + 0x20) & 0xFFFFFFFF
        stack_error = mpu_error = False
        # stacking is done at the privilege of the interrupted code (thread: CONTROL.nPRIV)
        allows = getattr(cpu, "mpu_allows", None)
        if allows is not None and not allows(frame_ptr, 4 * len(frame), True, not thread or not control & 1):
            mpu_error = True  # the MPU refuses the frame: nothing is written
        else:
            try:
                cpu.write_mem(frame_ptr, struct.pack(f"<{len(frame)}I", *[v & 0xFFFFFFFF for v in frame]))
            except ValueError:
                stack_error = True
        cpu.set_reg("psp" if use_psp else "msp", frame_ptr)
        exc_return = (
            EXC_RETURN_BASE | (0 if fpca else 0x10) | (0x8 if thread else 0) | (0x4 if use_psp else 0)
        )
        self._enter_handler(exc, exc_return, control)
        if stack_error:
            self.services.log(f"stacking at 0x{frame_ptr:08X} failed (STKERR)")
            self._raise_fault("bus", "stkerr", None)
        elif mpu_error:
            self.services.log(f"stacking at 0x{frame_ptr:08X} refused by the MPU (MSTKERR)")
            self._raise_fault("memmanage", "mstkerr", None)

    def _enter_handler(self, exc: int, exc_return: int, control: int) -> None:
        cpu = self.cpu
        self.active.append(exc)
        if self.keep_history:
            self.history.append((self.services.now_cycles(), exc))
            del self.history[: -self.keep_history]
        try:
            vector = _u32(cpu.read_mem((self.vtor + 4 * exc) & 0xFFFFFFFF, 4), 0)
        except ValueError:
            vector = None
        cpu.set_reg("xpsr", 0x01000000 | exc)  # handler mode; SP is now MSP
        if control & 0x6:
            cpu.set_reg("control", control & ~0x6)  # SPSEL=0, FPCA=0
        cpu.set_reg("lr", exc_return)
        if vector is None:
            self.services.log(f"vector {exc} at VTOR 0x{self.vtor:08X} unreadable")
            self.hfsr |= HFSR_VECTTBL
            self._escalate_to_hard()
            return
        cpu.set_reg("pc", vector & ~1)
        if not vector & 1:
            self.services.log(f"vector {exc} = 0x{vector:08X} has no Thumb bit (INVSTATE)")
            self._raise_fault("usage", "invstate", None)

    # ------------------------------------------------------------------ return
    def exception_return(self, exc_return: int) -> None:
        """Handle a branch to an EXC_RETURN value (bit 0 may be cleared by the CPU)."""
        cpu = self.cpu
        value = (exc_return | 1) & 0xFFFFFFFF
        ipsr = self._ipsr()
        if ipsr == 0 or not self.active:
            # Thread mode: a branch into the XN system region → instruction access fault.
            cpu.set_reg("pc", value & ~1)
            self._raise_fault("memmanage", "iaccviol", None)
            return
        if (
            (value & 0xFFFFFFE0) != 0xFFFFFFE0
            or (value & 0xF) not in (0x1, 0x9, 0xD)
            or ipsr not in self.active
        ):
            cpu.set_reg("pc", value & ~1)
            self._raise_fault("usage", "invpc", None)
            return
        to_thread = bool(value & 0x8)
        if to_thread and len(self.active) > 1 and not self.ccr & 1:
            cpu.set_reg("pc", value & ~1)
            self._raise_fault("usage", "invpc", None)
            return
        self.active.remove(ipsr)
        if ipsr != NMI:
            cpu.set_reg("faultmask", 0)
        if ipsr >= FIRST_IRQ and self.levels >> (ipsr - FIRST_IRQ) & 1:
            self.pending.add(ipsr)  # level still asserted: pends again
        self._unstack(value, to_thread)
        if self.wants_entry():  # tail-chain (equivalent to unstack + restack)
            self._take(self.highest_pending())  # type: ignore[arg-type]

    def _unstack(self, value: int, to_thread: bool) -> None:
        cpu = self.cpu
        use_psp = bool(value & 0x4)
        fp_frame = not value & 0x10
        sp_name = "psp" if use_psp else "msp"
        frame_ptr = cpu.reg(sp_name)
        size = 0x68 if fp_frame else 0x20
        allows = getattr(cpu, "mpu_allows", None)
        # chosen: unstacking at the privilege of the context returned to (handler: privileged)
        target_priv = not to_thread or not cpu.reg("control") & 1
        if allows is not None and not allows(frame_ptr, size, False, target_priv):
            self.services.log(f"unstacking at 0x{frame_ptr:08X} refused by the MPU (MUNSTKERR)")
            self._raise_fault("memmanage", "munstkerr", None)
            return
        try:
            data = cpu.read_mem(frame_ptr, size)
        except ValueError:
            self.services.log(f"unstacking at 0x{frame_ptr:08X} failed (UNSTKERR)")
            self._raise_fault("bus", "unstkerr", None)
            return
        words = struct.unpack(f"<{size // 4}I", data)
        xpsr = words[7]
        new_sp = frame_ptr + size + (4 if xpsr & (1 << 9) else 0)
        ret_ipsr = xpsr & 0x1FF
        if to_thread != (ret_ipsr == 0):
            self.services.log("stacked IPSR does not match EXC_RETURN (INVPC)")
        control = cpu.reg("control") & ~0x6
        if to_thread and use_psp:
            control |= 2
        if fp_frame:
            control |= 4
        # Mode first (banks SP), then CONTROL, then the stack pointers by name.
        cpu.set_reg("xpsr", (xpsr & ~(1 << 9) & 0xFFFFFFFF) | 0x01000000)
        cpu.set_reg("control", control)
        cpu.set_reg(sp_name, new_sp & 0xFFFFFFFF)
        for i, name in enumerate(("r0", "r1", "r2", "r3", "r12", "lr")):
            cpu.set_reg(name, words[i])
        if fp_frame:
            for i in range(16):
                cpu.set_reg(f"s{i}", words[8 + i])
            cpu.set_reg("fpscr", words[24])
        cpu.set_reg("pc", words[6] & ~1)

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
            self._raise_fault("bus", sub, address)
        elif kind == "memmanage":
            if isinstance(detail, int):
                self._raise_fault("memmanage", "daccviol", detail)
            else:
                self._raise_fault("memmanage", str(detail or "iaccviol"), None)
        elif kind == "usage":
            self._raise_fault("usage", str(detail or "undefinstr"), None)
        else:
            self.services.log(f"HardFault ({detail})")
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

    def snapshot(self) -> dict[str, object]:
        """Exception state for the control interface."""
        return {
            "pending": sorted(self.pending),
            "active": list(self.active),
            "enabled_irqs": [i for i in range(NUM_IRQS) if self.enabled >> i & 1],
            "vtor": self.vtor,
            "locked_up": self.locked_up,
            "cfsr": self.cfsr,
            "hfsr": self.hfsr,
            "ccr": self.ccr,
            "mpu_ctrl": self.mpu_ctrl,
            "systick_ctrl": self.systick.ctrl_value(peek=True),
            "systick_load": self.systick.load,
            "mpu_regions": self._mpu_regions(),
        }

    def _mpu_regions(self) -> list[dict[str, int]]:
        out = []
        for i in range(8):
            rasr = self.mpu_rasr[i]
            if rasr & 1:
                out.append(
                    {
                        "region": i,
                        "base": self.mpu_rbar[i],
                        "size": 1 << (((rasr >> 1) & 0x1F) + 1),
                        "rasr": rasr,
                    }
                )
        return out


class _ScsDevice(Device):
    """A register block of the exception model (word registers, any access width)."""

    def __init__(self, model: ExceptionModel) -> None:
        super().__init__()
        self.m = model

    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        return sub_word(self.read_word(aligned), offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if size != 4:
            value = merge_word(self.read_word(aligned), offset, size, value)
        self.write_word(aligned, value, size)
        self.m.kick()

    def read_word(self, offset: int) -> int:
        self.unmodelled(offset, "read")
        return 0

    def write_word(self, offset: int, value: int, size: int) -> None:
        self.unmodelled(offset, "write")

    def snapshot(self) -> dict[str, object]:
        return {}


class ScnRegs(_ScsDevice):
    """0xE000E000: ICTR and ACTLR."""

    name, base, size = "scn", 0xE000E000, 0x10

    def read_word(self, offset: int) -> int:
        if offset == 0x4:
            return (NUM_IRQS - 1) // 32  # INTLINESNUM = 3
        if offset == 0x8:
            return self.m.actlr
        return super().read_word(offset)

    def write_word(self, offset: int, value: int, size: int) -> None:
        if offset == 0x8:
            self.m.actlr = value
        elif offset != 0x4:
            super().write_word(offset, value, size)


class SysTick(_ScsDevice):
    """SysTick timer (0xE000E010) counting core cycles of virtual time."""

    name, base, size = "systick", 0xE000E010, 0x10
    CALIB = 0x40000000 | (270000 - 1)  # SKEW=1, TENMS = 10 ms of HCLK/8 at 216 MHz (UNVERIFIED)

    def __init__(self, model: ExceptionModel) -> None:
        super().__init__(model)
        self.handle: object | None = None
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self.ctrl = 0
        self.load = 0
        self.countflag = False
        self.next_wrap: int | None = None  # cycle at which VAL reaches 0
        self.val_stopped = 0
        self._last_poll_pc = -1

    def _services(self) -> Services:
        return self.m.services

    def _cancel(self) -> None:
        if self.handle is not None:
            self.m.services.cancel(self.handle)
            self.handle = None

    def _div(self) -> int:
        return 1 if self.ctrl & 4 else 8

    def _arm(self, delay_ticks: int) -> None:
        self._cancel()
        now = self._services().now_cycles()
        self.next_wrap = now + delay_ticks * self._div()
        self.handle = self._services().schedule(self.next_wrap - now, self._wrap)

    def _wrap(self) -> None:
        self.handle = None
        self.countflag = True
        if self.ctrl & 2:
            self.m.pend(SYSTICK)
        if self.ctrl & 1:
            if self.load == 0:
                self.next_wrap = None  # LOAD=0: counter stops at 0
            else:
                self._arm(self.load + 1)

    def current(self) -> int:
        """Current counter value."""
        if not self.ctrl & 1 or self.next_wrap is None:
            return self.val_stopped
        left = self.next_wrap - self._services().now_cycles()
        ticks = -(-left // self._div())
        return 0 if ticks > self.load else max(ticks, 0)

    def next_event_cycles(self) -> int | None:
        """Cycles until the next wrap or None."""
        if self.next_wrap is None or not self.ctrl & 1:
            return None
        return max(self.next_wrap - self._services().now_cycles(), 0)

    def ctrl_value(self, peek: bool = False) -> int:
        """CTRL value; a real read clears COUNTFLAG."""
        val = self.ctrl | (0x10000 if self.countflag else 0)
        if not peek:
            self.countflag = False
        return val

    def _poll_check(self) -> None:
        """A loop polling COUNTFLAG (same PC twice, flag clear): let the machine skip ahead."""
        pc = self.m.cpu.reg("pc")
        if pc == self._last_poll_pc and self.ctrl & 1 and not self.countflag:
            wait = getattr(self.m.services, "poll_wait", None)
            if wait is not None:
                wait()
        self._last_poll_pc = pc

    def read_word(self, offset: int) -> int:
        if offset == 0x0:
            self._poll_check()
            return self.ctrl_value()
        if offset == 0x4:
            return self.load
        if offset == 0x8:
            return self.current()
        return self.CALIB

    def write_word(self, offset: int, value: int, size: int) -> None:
        if offset == 0x0:
            was = self.ctrl & 1
            if was:
                self.val_stopped = self.current()
            self.ctrl = value & 0x7
            if self.ctrl & 1 and not was:
                # Counting resumes from the current VAL (0 → reload on the next tick).
                if self.val_stopped:
                    self._arm(self.val_stopped)
                elif self.load:
                    self._arm(self.load + 1)
            elif not self.ctrl & 1:
                self._cancel()
                self.next_wrap = None
        elif offset == 0x4:
            self.load = value & 0xFFFFFF
        elif offset == 0x8:
            self.countflag = False
            self.val_stopped = 0
            if self.ctrl & 1:
                if self.load:
                    self._arm(self.load + 1)
                else:
                    self._cancel()
                    self.next_wrap = None


class NvicRegs(_ScsDevice):
    """NVIC at 0xE000E100: ISER/ICER/ISPR/ICPR/IABR and IPR."""

    name, base, size = "nvic", 0xE000E100, 0x400
    MASK = (1 << NUM_IRQS) - 1

    def snapshot(self) -> dict[str, object]:
        return self.m.snapshot()

    def _word_bits(self, bits: int, idx: int) -> int:
        return (bits >> (32 * idx)) & 0xFFFFFFFF

    def _pending_bits(self) -> int:
        bits = 0
        for exc in self.m.pending:
            if exc >= FIRST_IRQ:
                bits |= 1 << (exc - FIRST_IRQ)
        return bits

    def _active_bits(self) -> int:
        bits = 0
        for exc in self.m.active:
            if exc >= FIRST_IRQ:
                bits |= 1 << (exc - FIRST_IRQ)
        return bits

    def read(self, offset: int, size: int) -> int:
        if 0x300 <= offset < 0x300 + NUM_IRQS + 2:  # IPR is byte-accessible
            out = 0
            for i in range(size):
                n = offset - 0x300 + i
                out |= (self.m.ipr[n] if n < NUM_IRQS else 0) << (8 * i)
            return out
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        if 0x300 <= offset < 0x300 + NUM_IRQS + 2:
            for i in range(size):
                n = offset - 0x300 + i
                if n < NUM_IRQS:
                    self.m.ipr[n] = (value >> (8 * i)) & PRIO_BITS_MASK
            return
        super().write(offset, size, value)

    def read_word(self, offset: int) -> int:
        idx = (offset & 0x7F) >> 2
        if offset < 0x100:  # ISER / ICER
            return self._word_bits(self.m.enabled, idx)
        if offset < 0x200:  # ISPR / ICPR
            return self._word_bits(self._pending_bits(), idx)
        if offset < 0x280:  # IABR
            return self._word_bits(self._active_bits(), idx)
        if offset >= 0x300:
            return 0
        return super().read_word(offset)

    def write_word(self, offset: int, value: int, size: int) -> None:
        idx = (offset & 0x7F) >> 2
        bits = (value << (32 * idx)) & self.MASK
        if offset < 0x080:
            self.m.enabled |= bits
        elif offset < 0x100:
            self.m.enabled &= ~bits
        elif offset < 0x180:
            for n in range(NUM_IRQS):
                if bits >> n & 1:
                    self.m.pending.add(FIRST_IRQ + n)
        elif offset < 0x200:
            for n in range(NUM_IRQS):
                if bits >> n & 1 and not self.m.levels >> n & 1:
                    self.m.pending.discard(FIRST_IRQ + n)
        elif offset < 0x280 or offset >= 0x300:
            pass  # IABR read-only
        else:
            super().write_word(offset, value, size)


class ScbRegs(_ScsDevice):
    """SCB registers at 0xE000ED00 (two blocks around the debug-owned DFSR at +0x30)."""

    name = "scb"

    def __init__(self, model: ExceptionModel, base: int, size: int, name: str = "scb") -> None:
        super().__init__(model)
        self.base, self.size, self.name = base, size, name

    def read_word(self, offset: int) -> int:
        m = self.m
        off = self.base - 0xE000ED00 + offset
        if off == 0x00:
            return CPUID
        if off == 0x04:
            return m.icsr()
        if off == 0x08:
            return m.vtor
        if off == 0x0C:
            return 0xFA050000 | (m.prigroup << 8)
        if off == 0x10:
            return m.scr
        if off == 0x14:
            return m.ccr
        if 0x18 <= off < 0x24:
            n = 4 + (off - 0x18)
            return m.shpr[n] | m.shpr[n + 1] << 8 | m.shpr[n + 2] << 16 | m.shpr[n + 3] << 24
        if off == 0x24:
            return m.shcsr()
        if off == 0x28:
            return m.cfsr
        if off == 0x2C:
            return m.hfsr
        if off == 0x34:
            return m.mmfar
        if off == 0x38:
            return m.bfar
        if off == 0x3C:
            return 0
        if off in ID_REGS:
            return ID_REGS[off]
        if off == 0x78:
            return CLIDR
        if off == 0x7C:
            return CTR
        if off == 0x80:
            return CCSIDR_I if m.csselr & 1 else CCSIDR_D
        if off == 0x84:
            return m.csselr
        if off == 0x88:
            return m.cpacr
        return super().read_word(offset)

    def write_word(self, offset: int, value: int, size: int) -> None:
        m = self.m
        off = self.base - 0xE000ED00 + offset
        if off == 0x04:
            m.write_icsr(value)
        elif off == 0x08:
            m.vtor = value & 0xFFFFFF80
        elif off == 0x0C:
            m.write_aircr(value)
        elif off == 0x10:
            m.scr = value & 0x16
        elif off == 0x14:
            old = m.ccr
            m.ccr = (value & CCR_WRITABLE) | (old & ~CCR_WRITABLE & 0xFFFFFFFF)
            if (old ^ m.ccr) & (1 << 17):
                m.flush_icache()
        elif 0x18 <= off < 0x24:
            n = 4 + (off - 0x18)
            for i in range(4):
                m.shpr[n + i] = (value >> (8 * i)) & PRIO_BITS_MASK
        elif off == 0x24:
            m.write_shcsr(value)
        elif off == 0x28:
            m.cfsr &= ~value
        elif off == 0x2C:
            m.hfsr &= ~value
        elif off == 0x34:
            m.mmfar = value
        elif off == 0x38:
            m.bfar = value
        elif off == 0x84:
            m.csselr = value & 1
        elif off == 0x88:
            m.cpacr = value & 0x00F00000
        elif off in ID_REGS or off in (0x00, 0x3C, 0x78, 0x7C, 0x80):
            pass  # read-only
        else:
            super().write_word(offset, value, size)

    def read(self, offset: int, size: int) -> int:
        off = self.base - 0xE000ED00 + offset
        if 0x18 <= off < 0x24 and size != 4:  # SHPR byte access
            n = 4 + (off - 0x18)
            return int.from_bytes(bytes(self.m.shpr[n : n + size]), "little")
        return super().read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        off = self.base - 0xE000ED00 + offset
        if 0x18 <= off < 0x24 and size != 4:
            n = 4 + (off - 0x18)
            for i in range(size):
                self.m.shpr[n + i] = (value >> (8 * i)) & PRIO_BITS_MASK
            return
        if off == 0x28 and size != 4:  # CFSR sub-registers: W1C by lane
            self.m.cfsr &= ~((value & ((1 << (8 * size)) - 1)) << (8 * (offset & 3)))
            return
        super().write(offset, size, value)


class MpuRegs(_ScsDevice):
    """MPU at 0xE000ED90: TYPE/CTRL/RNR/RBAR/RASR + aliases; enforced by the machine
    (``Machine._mpu_sync`` with ``twin.mpu``), which a write here makes re-apply."""

    name, base, size = "mpu", 0xE000ED90, 0x30

    def read_word(self, offset: int) -> int:
        m = self.m
        if offset == 0x00:
            return 0x00000800  # DREGION = 8
        if offset == 0x04:
            return m.mpu_ctrl
        if offset == 0x08:
            return m.mpu_rnr
        if offset in (0x0C, 0x14, 0x1C, 0x24):
            return (m.mpu_rbar[m.mpu_rnr] & ~0x1F) | m.mpu_rnr
        if offset in (0x10, 0x18, 0x20, 0x28):
            return m.mpu_rasr[m.mpu_rnr]
        return super().read_word(offset)

    def write_word(self, offset: int, value: int, size: int) -> None:
        m = self.m
        was_on = m.mpu_ctrl & 1
        if offset == 0x04:
            m.mpu_ctrl = value & 7
        elif offset == 0x08:
            m.mpu_rnr = value & 7
            return
        elif offset in (0x0C, 0x14, 0x1C, 0x24):
            if value & 0x10:  # VALID: REGION field selects RNR
                m.mpu_rnr = value & 7
            m.mpu_rbar[m.mpu_rnr] = value & 0xFFFFFFE0
        elif offset in (0x10, 0x18, 0x20, 0x28):
            m.mpu_rasr[m.mpu_rnr] = value & 0x173FFF3F
        elif offset != 0x00:
            super().write_word(offset, value, size)
            return
        m.mpu_gen += 1
        if (was_on or m.mpu_ctrl & 1) and m.on_kick is not None:
            m.on_kick()  # end the slice after this store: the machine re-applies the MPU

    def regions(self) -> list[dict[str, int]]:
        """Enabled regions as dicts (base, size, rasr) for the control interface."""
        return self.m._mpu_regions()


class ScbExtRegs(_ScsDevice):
    """0xE000EF00..EFCF: STIR, FPCCR/FPCAR/FPDSCR, MVFR0-2, cache maintenance, TCM/AHB control."""

    name, base, size = "scb_ext", 0xE000EF00, 0xD0

    def read_word(self, offset: int) -> int:
        m = self.m
        if offset == 0x34:
            return m.fpccr
        if offset == 0x38:
            return m.fpcar
        if offset == 0x3C:
            return m.fpdscr
        if offset in MVFR:
            return MVFR[offset]
        if offset in m.tcm:
            return m.tcm[offset]
        if offset == 0x00 or 0x50 <= offset <= 0x78 or offset == 0xA8:
            return 0  # write-only / ABFSR
        return super().read_word(offset)

    def write_word(self, offset: int, value: int, size: int) -> None:
        m = self.m
        if offset == 0x00:  # STIR
            m.pend_irq(value & 0x1FF)
        elif offset == 0x34:
            m.fpccr = (m.fpccr & 0x3FFFFFFF) | (value & 0xC0000000)
        elif offset == 0x38:
            m.fpcar = value & ~7
        elif offset == 0x3C:
            m.fpdscr = value & 0x07C00000
        elif offset in (0x50, 0x58, 0x78):  # ICIALLU, ICIMVAU, BPIALL
            m.flush_icache()
        elif 0x5C <= offset <= 0x74:  # D-cache ops: no cache modelled
            m.cache_ops += 1
        elif offset in m.tcm:
            m.tcm[offset] = value
        elif offset in MVFR or offset == 0xA8:
            pass
        else:
            super().write_word(offset, value, size)
