"""The Cortex-M7 L1 D-cache, as far as other bus masters can tell (docs/twin-cache.md).

A lazy model: nothing is cached while CCR.DC is 0 (no hooks, no cost). While it is 1,
unicorn memory hooks restricted to the cacheable ranges (SRAM1/SRAM2 0x20020000+ and
flash through AXIM 0x08000000, default memory map) record the 32-byte lines the CPU
*holds*. The memory attribute of the range decides what a store does: write-back
write-allocate (the default map's SRAM, MPU TEX=001 C=B=1) allocates the line on a write
miss and makes it dirty; write-back without write-allocate (TEX=000 C=B=1) makes held lines
dirty and sends other writes to memory; write-through (TEX=000 C=1 B=0, CACR.FORCEWT,
shareable memory with CACR.SIWT) writes memory too and never leaves a line dirty. A read
allocates the line in every case.

Unicorn has one memory view, the CPU's. The model keeps it as the CPU's view and keeps
the memory's copy aside (``shadow``) only for lines where the two differ:
  * another master (DMA through the bus-master port, the flash controller) writes a held
    line: :meth:`begin_write`/:meth:`end_write` around the write put the memory copy in
    the view, let the write happen, move the result to ``shadow`` and put the CPU's copy
    back: the CPU keeps reading stale data;
  * the CPU writes a held line first: the memory copy (the line before the write) goes
    to ``shadow``; a DMA read (:meth:`overlay`) sees ``shadow``, not the CPU's data.
Maintenance: invalidate (DCIMVAC, DCISW) puts the memory copy in the view and forgets the
line; clean (DCCMVAC, DCCMVAU, DCCSW) makes memory equal to the view; clean+invalidate
(DCCIMVAC, DCCISW) both. Set/way operations act on every tracked line of that set (all
ways: CMSIS loops over them anyway). Turning DC off keeps tracked lines (the CMSIS
sequence cleans/invalidates by set/way afterwards).

The line state lives in one :class:`~twin.dcache_lines.LineArray` per memory (SRAM, flash);
the hooks that keep it while the CPU runs are C functions (twin/dcache_hooks.c) where a C
compiler works, the same hooks in Python otherwise (twin/native.py says which).

Owns: the line state, its unicorn hooks. Must not touch: the
exception model, devices (the SCB registers call :meth:`set_enabled`/:meth:`operation`/
:meth:`set_mpu`).
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable
from itertools import pairwise

import numpy as np
import unicorn as uc_mod
from unicorn.unicorn_py3.unicorn import HOOK_MEM_ACCESS_CFUNC, uc_hook_h, uclib

from twin import memory as mm
from twin import native
from twin.dcache_lines import DIRTY, HELD, SHADOW, LineArray
from twin.mpu import decode, paint

LINE = 32
MASK = ~(LINE - 1)
SETS = 128  # 16 KiB, 4 ways, 32-byte lines
#: write policies of cacheable memory (ARMv7-M B3.1 and the MPU's TEX/C/B encoding)
WT, WB, WBWA = "write-through", "write-back", "write-back write-allocate"
SRAM = (0x20020000, 0x2007FFFF)
FLASH = (0x08000000, 0x081FFFFF)
#: cacheable ranges of the default memory map and their policy: SRAM1/SRAM2 in the SRAM
#: region (WBWA); flash through AXIM in the Code region (write-through: a store programs
#: the array through the flash controller, which tells :meth:`DCache.store_hit`; a flash
#: line is never dirty, whatever the MPU says). DTCM 0x20000000-0x2001FFFF is not cached;
#: flash through the ITCM path 0x00200000 does not use the D-cache.
RANGES = ((*SRAM, WBWA), (*FLASH, WT))
#: SCB_EXT offsets (from 0xE000EF00) of the D-cache operations
DCIMVAC, DCISW, DCCMVAU, DCCMVAC, DCCSW, DCCIMVAC, DCCISW = 0x5C, 0x60, 0x64, 0x68, 0x6C, 0x70, 0x74
#: CM7_CACR (0xE000EF9C) bits
CACR_SIWT, CACR_FORCEWT = 1, 4
#: inner policy AA of TEX=1AA: C:B
_INNER = {0: None, 1: WBWA, 2: WT, 3: WB}


def attr_policy(rasr: int, cacr: int = 0) -> str | None:
    """The D-cache's write policy for an MPU region's TEX/C/B/S, or None when it is not
    cacheable (shareable normal memory is not cached while CACR.SIWT is 0, and is
    write-through when it is 1; CACR.FORCEWT makes every cacheable region write-through)."""
    tex, s, c, b = (rasr >> 19) & 7, (rasr >> 18) & 1, (rasr >> 17) & 1, (rasr >> 16) & 1
    if tex & 4:
        policy = _INNER[(c << 1) | b]
    elif tex == 0:
        policy = (WB if b else WT) if c else None  # C=0: strongly ordered / device
    else:  # 001 11: write-back write-allocate; 001 00: normal non-cacheable; 010: device
        policy = WBWA if tex == 1 and c and b else None
    if policy is None:
        return None
    if s:
        return WT if cacr & CACR_SIWT else None
    return WT if cacr & CACR_FORCEWT else policy


def cacheable_ranges(
    ctrl: int, rbar: list[int], rasr: list[int], cacr: int = 0
) -> list[tuple[int, int, str]]:
    """The parts of RANGES that are cacheable under the MPU, with their write policy
    (inclusive bounds): the default map where no enabled region covers, else the
    highest-numbered region's attributes. A sub-region a region disables (RASR.SRD) is not
    covered by it: CubeMX's MPU_Config makes region 0 a 4 GB no-access, strongly-ordered
    background with SRD 0x87, which leaves code, SRAM, the peripherals and the system
    region (512 MB each) to the default map: SRAM and flash stay cacheable."""
    default = WT if cacr & CACR_FORCEWT else WBWA
    segs: list[tuple[int, int, str | None]] = [(SRAM[0], SRAM[1] + 1, default), (FLASH[0], FLASH[1] + 1, WT)]
    if ctrl & 1:
        for region in decode(rbar, rasr):  # lowest number first: the highest paints last
            policy = attr_policy(rasr[region.number], cacr)
            for lo, hi in pairwise(region.edges()):
                if region.covers(lo):
                    segs = paint(segs, lo, hi, policy)
    out: list[tuple[int, int, str]] = []
    for lo, hi, policy in sorted(segs, key=lambda seg: seg[0]):
        if policy is None or lo >= hi:
            continue
        if FLASH[0] <= lo <= FLASH[1]:
            policy = WT  # stores program the array (the flash controller), never a dirty line
        if out and out[-1][1] + 1 == lo and out[-1][2] == policy:
            out[-1] = (out[-1][0], hi - 1, policy)
        else:
            out.append((lo, hi - 1, policy))
    return out


def _in_flash(address: int) -> bool:
    return FLASH[0] <= address <= FLASH[1]


class DCache:
    """Held lines and memory copies of the D-cache (see the module doc)."""

    def __init__(
        self,
        uc,
        memory: mm.MemoryMap,
        flush: Callable[[], None],
        code_changed: Callable[[int, int], None],
        log: Callable[[str], None],
    ) -> None:
        self.uc = uc
        self._flush = flush
        self._code_changed = code_changed
        self._log = log
        self.enabled = False
        self.ranges: list[tuple[int, int, str]] = list(RANGES)  # inclusive bounds, hooked while DC = 1
        self.cacr = 0  # CM7_CACR: SIWT, FORCEWT (ECCEN does not matter here)
        self._mpu: tuple[int, list[int], list[int]] = (0, [], [])
        self.arrays = (
            LineArray(mm.SRAM_BASE, mm.SRAM_SIZE, memory.sram.buf),
            LineArray(mm.FLASH_BASE, mm.FLASH_SIZE, memory.flash_buf),
        )
        self._hooks: list[object] = []
        self._saved: list[tuple[LineArray, int, np.ndarray]] = []
        self._by_set: dict[int, list[tuple[LineArray, int]]] = {}
        self._by_set_key: tuple[int, ...] | None = None
        self._removed = 0  # lines forgotten so far (with the counters: the set index's key)
        self.native = self._native()

    def _native(self) -> ctypes.CDLL | None:
        if getattr(self.uc, "_uch", None) is None:
            return None  # an engine double: Python hooks through its own hook_add
        try:
            if os.environ.get("OTA_TWIN_DCACHE", "").lower() == "python":
                raise native.NativeUnavailable("OTA_TWIN_DCACHE=python")
            return native.library()
        except native.NativeUnavailable as e:
            self._log(f"dcache: C hooks unavailable ({e}); the D-cache model runs Python hooks (slower)")
            return None

    # ------------------------------------------------------------------ state summary
    @property
    def held(self) -> bool:
        """Whether any line is held (cheap: the hooks count)."""
        return any(a.counts[0] for a in self.arrays)

    @property
    def shadow(self) -> bool:
        """Whether memory's copy differs from the CPU's anywhere."""
        return any(a.counts[1] for a in self.arrays)

    def _array(self, address: int) -> LineArray | None:
        for a in self.arrays:
            if a.contains(address):
                return a
        return None

    # ------------------------------------------------------------------ control
    def set_enabled(self, on: bool) -> None:
        """CCR.DC changed."""
        if on == self.enabled:
            return
        self.enabled = on
        self._install()

    def set_mpu(self, ctrl: int, rbar: list[int], rasr: list[int]) -> None:
        """The MPU's registers changed: its memory attributes decide what is cacheable."""
        self._mpu = (ctrl, list(rbar), list(rasr))
        self._set_ranges()

    def set_cacr(self, value: int) -> None:
        """CM7_CACR written: FORCEWT and SIWT change the write policy."""
        if (value ^ self.cacr) & (CACR_SIWT | CACR_FORCEWT):
            self.cacr = value & (CACR_SIWT | CACR_FORCEWT)
            self._set_ranges()

    def _set_ranges(self) -> None:
        ctrl, rbar, rasr = self._mpu
        ranges = cacheable_ranges(ctrl, rbar, rasr, self.cacr)
        if ranges != self.ranges:
            self.ranges = ranges
            if self.enabled:
                self._install()

    def _install(self) -> None:
        """Hooks on the cacheable ranges while DC is set, none otherwise."""
        for h in self._hooks:
            self._hook_del(h)
        self._hooks = []
        if self.enabled:
            writes = {WBWA: "dc_write_allocate", WB: "dc_write_back", WT: "dc_write_through"}
            for lo, hi, policy in self.ranges:
                arr = self._array(lo)
                assert arr is not None
                self._hooks.append(self._hook_add(uc_mod.UC_HOOK_MEM_READ, arr, "dc_read", lo, hi))
                if not _in_flash(lo):  # flash: the flash controller calls store_hit
                    self._hooks.append(self._hook_add(uc_mod.UC_HOOK_MEM_WRITE, arr, writes[policy], lo, hi))
        self._flush()

    def _hook_add(self, kind: int, arr: LineArray, name: str, lo: int, hi: int) -> object:
        """A memory hook straight through libunicorn's C API: the C function ``name`` with
        ``arr``'s struct as its user data, or the Python one (every load and store in the
        cacheable ranges calls it; the binding's two wrapper frames would cost more than the
        hook itself)."""
        uch = getattr(self.uc, "_uch", None)
        if uch is None:  # an engine double: its own hook_add
            return self.uc.hook_add(kind, arr.hooks()[name], begin=lo, end=hi)
        handle = uc_hook_h()
        if self.native is not None:
            cb: object = ctypes.cast(getattr(self.native, name), ctypes.c_void_p)
            user_data = ctypes.cast(ctypes.pointer(arr.c), ctypes.c_void_p)
        else:
            cb, user_data = HOOK_MEM_ACCESS_CFUNC(arr.hooks()[name]), None
        err = uclib.uc_hook_add(
            uch, ctypes.byref(handle), kind, cb, user_data, ctypes.c_uint64(lo), ctypes.c_uint64(hi)
        )
        if err != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(err)
        return (handle.value, cb)  # the callback object lives as long as the hook

    def _hook_del(self, hook: object) -> None:
        if isinstance(hook, tuple):
            uclib.uc_hook_del(self.uc._uch, uc_hook_h(hook[0]))
        else:
            self.uc.hook_del(hook)

    def reset(self, kind: str = "system") -> None:
        """Any reset: the cache is off and invalid (the view is what memory holds; after a
        power loss SRAM is already cleared, only flash lines get memory's copy back)."""
        for arr in self.arrays:
            if kind != "power" or arr.base == mm.FLASH_BASE:
                for i in np.flatnonzero(arr.flags & SHADOW).tolist():
                    self._restore(arr, i)
            arr.flags[:] = 0
            arr.counts[0] = arr.counts[1] = 0
        self._removed += 1
        self.ranges = list(RANGES)
        self.cacr = 0
        self._mpu = (0, [], [])
        self.set_enabled(False)

    # ------------------------------------------------------------------ the core's own writes
    def store_hit(self, address: int, data: bytes) -> None:
        """A CPU store programmed flash at ``address`` (after :meth:`end_write`): flash is
        write-through, so a line the CPU holds takes the stored data (not what the array
        now holds, which is memory's copy); memory's copy is the controller's business."""
        arr = self._array(address)
        if arr is None:
            return
        first, end = arr.line_range(address, len(data))
        for i in range(first, end):
            if arr.f[i] & HELD:
                line = arr.base + i * LINE
                lo, hi = max(line, address), min(line + LINE, address + len(data))
                arr.view[lo - arr.base : hi - arr.base] = np.frombuffer(
                    data[lo - address : hi - address], np.uint8
                )

    def cpu_write(self, address: int, data: bytes) -> None:
        """The core writes ``data`` at ``address`` without an instruction (exception
        stacking): the lines go through the cache as for a store (call before the write)."""
        for lo, hi, policy in self.ranges:
            a, b = max(address, lo), min(address + len(data) - 1, hi)
            arr = self._array(lo)
            if a > b or _in_flash(lo) or arr is None:
                continue
            if policy == WT:
                arr.write_memory_copy(a, data[a - address : b + 1 - address])
                continue
            first, end = arr.line_range(a, b - a + 1)
            for i in range(first, end):
                if policy == WBWA and not arr.f[i] & DIRTY:
                    arr.hold(i)
                    arr.make_dirty(i)
                elif arr.f[i] & (HELD | DIRTY) == HELD:
                    arr.make_dirty(i)

    # ------------------------------------------------------------------ other masters
    def begin_write(self, address: int, length: int) -> None:
        """A bus master (DMA, flash controller) is about to write ``[address, +length)``."""
        arr = self._array(address)
        if arr is None or not arr.counts[0] or length <= 0:
            return
        first, end = arr.line_range(address, length)
        held = np.flatnonzero(arr.flags[first:end] & HELD)
        for i in (held + first).tolist():
            o = i * LINE
            self._saved.append((arr, i, arr.view[o : o + LINE].copy()))
            if arr.f[i] & SHADOW:
                arr.view[o : o + LINE] = arr.shadow[o : o + LINE]

    def end_write(self) -> None:
        """The write announced by :meth:`begin_write` is done: the CPU keeps its lines."""
        saved, self._saved = self._saved, []
        for arr, i, cpu in saved:
            o = i * LINE
            arr.shadow[o : o + LINE] = arr.view[o : o + LINE]
            if not arr.f[i] & SHADOW:
                arr.f[i] |= SHADOW
                arr.counts[1] += 1
            arr.view[o : o + LINE] = cpu

    def overlay(self, address: int, data: bytes) -> bytes:
        """What a bus master reads at ``address``: memory, not the CPU's dirty lines."""
        arr = self._array(address)
        if arr is None or not arr.counts[1]:
            return data
        first, end = arr.line_range(address, len(data))
        stale = np.flatnonzero(arr.flags[first:end] & SHADOW)
        if stale.size == 0:
            return data
        out = bytearray(data)
        for i in (stale + first).tolist():
            line = arr.base + i * LINE
            lo, hi = max(line, address), min(line + LINE, address + len(data))
            out[lo - address : hi - address] = arr.shadow[lo - arr.base : hi - arr.base].tobytes()
        return bytes(out)

    # ------------------------------------------------------------------ maintenance
    def operation(self, offset: int, value: int) -> None:
        """A write to a D-cache maintenance register (SCB_EXT offset ``offset``)."""
        if offset in (DCISW, DCCSW, DCCISW):
            lines = self._set_lines((value >> 5) & (SETS - 1))
        else:
            arr = self._array(value & MASK)
            lines = [(arr, arr.index(value & MASK))] if arr is not None else []
        clean = offset in (DCCMVAU, DCCMVAC, DCCSW, DCCIMVAC, DCCISW)
        invalidate = offset in (DCIMVAC, DCISW, DCCIMVAC, DCCISW)
        for arr, i in lines:
            if clean and arr.f[i] & DIRTY:  # memory = the CPU's line
                if arr.f[i] & SHADOW:
                    arr.counts[1] -= 1
                arr.f[i] &= ~(DIRTY | SHADOW)
                self._removed += 1
            if invalidate:
                self._invalidate(arr, i)

    def _set_lines(self, index: int) -> list[tuple[LineArray, int]]:
        """Tracked lines of set ``index``; the index by set is rebuilt only when the tracked
        lines changed (a CMSIS set/way loop makes 512 calls in a row)."""
        key = (*(c for a in self.arrays for c in a.counts), self._removed)
        if self._by_set_key != key:
            by_set: dict[int, list[tuple[LineArray, int]]] = {}
            for arr in self.arrays:
                for i in np.flatnonzero(arr.flags).tolist():
                    by_set.setdefault(((arr.base >> 5) + i) & (SETS - 1), []).append((arr, i))
            self._by_set, self._by_set_key = by_set, key
        return list(self._by_set.get(index, ()))

    def _invalidate(self, arr: LineArray, i: int) -> None:
        flags = arr.f[i]
        if not flags:
            return
        if flags & SHADOW:
            self._restore(arr, i)
            arr.counts[1] -= 1
        if flags & HELD:
            arr.counts[0] -= 1
        arr.f[i] = 0
        self._removed += 1

    def _restore(self, arr: LineArray, i: int) -> None:
        """Memory's copy back in the view (the line is forgotten by the caller)."""
        o = i * LINE
        arr.view[o : o + LINE] = arr.shadow[o : o + LINE]
        self._code_changed(arr.base + o, LINE)

    def snapshot(self) -> dict[str, object]:
        return {
            "enabled": self.enabled,
            "held": sum(int(np.count_nonzero(a.flags & HELD)) for a in self.arrays),
            "dirty": sum(int(np.count_nonzero(a.flags & DIRTY)) for a in self.arrays),
            "stale": sum(int(np.count_nonzero(a.flags & SHADOW)) for a in self.arrays),
            "hooks": "C" if self.native is not None else "Python",
        }
