"""UsageFaults the Cortex-M7 raises and unicorn 2.1.4 (QEMU 5) does not.

* UNALIGNED for the accesses that need word alignment even where unaligned LDR/STR are
  allowed (ARMv7-M ARM DDI 0403E A3.2.1): LDRD/STRD, LDM/STM (PUSH/POP with SP, always
  aligned, excepted), VLDR/VSTR, VLDM/VSTM. QEMU 5 translates them without an alignment
  check on v7-M (it checks only LDREX/STREX; QEMU 6 added the rest), so a bootloader that
  casts a network payload to a struct with 64-bit fields ran here and faults on silicon.
* DIVBYZERO for SDIV/UDIV by zero while CCR.DIV_0_TRP is set (QEMU returns 0 whatever
  the bit).

How, at no measurable cost (README, figures): every instruction fetch unicorn's
translator makes reaches :meth:`UsageChecks.on_fetch` (twin/protection.py maps memory
without EXEC and passes allowed fetches on), once per translation, not per run. A site
whose first halfword is one of these instructions (with a base other than SP or PC, or a
divide) is marked in a byte-per-halfword table of its memory region, which the twin's one
code hook looks up (twin/code_hook.py: in C, and it counts the slice's instructions too).
When a marked instruction runs (its condition passed: unicorn skips code hooks otherwise)
the hook reads its base (or divisor) register and, when it must fault, calls
:meth:`UsageChecks._fault`, which stops the slice before the instruction executes. All
these accesses use a base whose low two bits decide (offsets are multiples of 4).

Limit: inside an IT block unicorn does not stop before the end of the block (it treats the
block as one instruction), so the fault is taken after it: CFSR says UNALIGNED, the stacked
PC is later and the access happened.

Owns: the site tables and the faults' text. Must not touch: memory, the fault's handling
(the runner's exception model, through the slice).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from twin import memory as mm
from twin.code_hook import CodeHook
from twin.slice import Slice

CCR_DIV_0_TRP = 1 << 4
_SP, _PC = 13, 15
ALIGN, DIV = 1, 2
#: the memory code can run from (the backup SRAM is in the peripheral space, execute-never)
CODE_END = 0x20080000


def classify(hw: int) -> tuple[int, int] | None:
    """What a site whose first halfword is ``hw`` needs checked: (ALIGN, Rn) for the
    word-aligned accesses, (DIV, -1) for SDIV/UDIV (the divisor is in the second halfword),
    None otherwise (ARMv7-M ARM A7.7 encodings)."""
    if hw & 0xF000 == 0xC000:  # STM/LDM T1 (16-bit)
        return ALIGN, (hw >> 8) & 7
    if hw >> 11 not in (0x1D, 0x1E, 0x1F):
        return None  # another 16-bit instruction
    rn = hw & 0xF
    if hw & 0xFFF0 in (0xFB90, 0xFBB0):  # SDIV, UDIV
        return DIV, -1
    if rn in (_SP, _PC):
        return None
    if hw & 0xFE40 == 0xE800 and hw & 0x0180 in (0x0080, 0x0100):  # LDM/STM T2: IA, DB
        return ALIGN, rn
    if hw & 0xFE40 == 0xE840 and hw & 0x0120:  # LDRD/STRD (immediate): P or W set
        return ALIGN, rn
    if hw & 0xFE00 == 0xEC00 and hw & 0x0180:  # VLDR/VSTR, VLDM/VSTM: P or U set
        return ALIGN, rn
    return None


class UsageChecks:
    """The sites found in translated code, and the faults they raise."""

    def __init__(
        self, uc, memory: mm.MemoryMap, slice_: Slice, ccr: Callable[[], int], log: Callable[[str], None]
    ) -> None:
        self._slice = slice_
        self._ccr = ccr  # CCR as the exception model holds it
        regions = sorted((r for r in memory.regions if r.end <= CODE_END), key=lambda r: r.kind != "flash")
        self._regions = regions  # most code runs from flash: looked up first
        #: per region, a byte per halfword: 0, or kind << 4 | register
        self.codes = [np.zeros(r.size // 2, np.uint8) for r in regions]
        self._div_at = -1  # a divide's first halfword was fetched here: its Rm comes next
        tables = [(r.base, r.size, c) for r, c in zip(regions, self.codes, strict=True)]
        self.code_hook = CodeHook(uc, tables, self._fault, log)
        self.faults = 0

    def _slot(self, address: int) -> tuple[mm.Region, np.ndarray, int] | None:
        for reg, codes in zip(self._regions, self.codes, strict=True):
            if reg.base <= address < reg.end:
                return reg, codes, (address - reg.base) >> 1
        return None

    def on_fetch(self, address: int) -> None:
        """The translator fetched the halfword at ``address`` (an allowed fetch)."""
        slot = self._slot(address)
        if slot is None:
            return
        reg, codes, i = slot
        hw = int.from_bytes(reg.read(address, 2), "little")
        if address == self._div_at + 2:  # the divide's second halfword: Rm
            rm = hw & 0xF
            self._mark(self._div_at, DIV << 4 | rm if rm <= 12 else 0)
            self._div_at = -1
            return
        self._div_at = -1
        what = classify(hw)
        if what is None:
            if codes[i]:
                codes[i] = 0  # the code there changed
            return
        kind, r = what
        if kind == DIV:
            self._div_at = address  # marked when its second halfword comes
            return
        self._mark(address, ALIGN << 4 | r)

    def _mark(self, address: int, code: int) -> None:
        slot = self._slot(address)
        if slot is not None:
            slot[1][slot[2]] = code
            if code:
                self.code_hook.watch(address)

    def _fault(self, address: int, kind: int, r: int, value: int) -> None:
        """The site at ``address`` must fault (a divide: if CCR.DIV_0_TRP is set): stop the
        slice; the runner raises the UsageFault with PC on the instruction."""
        if kind == DIV:
            if not self._ccr() & CCR_DIV_0_TRP:
                return
            why = f"SDIV/UDIV by zero at 0x{address:08X} with CCR.DIV_0_TRP set"
            self.faults += 1
            self._slice.stop("fault", ("usage", "divbyzero", why))
            return
        why = (
            f"LDRD/STRD/LDM/STM/VLDR/VSTR at 0x{address:08X} with r{r} = 0x{value:08X}: "
            "these need a word-aligned address on a Cortex-M7"
        )
        self.faults += 1
        self._slice.stop("fault", ("usage", "unaligned", why))
