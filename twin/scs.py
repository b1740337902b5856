"""Debug side of the Cortex-M7 private peripheral bus: what a debugger sees.

* :class:`DebugUnit` holds DHCSR/DCRSR/DCRDR/DEMCR/DFSR, the FPB (8 breakpoints), the DWT
  (CYCCNT from virtual time, 4 comparators usable as watchpoints) and reset/halt logic.
* Register blocks mapped on the bus: :class:`DebugRegs` (0xE000EDF0), :class:`DfsrReg`
  (0xE000ED30), :class:`ScsIds` (0xE000EFD0), :class:`Dwt`, :class:`Fpb`, :class:`RomTable`,
  :class:`Dbgmcu` (0xE0042000), :class:`PpbStub` (ITM/TPIU...: RAZ/WI).
* :class:`FallbackScs` is plain storage with reset values for the NVIC/SysTick/SCB/MPU when no
  exception model is installed (so the rig can still read the jump state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import unicorn as uc_mod

from twin.device import Device, ResetKind, merge_word, sub_word

if TYPE_CHECKING:
    from twin.machine import Machine

DBGKEY = 0xA05F
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL = 1, 2, 4, 8, 32
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
S_RETIRE_ST, S_RESET_ST = 1 << 24, 1 << 25
DFSR_HALTED, DFSR_BKPT, DFSR_DWTTRAP, DFSR_VCATCH, DFSR_EXTERNAL = 1, 2, 4, 8, 16
DEMCR_VC_CORERESET, DEMCR_TRCENA = 1, 1 << 24

CPUID = 0x411FC270


def _cid_block(cls: int, part: int) -> list[int]:
    """PIDR4..7, PIDR0..3, CIDR0..3 for an Arm (designer 0x43B) component."""
    return [
        0x04,
        0,
        0,
        0,
        part & 0xFF,
        0xB0 | (part >> 8) & 0xF,
        0x0B,
        0x00,
        0x0D,
        (cls & 0xF) << 4,
        0x05,
        0xB1,
    ]


class _Block(Device):
    """Word-register block helper: any access width on word registers."""

    def read(self, offset: int, size: int) -> int:
        return sub_word(self.read_word(offset & ~3), offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if size != 4:
            value = merge_word(self.read_word(aligned), offset, size, value)
        self.write_word(aligned, value)

    def read_word(self, offset: int) -> int:
        return 0

    def write_word(self, offset: int, value: int) -> None:
        pass


class DebugUnit:
    """Halting debug state of the core, its breakpoint and watchpoint units."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.ctrl = 0  # DHCSR control bits C_*
        self.sticky = 0  # S_RESET_ST | S_RETIRE_ST
        self.demcr = 0
        self.dfsr = 0
        self.dcrdr = 0
        self.fp_enable = False
        self.fp_comp = [0] * 8
        self._bp_hooks: dict[int, int] = {}
        self.dwt_ctrl = 0x40000000  # NUMCOMP = 4
        self.cyc_base = 0  # CYCCNT = now - cyc_base while counting
        self.cyc_frozen = 0
        self.dwt_comp = [0] * 4
        self.dwt_mask = [0] * 4
        self.dwt_func = [0] * 4
        self._wp_hooks: dict[int, int] = {}
        self._skip_pc: int | None = None
        self.suppress = False  # completing a watched access
        self.halt_reason = ""
        self.blocks: list[Device] = [
            DebugRegs(self),
            DfsrReg(self),
            ScsIds(),
            Dwt(self),
            Fpb(self),
            RomTable(),
            Dbgmcu(on_change=lambda: machine._sync_stopped(force=True)),
        ]

    # ------------------------------------------------------------------ state
    def debug_enabled(self) -> bool:
        """DHCSR.C_DEBUGEN."""
        return bool(self.ctrl & C_DEBUGEN)

    def maskints(self) -> bool:
        """C_MASKINTS while debugging: no exception entry (stepping)."""
        return bool(self.ctrl & C_DEBUGEN and self.ctrl & C_MASKINTS)

    def dhcsr(self) -> int:
        """DHCSR read value; S_RESET_ST/S_RETIRE_ST are cleared by the read."""
        m = self.m
        val = self.ctrl | S_REGRDY | self.sticky
        if m.halted:
            val |= S_HALT
        if m.sleeping:
            val |= S_SLEEP
        if m.is_locked_up():
            val |= S_LOCKUP
        if m.reset_held:
            val |= S_RESET_ST
        self.sticky = 0
        return val

    def write_dhcsr(self, value: int) -> None:
        """DHCSR write (needs DBGKEY in [31:16])."""
        if value >> 16 != DBGKEY:
            return
        m = self.m
        new = value & (C_DEBUGEN | C_HALT | C_STEP | C_MASKINTS | C_SNAPSTALL)
        if not new & C_DEBUGEN:
            new = 0
        self.ctrl = new & ~C_STEP
        if new & C_DEBUGEN and new & C_HALT:
            if not m.halted:
                self.dfsr |= DFSR_HALTED
                self.halt_reason = "halt"
                m.halt("debugger")
        elif m.halted:
            if new & C_STEP and new & C_DEBUGEN:
                self.arm_skip(m.reg("pc"))
                m.step_instruction()
                self.dfsr |= DFSR_HALTED
            elif m._cpu_thread_id is not None and threading.get_ident() != m._cpu_thread_id:
                m.resume(wake=False)
                m.run_burst()
                if not m.halted:
                    m._wake.set()
            else:
                m.resume()

    def halt_for(self, reason: str) -> None:
        """Halt because of a breakpoint/watchpoint/BKPT."""
        self.dfsr |= {
            "bkpt": DFSR_BKPT,
            "breakpoint": DFSR_BKPT,
            "watchpoint": DFSR_DWTTRAP,
            "vcatch": DFSR_VCATCH,
        }.get(reason, DFSR_HALTED)
        self.ctrl |= C_HALT
        self.halt_reason = reason
        self.m.halt(reason)

    def retired(self, count: int) -> None:
        """The core executed ``count`` instructions."""
        if count:
            self.sticky |= S_RETIRE_ST

    def on_reset(self, kind: str) -> None:
        """Debug logic across resets: only power-on clears it."""
        self.sticky |= S_RESET_ST
        if kind == ResetKind.POWER:
            self.ctrl = 0
            self.demcr = 0
            self.dfsr = 0
            self.fp_enable = False
            for i in range(8):
                self.set_fp_comp(i, 0)
            self.dwt_ctrl = 0x40000000
            for i in range(4):
                self.dwt_func[i] = 0
                self._update_wp(i)
        self.m.halted = False
        self.ctrl &= ~C_HALT

    def after_reset(self) -> None:
        """Vector catch: halt on the reset handler if DEMCR.VC_CORERESET and C_DEBUGEN."""
        if self.demcr & DEMCR_VC_CORERESET and self.ctrl & C_DEBUGEN:
            self.halt_for("vcatch")

    def arm_skip(self, pc: int) -> None:
        """Do not re-trigger a breakpoint at the address execution resumes from."""
        self._skip_pc = pc & ~1

    def before_execute(self, pc: int) -> None:
        """Called before each slice: the skip only covers the very first instruction."""
        if self._skip_pc is not None and self._skip_pc != pc & ~1:
            self._skip_pc = None

    # ------------------------------------------------------------------ FPB
    def set_fp_comp(self, i: int, value: int) -> None:
        """Program FP_COMPn (FPBv2: address | ENABLE)."""
        old = self.fp_comp[i]
        self.fp_comp[i] = value
        old_addr = old & ~1 if old & 1 else None
        new_addr = value & ~1 if value & 1 else None
        if old_addr == new_addr:
            return
        self._sync_bp_hooks()

    def _sync_bp_hooks(self) -> None:
        want = {c & 0xFFFFFFFE for c in self.fp_comp if c & 1}
        uc = self.m.uc
        for addr in list(self._bp_hooks):
            if addr not in want:
                uc.hook_del(self._bp_hooks.pop(addr))
                self.m.flush_code_cache(addr, addr + 4)
        for addr in want:
            if addr not in self._bp_hooks:
                self._bp_hooks[addr] = uc.hook_add(uc_mod.UC_HOOK_CODE, self._bp_hit, begin=addr, end=addr)
                self.m.flush_code_cache(addr, addr + 4)

    def _bp_hit(self, uc, address: int, size: int, _ud) -> None:
        if not (self.fp_enable and self.ctrl & C_DEBUGEN):
            return
        if self._skip_pc == address:
            self._skip_pc = None
            return
        self.m._stop("breakpoint")

    # ------------------------------------------------------------------ DWT
    def cyccnt(self) -> int:
        """CYCCNT: counts virtual cycles while CYCCNTENA (DEMCR.TRCENA is not required here)."""
        if self.dwt_ctrl & 1:
            return (self.m.now_cycles() - self.cyc_base) & 0xFFFFFFFF
        return self.cyc_frozen

    def write_cyccnt(self, value: int) -> None:
        """Set CYCCNT."""
        self.cyc_frozen = value & 0xFFFFFFFF
        self.cyc_base = self.m.now_cycles() - self.cyc_frozen

    def write_dwt_ctrl(self, value: int) -> None:
        """DWT_CTRL: only CYCCNTENA and a few storage bits are writable; NUMCOMP stays."""
        was = self.dwt_ctrl & 1
        if was and not value & 1:
            self.cyc_frozen = self.cyccnt()
        if not was and value & 1:
            self.cyc_base = self.m.now_cycles() - self.cyc_frozen
        self.dwt_ctrl = 0x40000000 | (value & 0x0FFFFFFF)

    def _update_wp(self, i: int) -> None:
        uc = self.m.uc
        if i in self._wp_hooks:
            uc.hook_del(self._wp_hooks.pop(i))
            self.m.flush_code_cache()
            uc.ctl(uc_mod.UC_CTL_TLB_FLUSH, uc_mod.UC_CTL_IO_WRITE)  # flush the TLB
        func = self.dwt_func[i] & 0xF
        if func not in (4, 5, 6, 7):
            return
        size = 1 << (self.dwt_mask[i] & 0x1F)
        lo = self.dwt_comp[i] & ~(size - 1) & 0xFFFFFFFF
        hi = lo + size - 1
        if func == 4:
            kinds = uc_mod.UC_HOOK_CODE
            self._wp_hooks[i] = uc.hook_add(kinds, lambda u, a, s, d, n=i: self._wp_hit(n), begin=lo, end=hi)
        else:
            kinds = {
                5: uc_mod.UC_HOOK_MEM_READ,
                6: uc_mod.UC_HOOK_MEM_WRITE,
                7: uc_mod.UC_HOOK_MEM_READ | uc_mod.UC_HOOK_MEM_WRITE,
            }[func]
            self._wp_hooks[i] = uc.hook_add(kinds, lambda u, *a, n=i: self._wp_hit(n), begin=lo, end=hi)
        self.m.flush_code_cache()
        uc.ctl(uc_mod.UC_CTL_TLB_FLUSH, uc_mod.UC_CTL_IO_WRITE)  # flush the TLB

    def _wp_hit(self, i: int) -> None:
        if not self.ctrl & C_DEBUGEN or self.suppress:
            return
        self.dwt_func[i] |= 1 << 24  # MATCHED
        self.m._stop("watchpoint")


