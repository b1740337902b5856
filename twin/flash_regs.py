"""Where FLASH_SR and FLASH_CR live: a C-layout struct, so that a native fast path
(twin/flash_fast.py) answers their plain accesses in place and there is one copy of each.

Owns: the struct's layout (twin/flash_fast.c ``struct flash_regs`` has the same). Must not
touch: what the registers mean (twin/flash.py).
"""

from __future__ import annotations

import ctypes


class FlashRegs(ctypes.Structure):
    """FLASH_SR, FLASH_CR."""

    _fields_ = (("sr", ctypes.c_uint32), ("cr", ctypes.c_uint32))


class InRegs:
    """An attribute of the owner kept in its ``regs`` (a :class:`FlashRegs`) under the
    same name; stored values are cut to 32 bits."""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, obj: object, objtype: type | None = None) -> int:
        return getattr(obj.regs, self._name)  # type: ignore[attr-defined]

    def __set__(self, obj: object, value: int) -> None:
        setattr(obj.regs, self._name, value)  # type: ignore[attr-defined]
