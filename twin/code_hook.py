"""The twin's one code hook over every instruction: it counts a slice's instructions and
checks the UsageFault sites (twin/usage_checks.py), in C (twin/code_hook.c, built by
twin/native.py).

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
from unicorn.arm_const import UC_ARM_REG_R0
from unicorn.unicorn_py3.unicorn import uclib

from twin import native

_CODE_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
_FAULT_CFUNC = ctypes.CFUNCTYPE(None, ctypes.c_uint64, ctypes.c_int, ctypes.c_int, ctypes.c_uint32)
MAX_REGIONS = 8


class CRegion(ctypes.Structure):
    """``struct ch_region`` of twin/code_hook.c."""

    _fields_ = [("base", ctypes.c_uint64), ("size", ctypes.c_uint64), ("codes", ctypes.c_void_p)]


class CHook(ctypes.Structure):
    """``struct code_hook`` of twin/code_hook.c."""

    _fields_ = [
        ("region", CRegion * MAX_REGIONS),
        ("n", ctypes.c_int32),
        ("r0_id", ctypes.c_int32),
        ("on_fault", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("emu_stop", ctypes.c_void_p),
        ("counter", ctypes.c_uint64),
        ("budget", ctypes.c_uint64),
    ]


Table = tuple[int, int, np.ndarray]  # base, size in bytes, a byte per halfword


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
        self._watched: set[int] = set()
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
        c.n, c.r0_id = len(self._tables), UC_ARM_REG_R0
        c.on_fault = ctypes.cast(self._fault_cb, ctypes.c_void_p).value
        c.reg_read = ctypes.cast(uclib.uc_reg_read, ctypes.c_void_p).value
        c.emu_stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
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
        self._c.counter = 0
        self._c.budget = count
        return 0

    # ------------------------------------------------------------------ sites without C
    def watch(self, address: int) -> None:
        """A new site (called by twin/usage_checks.py): without the C hook it needs a Python
        hook of its own; with it, nothing (the tables are read in C)."""
        if self.native or address in self._watched or getattr(self.uc, "_uch", None) is None:
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
        if not code:
            return
        kind, r = code >> 4, code & 0xF
        value = int(self.uc.reg_read(UC_ARM_REG_R0 + r))
        if (kind == 1 and value & 3) or (kind == 2 and value == 0):
            self._on_fault(address, kind, r, value)