class DebugRegs(_Block):
    """DHCSR, DCRSR, DCRDR, DEMCR at 0xE000EDF0."""

    name, base, size = "debug", 0xE000EDF0, 0x10

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.u = unit

    def read_word(self, offset: int) -> int:
        if offset == 0x0:
            return self.u.dhcsr()
        if offset == 0x8:
            return self.u.dcrdr
        if offset == 0xC:
            return self.u.demcr
        return 0

    def write_word(self, offset: int, value: int) -> None:
        u = self.u
        if offset in (0x0, 0x4, 0x8) and u.m.in_slice:
            return  # software cannot halt/step itself or use DCRSR/DCRDR
        if offset == 0x0:
            u.write_dhcsr(value)
        elif offset == 0x4:
            self._transfer(value)
        elif offset == 0x8:
            u.dcrdr = value
        elif offset == 0xC:
            u.demcr = value & 0x010F07F1

    def _transfer(self, value: int) -> None:
        m, u = self.m_machine(), self.u
        sel = value & 0x7F
        write = bool(value & (1 << 16))
        name = _DCRSR_NAMES.get(sel)
        if sel == 20:
            if write:
                v = u.dcrdr
                m.set_reg("primask", v & 1)
                m.set_reg("basepri", (v >> 8) & 0xFF)
                m.set_reg("faultmask", (v >> 16) & 1)
                m.set_reg("control", (v >> 24) & 0x7)
            else:
                u.dcrdr = (
                    m.reg("primask") & 1
                    | (m.reg("basepri") & 0xFF) << 8
                    | (m.reg("faultmask") & 1) << 16
                    | (m.reg("control") & 7) << 24
                )
            return
        if name is None:
            if not write:
                u.dcrdr = 0
            return
        if write:
            m.set_reg(name, u.dcrdr)
            if name == "pc":
                u.arm_skip(u.dcrdr)
        else:
            u.dcrdr = m.reg(name)

    def m_machine(self) -> Machine:
        return self.u.m


