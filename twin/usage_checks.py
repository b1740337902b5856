"""UsageFaults the Cortex-M7 raises and unicorn 2.1.4 (QEMU 5) does not.

* UNALIGNED for the accesses that need word alignment even where unaligned LDR/STR are
  allowed (ARMv7-M ARM DDI 0403E A3.2.1): LDRD/STRD, LDM/STM (PUSH/POP with SP, always
  aligned, excepted), VLDR/VSTR, VLDM/VSTM. QEMU 5 translates them without an alignment
  check on v7-M (it checks only LDREX/STREX; QEMU 6 added the rest), so a bootloader that
  casts a network payload to a struct with 64-bit fields ran here and faults on silicon.
* DIVBYZERO for SDIV/UDIV by zero while CCR.DIV_0_TRP is set (QEMU returns 0 whatever
  the bit).
* UNALIGNED for LDR/STR (word) and LDRH/LDRSH/STRH at an address that is not a multiple of
  their size while CCR.UNALIGN_TRP is set (A3.2.1; QEMU 5 ignores the bit on v7-M): code
  built for a core that allows unaligned accesses (GCC's default for the Cortex-M7) and
  started by a startup file that sets the bit faults on silicon.

How, at no measurable cost (README, figures): every instruction fetch unicorn's
translator makes reaches :meth:`UsageChecks.on_fetch` (twin/protection.py maps memory
without EXEC and passes allowed fetches on), once per translation, not per run. A site
whose first halfword is one of these instructions (with a base other than SP or PC, or a
divide) is marked in a byte-per-halfword table of its memory region, which the twin's one
code hook looks up (twin/code_hook.py: in C, and it counts the slice's instructions too).
When a marked instruction runs (its condition passed: unicorn skips code hooks otherwise)
the hook reads its base (or divisor) register and, when it must fault, calls
:meth:`UsageChecks._fault`, which stops the slice before the instruction executes. The
word-aligned accesses use a base whose low two bits decide (offsets are multiples of 4).
Single loads and stores (:func:`ldst`) carry their addressing mode in the table entry
(offset or index register and shift, add, pre/post-index); the hook looks at them only
while the trap bit is set (:meth:`UsageChecks.set_unalign_trap`, told by the SCB's CCR).

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
from twin.device_memory import device_spans
from twin.slice import Slice

CCR_DIV_0_TRP = 1 << 4
CCR_UNALIGN_TRP = 1 << 3
_SP, _PC = 13, 15
ALIGN, DIV, LDST = 1, 2, 3
#: 16-bit LDR/STR (register) opB -> access size (the byte forms need no alignment)
_REG16_SIZE = {0: 4, 1: 2, 4: 4, 5: 2, 7: 2}
#: first halfword >> 11 of the encodings :func:`ldst` may take
_LDST_TOPS = frozenset((0x0A, 0x0B, 0x0C, 0x0D, 0x10, 0x11, 0x1F))
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


def ldst(hw: int, hw2: int) -> tuple[int, int, int, int, int, bool, bool] | None:
    """The addressing of a word or halfword LDR/STR/LDRH/LDRSH/STRH (incl. LDRT...) whose
    halfwords are ``hw``, ``hw2`` (``hw2`` unused by the 16-bit forms): (size, Rn (15: a
    literal, from Align(PC, 4)), Rm or -1, shift, immediate offset, add, index), or None for
    anything else, the byte forms, SP-relative 16-bit forms and PC-relative 16-bit loads
    (always aligned) and the encodings that are undefined, unpredictable or hints (A7.7)."""
    top = hw >> 12
    if top == 0x5:  # LDR/STR (register), 16-bit
        size = _REG16_SIZE.get((hw >> 9) & 7)
        return None if size is None else (size, (hw >> 3) & 7, (hw >> 6) & 7, 0, 0, True, True)
    if top == 0x6:  # LDR/STR (immediate), word
        return 4, (hw >> 3) & 7, -1, 0, ((hw >> 6) & 0x1F) << 2, True, True
    if top == 0x8:  # LDRH/STRH (immediate)
        return 2, (hw >> 3) & 7, -1, 0, ((hw >> 6) & 0x1F) << 1, True, True
    if hw & 0xFE00 != 0xF800:
        return None
    signed, imm12, load, rn = (hw >> 8) & 1, (hw >> 7) & 1, (hw >> 4) & 1, hw & 0xF
    size = {1: 2, 2: 4}.get((hw >> 5) & 3)
    if size is None or (signed and (not load or size == 4)):
        return None  # bytes; stores and word loads with S: undefined
    if load and size == 2 and hw2 >> 12 == 15:
        return None  # a halfword "load" to PC: a memory hint (NOP)
    if rn == _PC:  # literal (U in bit 7)
        return (size, _PC, -1, 0, hw2 & 0xFFF, bool(imm12), True) if load else None
    if imm12:
        return size, rn, -1, 0, hw2 & 0xFFF, True, True
    if (hw2 >> 6) & 0x3F == 0:  # register, LSL #imm2
        rm = hw2 & 0xF
        return None if rm in (_SP, _PC) else (size, rn, rm, (hw2 >> 4) & 3, 0, True, True)
    index, add, wback = (hw2 >> 10) & 1, (hw2 >> 9) & 1, (hw2 >> 8) & 1
    if not hw2 & 0x800 or not (index or wback):
        return None  # undefined
    return size, rn, -1, 0, hw2 & 0xFF, bool(add), bool(index)


def ldst_code(what: tuple[int, int, int, int, int, bool, bool]) -> int:
    """A site table entry for :func:`ldst`'s result (layout in twin/code_hook.c)."""
    size, rn, rm, shift, imm, add, index = what
    return (
        LDST << 4 | rn | (0x100 if size == 4 else 0) | (rm if rm >= 0 else 0xF) << 9 | shift << 13
        | int(add) << 15 | int(index) << 16 | imm << 20
    )  # fmt: skip


