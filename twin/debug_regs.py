"""The debug register blocks on the PPB: what a debugger (and firmware) reads and writes.

DHCSR/DCRSR/DCRDR/DEMCR (:class:`DebugRegs`), DFSR, the DWT and the FPB, the SCS component
IDs, the CoreSight ROM table and DBGMCU. Each block is an ordinary device; its logic (halt,
step, breakpoints, watchpoints, CYCCNT) is the :class:`twin.scs.DebugUnit`'s.

Owns: the register layouts, the component IDs and DBGMCU's freeze bits. Must not touch:
the machine except through the debug unit (DCRSR transfers use the machine's register
access).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from twin.device import Device, ResetKind, merge_word, sub_word

if TYPE_CHECKING:
    from twin.machine import Machine
    from twin.scs import DebugUnit


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


class WordBlock(Device):
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


class DebugRegs(WordBlock):
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


class DfsrReg(WordBlock):
    """DFSR at 0xE000ED30 (write-1-to-clear)."""

    name, base, size = "dfsr", 0xE000ED30, 0x4

    def __init__(self, unit: DebugUnit) -> None:
        super().__init__()
        self.u = unit

    def read_word(self, offset: int) -> int:
        return self.u.dfsr

    def write_word(self, offset: int, value: int) -> None:
        self.u.dfsr &= ~value


class ScsIds(WordBlock):
    """Component ID registers of the SCS (0xE000EFD0..0xE000EFFF)."""

    name, base, size = "scs_ids", 0xE000EFD0, 0x30
    IDS = _cid_block(0xE, 0x00C)

    def read_word(self, offset: int) -> int:
        return self.IDS[offset // 4]


class Dwt(WordBlock):
    """DWT at 0xE0001000: CTRL, CYCCNT, PCSR (a PC sample), comparators, component IDs."""

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
        if offset == 0x1C:
            return u.pc_sample()
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


class Fpb(WordBlock):
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


class RomTable(WordBlock):
    """A one-level CoreSight ROM table at 0xE00FF000 listing SCS, DWT and FPB."""

    name, base, size = "romtable", 0xE00FF000, 0x1000
    ENTRIES: ClassVar[list[int]] = [0xFFF0F003, 0xFFF02003, 0xFFF03003, 0]
    IDS = _cid_block(0x1, 0x4C7)

    def read_word(self, offset: int) -> int:
        if offset < 4 * len(self.ENTRIES):
            return self.ENTRIES[offset // 4]
        if offset == 0xFCC:
            return 1  # MEMTYPE: system memory present
        if offset >= 0xFD0:
            return self.IDS[(offset - 0xFD0) // 4]
        return 0


class Dbgmcu(WordBlock):
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
            old, self.apb2_fz = self.apb2_fz, value & 0x00070003
            if old != self.apb2_fz and self.on_change is not None:
                self.on_change()

    def snapshot(self) -> dict[str, object]:
        return {"cr": self.cr, "apb1_fz": self.apb1_fz, "apb2_fz": self.apb2_fz}
