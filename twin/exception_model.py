"""ARMv7-M exception model of the twin's Cortex-M7, put together from its parts.

:class:`ExceptionModel` implements :class:`twin.device.ExceptionUnit`. It is composed of
three mixins, one job each, sharing the model's state:

* twin/nvic.py (:class:`~twin.nvic.NvicState`): priorities, pending/enabled/active, IRQ
  lines, what is taken next, ICSR/SHCSR/AIRCR actions;
* twin/exc_entry.py (:class:`~twin.exc_entry.EntryReturn`): stacking, vector fetch,
  exception return, tail-chaining;
* twin/faults.py (:class:`~twin.faults.FaultLogic`): CFSR/HFSR/MMFAR/BFAR, escalation,
  lockup.

Its register blocks (twin/scb_regs.py, twin/systick.py) are ordinary devices returned by
:meth:`ExceptionModel.devices` and mapped by the machine.

Simplifications (see docs/twin-peripherals.md): FP context is stacked eagerly (lazy
stacking is not modelled: FPCCR.LSPACT never sets), the MPU registers live here and the
machine enforces them (twin/protection.py, twin/mpu.py), CPACR is stored but unicorn
executes FP instructions regardless (NOCP is raised at the next slice boundary).

Owns: the state every part shares (set in :meth:`ExceptionModel.reset`) and the snapshot
for the control port. Must not touch: the machine beyond the ``Cpu`` view and the
``Services`` it is given.
"""

from __future__ import annotations

from collections.abc import Callable

from twin.device import Cpu, Device, Services
from twin.exc_entry import EntryReturn, _u32
from twin.faults import FaultLogic
from twin.nvic import NUM_IRQS, NvicState
from twin.scb_regs import CCR_RESET, FPCCR_RESET, MpuRegs, NvicRegs, ScbExtRegs, ScbRegs, ScnRegs
from twin.systick import SysTick


class ExceptionModel(NvicState, EntryReturn, FaultLogic):
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
        trap = getattr(self.services, "unalign_trap", None)  # CCR.UNALIGN_TRP = 0
        if trap is not None:
            trap(False)
        dcache = getattr(self.services, "dcache", None)  # CCR.DC = 0: the D-cache off
        if dcache is not None:
            dcache.reset(kind)
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
            "mpu_regions": self.mpu_regions(),
        }

    def mpu_regions(self) -> list[dict[str, int]]:
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
