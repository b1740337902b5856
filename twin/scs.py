"""Debug side of the Cortex-M7 private peripheral bus: what a debugger sees.

* :class:`DebugUnit` holds DHCSR/DCRSR/DCRDR/DEMCR/DFSR, the FPB (8 breakpoints), the DWT
  (CYCCNT from virtual time, 4 comparators usable as watchpoints) and reset/halt logic.
* Its register blocks (twin/debug_regs.py) are mapped on the bus by the board;
  :class:`PpbStub` (ITM/TPIU...: RAZ/WI) covers the rest of the PPB.

Owns: the halting-debug state, breakpoint and watchpoint hooks in unicorn, CYCCNT's base.
Must not touch: devices, memory, time other than reading it; it halts, resumes and steps
the core through the machine's public run control.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import unicorn as uc_mod

from twin.debug_regs import Dbgmcu, DebugRegs, DfsrReg, Dwt, Fpb, RomTable, ScsIds, WordBlock
from twin.device import Device, ResetKind
from twin.itstate import itstate_fix

if TYPE_CHECKING:
    from twin.machine import Machine

DBGKEY = 0xA05F
C_DEBUGEN, C_HALT, C_STEP, C_MASKINTS, C_SNAPSTALL = 1, 2, 4, 8, 32
S_REGRDY, S_HALT, S_SLEEP, S_LOCKUP = 1 << 16, 1 << 17, 1 << 18, 1 << 19
S_RETIRE_ST, S_RESET_ST = 1 << 24, 1 << 25
DFSR_HALTED, DFSR_BKPT, DFSR_DWTTRAP, DFSR_VCATCH, DFSR_EXTERNAL = 1, 2, 4, 8, 16
DEMCR_VC_CORERESET, DEMCR_TRCENA = 1, 1 << 24


#: a delay loop on CYCCNT (DebugUnit._time_spin): at least this many reads in a row, and
#: it jumps at most 1/TIME_SPIN_STEP_DIV s (0.25 ms) of virtual time at once
TIME_SPIN_READS, TIME_SPIN_STEP_DIV = 40, 4000


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
        self._spin_slice, self._spin_tick, self._spin_reads = -1, -1, 0  # see _time_spin
        self._spin_waited: int | None = None  # busy cycles when the last delay loop waited
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
            Dbgmcu(on_change=lambda: machine.runner.sync_stopped(force=True)),
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

    def pc_sample(self) -> int:
        """DWT_PCSR: the address of an instruction the running core executed lately (here:
        where it stands between two slices); 0xFFFFFFFF while it is halted, held in reset or
        locked up (ARMv7-M ARM C1.8.7: no sample). A sleeping core's sample is its WFI."""
        m = self.m
        if m.halted or m.reset_held or m.is_locked_up():
            return 0xFFFFFFFF
        return m.reg("pc") & ~1

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
            elif m.gate.on_host_thread():
                m.resume(wake=False)
                m.run_burst()
                if not m.halted:
                    m.wake()
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
        self.m.slice.stop("breakpoint")

    # ------------------------------------------------------------------ DWT
    def cyccnt(self) -> int:
        """CYCCNT: counts virtual cycles while CYCCNTENA (DEMCR.TRCENA is not required here).

        A core read inside a slice may be part of a delay loop (see :meth:`_time_spin`)."""
        if self.dwt_ctrl & 1:
            if self.m.slice.active:
                self._time_spin()
            return (self.m.now_cycles() - self.cyc_base) & 0xFFFFFFFF
        return self.cyc_frozen

    def _time_spin(self) -> None:
        """A delay loop (``while (CYCCNT - start < n) {}``): CYCCNT read again and again with
        no other device access in between, densely (at least one read per 50 instructions
        of the slice's budget, so a computation that checks a timeout now and then is not
        one). Such a loop waits for time only: instead of executing it instruction by
        instruction, each read costing a Python call (38 x slower than real time), with
        ``idle="skip"`` virtual time jumps ahead by at most 1/TIME_SPIN_STEP_DIV s (or to
        the next event); with ``idle="realtime"`` it follows wall time with the CPU asleep,
        as in a WFI."""
        s, clock = self.m.slice, self.m.clock
        key = clock.cycles  # the slice's start: a new slice starts a new count...
        need = max(TIME_SPIN_READS, s.budget // 50)
        if key == self._spin_slice and s.accesses() == self._spin_tick + 1:
            self._spin_reads += 1
        elif (
            s.accesses() == 1
            and self._spin_waited is not None
            and clock.busy_cycles() - self._spin_waited < 1000
        ):
            # ...unless it starts with the read of the loop that just waited: the same loop
            # waits again after 8 reads, not 40 (enough that a loop that ended, its time
            # up, and the next delay's start read are never taken for it)
            self._spin_slice, self._spin_reads = key, need - 8
        else:
            self._spin_slice, self._spin_reads = key, 1
        self._spin_tick = s.accesses()
        if self._spin_reads >= need:
            self._spin_reads = 0
            self._spin_waited = clock.busy_cycles()
            if clock.idle_mode == "realtime":
                # as a WFI in this mode: virtual time follows wall time (a bootloader's
                # retry pause must not run ahead of the host it waits for), CPU asleep
                clock.idle_wait()
            else:
                clock.poll_wait(cap=max(1, clock.core_hz // TIME_SPIN_STEP_DIV))

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
            self._wp_hooks[i] = uc.hook_add(kinds, lambda u, *a, n=i: self._wp_hit(n, u), begin=lo, end=hi)
        self.m.flush_code_cache()
        uc.ctl(uc_mod.UC_CTL_TLB_FLUSH, uc_mod.UC_CTL_IO_WRITE)  # flush the TLB

    def _wp_hit(self, i: int, uc=None) -> None:
        if not self.ctrl & C_DEBUGEN or self.suppress:
            if uc is not None:  # a data access goes on (twin/itstate.py)
                itstate_fix(uc)
            return
        self.dwt_func[i] |= 1 << 24  # MATCHED
        self.m.slice.stop("watchpoint")


class PpbStub(WordBlock):
    """Read-as-zero/write-ignored for the rest of the PPB (ITM, TPIU, ETM...)."""

    def __init__(self, name: str, base: int, size: int) -> None:
        super().__init__()
        self.name, self.base, self.size = name, base, size
