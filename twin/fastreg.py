"""Core register reads straight through libunicorn's C API, for the hot paths.

The Python binding's ``Uc.reg_read`` picks a register class and builds a ctypes object on
every call (~5 µs); the runner reads PC and xPSR on every slice and the bus reads CONTROL on
every PPB access (DWT_CYCCNT, SysTick polled in a loop). :func:`reg_reader` gives a callable
doing the same read with one C call into a preallocated buffer. Only plain 32-bit core
registers (not coprocessor or Q registers, which need the binding's classes).

:func:`reg_writer` is the same for writes (exception entry and return write eight or more
registers). Owns: nothing but the buffers. Must not touch: anything else of the engine.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from unicorn.unicorn_py3.unicorn import uclib


class _Reader:
    __slots__ = ("_buf", "_fn", "_handle", "_ref", "_uc")

    def __init__(self, uc) -> None:
        self._uc = uc
        self._fn = uclib.uc_reg_read
        self._handle = uc._uch
        self._buf = ctypes.c_uint64(0)
        self._ref = ctypes.byref(self._buf)

    def __call__(self, reg_id: int) -> int:
        if self._fn(self._handle, reg_id, self._ref):  # an error: let the binding raise it
            return self._uc.reg_read(reg_id)
        return self._buf.value & 0xFFFFFFFF


class _Writer:
    __slots__ = ("_buf", "_fn", "_handle", "_ref", "_uc")

    def __init__(self, uc) -> None:
        self._uc = uc
        self._fn = uclib.uc_reg_write
        self._handle = uc._uch
        self._buf = ctypes.c_uint64(0)
        self._ref = ctypes.byref(self._buf)

    def __call__(self, reg_id: int, value: int) -> None:
        self._buf.value = value & 0xFFFFFFFF
        if self._fn(self._handle, reg_id, self._ref):  # an error: let the binding raise it
            self._uc.reg_write(reg_id, value & 0xFFFFFFFF)


def reg_writer(uc) -> Callable[[int, int], None]:
    """A fast ``reg_write`` of a plain 32-bit core register for ``uc`` (one C call; the
    binding builds a register object on every call, ~4 us). Kept on the engine."""
    if not hasattr(uc, "_uch"):  # a test double: its own reg_write
        return uc.reg_write
    writer = getattr(uc, "_twin_reg_writer", None)
    if writer is None or writer._uc is not uc:
        writer = _Writer(uc)
        try:
            uc._twin_reg_writer = writer
        except AttributeError:
            pass
    return writer


def reg_reader(uc) -> Callable[[int], int]:
    """A fast ``reg_read`` for ``uc`` (one per engine, kept on it)."""
    if not hasattr(uc, "_uch"):  # not a unicorn engine (a test double): its own reg_read
        return uc.reg_read
    reader = getattr(uc, "_twin_reg_reader", None)
    if reader is None or reader._uc is not uc:
        reader = _Reader(uc)
        try:
            uc._twin_reg_reader = reader
        except AttributeError:  # an engine double without attributes: no cache
            pass
    return reader


class _Batch:
    """Several 32-bit core registers read or written with one C call each way."""

    __slots__ = ("_handle", "_ids", "_n", "_ptrs", "_read", "_uc", "_vals", "_write")

    def __init__(self, uc, reg_ids: tuple[int, ...]) -> None:
        n = len(reg_ids)
        self._uc, self._n, self._handle = uc, n, uc._uch
        self._ids = (ctypes.c_int * n)(*reg_ids)
        self._vals = (ctypes.c_uint64 * n)()
        base = ctypes.addressof(self._vals)
        self._ptrs = (ctypes.c_void_p * n)(*[base + 8 * i for i in range(n)])
        self._read, self._write = uclib.uc_reg_read_batch, uclib.uc_reg_write_batch

    def read(self) -> list[int]:
        if self._read(self._handle, self._ids, self._ptrs, self._n):  # an error: the binding raises it
            return [self._uc.reg_read(r) & 0xFFFFFFFF for r in self._ids]
        return [v & 0xFFFFFFFF for v in self._vals]

    def write(self, values: list[int] | tuple[int, ...]) -> None:
        vals = self._vals
        for i, v in enumerate(values):
            vals[i] = v & 0xFFFFFFFF
        if self._write(self._handle, self._ids, self._ptrs, self._n):
            for r, v in zip(self._ids, values, strict=True):
                self._uc.reg_write(r, v & 0xFFFFFFFF)


class _DoubleBatch:
    """:class:`_Batch` for an engine double: one binding call per register."""

    def __init__(self, uc, reg_ids: tuple[int, ...]) -> None:
        self._uc, self._ids = uc, reg_ids

    def read(self) -> list[int]:
        return [self._uc.reg_read(r) & 0xFFFFFFFF for r in self._ids]

    def write(self, values: list[int] | tuple[int, ...]) -> None:
        for r, v in zip(self._ids, values, strict=True):
            self._uc.reg_write(r, v & 0xFFFFFFFF)


#: what :func:`reg_batch` gives: ``read()`` and ``write(values)``
RegBatch = _Batch | _DoubleBatch


def reg_batch(uc, reg_ids: tuple[int, ...]) -> RegBatch:
    """Read/write the plain 32-bit core registers ``reg_ids`` together (exception entry
    and return move nine at a time; each binding call is ~1 us of ctypes)."""
    return _Batch(uc, reg_ids) if hasattr(uc, "_uch") else _DoubleBatch(uc, reg_ids)
