"""The twin's one code hook over every instruction: it counts a slice's instructions and
checks the UsageFault sites (twin/usage_checks.py), in C (twin/code_hook.c, built by
twin/native.py).

The count is exact: the runner charges a slice's retired instructions to virtual time and
devices see the time inside a slice from it (:meth:`CodeHook.counter_view`, twin/slice.py).

Why one hook that counts: unicorn counts ``emu_start(count=N)`` with a code hook of its own
over all addresses, and while one exists it walks its whole list of code hooks for every
instruction. A hook per site made every instruction pay for all of them (46 sites in the
reference bootloader: its Ethernet 3x slower), a second hook over all code ~20 %. This
hook takes over the counting (it stops the slice before instruction ``budget + 1``, as
unicorn's does) so a slice costs what it did; the runner starts slices with
:meth:`CodeHook.arm`'s count (0: this hook counts).

Where no C compiler works: unicorn counts, and each site gets a Python hook of its own
(:meth:`CodeHook.watch`; correct, and the more sites the slower).

Owns: the hook, its C struct, the slice's budget. Must not touch: the site tables' contents
(twin/usage_checks.py), the slice's record.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import numpy as np
import unicorn as uc_mod
from unicorn.arm_const import UC_ARM_REG_LR, UC_ARM_REG_PC, UC_ARM_REG_R0, UC_ARM_REG_SP
from unicorn.unicorn_py3.unicorn import uclib

from twin import native

_CODE_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
_FAULT_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_int, ctypes.c_int, ctypes.c_uint32)
_UNMASK_CFUNC = ctypes.CFUNCTYPE(ctypes.c_int)
MAX_REGIONS = 8
_NO_ADDRESS = 0xFFFFFFFFFFFFFFFF
#: unicorn's register ids of r0..r15 (r13..r15 are not after r12)
REG_IDS = (*range(UC_ARM_REG_R0, UC_ARM_REG_R0 + 13), UC_ARM_REG_SP, UC_ARM_REG_LR, UC_ARM_REG_PC)
ALIGN, DIV, LDST = 1, 2, 3  # the entries' kinds (twin/usage_checks.py)


class CRegion(ctypes.Structure):
    """``struct ch_region`` of twin/code_hook.c."""

    _fields_ = [("base", ctypes.c_uint64), ("size", ctypes.c_uint64), ("codes", ctypes.c_void_p)]


class CHook(ctypes.Structure):
    """``struct code_hook`` of twin/code_hook.c."""

    _fields_ = [
        ("region", CRegion * MAX_REGIONS),
        ("n", ctypes.c_int32),
        ("reg_id", ctypes.c_int32 * 16),
        ("unalign_trp", ctypes.c_int32),
        ("n_dev", ctypes.c_int32),
        ("dev_lo", ctypes.c_uint32 * 8),
        ("dev_hi", ctypes.c_uint32 * 8),
        ("on_fault", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("emu_stop", ctypes.c_void_p),
        ("counter", ctypes.c_uint64),
        ("budget", ctypes.c_uint64),
        ("last", ctypes.c_uint64),
        ("mem_read", ctypes.c_void_p),
        ("unmask", ctypes.c_void_p),
        ("watch", ctypes.c_int32),
        ("seen", ctypes.c_int32),
        ("unmasked", ctypes.c_int32),
    ]


Table = tuple[int, int, np.ndarray]  # base, size in bytes, a uint32 entry per halfword


def check(code: int, address: int, reg: Callable[[int], int]) -> int | None:
    """What twin/code_hook.c checks, for the hooks without C: the value that makes the
    site's instruction fault (the base, the divisor, or the unaligned address), or None.
    ``reg(n)`` reads register n; a load/store entry is checked as if the trap bit were set."""
    kind, rn = code >> 4 & 0xF, code & 0xF
    if kind != LDST:
        v = reg(rn)
        return v if (kind == ALIGN and v & 3) or (kind == DIV and v == 0) else None
    a = (address + 4) & ~3 if rn == 15 else reg(rn)
    if code & (1 << 16):
        rm = code >> 9 & 0xF
        off = code >> 20 if rm == 15 else reg(rm) << (code >> 13 & 3)
        a = (a + off if code & (1 << 15) else a - off) & 0xFFFFFFFF
    return a if a & (3 if code & 0x100 else 1) else None


class CodeHook:
    """The hook over all code.

    Args:
        uc: the engine (an engine double gets no hook).
        tables: per memory region, its site table (kept alive and read by the C hook).
        on_fault: ``(address, kind, register, value)`` when a site may fault.
        log: the twin's log (says once when the C hook is unavailable).
    """

    def __init__(
        self,
        uc,
        tables: list[Table],
        on_fault: Callable[[int, int, int, int], None],
        log: Callable[[str], None],
    ) -> None:
        assert len(tables) <= MAX_REGIONS
        self.uc = uc
        self._tables = tables
        self._on_fault = on_fault
        self._fault_cb = _FAULT_CFUNC(on_fault)
        self._py_cb = _CODE_CFUNC(self._py_site)
        self._unmask_cb: object = None  # the C hook's question (watch_unmasking)
        self._watched: set[int] = set()
        self.trap = False  # CCR.UNALIGN_TRP: load/store entries are checked
        self.devices: list[tuple[int, int]] = []  # Device memory: checked whatever the bit
        self._c = CHook()
        self.native = self._install(log)

    def _install(self, log: Callable[[str], None]) -> bool:
        if getattr(self.uc, "_uch", None) is None:
            return False
        try:
            lib = native.library()
        except native.NativeUnavailable as e:
            log(f"code hook: C unavailable ({e}); unicorn counts, Python hooks per UsageFault site (slower)")
            return False
        c = self._c
        for k, (base, size, codes) in enumerate(self._tables):
            c.region[k] = CRegion(base, size, codes.ctypes.data)
        c.n = len(self._tables)
        c.reg_id[:] = REG_IDS
        c.on_fault = ctypes.cast(self._fault_cb, ctypes.c_void_p).value
        c.reg_read = ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value
        c.emu_stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
        c.mem_read = ctypes.cast(uclib.uc_mem_read, ctypes.c_void_p).value
        self._add(ctypes.cast(lib.ch_code, ctypes.c_void_p), ctypes.pointer(c), 1, 0)  # every address
        return True

    def _add(self, cb: ctypes.c_void_p, user_data: object, lo: int, hi: int) -> None:
        handle = ctypes.c_size_t()
        err = uclib.uc_hook_add(
            self.uc._uch, ctypes.byref(handle), uc_mod.UC_HOOK_CODE, cb,
            ctypes.cast(user_data, ctypes.c_void_p) if user_data is not None else None,
            ctypes.c_uint64(lo), ctypes.c_uint64(hi),
        )  # fmt: skip
        if err != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(err)

    # ------------------------------------------------------------------ slices
    def arm(self, count: int) -> int:
        """Before ``emu_start``: the count to pass it (0 when this hook counts)."""
        if not self.native:
            return count
        c = self._c
        c.counter = 0
        c.budget = count
        c.last = _NO_ADDRESS
        return 0

    def retired(self, pc: int) -> int | None:
        """After ``emu_start``, ``pc`` the core's PC: how many instructions of the slice
        retired (None without C: unicorn's count is not readable). The latest one begun did
        not when PC is still on it: a hook stopped it before it completed (unicorn runs it
        again), or it was the one past the budget. (A branch to itself that retired last is
        one short.)"""
        if not self.native:
            return None
        c = self._c
        n = c.counter
        return n - 1 if n and c.last == pc else n

    def watch_unmasking(self, can_take: Callable[[], bool]) -> None:
        """Give the C hook the question it asks after a CPSIE or an MSR in a watched slice
        (twin/unmask.py): can an exception be taken now?"""
        self._unmask_cb = _UNMASK_CFUNC(lambda: int(bool(can_take())))
        self._c.unmask = ctypes.cast(self._unmask_cb, ctypes.c_void_p).value

    def set_watch(self, on: bool) -> bool:
        """Start (True) or end (False) a slice watched for unmasking; ending it returns
        whether the slice stopped because an unmasking let an exception in."""
        c = self._c
        unmasked = bool(c.unmasked)
        c.watch, c.seen, c.unmasked = int(on), 0, 0
        return unmasked

    def last_was_t16(self, pc: int) -> bool:
        """After ``emu_start``: the latest instruction begun started 2 bytes before ``pc``
        (so it may have been a 16-bit WFI). True without C."""
        return not self.native or self._c.last + 2 == pc

    def counter_view(self) -> ctypes.c_uint64:
        """The C struct's count of the instructions begun in this slice, as a ctypes view
        (read by twin/slice.py ``Slice.offset`` inside hooks; cheaper than a method)."""
        return ctypes.c_uint64.from_buffer(self._c, CHook.counter.offset)

    # ------------------------------------------------------------------ sites without C
    def set_trap(self, on: bool, devices: list[tuple[int, int]] | None = None) -> bool:
        """CCR.UNALIGN_TRP changed (``devices``: the Device memory spans changed, see
        twin/device_memory.py): load/store entries are checked while it is set, and at
        addresses in those spans always. Without C, their sites get Python hooks when a
        check begins; returns whether any hook was added (then translated code must go:
        unicorn hooks only code it translates later)."""
        before = self.trap or bool(self.devices)
        self.trap = on
        if devices is not None:
            self.devices = devices
        if self.native:
            c = self._c
            c.unalign_trp = int(on)
            c.n_dev = len(self.devices)
            for k, (lo, hi) in enumerate(self.devices):
                c.dev_lo[k], c.dev_hi[k] = lo, min(hi, 0xFFFFFFFF)
            return False
        added = len(self._watched)
        if not before and (self.trap or self.devices):
            for base, _size, codes in self._tables:
                for i in np.flatnonzero((codes >> 4) & 0xF == LDST).tolist():
                    self.watch(base + 2 * i, LDST)
        return len(self._watched) > added

    def watch(self, address: int, kind: int) -> None:
        """A new site of ``kind`` (called by twin/usage_checks.py): without the C hook it
        needs a Python hook of its own (a load/store only while the trap bit is set); with
        it, nothing (the tables are read in C)."""
        if self.native or address in self._watched or getattr(self.uc, "_uch", None) is None:
            return
        if kind == LDST and not (self.trap or self.devices):
            return
        self._watched.add(address)
        self._add(ctypes.cast(self._py_cb, ctypes.c_void_p), None, address, address)

    def _py_site(self, _handle, address: int, _size: int, _ud) -> None:
        for base, size, codes in self._tables:
            if base <= address < base + size:
                code = int(codes[(address - base) >> 1])
                break
        else:
            return
        ldst = code >> 4 & 0xF == LDST
        if not code or (ldst and not (self.trap or self.devices)):
            return
        value = check(code, address, lambda n: int(self.uc.reg_read(REG_IDS[n])))
        if ldst and value is not None and not self.trap:
            value = value if any(lo <= value < hi for lo, hi in self.devices) else None
        if value is not None:
            self._on_fault(address, code >> 4 & 0xF, code & 0xF, value)
