"""A unicorn 2.1.4 defect's workaround: the IT state a memory hook leaves behind.

Before calling a memory hook unicorn restores the CPU state of the instruction doing the
access (``cpu_restore_state``), the IT state included, and the translation block goes on
without zeroing it again; after an IT block whose access was hooked, the code that follows
then runs as if still inside the block (tests/twin/test_unicorn_itstate.py reproduces it on
bare unicorn; docs/twin-cache.md, Limits). Every hook of the twin that lets the access go on
calls :func:`itstate_fix`; a hook that stops the core keeps the state (the fault frame or the
halted core needs it).

Owns: EPSR's IT bits after a hook. Must not touch: anything else of the engine.
"""

from __future__ import annotations

import ctypes

from unicorn.arm_const import UC_ARM_REG_EPSR
from unicorn.unicorn_py3.unicorn import uclib

EPSR_IT = 0x0600FC00


def itstate_fix(handle) -> None:
    """Zero the IT state unicorn restored before a memory hook. ``handle``: the raw engine
    handle a C-level hook receives, or the binding's ``Uc`` a Python hook receives."""
    uch = getattr(handle, "_uch", handle)
    if isinstance(uch, ctypes.c_void_p):
        uch = uch.value
    if not isinstance(uch, int):
        return  # an engine double
    v = ctypes.c_uint32()
    if uclib.uc_reg_read(uch, UC_ARM_REG_EPSR, ctypes.byref(v)) == 0 and v.value & EPSR_IT:
        v.value &= ~EPSR_IT & 0xFFFFFFFF
        uclib.uc_reg_write(uch, UC_ARM_REG_EPSR, ctypes.byref(v))
