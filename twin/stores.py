"""CPU stores that need more than RAM semantics, and the code cache they invalidate.

Flash and ROM are mapped read-only, backup SRAM while its gates are closed, and pages the
MPU cuts lose their write right: a store there reaches :meth:`Stores.hook_write_prot`
(unicorn's UC_HOOK_MEM_WRITE_PROT). A flash store goes to the flash controller (NOR AND,
PSIZE and protection rules live there); a store the MPU allows on a partly protected page
is done here; a refused or unmapped one becomes a fault recorded on the slice.

unicorn pitfall U4: after the hook, unicorn still writes the raw value into the
``mem_map_ptr`` buffer. When that differs from the modelled bytes, the slice stops after
the instruction (``fixup``), the runner replays that instruction once with the already
modelled addresses skipped (``replaying``), and the fix-ups restore the modelled bytes
before anything can read them.

Owns: the fix-up list, the replay set, the range of memory written since the last code
cache flush, and flushing unicorn's translated code. Must not touch: MMIO, devices other
than the flash controller's ``cpu_store``, time, the run state.
"""

from __future__ import annotations

import ctypes

import unicorn as uc_mod

from twin import memory as mm
from twin.protection import Protection
from twin.slice import Slice

_FLASH_END = mm.FLASH_BASE + mm.FLASH_SIZE
_SRAM_END = mm.SRAM_BASE + mm.SRAM_SIZE
_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}


class FixupList(list):
    """The fix-up list, with a flag C can read (twin/flash_fast.c: nonzero while it holds
    any, so a register access in C never skips the restoring an MMIO access in Python does)."""

    def __init__(self) -> None:
        super().__init__()
        self.flag = ctypes.c_uint32(0)

    def append(self, item: tuple[int, bytes]) -> None:
        super().append(item)
        self.flag.value = 1

    def clear(self) -> None:
        super().clear()
        self.flag.value = 0


