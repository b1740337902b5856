"""STM32F767 embedded-flash interface (FLASH at 0x40023C00) over a NOR array.

Model rules (RM0410 where known; see docs/twin.md for the choices made here):

* KEYR: KEY1 then KEY2 clears CR.LOCK. A wrong value or order while locked blocks CR until
  the next reset (further keys ignored). Key writes while already unlocked are ignored.
  OPTKEYR likewise for OPTCR.OPTLOCK. Writing CR.LOCK / OPTCR.OPTLOCK = 1 relocks.
* CR is ignored while locked. STRT starts an erase: SER (sector SNB), MER/MER1 (single bank:
  all; dual bank: bank 1), MER2 (dual bank: bank 2; single bank: all). SER together with a
  mass erase, or an SNB that does not exist in the current layout -> ERSERR, nothing erased.
* SNB encoding: single bank 0..11; dual bank 0..11 = bank 1, 0x10..0x1B = bank 2 sectors 12..23.
* Programming: a store to the array with PG=1 and unlocked. The store width must equal
  PSIZE (x8=1, x16=2, x32=4, x64 accepts 4-byte halves) else PGPERR; a store not aligned to
  its width -> PGAERR; a write-protected sector -> WRPERR; nothing is written on error.
  NOR: new = old AND data. A store with PG=0 (or locked, or during an erase) -> ERSERR,
  nothing written (never a silent store).
* SR: EOP (set only when EOPIE=1, as RM0410 says), OPERR (any error while ERRIE=1), WRPERR,
  PGAERR, PGPERR, ERSERR are write-1-to-clear; BSY while an operation runs. IRQ 4 (FLASH) when
  EOPIE&EOP or ERRIE&OPERR.
* Timing "fast": operations complete instantly. "datasheet": BSY is held in virtual time for
  DS11532-like durations; the data changes at the start (real hardware stalls readers).
* Option bytes: OPTCR/OPTCR1 writes need OPTLOCK=0; OPTSTRT copies them to the (persistent)
  option bytes; layout (nDBANK) and BOOT_ADD0/1 take effect at the next reset.

Owns: the FLASH registers, the NOR array's semantics, the option bytes and operation
timing. Must not touch: the machine (it reaches it through its Services: time, IRQ, reset,
``code_changed``, ``bus_error``, ``poll_wait``); power-cut matching is twin/flash_cut.py,
the state files twin/flash_state.py.
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Callable
from typing import Any

from twin import flash_state
from twin.device import Device, ResetKind, merge_word, sub_word
from twin.flash_cut import EraseInFlight, PowerCutPlan, apply_cut
from twin.flash_record import NvSnapshots, OpLog
from twin.flash_regs import FlashRegs, InRegs
from twin.memory import FLASH_BASE, FLASH_ITCM_BASE, FLASH_SIZE

KEY1, KEY2 = 0x45670123, 0xCDEF89AB
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F

SR_EOP, SR_OPERR, SR_WRPERR, SR_PGAERR, SR_PGPERR, SR_ERSERR = 1, 2, 16, 32, 64, 128
SR_BSY = 1 << 16
SR_ERRORS = SR_OPERR | SR_WRPERR | SR_PGAERR | SR_PGPERR | SR_ERSERR
CR_PG, CR_SER, CR_MER, CR_MER2, CR_STRT = 1, 2, 4, 1 << 15, 1 << 16
CR_EOPIE, CR_ERRIE, CR_LOCK = 1 << 24, 1 << 25, 1 << 31
CR_WRITABLE = 0x0301_83FF
OPTCR_OPTLOCK, OPTCR_OPTSTRT, OPTCR_NDBANK = 1, 2, 1 << 29
OPTCR_FACTORY = 0xFFFFAAFD
OPTCR1_FACTORY = 0x00400080
FLASH_IRQ = 4
OPTION_BYTES = 0x1FFF0000  # where RM0410 maps the option bytes (an operation's address)

K = 1024
_U32 = struct.Struct("<I")


def _no_poll(_handle: object) -> None:
    """Services without poll_wait (a bare test double): BSY reads just see the flag."""


_STORE_BLOCKERS = CR_LOCK | CR_PG | CR_SER | CR_MER | CR_MER2
_PSIZE_BYTES = (1, 2, 4, 4)
_NWRP_ALL = 0xFFF << 16
SINGLE_SECTORS = [32 * K] * 4 + [128 * K] + [256 * K] * 7
DUAL_BANK_SECTORS = [16 * K] * 4 + [64 * K] + [128 * K] * 7

#: DS11532-like typical durations (microseconds).
PROGRAM_US = {1: 16, 2: 16, 4: 16, 8: 16}
ERASE_US_PER_KIB = 7800  # ~250 ms per 32 KiB, ~2 s per 256 KiB
MASS_ERASE_US = 16_000_000


def sector_table(dual_bank: bool) -> list[tuple[int, int, int]]:
    """(sector number, start address, size) for the layout; bank-2 numbers are 12..23."""
    out = []
    addr = FLASH_BASE
    if dual_bank:
        for bank in range(2):
            for i, size in enumerate(DUAL_BANK_SECTORS):
                out.append((bank * 12 + i, addr, size))
                addr += size
    else:
        for i, size in enumerate(SINGLE_SECTORS):
            out.append((i, addr, size))
            addr += size
    return out


class FlashController(Device):
    """The FLASH register block plus the NOR behaviour of the 2 MiB array.

    Args:
        array: the flash bytes (shared with the CPU's memory map).
        timing: "fast" or "datasheet".
        dual_bank: factory option bytes with nDBANK=0 (dual bank).
    """

    name, base, size = "flash", 0x40023C00, 0x400
    sr = InRegs()  # FLASH_SR and FLASH_CR live in ``regs`` (twin/flash_regs.py)
    cr = InRegs()

    def __init__(self, array: ctypes.Array, timing: str = "fast", dual_bank: bool = False) -> None:
        super().__init__()
        self.regs = FlashRegs()
        self.config_listeners: list[Callable[[str], None]] = []  # ACR written: twin/clock_limits.py
        if timing not in ("fast", "datasheet"):
            raise ValueError(f"timing must be 'fast' or 'datasheet', not {timing!r}")
        self.array = array
        self.mv = memoryview(array).cast("B")
        self.timing = timing
        self.ob_optcr = (OPTCR_FACTORY & ~OPTCR_NDBANK) if dual_bank else OPTCR_FACTORY
        self.ob_optcr &= ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT)
        self.ob_optcr1 = OPTCR1_FACTORY
        self.ops = 0  # completed erase/program operations (statistics)
        self.started = 0  # operations started (power-cut counting)
        self.power_cut = PowerCutPlan()
        self.cuts: list[dict[str, object]] = []  # the cuts that happened (also timed ones)
        self.observers: list[Callable[[str, int, int], object]] = []
        self.oplog = OpLog()  # flash.record: every operation, for the power-cut campaign
        self.nv = NvSnapshots(self, self.oplog)  # snapshot.*: saved non-volatile states
        self._busy_handle: object | None = None
        self._busy_until = 0
        self.in_flight = EraseInFlight()  # a power loss mid-erase leaves part of it undone
        self.reset(ResetKind.POWER)

    # ------------------------------------------------------------------ reset / layout
    def reset(self, kind: str) -> None:
        """Every reset relocks CR/OPTCR and reloads the option bytes (OBL)."""
        self._dcache = getattr(self.services, "dcache", None)
        self._poll = getattr(self.services, "poll_wait", None) or _no_poll  # BSY read: jump to its end
        if self._busy_handle is not None and self.services is not None:
            kind == ResetKind.POWER and self.in_flight.power_lost(self)  # type: ignore[func-returns-value]
            self.services.cancel(self._busy_handle)
        self._busy_handle = None
        self.acr = 0
        self.sr = 0
        self.cr = CR_LOCK
        self.key_state = 0  # 0 = expect KEY1, 1 = expect KEY2, -1 = blocked
        self.optkey_state = 0
        self.optcr = self.ob_optcr | OPTCR_OPTLOCK
        self.optcr1 = self.ob_optcr1
        self.dual_bank = not self.ob_optcr & OPTCR_NDBANK
        self.sectors = sector_table(self.dual_bank)
        self._irq_level = False

    def boot_address(self) -> int:
        """BOOT_ADD0 << 14 (the NUCLEO's BOOT0 pin is low)."""
        return (self.ob_optcr1 & 0xFFFF) << 14

    def sector_of(self, address: int) -> tuple[int, int, int] | None:
        """The (number, start, size) sector holding an absolute flash address."""
        for sec in self.sectors:
            if sec[1] <= address < sec[1] + sec[2]:
                return sec
        return None

    def _snb_sector(self, snb: int) -> tuple[int, int, int] | None:
        if self.dual_bank:
            bank, idx = (snb >> 4) & 1, snb & 0xF
            if snb & 0xE0 or idx > 11:
                return None
            return self.sectors[bank * 12 + idx]
        if snb > 11:
            return None
        return self.sectors[snb]

    def _protected(self, sector_no: int) -> bool:
        nwrp = (self.ob_optcr >> 16) & 0xFFF
        bit = sector_no // 2 if self.dual_bank else sector_no
        return not (nwrp >> bit) & 1

    # ------------------------------------------------------------------ registers
    def read(self, offset: int, size: int) -> int:
        if offset == 0x0C and size == 4:  # SR after each programmed word: the hot path
            regs = self.regs  # (the struct's field, not the descriptor: hot paths)
            if regs.sr & SR_BSY and self._busy_handle is not None:
                self._poll(self._busy_handle)
            return regs.sr
        return sub_word(self._read_word(offset & ~3), offset, size)

    def _read_word(self, offset: int) -> int:
        if offset == 0x00:
            return self.acr
        if offset == 0x0C:
            if self.sr & SR_BSY and self._busy_handle is not None:
                self._poll(self._busy_handle)
            return self.sr
        if offset == 0x10:
            return self.cr
        if offset == 0x14:
            return self.optcr
        if offset == 0x18:
            return self.optcr1
        if offset in (0x04, 0x08):
            return 0
        self.unmodelled(offset, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if size != 4:
            value = merge_word(self._read_word(aligned) if aligned not in (4, 8) else 0, offset, size, value)
        if aligned == 0x00:
            self.acr = value & 0xB0F
            for listener in self.config_listeners:
                listener("write")
        elif aligned == 0x04:
            self._key(value)
        elif aligned == 0x08:
            self._optkey(value)
        elif aligned == 0x0C:
            self.sr &= ~(value & (SR_EOP | SR_ERRORS))
            self._update_irq()
        elif aligned == 0x10:
            self._write_cr(value)
        elif aligned == 0x14:
            self._write_optcr(value)
        elif aligned == 0x18:
            if not self.optcr & OPTCR_OPTLOCK:
                self.optcr1 = value
        else:
            self.unmodelled(offset, "write")

    def _key(self, value: int) -> None:
        if not self.cr & CR_LOCK or self.key_state < 0:
            return
        if self.key_state == 0 and value == KEY1:
            self.key_state = 1
        elif self.key_state == 1 and value == KEY2:
            self.key_state = 0
            self.cr &= ~CR_LOCK
        else:
            self.key_state = -1
            self._log(
                "wrong FLASH_KEYR sequence: FLASH_CR stays locked until reset "
                "(bus error → BusFault, HardFault unless BUSFAULTENA)"
            )
            self._bus_error("wrong FLASH_KEYR sequence")

    def _optkey(self, value: int) -> None:
        if not self.optcr & OPTCR_OPTLOCK or self.optkey_state < 0:
            return
        if self.optkey_state == 0 and value == OPTKEY1:
            self.optkey_state = 1
        elif self.optkey_state == 1 and value == OPTKEY2:
            self.optkey_state = 0
            self.optcr &= ~OPTCR_OPTLOCK
        else:
            self.optkey_state = -1
            self._log(
                "wrong FLASH_OPTKEYR sequence: FLASH_OPTCR stays locked until reset "
                "(bus error → BusFault, HardFault unless BUSFAULTENA)"
            )
            self._bus_error("wrong FLASH_OPTKEYR sequence")

    def _bus_error(self, what: str) -> None:
        report = getattr(self.services, "bus_error", None) if self.services is not None else None
        if report is not None:
            report(what)

    def _write_cr(self, value: int) -> None:
        if self.cr & CR_LOCK:
            return
        if value & CR_LOCK:
            self.cr = CR_LOCK | (self.cr & (CR_EOPIE | CR_ERRIE))
            return
        self.cr = value & CR_WRITABLE
        self._update_irq()
        if value & CR_STRT and not self.sr & SR_BSY:
            self._start_erase()

    def _write_optcr(self, value: int) -> None:
        if self.optcr & OPTCR_OPTLOCK:
            return
        if value & OPTCR_OPTLOCK:
            self.optcr |= OPTCR_OPTLOCK
            return
        self.optcr = value & ~(OPTCR_OPTSTRT | OPTCR_OPTLOCK)
        if value & OPTCR_OPTSTRT and not self.sr & SR_BSY:
            new = self.optcr & ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT)
            if not self._notify("options", OPTION_BYTES, 16, new | self.optcr1 << 32):
                return  # power cut: the option bytes keep their old value
            self.ob_optcr, self.ob_optcr1 = new, self.optcr1
            self._log(
                f"option bytes programmed: OPTCR=0x{self.ob_optcr:08X} "
                f"OPTCR1=0x{self.ob_optcr1:08X} (effective after reset)"
            )
            self._finish_later(MASS_ERASE_US // 64)

    # ------------------------------------------------------------------ operations
    def _error(self, flag: int) -> None:
        self.sr |= flag
        if self.cr & CR_ERRIE:
            self.sr |= SR_OPERR
        self._update_irq()

    def _notify(self, kind: str, address: int, length: int, value: int = 0) -> bool:
        """An operation starts: tell observers, count it, and apply an armed power cut.

        Returns False if power was cut (the caller must not complete the operation).
        """
        for fn in list(self.observers):
            fn(kind, address, length)
        if self.oplog.on:
            self.oplog.add(kind, address, length, value)
        self.started += 1
        cut = self.power_cut.fires(kind, address, length)
        if cut is None:
            return True
        apply_cut(self, cut, kind, address, length, value)
        return False

    def arm_power_cut(self, *args: Any, **kwargs: Any) -> None:
        """Cut power when the ``nth`` matching flash operation from now starts (the arguments
        of :meth:`twin.flash_cut.PowerCutPlan.arm`: nth, mode, kind, address, length)."""
        self.power_cut.arm(*args, **kwargs)

    def cancel_power_cut(self) -> None:
        """Disarm a pending power cut."""
        self.power_cut.cancel()

    def _start_erase(self) -> None:
        cr = self.cr
        self.cr &= ~CR_STRT
        mass = cr & (CR_MER | CR_MER2)
        if cr & CR_SER and mass:
            self._error(SR_ERSERR)
            return
        if cr & CR_SER:
            sec = self._snb_sector((cr >> 3) & 0x1F)
            if sec is None:
                self._error(SR_ERSERR)
                return
            targets = [sec]
            duration = sec[2] // K * ERASE_US_PER_KIB
        elif mass:
            if self.dual_bank:
                targets = [
                    s for s in self.sectors if (cr & CR_MER and s[0] < 12) or (cr & CR_MER2 and s[0] >= 12)
                ]
            else:
                targets = list(self.sectors)
            duration = MASS_ERASE_US if len(targets) == len(self.sectors) else MASS_ERASE_US // 2
        else:
            return
        if any(self._protected(s[0]) for s in targets):
            self._error(SR_WRPERR)
            return
        self.in_flight.begin(self, [(start, size) for _num, start, size in targets], duration)
        for _num, start, size in targets:
            if not self._notify("erase", start, size):
                self.in_flight.clear()
                return
            off = start - FLASH_BASE
            dc = self._dcache if self._dcache is not None and self._dcache.held else None
            dc and dc.begin_write(start, size)  # type: ignore[func-returns-value]
            ctypes.memset(ctypes.addressof(self.array) + off, 0xFF, size)
            dc and dc.end_write()  # type: ignore[func-returns-value]
            self._dirty(start, size)
        self.ops += 1
        self._finish_later(duration)

    def cpu_store(self, address: int, size: int, value: int) -> int | None:
        """A CPU/AHB store of ``size`` bytes into the array at absolute ``address``; returns
        what the array holds there now (None: nothing programmed, or the D-cache keeps lines).

        Hot path (every programmed word of a flash download): keep it lean.
        """
        if address < FLASH_BASE:
            address += FLASH_BASE - FLASH_ITCM_BASE
        regs = self.regs
        cr = regs.cr
        if cr & _STORE_BLOCKERS != CR_PG or (
            regs.sr & SR_BSY and self.timing == "datasheet" and not self._busy_program
        ):
            self._error(SR_ERSERR)
            return None
        if size != _PSIZE_BYTES[(cr >> 8) & 3]:
            self._error(SR_PGPERR)
            return None
        if address % size or address + size > FLASH_BASE + FLASH_SIZE:
            self._error(SR_PGAERR)
            return None
        if self.ob_optcr & _NWRP_ALL != _NWRP_ALL:
            sec = self.sector_of(address)
            if sec is None or self._protected(sec[0]):
                self._error(SR_WRPERR)
                return None
        if self.observers or self.power_cut.armed is not None or self.oplog.on:
            if not self._notify("program", address, size, value):
                return None
        else:
            self.started += 1
        off = address - FLASH_BASE
        mv = self.mv
        dc = self._dcache if self._dcache is not None and self._dcache.held else None
        if dc is not None:  # lines the CPU holds in its D-cache stay stale (twin/dcache.py)
            dc.begin_write(address, size)
        if size == 4:
            new = _U32.unpack_from(mv, off)[0] & value
            _U32.pack_into(mv, off, new)
        else:
            new = int.from_bytes(mv[off : off + size], "little") & value
            mv[off : off + size] = new.to_bytes(size, "little")
        if dc is not None:
            dc.end_write()
            dc.store_hit(address, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))
        self.ops += 1
        if self.timing == "fast":
            if cr & CR_EOPIE:
                self.sr |= SR_EOP
                self._update_irq()
        else:
            self._finish_later(PROGRAM_US[size], program=True)
        return new if dc is None else None  # with stale D-cache lines: what the CPU sees

    _busy_program = False
    _dcache = None  # the D-cache model (twin/dcache.py), from the services if they have one

    def _finish_later(self, duration_us: int, program: bool = False) -> None:
        if self.timing == "fast" or self.services is None:
            self._done()
            return
        sv = self.services
        cycles = duration_us * sv.core_hz // 1_000_000
        now = sv.now_cycles()
        self._busy_until = (self._busy_until if self._busy_until > now else now) + cycles
        self._busy_program = program
        self.regs.sr |= SR_BSY
        if self._busy_handle is not None:
            sv.cancel(self._busy_handle)
        self._busy_handle = sv.schedule(self._busy_until - now, self._done)

    def _done(self) -> None:
        if self.in_flight.sectors:
            self.in_flight.clear()
        self._busy_handle = None
        self._busy_program = False
        regs = self.regs
        regs.sr &= ~SR_BSY
        if regs.cr & (CR_EOPIE | CR_ERRIE) or self._irq_level:
            if regs.cr & CR_EOPIE:
                regs.sr |= SR_EOP
            self._update_irq()

    def _update_irq(self) -> None:
        level = bool((self.cr & CR_EOPIE and self.sr & SR_EOP) or (self.cr & CR_ERRIE and self.sr & SR_OPERR))
        if level != self._irq_level and self.services is not None:
            self._irq_level = level
            self.services.set_irq(FLASH_IRQ, level)

    def _dirty(self, address: int, length: int) -> None:
        changed = getattr(self.services, "code_changed", None)
        if changed is not None:
            changed(address, length)

    def _log(self, msg: str) -> None:
        if self.services is not None:
            self.services.log(msg)

    # ------------------------------------------------------------------ persistence
    def save_state(self, directory: str | os.PathLike) -> None:
        """Write flash.bin and option-bytes.json into ``directory`` (twin/flash_state.py)."""
        flash_state.save(directory, self.mv, self.ob_optcr, self.ob_optcr1)

    def load_state(self, directory: str | os.PathLike) -> bool:
        """Load a saved state if present (then a power-on reset). True if something was loaded."""
        loaded, options = flash_state.load(directory, self.mv)
        if options is not None:
            self.ob_optcr = options[0] & ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT)
            self.ob_optcr1 = options[1]
        self.reset(ResetKind.POWER)
        return loaded

    def snapshot(self) -> dict[str, object]:
        return {
            "cr": self.cr,
            "sr": self.sr,
            "optcr": self.optcr,
            "optcr1": self.optcr1,
            "dual_bank": self.dual_bank,
            "boot_address": self.boot_address(),
            "ops": self.ops,
            "started": self.started,
            "timing": self.timing,
            "cut_armed": None if self.power_cut.armed is None else dict(self.power_cut.armed),
            "cuts": list(self.cuts),
        }