_DCRSR_NAMES = {i: f"r{i}" for i in range(13)}
_DCRSR_NAMES.update({13: "sp", 14: "lr", 15: "pc", 16: "xpsr", 17: "msp", 18: "psp", 33: "fpscr"})
_DCRSR_NAMES.update({64 + i: f"s{i}" for i in range(32)})


class DfsrReg(_Block):
    """DFSR at 0xE000ED30 (write-1-to-clear)."""

    name, base, size = "dfsr", 0xE000ED30, 0x4

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.u = unit

    def read_word(self, offset: int) -> int:
        return self.u.dfsr

    def write_word(self, offset: int, value: int) -> None:
        self.u.dfsr &= ~value


class ScsIds(_Block):
    """Component ID registers of the SCS (0xE000EFD0..0xE000EFFF)."""

    name, base, size = "scs_ids", 0xE000EFD0, 0x30
    IDS = _cid_block(0xE, 0x00C)

    def read_word(self, offset: int) -> int:
        return self.IDS[offset // 4]


class Dwt(_Block):
    """DWT at 0xE0001000: CTRL, CYCCNT, comparators, component IDs."""

    name, base, size = "dwt", 0xE0001000, 0x1000
    IDS = _cid_block(0xE, 0x002)

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.u = unit

    def read_word(self, offset: int) -> int:
        u = self.u
        if offset == 0x0:
            return u.dwt_ctrl
        if offset == 0x4:
            return u.cyccnt()
        if 0x20 <= offset < 0x60:
            i, r = divmod(offset - 0x20, 16)
            if r == 0:
                return u.dwt_comp[i]
            if r == 4:
                return u.dwt_mask[i]
            if r == 8:
                val = u.dwt_func[i]
                u.dwt_func[i] &= ~(1 << 24)  # MATCHED clears on read
                return val
            return 0
        if offset >= 0xFD0:
            return self.IDS[(offset - 0xFD0) // 4]
        return 0

    def write_word(self, offset: int, value: int) -> None:
        u = self.u
        if offset == 0x0:
            u.write_dwt_ctrl(value)
        elif offset == 0x4:
            u.write_cyccnt(value)
        elif 0x20 <= offset < 0x60:
            i, r = divmod(offset - 0x20, 16)
            if r == 0:
                u.dwt_comp[i] = value
            elif r == 4:
                u.dwt_mask[i] = value & 0x1F
            elif r == 8:
                u.dwt_func[i] = value & 0x000F0FFF
            else:
                return
            u._update_wp(i)


class Fpb(_Block):
    """FPB (v2) at 0xE0002000: FP_CTRL, FP_REMAP, 8 code comparators."""

    name, base, size = "fpb", 0xE0002000, 0x1000
    IDS = _cid_block(0xE, 0x00E)

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.u = unit

    def read_word(self, offset: int) -> int:
        if offset == 0x0:
            return 0x10000080 | int(self.u.fp_enable)
        if 0x8 <= offset < 0x28:
            return self.u.fp_comp[(offset - 0x8) // 4]
        if offset >= 0xFD0:
            return self.IDS[(offset - 0xFD0) // 4]
        return 0

    def write_word(self, offset: int, value: int) -> None:
        if offset == 0x0:
            if value & 2:  # KEY
                self.u.fp_enable = bool(value & 1)
        elif 0x8 <= offset < 0x28:
            self.u.set_fp_comp((offset - 0x8) // 4, value)


class RomTable(_Block):
    """A one-level CoreSight ROM table at 0xE00FF000 listing SCS, DWT and FPB."""

    name, base, size = "romtable", 0xE00FF000, 0x1000
    ENTRIES = [0xFFF0F003, 0xFFF02003, 0xFFF03003, 0]
    IDS = _cid_block(0x1, 0x4C7)

    def read_word(self, offset: int) -> int:
        if offset < 4 * len(self.ENTRIES):
            return self.ENTRIES[offset // 4]
        if offset == 0xFCC:
            return 1  # MEMTYPE: system memory present
        if offset >= 0xFD0:
            return self.IDS[(offset - 0xFD0) // 4]
        return 0


class Dbgmcu(_Block):
    """DBGMCU at 0xE0042000: IDCODE, CR, APB1_FZ, APB2_FZ (reset by power-on only)."""

    name, base, size = "dbgmcu", 0xE0042000, 0x10
    IDCODE = 0x10016451

    def __init__(self, on_change: Callable[[], None] | None = None) -> None:
        super().__init__()
        self.cr = 0
        self.apb1_fz = 0
        self.apb2_fz = 0
        self.on_change = on_change  # the freeze bits changed (watchdogs re-check a halt)

    def reset(self, kind: str) -> None:
        if kind == ResetKind.POWER:
            self.cr = self.apb1_fz = self.apb2_fz = 0

    def read_word(self, offset: int) -> int:
        return {0x0: self.IDCODE, 0x4: self.cr, 0x8: self.apb1_fz, 0xC: self.apb2_fz}[offset]

    def write_word(self, offset: int, value: int) -> None:
        if offset == 0x4:
            self.cr = value & 0x7
        elif offset == 0x8:
            old, self.apb1_fz = self.apb1_fz, value & 0x06E01DFF
            if old != self.apb1_fz and self.on_change is not None:
                self.on_change()
        elif offset == 0xC:
            self.apb2_fz = value & 0x00070003

    def snapshot(self) -> dict[str, object]:
        return {"cr": self.cr, "apb1_fz": self.apb1_fz, "apb2_fz": self.apb2_fz}


class PpbStub(_Block):
    """Read-as-zero/write-ignored for the rest of the PPB (ITM, TPIU, ETM...)."""

    def __init__(self, name: str, base: int, size: int) -> None:
        super().__init__()
        self.name, self.base, self.size = name, base, size


class FallbackScs(_Block):
    """SCS register storage when no exception model is installed (no exception logic).

    Correct reset values for CPUID, VTOR (boot address), AIRCR (VECTKEY readback), CCR,
    CPACR, SysTick, NVIC set/clear pairs; AIRCR SYSRESETREQ/VECTRESET do resets.
    """

    name, base, size = "scs", 0xE000E000, 0x1000

    def __init__(self, machine: Machine) -> None:
        super().__init__()
        self.m = machine
        self.regs: dict[int, int] = {}
        self.reset(ResetKind.POWER)

    def reset(self, kind: str) -> None:
        self.regs = {
            0xD00: CPUID,
            0xD08: self.m.boot_address() & 0xFFFFFF80,
            0xD0C: 0xFA050000,
            0xD14: 0x00040200,
            0x004: 3,
            0x01C: 0x40000000 | 0x1193F,  # SysTick CALIB (TENMS for 1 ms @16 MHz)
            0xD78: 0x09000003,
            0xD6C: 0x01111131,
            0xD90: 0x00000800,
            0xF40: 0x10110221,
            0xF44: 0x12000011,
            0xF48: 0x00000040,
            0xF34: 0xC0000000,
        }
        self.enabled = 0
        self.pending = 0
        self.active = 0

    def read_word(self, offset: int) -> int:
        if 0x100 <= offset < 0x110 or 0x180 <= offset < 0x190:
            return (self.enabled >> (32 * ((offset & 0xF) // 4))) & 0xFFFFFFFF
        if 0x200 <= offset < 0x210 or 0x280 <= offset < 0x290:
            return (self.pending >> (32 * ((offset & 0xF) // 4))) & 0xFFFFFFFF
        if offset == 0x018:  # SysTick VAL
            return 0
        return self.regs.get(offset, 0)

    def write_word(self, offset: int, value: int) -> None:
        shift = 32 * ((offset & 0xF) // 4)
        if 0x100 <= offset < 0x110:
            self.enabled |= value << shift
        elif 0x180 <= offset < 0x190:
            self.enabled &= ~(value << shift)
        elif 0x200 <= offset < 0x210:
            self.pending |= value << shift
        elif 0x280 <= offset < 0x290:
            self.pending &= ~(value << shift)
        elif offset == 0xD0C:
            if value >> 16 != 0x05FA:
                return
            self.regs[0xD0C] = 0xFA050000 | (value & 0x8700)
            if value & 4:
                self.m.request_reset(ResetKind.SYSTEM, "software")
            elif value & 1:
                self.m.request_reset(ResetKind.CORE, "software")
        elif offset == 0xF50 or offset == 0xF58:  # ICIALLU / ICIMVAU
            self.m.flush_code_cache()
        elif offset in (0xD00, 0xD78, 0xD6C, 0xD90, 0xF40, 0xF44, 0xF48, 0x004):
            return  # read-only IDs
        elif offset == 0x018:
            return
        else:
            self.regs[offset] = value

    def snapshot(self) -> dict[str, object]:
        return {"vtor": self.regs.get(0xD08, 0), "enabled": self.enabled, "pending": self.pending}