class UsageChecks:
    """The sites found in translated code, and the faults they raise."""

    def __init__(
        self,
        uc,
        memory: mm.MemoryMap,
        slice_: Slice,
        ccr: Callable[[], int],
        log: Callable[[str], None],
        flush_code: Callable[[], None],
    ) -> None:
        self._slice = slice_
        self._ccr = ccr  # CCR as the exception model holds it
        #: drop all translated code (twin/stores.py flush_code_cache: inside a slice, at its end)
        self.flush_code = flush_code
        regions = sorted((r for r in memory.regions if r.end <= CODE_END), key=lambda r: r.kind != "flash")
        self._regions = regions  # most code runs from flash: looked up first
        #: per region, an entry per halfword: 0, or kind << 4 | register (| addressing)
        self.codes = [np.zeros(r.size // 2, np.uint32) for r in regions]
        self._div_at = -1  # a divide's first halfword was fetched here: its Rm comes next
        tables = [(r.base, r.size, c) for r, c in zip(regions, self.codes, strict=True)]
        self.code_hook = CodeHook(uc, tables, self._fault, log)
        self._memory = memory
        self._backup_clock = False  # RCC_AHB1ENR.BKPSRAMEN
        self._mpu: tuple[int, list[int], list[int]] | None = None
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
            access = None
            if hw >> 11 in _LDST_TOPS:
                hw2 = int.from_bytes(reg.read(address + 2, 2), "little") if address + 4 <= reg.end else 0
                access = ldst(hw, hw2)
            if access is not None:
                self._mark(address, ldst_code(access))
            elif codes[i]:
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
                self.code_hook.watch(address, code >> 4 & 0xF)

    def set_unalign_trap(self, on: bool) -> None:
        """CCR.UNALIGN_TRP changed (the SCB, a reset). Without C the load/store sites get
        their hooks now: unicorn adds a code hook only to code it translates afterwards, so
        translated code is dropped and the slice ends after the CCR store (as a kick does)."""
        self._checks_changed(on, None)

    def set_device_memory(self, backup_clock: bool | None = None, mpu: object = False) -> None:
        """The Device memory spans may have changed: the backup SRAM's clock
        (``backup_clock``), or the MPU (``mpu``: (MPU_CTRL, RBARs, RASRs) while enforced,
        None for the default map); see twin/device_memory.py."""
        if backup_clock is not None:
            self._backup_clock = backup_clock
        if mpu is not False:
            self._mpu = mpu
        spans = device_spans(self._memory, self._backup_clock, self._mpu)
        if spans != self.code_hook.devices:
            self._checks_changed(self.code_hook.trap, spans)

    def _checks_changed(self, trap: bool, spans: list[tuple[int, int]] | None) -> None:
        if self.code_hook.set_trap(trap, spans):
            self.flush_code()  # inside a slice: when it ends, which this store ends

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
        if kind == LDST:
            slot = self._slot(address)
            size = 4 if slot is not None and slot[1][slot[2]] & 0x100 else 2
            what = (
                "with CCR.UNALIGN_TRP set"
                if self.code_hook.trap
                else "in Device memory (the Cortex-M7 allows unaligned accesses to Normal memory only)"
            )
            why = (
                f"{'LDR/STR' if size == 4 else 'LDRH/LDRSH/STRH'} at 0x{address:08X} of 0x{value:08X} "
                f"{what}: not a multiple of {size}"
            )
            self.faults += 1
            self._slice.stop("fault", ("usage", "unaligned", why))
            return
        why = (
            f"LDRD/STRD/LDM/STM/VLDR/VSTR at 0x{address:08X} with r{r} = 0x{value:08X}: "
            "these need a word-aligned address on a Cortex-M7"
        )
        self.faults += 1
        self._slice.stop("fault", ("usage", "unaligned", why))
