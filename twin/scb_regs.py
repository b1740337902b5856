"""The exception model's register blocks on the PPB: ICTR/ACTLR, NVIC, SCB, MPU and the
SCB extension (STIR, FPU control, MVFR, cache maintenance, TCM control).

Each block is an ordinary :class:`twin.device.Device` mapped by the machine; reads compose
values from the model's state and writes call into it (ICSR, SHCSR, AIRCR...). Every write
ends with ``model.kick()`` so an exception that just became takeable is taken at once.
The register values of the STM32F767's Cortex-M7 r1p0 (CPUID, cache and feature IDs)
are here.

Owns: the register layouts and the identification values. Must not touch: anything but
the model's state and methods (not the machine, not other devices).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.device import Device, merge_word, sub_word
from twin.nvic import FIRST_IRQ, NUM_IRQS, PRIO_BITS_MASK

if TYPE_CHECKING:
    from twin.exception_model import ExceptionModel

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
CCR_UNALIGN_TRP = 1 << 3
FPCCR_RESET = 0xC0000000  # ASPEN | LSPEN
EXC_RETURN_BASE = 0xFFFFFFE1


class ScsBlock(Device):
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


class ScnRegs(ScsBlock):
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


class NvicRegs(ScsBlock):
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


class ScbRegs(ScsBlock):
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
            if (old ^ m.ccr) & (1 << 16):  # DC: the D-cache model (twin/dcache.py)
                dcache = getattr(m.services, "dcache", None)
                if dcache is not None:
                    dcache.set_enabled(bool(m.ccr & (1 << 16)))
            if (old ^ m.ccr) & CCR_UNALIGN_TRP:  # the UsageFault checks (twin/usage_checks.py)
                trap = getattr(m.services, "unalign_trap", None)
                if trap is not None:
                    trap(bool(m.ccr & CCR_UNALIGN_TRP))
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


class MpuRegs(ScsBlock):
    """MPU at 0xE000ED90: TYPE/CTRL/RNR/RBAR/RASR + aliases; enforced by the machine
    (twin/protection.py with twin/mpu.py), which a write here makes re-apply."""

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
        dcache = getattr(m.services, "dcache", None)  # MPU attributes decide cacheability
        if dcache is not None:
            dcache.set_mpu(m.mpu_ctrl, list(m.mpu_rbar), list(m.mpu_rasr))
        if (was_on or m.mpu_ctrl & 1) and m.on_kick is not None:
            m.on_kick()  # end the slice after this store: the machine re-applies the MPU

    def regions(self) -> list[dict[str, int]]:
        """Enabled regions as dicts (base, size, rasr) for the control interface."""
        return self.m.mpu_regions()


class ScbExtRegs(ScsBlock):
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
        elif 0x5C <= offset <= 0x74:  # D-cache maintenance (twin/dcache.py)
            m.cache_ops += 1
            dcache = getattr(m.services, "dcache", None)
            if dcache is not None:
                dcache.operation(offset, value)
        elif offset in m.tcm:
            m.tcm[offset] = value
            dcache = getattr(m.services, "dcache", None)
            if offset == 0x9C and dcache is not None:  # CM7_CACR: FORCEWT, SIWT (twin/dcache.py)
                dcache.set_cacr(value)
        elif offset in MVFR or offset == 0xA8:
            pass
        else:
            super().write_word(offset, value, size)
