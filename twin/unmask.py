"""Taking a masked pending exception at once when the firmware unmasks it.

An exception held back only by PRIMASK, BASEPRI or FAULTMASK must be taken right after the
CPSIE or MSR that lets it in (ARMv7-M: before the next instruction), not at the end of the
slice. Such a slice runs with a code hook that ends it right after a CPSIE (any of A/I/F)
or an MSR once the exception model says an exception can be taken; the runner then takes
it. Only slices that start in that state pay for the hook (a Python call per instruction
while masked); exceptions that become pending inside a slice while masked end the slice
(``on_masked_pend``), so the next one starts watched. MMIO writes that make an exception
takeable (NVIC, SCB) and exception returns already end the slice.

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
    """Runs one slice with the unmask hook.

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

    def run(self, emulate: Callable[[int, int], BaseException | None], pc: int, count: int):
        """``emulate(pc, count)`` with the hook installed for this slice only."""
        self._seen = False
        self._cache.clear()
        self.slices += 1
        h = self._uc.hook_add(uc_mod.UC_HOOK_CODE, self._hook)
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
