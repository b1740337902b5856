"""The ETH MAC's MMC counters (+0x100) and PTP time-stamp registers (+0x700), RM0410 §42.8.

MMC: MMCCR (CR counter reset, CSR stop at rollover, ROR reset on read, MCF freeze, MCP
preset to almost half/full with MCFHP), the interrupt status MMCRIR/MMCTIR (a counter
reaching half or all ones; cleared by reading that counter) and masks MMCRIMR/MMCTIMR
(reset 0: unmasked, which is why ST's HAL masks them), and the six counters of the
STM32: TX good frames after a single / more than one collision (always 0, no collisions
are modelled), TX good frames, RX CRC errors, RX alignment errors (always 0), RX good
unicast frames. MACSR.MMCRS/MMCTS/MMCS summarise the unmasked status.

PTP: every register at its reset value (PTPTSCR 0x00002000), the self-clearing commands
TSSTI (initialise the time from PTPTSHUR/LUR), TSSTU (add or subtract it), TSARU (the
addend PTPTSAR is used as written), and a system time that runs while TSE is set: each HCLK cycle adds PTPSSIR
(coarse) or PTPSSIR per addend overflow (fine, TSFCU), with binary or digital (TSSSR)
sub-second rollover. Time stamps in descriptors, target time interrupts and PPS are not
modelled (PTPTSSR reads 0).

Owns: these registers and counters.
Must not touch: frames or the DMA (the MAC calls :meth:`MmcPtp.count`).
"""

from __future__ import annotations

from collections.abc import Callable

MMCCR, MMCRIR, MMCTIR, MMCRIMR, MMCTIMR = 0x100, 0x104, 0x108, 0x10C, 0x110
TGFSCCR, TGFMSCCR, TGFCR, RFCECR, RFAECR, RGUFCR = 0x14C, 0x150, 0x168, 0x194, 0x198, 0x1C4
#: counter → (status/mask register, bit)
COUNTER_BITS = {
    TGFSCCR: (MMCTIR, 1 << 14),
    TGFMSCCR: (MMCTIR, 1 << 15),
    TGFCR: (MMCTIR, 1 << 21),
    RFCECR: (MMCRIR, 1 << 5),
    RFAECR: (MMCRIR, 1 << 6),
    RGUFCR: (MMCRIR, 1 << 17),
}
RX_MASK, TX_MASK = (1 << 5) | (1 << 6) | (1 << 17), (1 << 14) | (1 << 15) | (1 << 21)

PTPTSCR, PTPSSIR, PTPTSHR, PTPTSLR, PTPTSHUR, PTPTSLUR = 0x700, 0x704, 0x708, 0x70C, 0x710, 0x714
PTPTSAR, PTPTTHR, PTPTTLR, PTPTSSR, PTPPPSCR = 0x718, 0x71C, 0x720, 0x728, 0x72C
PTP_RESET = {PTPTSCR: 0x00002000, PTPSSIR: 0, PTPTSHUR: 0, PTPTSLUR: 0, PTPTSAR: 0, PTPTTHR: 0, PTPTTLR: 0}
PTP_PPSCR = 0
TSE, TSFCU, TSSTI, TSSTU, TSSSR = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 9


