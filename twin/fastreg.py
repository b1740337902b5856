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
