"""Taking a masked pending exception at once when the firmware unmasks it.

An exception held back only by PRIMASK, BASEPRI or FAULTMASK must be taken right after the
CPSIE or MSR that lets it in (ARMv7-M: before the next instruction), not at the end of the
slice. Such a slice runs watched: right after a CPSIE (any of A/I/F) or an MSR, once the
exception model says an exception can be taken, the slice ends; the runner then takes it.
Only slices that start in that state pay for the watch; exceptions that become pending
inside a slice while masked end the slice (``on_masked_pend``), so the next one starts
watched. MMIO writes that make an exception takeable (NVIC, SCB) and exception returns
already end the slice.

The watch is the twin's C code hook (twin/code_hook.c) where it is built: unicorn 2.1
compiles a direct call to the hook into translated code while only one code hook exists,
so a hook added for the slice is never called from code translated before it (FreeRTOS's
`taskEXIT_CRITICAL()` ran unwatched: a PendSV its scheduler pended inside a critical
section was taken up to a slice later, the task went on past its yield and corrupted the
scheduler's lists). Without C the watch is a Python hook, and translated code is dropped
when it is added (slow, but then every instruction calls it).

Owns: the watched slice, the instruction match. Must not touch: the exception model (it
only asks ``wants_entry``), registers, memory.
"""

from __future__ import annotations

from collections.abc import Callable

import unicorn as uc_mod

from twin.slice import Slice

#: CPSIE (16-bit, any of A/I/F): ``hw & 0xFFF8 == 0xB660``
CPSIE_MASK, CPSIE_VAL = 0xFFF8, 0xB660
#: MSR spec_reg, Rn (32-bit): first halfword ``0xF38n``, second ``0x8xxx``
MSR_MASK, MSR_VAL = 0xFFF0, 0xF380


class UnmaskWatch:
    """Runs one slice watched for unmasking.

    Args:
        uc: the unicorn engine.
        slice_: the machine's slice record (the hook stops it with reason "unmask").
        wants_entry: the runner's "an exception can be taken now".
    """

    def __init__(self, uc, slice_: Slice, wants_entry: Callable[[], bool]) -> None:
        self._uc = uc
        self._slice = slice_
        self._wants_entry = wants_entry
        self._seen = False  # the previous instruction was a CPSIE/MSR
        self._cache: dict[int, bool] = {}  # address -> is a CPSIE/MSR (this slice only)
        self.slices = 0  # watched slices so far (statistics)
        self._native = None  # twin/code_hook.py's CodeHook when its C hook watches

    def use_native(self, code_hook) -> None:
        """Watch with the C code hook (twin/code_hook.c) from now on."""
        code_hook.watch_unmasking(self._wants_entry)
        self._native = code_hook

    def run(self, emulate: Callable[[int, int], BaseException | None], pc: int, count: int):
        """``emulate(pc, count)``, watched."""
        self.slices += 1
        native = self._native
        if native is not None:
            native.set_watch(True)
            try:
                return emulate(pc, count)
            finally:
                if native.set_watch(False):
                    self._slice.reasons.append(("unmask", None))
        self._seen = False
        self._cache.clear()
        h = self._uc.hook_add(uc_mod.UC_HOOK_CODE, self._hook)
        self._uc.ctl_flush_tb()  # else code translated before the hook never calls it
        try:
            return emulate(pc, count)
        finally:
            self._uc.hook_del(h)

    def _hook(self, uc, address: int, size: int, _ud) -> None:
        if self._seen:
            self._seen = False
            if self._wants_entry():
                self._slice.stop("unmask")
                return
        hit = self._cache.get(address)
        if hit is None:
            try:
                hw = int.from_bytes(uc.mem_read(address, 4), "little")
            except uc_mod.UcError:
                hw = 0
            lo = hw & 0xFFFF
            hit = (size == 2 and lo & CPSIE_MASK == CPSIE_VAL) or (
                size == 4 and lo & MSR_MASK == MSR_VAL and hw >> 28 == 0x8
            )
            self._cache[address] = hit
        if hit:
            self._seen = True