class MmcPtp:
    """MMC counters and PTP registers.

    Args:
        now_cycles: virtual time in core cycles (the PTP clock is HCLK).
        on_change: called when an MMC interrupt status bit changes (the IRQ may follow).
    """

    def __init__(self, now_cycles: Callable[[], int], on_change: Callable[[], None] = lambda: None) -> None:
        self.now_cycles = now_cycles
        self.on_change = on_change
        self.reset()

    def reset(self) -> None:
        self.mmccr = 0
        self.status = {MMCRIR: 0, MMCTIR: 0}
        self.masks = {MMCRIMR: 0, MMCTIMR: 0}
        self.counters = dict.fromkeys(COUNTER_BITS, 0)
        self.ptp = dict(PTP_RESET)
        self.ppscr = PTP_PPSCR
        self._time_ns = 0  # system time in sub-second units at _time_at
        self._time_at = 0
        self._accum = 0

    # ------------------------------------------------------------------ MMC
    def count(self, counter: int) -> None:
        """One more event on ``counter`` (unless frozen); sets its status at half/full."""
        if self.mmccr & (1 << 3):  # MCF
            return
        value = self.counters[counter]
        if value == 0xFFFFFFFF and self.mmccr & (1 << 1):  # CSR: stop at rollover
            return
        value = (value + 1) & 0xFFFFFFFF
        self.counters[counter] = value
        if value in (0x80000000, 0xFFFFFFFF):
            reg, bit = COUNTER_BITS[counter]
            self.status[reg] |= bit
            self.on_change()

    def macsr_bits(self) -> int:
        """MACSR bits 6:4 (MMCTS, MMCRS, MMCS) from the unmasked MMC status."""
        rx = self.status[MMCRIR] & ~self.masks[MMCRIMR] & RX_MASK
        tx = self.status[MMCTIR] & ~self.masks[MMCTIMR] & TX_MASK
        return (1 << 5 if rx else 0) | (1 << 6 if tx else 0) | (1 << 4 if rx or tx else 0)

    def read(self, offset: int, peek: bool = False) -> int | None:
        """Value of an MMC/PTP register, or None when ``offset`` is not one. Reading a
        counter clears its status (and the counter with MMCCR.ROR) unless ``peek``."""
        if offset == MMCCR:
            return self.mmccr
        if offset in self.status:
            return self.status[offset]
        if offset in self.masks:
            return self.masks[offset]
        if offset in self.counters:
            value = self.counters[offset]
            if not peek:
                reg, bit = COUNTER_BITS[offset]
                if self.status[reg] & bit:
                    self.status[reg] &= ~bit
                    self.on_change()
                if self.mmccr & (1 << 2):  # ROR
                    self.counters[offset] = 0
            return value
        return self._ptp_read(offset)

    def write(self, offset: int, value: int) -> bool:
        """Store to an MMC/PTP register; False when ``offset`` is not one."""
        if offset == MMCCR:
            self._write_mmccr(value)
        elif offset in self.masks:
            self.masks[offset] = value & (RX_MASK if offset == MMCRIMR else TX_MASK)
        elif offset in self.status or offset in self.counters:
            pass  # read-only
        else:
            return self._ptp_write(offset, value)
        return True

    def _write_mmccr(self, value: int) -> None:
        self.mmccr = value & 0x3E  # CR self-clears
        if value & 1:
            self.counters = dict.fromkeys(COUNTER_BITS, 0)
        if value & (1 << 4):  # MCP: preset, MCFHP picks almost-full or almost-half
            preset = 0xFFFFFFF0 if value & (1 << 5) else 0x7FFFFFF0
            self.counters = dict.fromkeys(COUNTER_BITS, preset)
            self.mmccr &= ~(1 << 4)

    # ------------------------------------------------------------------ PTP
    def _rollover(self) -> int:
        return 1_000_000_000 if self.ptp[PTPTSCR] & TSSSR else 1 << 31

    def _advance(self) -> None:
        """Bring the system time up to now (only while TSE is set)."""
        now = self.now_cycles()
        cycles, self._time_at = now - self._time_at, now
        if not self.ptp[PTPTSCR] & TSE or cycles <= 0:
            return
        inc = self.ptp[PTPSSIR] & 0xFF
        if self.ptp[PTPTSCR] & TSFCU:
            total = self._accum + cycles * self.ptp[PTPTSAR]
            ticks, self._accum = divmod(total, 1 << 32)
        else:
            ticks = cycles
        self._time_ns += ticks * inc

    def _time(self) -> tuple[int, int]:
        self._advance()
        secs, sub = divmod(self._time_ns, self._rollover())
        return secs & 0xFFFFFFFF, sub

    def _ptp_read(self, offset: int) -> int | None:
        if offset == PTPTSHR:
            return self._time()[0]
        if offset == PTPTSLR:
            return self._time()[1]
        if offset in (PTPTSSR, 0x724):
            return 0
        if offset == PTPPPSCR:
            return self.ppscr
        return self.ptp.get(offset)

    def _ptp_write(self, offset: int, value: int) -> bool:
        if offset == PTPTSCR:
            self._advance()
            self.ptp[PTPTSCR] = value & 0x7FF13  # commands (TSSTI, TSSTU, TSARU) self-clear
            self._ptp_commands(value)
        elif offset == PTPSSIR:
            self._advance()
            self.ptp[PTPSSIR] = value & 0xFF
        elif offset == PTPTSAR:
            self._advance()
            self.ptp[PTPTSAR] = value
        elif offset == PTPTSLUR:
            self.ptp[offset] = value  # bit 31 ADDSUB, sub-seconds 30:0
        elif offset in (PTPTSHUR, PTPTTHR, PTPTTLR):
            self.ptp[offset] = value
        elif offset == PTPPPSCR:
            self.ppscr = value & 0xF
        elif offset in (PTPTSHR, PTPTSLR, PTPTSSR, 0x724):
            pass  # read-only
        else:
            return False
        return True

    def _ptp_commands(self, value: int) -> None:
        upd_s, upd_low = self.ptp[PTPTSHUR], self.ptp[PTPTSLUR]
        update = upd_s * self._rollover() + (upd_low & 0x7FFFFFFF)
        if value & TSSTI:
            self._time_ns = update
        elif value & TSSTU:
            self._time_ns += -update if upd_low >> 31 else update
            self._time_ns = max(self._time_ns, 0)