class Stores:
    """The store hook, the U4 fix-ups and the dirty-code range of one machine.

    Args:
        uc: the unicorn engine (code cache).
        slice_: the running slice (faults and the fix-up stop are recorded there).
        memory: the memory map.
        protection: MPU and backup SRAM gates (asked about partly protected pages).
    """

    def __init__(self, uc, slice_: Slice, memory: mm.MemoryMap, protection: Protection) -> None:
        self.uc = uc
        self._slice = slice_
        self._memory = memory
        self._prot = protection
        self.flash = None  # twin.flash.FlashController (set by the board)
        self.fixups = FixupList()
        self.replaying: dict[int, bytes] | None = None
        self._dirty: list[int] | None = None
        self._dirty_ram: list[int] | None = None  # RAM written behind the CPU (mark_dirty)
        self._flush_all = False  # a whole flush asked inside a slice (flush_code_cache)

    def hook_write_prot(self, uc, access, address, size, value, _ud) -> bool:
        """A CPU store unicorn's page protection refused: model it (see the module doc)."""
        if self.replaying is not None and address in self.replaying:
            self.fixups.append((address, self.replaying[address]))
            return True
        if self.fixups:
            self.apply_fixups()
        prot = self._prot
        if (
            prot.view is not None
            and prot.denies(address, uc_mod.UC_PROT_WRITE)
            and self._memory.region_at(address, 1) is not None
        ):
            self._slice.mpu_fault = ("daccviol", address)
            self._slice.fault_addr = address
            return False
        fl = self.flash
        if fl is not None and (mm.FLASH_BASE <= address < _FLASH_END):
            # hot path: a store into flash (every word of a flash download)
            off = address - mm.FLASH_BASE
            buf = self._memory.flash.mv
            now = fl.cpu_store(address, size, value)
            d = self._dirty
            if d is None:
                self._dirty = [address, address + size]
            else:
                if address < d[0]:
                    d[0] = address
                if address + size > d[1]:
                    d[1] = address + size
            if now is None:  # refused or cut: what the array holds
                now = int.from_bytes(buf[off : off + size], "little")
            if now != value & _MASKS[size]:
                self.fixups.append((address, buf[off : off + size].tobytes()))
                s = self._slice
                if s.active and not s.reasons and self.replaying is None:
                    s.stop("fixup")
            return True
        return self._other_store(address, size, value)

    def _other_store(self, address: int, size: int, value: int) -> bool:
        """A refused store outside the flash's primary range (aliases, ROM, backup SRAM,
        RAM on a page the MPU protects only in part, unmapped)."""
        reg = self._memory.region_at(address, size)
        if reg is None:
            self._slice.bus_fault(address, "precise", "write")
            return True
        old = reg.read(address, size)
        if reg.kind == "flash" and self.flash is not None:
            self.flash.cpu_store(address, size, value)
            self.mark_dirty(address, size)
        elif reg is self._memory.bkpsram and not self._prot.backup_writable:
            self._prot.backup_store_ignored(address)
        elif reg.writable:
            # RAM on a page the MPU protects only in part: the MPU allows this address, so
            # store it here (unicorn does not complete a store its page protection refused)
            reg.write(address, (value & _MASKS[size]).to_bytes(size, "little"))
            self.mark_dirty(address, size)
            return True
        else:
            self._slice.bus_fault(address, "precise", f"write to read-only {reg.name}")
        # unicorn still performs the raw store into the ptr-mapped buffer after this hook
        # (pitfall U4). If that differs from the intended bytes (NOR AND over programmed
        # bits, a rejected store), end the slice after this instruction and restore them
        # before the firmware can read the raw value back.
        intended = reg.read(address, size) if reg.kind == "flash" else old
        if intended != (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"):
            self.fixups.append((address, intended))
            s = self._slice
            if s.active and not s.reasons and self.replaying is None:
                s.stop("fixup")
        return True

    # ------------------------------------------------------------------ fix-ups
    def apply_fixups(self) -> None:
        """Restore the modelled bytes over the raw values unicorn stored. (The list object
        stays the same: the bus keeps a reference to test it cheaply on every access.)"""
        fix = self.fixups[:]
        self.fixups.clear()
        for address, data in fix:
            reg = self._memory.region_at(address, len(data))
            if reg is not None:
                reg.write(address, data)

    def begin_replay(self) -> None:
        """The instruction of a ``fixup`` stop runs again: its modelled stores are skipped."""
        self.replaying = {a: d for a, d in self.fixups}
        self.apply_fixups()

    def end_replay(self) -> None:
        """The replayed instruction retired (or failed)."""
        self.replaying = None

    # ------------------------------------------------------------------ host stores
    def host_flash_store(self, address: int, chunk: bytes, width: int) -> None:
        """A debugger's (bus master's) write into flash: through the controller in
        ``width``-byte stores, as a CPU store would go."""
        j = 0
        while j < len(chunk):
            w = width
            while w > 1 and ((address + j) % w or j + w > len(chunk)):
                w //= 2
            self.flash.cpu_store(address + j, w, int.from_bytes(chunk[j : j + w], "little"))
            j += w
        self.mark_dirty(address, len(chunk))

    # ------------------------------------------------------------------ code cache
    def mark_dirty(self, address: int, length: int) -> None:
        """Memory in ``[address, address + length)`` changed: drop translated code there at
        the next :meth:`flush_dirty` (end of the slice, end of a host write). RAM is kept
        apart (``_dirty_ram``): it is dropped only where the CPU ever ran code
        (:meth:`Protection.code_in`); dropping code where there is none made every
        Ethernet frame DMA'd into RAM slow the CPU down by a third."""
        if mm.SRAM_BASE <= address < _SRAM_END or address < mm.ITCM_SIZE:
            r = self._dirty_ram
            if r is None:
                self._dirty_ram = [address, address + length]
            else:
                r[0] = min(r[0], address)
                r[1] = max(r[1], address + length)
            return
        if self._dirty is None:
            self._dirty = [address, address + length]
        else:
            self._dirty[0] = min(self._dirty[0], address)
            self._dirty[1] = max(self._dirty[1], address + length)

    def flush_dirty(self) -> None:
        """Drop translated code of everything written since the last flush (and of the
        flash's ITCM alias), or all of it if a whole flush was asked inside the slice."""
        if self._flush_all:
            self._flush_all = False
            self.flush_code_cache()
            return
        r = self._dirty_ram
        if r is not None:
            self._dirty_ram = None
            if self._prot.code_in(r[0], r[1]):
                self.flush_code_cache(r[0], r[1])
        if self._dirty is None:
            return
        lo, hi = self._dirty
        self._dirty = None
        self.flush_code_cache(lo, hi)
        if mm.FLASH_BASE <= lo < mm.FLASH_BASE + mm.FLASH_SIZE:
            off = mm.FLASH_ITCM_BASE - mm.FLASH_BASE
            self.flush_code_cache(lo + off, hi + off)

    def flush_code_cache(self, lo: int = 0, hi: int = 0xFFFFFFFF) -> None:
        """Drop translated code in [lo, hi) (unicorn pitfall U1/U2).

        All of it, asked inside a slice (a hook: an I-cache invalidate, CCR.IC or DC, the
        UsageFault checks changing): done when the slice ends, which the store asking for
        it ends (``kicked``, twin/bus.py). unicorn 2.1 flushes at once, freeing the code
        being run (QEMU defers a flush to outside execution): returning into it crashed the
        process with SIGILL (ST's CubeF7 IWDG example, at its ``SCB_EnableICache()``)."""
        if lo == 0 and hi >= 0xFFFFFFFF:
            if self._slice.active:
                self._flush_all = True
                self._slice.kicked = True
                return
            self._dirty = self._dirty_ram = None
            self.uc.ctl_flush_tb()
        else:
            self.uc.ctl_remove_cache(lo & ~(mm.PAGE - 1), max(hi, lo + 1))
