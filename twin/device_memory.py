"""Where the twin's memory is Device or Strongly-ordered: an unaligned LDR/STR/LDRH/STRH
there is a UsageFault UNALIGNED on the Cortex-M7 whatever CCR.UNALIGN_TRP says (it
allows unaligned accesses to Normal memory only: ST and Arm forum reports of ``memcpy``
into backup SRAM or FMC SDRAM faulting; the Cortex-M33 TRM says it outright).

Memory a load or store can reach as data: the default map makes the backup SRAM Device
(it lies in the peripheral region, 0x40000000-0x5FFFFFFF; counted while its clock is on:
firmware that never enables it never reads it), SRAM, the TCMs and flash Normal; an
enabled MPU region types what it covers by TEX/C/B (ARMv7-M B3.5.7: TEX=000 C=0 is
Strongly-ordered (B=0) or Device (B=1), TEX=010 C=0 B=0 Device, the rest Normal), the
highest-numbered region winning. The peripherals' registers are MMIO pages: an unaligned
access there is not checked (unicorn splits it into aligned ones before a device sees it).

Owns: nothing (a function of the configuration). Must not touch: anything.
"""

from __future__ import annotations

from itertools import pairwise

from twin import memory as mm
from twin.mpu import decode, paint

#: at most this many spans are checked (a configuration with more keeps the first ones)
MAX_SPANS = 8


def is_device(rasr: int) -> bool:
    """Whether an MPU region's TEX/C/B make it Device or Strongly-ordered memory."""
    tex, c, b = (rasr >> 19) & 7, (rasr >> 17) & 1, (rasr >> 16) & 1
    return (tex == 0 and not c) or (tex == 2 and not c and not b)


def device_spans(
    memory: mm.MemoryMap, backup_clock: bool, mpu: tuple[int, list[int], list[int]] | None
) -> list[tuple[int, int]]:
    """[lo, hi) spans of memory regions that are Device or Strongly-ordered now.

    Args:
        memory: the machine's memory regions.
        backup_clock: RCC_AHB1ENR.BKPSRAMEN.
        mpu: (MPU_CTRL, RBARs, RASRs) while the MPU is enforced, else None (default map).
    """
    bkp = memory.bkpsram
    # [lo, hi, device] pieces of every region, painted over by the MPU's regions in order
    pieces = [(r.base, r.end, r is bkp and backup_clock) for r in memory.regions]
    if mpu is not None:
        _ctrl, rbar, rasr = mpu
        for region in decode(rbar, rasr):
            device = is_device(rasr[region.number])
            edges = region.edges()
            for lo, hi in pairwise(edges):
                if region.covers(lo):
                    pieces = paint(pieces, lo, hi, device)
    spans: list[tuple[int, int]] = []
    for lo, hi, device in sorted(pieces):
        if not device or lo >= hi:
            continue
        if spans and spans[-1][1] == lo:
            spans[-1] = (spans[-1][0], hi)
        else:
            spans.append((lo, hi))
    return spans[:MAX_SPANS]
