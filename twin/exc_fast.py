"""Exception entry and return of the plain case in one C call (twin/exc_fast.c).

The Python model (twin/exc_entry.py) still decides which exception is taken and whether a
return is legal; :class:`ExcFast` does the mechanical part (read the registers, stack or
unstack a basic frame, fetch the vector, write the registers) when nothing unusual is in
the way: no flash fix-up pending, a basic frame inside one memory region, a vector with
the Thumb bit, a stacked xPSR that agrees with EXC_RETURN. With the MPU or the D-cache on,
the C first says where the frame is and at which privilege: the MPU is asked as the long
way asks it, the D-cache model takes the lines as for a store (``DCache.cpu_write``), then
the C stacks or unstacks. Otherwise it answers False having changed nothing, and the model
goes the long way (which also raises every fault). An interrupt's entry and return cost ~22 us of host time in
Python (issue 18; bench_periph.py's last line), ~7.5 us with this.

Where no C compiler works the machine has no ExcFast and the model always goes the long way.

Owns: the C struct (register ids, the memory regions' buffers). Must not touch: the
exception model's state (pending, active, priorities), the MPU, the D-cache's lines (its
model's own ``cpu_write`` does that).
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable

import unicorn.arm_const as A
from unicorn.unicorn_py3.unicorn import uclib

from twin import memory as mm
from twin import native
from twin.dcache import DCache
from twin.stores import Stores

EF_REGIONS = 12
#: the C enum's order: R0, R1, R2, R3, R12, LR, PC, SP, XPSR, CONTROL, PSP, FAULTMASK
_IDS = (
    A.UC_ARM_REG_R0,
    A.UC_ARM_REG_R1,
    A.UC_ARM_REG_R2,
    A.UC_ARM_REG_R3,
    A.UC_ARM_REG_R12,
    A.UC_ARM_REG_LR,
    A.UC_ARM_REG_PC,
    A.UC_ARM_REG_SP,
    A.UC_ARM_REG_XPSR,
    A.UC_ARM_REG_CONTROL,
    A.UC_ARM_REG_PSP,
    A.UC_ARM_REG_FAULTMASK,
)


#: a memory range for :class:`ExcFast`: base, size, its ctypes buffer, stacking allowed
Region = tuple[int, int, ctypes.Array, bool]


def machine_regions(memory: mm.MemoryMap) -> list[Region]:
    """The machine's regions; the backup SRAM's stores have gates (its clock, PWR DBP):
    stacking there goes the long way."""
    return [(r.base, r.size, r.buf, r.writable and r is not memory.bkpsram) for r in memory.regions]


#: the MPU's answer for exception stacking: (address, length, write, privileged) -> allowed
Allows = Callable[[int, int, bool, bool], bool]


class _Region(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("ptr", ctypes.c_void_p),
        ("writable", ctypes.c_int32),
    ]


class _ExcFast(ctypes.Structure):
    """``struct exc_fast`` of twin/exc_fast.c."""

    _fields_ = [
        ("read_batch", ctypes.c_void_p),
        ("write_batch", ctypes.c_void_p),
        ("id", ctypes.c_int32 * len(_IDS)),
        ("n", ctypes.c_int32),
        ("region", _Region * EF_REGIONS),
        ("frame_ptr", ctypes.c_uint32),
        ("frame", ctypes.c_uint32 * 8),
        ("priv", ctypes.c_int32),
    ]


class ExcFast:
    """The C entry and return for one engine.

    Args:
        uc: the unicorn engine.
        regions: (base, size, buffer, writable) of the memory unicorn maps from these
            ctypes buffers (mem_map_ptr: what the CPU sees); stacking only into a writable one.
        stores: the machine's store handling (twin/stores.py): the stacked range is marked
            dirty there (translated code in it is dropped); with flash fix-ups pending the
            long way (the model's reads apply them first).
        dcache: the D-cache model: while it is on, the stacked lines go through it first.
    """

    def __init__(self, uc, regions: list[Region], stores: Stores, dcache: DCache | None) -> None:
        lib = native.library()  # NativeUnavailable: the machine does without
        self._uc = uc
        self._stores = stores
        self._dcache = dcache
        c = self._c = _ExcFast()
        c.read_batch = ctypes.cast(uclib.uc_reg_read_batch, ctypes.c_void_p).value
        c.write_batch = ctypes.cast(uclib.uc_reg_write_batch, ctypes.c_void_p).value
        c.id[:] = _IDS
        assert len(regions) <= EF_REGIONS
        self._buffers = [buf for _, _, buf, _ in regions]  # kept alive with the struct
        for i, (base, size, buf, writable) in enumerate(regions):
            c.region[i] = _Region(base, size, ctypes.addressof(buf), int(writable))
        c.n = len(regions)
        self._ref = ctypes.byref(c)
        u32, i32, ptr = ctypes.c_uint32, ctypes.c_int32, ctypes.c_void_p
        self._enter = lib.ef_enter  # (uc, struct, exc, vtor, ccr, plan)
        self._enter.argtypes = [ptr, ptr, u32, u32, u32, i32]
        self._return = lib.ef_return  # (uc, struct, EXC_RETURN, ipsr, nonbase_ok, clear_fm, plan)
        self._return.argtypes = [ptr, ptr, u32, u32, i32, i32, i32]

    def enter(self, exc: int, vtor: int, ccr: int, allows: Allows | None = None) -> bool:
        """Stack a basic frame and enter ``exc``'s handler; False: not the plain case (nothing
        changed: take the long way). ``allows``: the MPU is on; asked, as the long way asks
        it, whether the frame may be written."""
        if self._stores.fixups:
            return False
        uch, ref, c, dc = self._uc._uch, self._ref, self._c, self._dcache
        cached = dc is not None and dc.enabled
        if cached or allows is not None:  # what would be stacked, where, first
            if self._enter(uch, ref, exc, vtor, ccr, 1) != 3:
                return False
            if allows is not None and not allows(c.frame_ptr, 0x20, True, bool(c.priv)):
                return False
            if cached:  # the lines go through the cache first, as a store's
                dc.cpu_write(c.frame_ptr, struct.pack("<8I", *c.frame))
        rc = self._enter(uch, ref, exc, vtor, ccr, 0)
        if rc == 0:
            self._stores.mark_dirty(c.frame_ptr, 0x20)
            return True
        if rc < 0:
            raise RuntimeError("unicorn refused the exception entry's register write")
        return False

    def exception_return(
        self, value: int, ipsr: int, nonbase_ok: bool, clear_fm: bool, allows: Allows | None = None
    ) -> bool:
        """Return from ``ipsr`` (the innermost active exception) to EXC_RETURN ``value``;
        False: not the plain case (nothing changed: take the long way). ``allows``: the MPU
        is on; asked whether the frame may be read."""
        if self._stores.fixups:
            return False
        uch, ref, c = self._uc._uch, self._ref, self._c
        value &= 0xFFFFFFFF
        if allows is not None:
            if self._return(uch, ref, value, ipsr, nonbase_ok, clear_fm, 1) != 3:
                return False
            if not allows(c.frame_ptr, 0x20, False, bool(c.priv)):
                return False
        rc = self._return(uch, ref, value, ipsr, nonbase_ok, clear_fm, 0)
        if rc < 0:
            raise RuntimeError("unicorn refused the exception return's register write")
        return rc == 0
