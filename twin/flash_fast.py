"""FLASH_SR and FLASH_CR's plain accesses answered in C (twin/flash_fast.c).

A flash algorithm (pyOCD's, ST's HAL) touches these two registers six times around every
programmed word; through the bus's Python callbacks that was ~6 us of host time a word,
1.6 ms of each 1 KiB page of a pyOCD download (issue 18: a 512 KiB download had 0.85 s of
it). :class:`FlashFast` maps C functions in front of the FLASH register page: a 32-bit read
of SR while BSY is clear, a 32-bit read of CR, and a 32-bit write of CR that neither locks
it, nor starts an erase, nor changes the interrupt enables are answered in place, on the
controller's own registers (:class:`twin.flash_regs.FlashRegs`). Every other access, every
access while the MPU restricts some access to the page (the protection model must be asked;
CubeMX's background region leaves the peripherals alone, so C still answers) or while a raw
store waits for its fix-up (twin/stores.py), and every access to the page's other devices
(RCC, CRC) go to the bus's Python callbacks as before. The stores into the array still go
to the flash model.

Where no C compiler works the machine has no FlashFast and the bus answers everything.

Owns: the C struct. Must not touch: the controller's state beyond SR and CR's plain
accesses (the C's rules), the page's other devices, the MPU.
"""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

import unicorn as uc_mod
from unicorn.unicorn_py3.unicorn import uclib

from twin import memory as mm
from twin import native

if TYPE_CHECKING:
    from twin.bus import Bus
    from twin.flash import FlashController
    from twin.protection import Protection
    from twin.slice import Slice
    from twin.stores import Stores

_SR, _CR = 0x0C, 0x10


class _Struct(ctypes.Structure):
    """twin/flash_fast.c ``struct flash_fast``."""

    _fields_ = (
        ("regs", ctypes.c_void_p),  # twin.flash.FlashRegs
        ("restricted", ctypes.POINTER(ctypes.c_uint32)),
        ("fixups", ctypes.POINTER(ctypes.c_uint32)),
        ("ticks", ctypes.POINTER(ctypes.c_uint64)),
        ("sr_offset", ctypes.c_uint32),
        ("cr_offset", ctypes.c_uint32),
        ("off", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("served", ctypes.c_uint64),
        ("py_read", ctypes.c_void_p),
        ("py_read_ud", ctypes.c_void_p),
        ("py_write", ctypes.c_void_p),
        ("py_write_ud", ctypes.c_void_p),
    )


class FlashFast:
    """The C answering ``flash``'s SR and CR on the bus (see the module's text).

    Args:
        bus: the bus that mapped the controller's page.
        flash: the flash controller (its registers are answered in place).
        protection: its flag for the page (the MPU restricts an access there) sends every
            access to Python while set.
        stores: so does its fix-up list while it holds any.
        slice_: its ``c_ticks`` counts the accesses answered in C.
    """

    def __init__(
        self, bus: Bus, flash: FlashController, protection: Protection, stores: Stores, slice_: Slice
    ) -> None:
        lib = native.library()
        page = flash.base & ~(mm.PAGE - 1)
        # what the struct points at must outlive it
        restricted = protection.restricted_flag(page)
        self._keep = (flash.regs, restricted, stores.fixups, slice_.c_ticks)
        st = self._st = _Struct()
        st.regs = ctypes.addressof(flash.regs)
        st.restricted = ctypes.pointer(restricted)
        st.fixups = ctypes.pointer(stores.fixups.flag)
        st.ticks = ctypes.pointer(slice_.c_ticks)
        st.sr_offset = flash.base - page + _SR
        st.cr_offset = flash.base - page + _CR
        # C in front of the bus's own callbacks for the page, which it calls for the rest
        py_read, py_write = bus.page_callbacks(page)
        st.py_read = ctypes.cast(py_read, ctypes.c_void_p)
        st.py_write = ctypes.cast(py_write, ctypes.c_void_p)
        handle, ud = bus.uc._uch, ctypes.c_void_p(ctypes.addressof(st))
        status = uclib.uc_mem_unmap(handle, page, mm.PAGE)
        if status == uc_mod.UC_ERR_OK:
            status = uclib.uc_mmio_map(handle, page, mm.PAGE, lib.ff_read, ud, lib.ff_write, ud)
        if status != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(status)

    @property
    def served(self) -> int:
        """Accesses the C has answered so far."""
        return int(self._st.served)

    @property
    def enabled(self) -> bool:
        """False: every access goes to the bus's Python callbacks (tests compare both)."""
        return not self._st.off

    @enabled.setter
    def enabled(self, on: bool) -> None:
        self._st.off = 0 if on else 1
