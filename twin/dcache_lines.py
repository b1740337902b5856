"""The D-cache model's line state for one memory array, and its memory hooks in Python.

One :class:`LineArray` per memory the D-cache can hold (SRAM, flash): a flag byte per 32-byte
line (``HELD``: the CPU read or allocated it since its last invalidation; ``DIRTY``: it wrote
it, write-back; ``SHADOW``: memory's copy differs from the CPU's and is kept in ``shadow`` at
the line's offset) and two counters (lines made held, lines given a shadow, by the hooks).
The view is unicorn's memory for that range, i.e. the CPU's view.

The hooks (a load; a store under each write policy) exist twice with the same behaviour: in C
(twin/dcache_hooks.c, loaded by twin/dcache_native.py: the default) and here (used where no
C compiler works, and by the tests to check that both agree). Unicorn calls a store hook
before the store: the line as it was is memory's copy.

Both also zero the IT state unicorn 2.1.4 restores before a memory hook (twin/itstate.py).

Owns: the arrays and the Python hooks. Must not touch: unicorn beyond EPSR's IT bits,
maintenance, other masters (twin/dcache.py).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np

from twin.itstate import itstate_fix

LINE = 32
HELD, DIRTY, SHADOW = 1, 2, 4


class CArray(ctypes.Structure):
    """``struct dc_array`` of twin/dcache_hooks.c."""

    _fields_ = [
        ("base", ctypes.c_uint64),
        ("size", ctypes.c_uint64),
        ("view", ctypes.c_void_p),
        ("flags", ctypes.c_void_p),
        ("shadow", ctypes.c_void_p),
        ("counts", ctypes.c_void_p),
    ]


class LineArray:
    """Line flags, memory copies and counters of ``[base, base + size)`` (see the module doc)."""

    def __init__(self, base: int, size: int, view_buffer) -> None:
        self.base, self.size = base, size
        self._view_c = (ctypes.c_uint8 * size).from_buffer(view_buffer)
        self._flags_c = (ctypes.c_uint8 * (size // LINE))()
        self._shadow_c = (ctypes.c_uint8 * size)()
        self.counts = (ctypes.c_uint64 * 2)()
        self.view = np.frombuffer(self._view_c, np.uint8)
        self.flags = np.frombuffer(self._flags_c, np.uint8)
        self.shadow = np.frombuffer(self._shadow_c, np.uint8)
        self.c = CArray(
            base,
            size,
            ctypes.addressof(self._view_c),
            ctypes.addressof(self._flags_c),
            ctypes.addressof(self._shadow_c),
            ctypes.addressof(self.counts),
        )
        self.f = self._flags_c  # item access without numpy scalars (the Python hooks)

    def contains(self, address: int) -> bool:
        return self.base <= address < self.base + self.size

    def index(self, address: int) -> int:
        return (address - self.base) // LINE

    def line_range(self, address: int, length: int) -> tuple[int, int]:
        """Line indexes [first, last + 1) of ``[address, +length)`` clipped to this array."""
        lo = max(address, self.base)
        hi = min(address + max(length, 1), self.base + self.size)
        if lo >= hi:
            return 0, 0
        return self.index(lo), self.index(hi - 1) + 1

    # -------------------------------------------------------------- the state, by line
    def hold(self, i: int) -> None:
        if not self.f[i] & HELD:
            self.f[i] |= HELD
            self.counts[0] += 1

    def make_dirty(self, i: int) -> None:
        self.f[i] |= DIRTY
        if not self.f[i] & SHADOW:  # memory keeps the line before the write
            o = i * LINE
            self.shadow[o : o + LINE] = self.view[o : o + LINE]
            self.f[i] |= SHADOW
            self.counts[1] += 1

    def write_memory_copy(self, address: int, data: bytes) -> None:
        """Memory gets ``data`` where it keeps a copy apart from the CPU's (write-through)."""
        first, end = self.line_range(address, len(data))
        for i in range(first, end):
            if not self.f[i] & SHADOW:
                continue
            line = self.base + i * LINE
            lo, hi = max(line, address), min(line + LINE, address + len(data))
            o = lo - self.base
            self.shadow[o : o + hi - lo] = np.frombuffer(data[lo - address : hi - address], np.uint8)

    # -------------------------------------------------------------- the Python hooks
    def hooks(self) -> dict[str, Callable[..., None]]:
        """Unicorn memory-hook callbacks (read and one per write policy) for this array. They
        are installed on ranges inside the array; an access running past its end (unmapped
        there anyway) is ignored."""
        base, n = self.base, self.size // LINE
        hold, make_dirty, f = self.hold, self.make_dirty, self.f

        def read(uc, access, address, size, value, _ud) -> None:
            itstate_fix(uc)
            i, j = (address - base) >> 5, (address + size - 1 - base) >> 5
            if j < n:
                if not f[i] & HELD:
                    hold(i)
                if j != i and not f[j] & HELD:
                    hold(j)

        def write_back(uc, access, address, size, value, _ud) -> None:
            itstate_fix(uc)
            i, j = (address - base) >> 5, (address + size - 1 - base) >> 5
            if j < n:
                if f[i] & (HELD | DIRTY) == HELD:
                    make_dirty(i)
                if j != i and f[j] & (HELD | DIRTY) == HELD:
                    make_dirty(j)

        def write_allocate(uc, access, address, size, value, _ud) -> None:
            itstate_fix(uc)
            i, j = (address - base) >> 5, (address + size - 1 - base) >> 5
            if j < n:
                if not f[i] & DIRTY:
                    hold(i)
                    make_dirty(i)
                if j != i and not f[j] & DIRTY:
                    hold(j)
                    make_dirty(j)

        def write_through(uc, access, address, size, value, _ud) -> None:
            itstate_fix(uc)
            if 0 < size <= 8 and (address + size - 1 - base) >> 5 < n:
                data = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
                self.write_memory_copy(address, data)

        return {
            "dc_read": read,
            "dc_write_back": write_back,
            "dc_write_allocate": write_allocate,
            "dc_write_through": write_through,
        }
