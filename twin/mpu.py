"""MPU permission rules of the Cortex-M7 (ARMv7-M PMSAv7), as pure functions.

The exception model keeps the registers (MPU_CTRL, RBAR/RASR per region); the machine asks
an :class:`MpuView` what the current privilege level may do at an address and turns the
answer into unicorn page protections plus exact checks in its protection hooks.

Rules (ARMv7-M ARM B3.5): with MPU_CTRL.ENABLE clear, or while the execution priority is
below 0 (HardFault, NMI, FAULTMASK) and HFNMIENA is clear, the default memory map applies.
Otherwise the highest-numbered enabled region containing the address decides (a region
of 256 bytes or more is cut in eight sub-regions that RASR.SRD can disable); AP gives the
privileged and unprivileged read/write rights, an instruction fetch needs read access and
XN = 0. No region: privileged accesses use the default map when PRIVDEFENA is set, any
other access faults (MemManage: DACCVIOL for data with MMFAR, IACCVIOL for a fetch).

Owns: the PMSAv7 rules as pure functions over decoded regions. Must not touch: unicorn,
the machine or the registers' storage (the exception model keeps those; twin/protection.py
applies the answers).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TypeVar

V = TypeVar("V")

R, W, X = 1, 2, 4  # the same values as unicorn's UC_PROT_READ/WRITE/EXEC
ALL = R | W | X
CTRL_ENABLE, CTRL_HFNMIENA, CTRL_PRIVDEFENA = 1, 2, 4

#: RASR.AP → (privileged, unprivileged) data rights. AP = 0b100 is reserved: no access.
AP_RIGHTS = {
    0: (0, 0),
    1: (R | W, 0),
    2: (R | W, R),
    3: (R | W, R | W),
    4: (0, 0),
    5: (R, 0),
    6: (R, R),
    7: (R, R),
}


@dataclass(frozen=True)
class MpuRegion:
    """One enabled region, decoded."""

    number: int
    base: int
    size: int
    srd: int  # sub-region disable bits (0 below 256 bytes)
    ap: int
    xn: bool

    @property
    def end(self) -> int:
        return self.base + self.size

    def covers(self, address: int) -> bool:
        """True if ``address`` is in the region and its sub-region is not disabled."""
        if not self.base <= address < self.end:
            return False
        if self.srd:
            sub = (address - self.base) * 8 // self.size
            return not self.srd >> sub & 1
        return True

    def edges(self) -> list[int]:
        """Addresses where this region's effect can change (its bounds and sub-regions)."""
        if self.srd:
            step = self.size // 8
            return [self.base + i * step for i in range(9)]
        return [self.base, self.end]


def decode(rbar: list[int], rasr: list[int]) -> list[MpuRegion]:
    """Enabled regions from the RBAR/RASR values, lowest number first.

    SIZE < 4 (below 32 bytes) is UNPREDICTABLE; the twin treats it as 32 bytes. The base is
    aligned down to the region size, as the hardware ignores the low bits.
    """
    out = []
    for i, (b, a) in enumerate(zip(rbar, rasr, strict=False)):
        if not a & 1:
            continue
        size = 1 << (max((a >> 1) & 0x1F, 4) + 1)
        base = b & 0xFFFFFFE0 & ~(size - 1) & 0xFFFFFFFF
        srd = (a >> 8) & 0xFF if size >= 256 else 0
        out.append(MpuRegion(i, base, size, srd, (a >> 24) & 7, bool(a >> 28 & 1)))
    return out


class MpuView:
    """What one privilege level may do under one MPU configuration."""

    def __init__(self, ctrl: int, regions: list[MpuRegion], privileged: bool) -> None:
        self.ctrl = ctrl
        self.regions = sorted(regions, key=lambda r: -r.number)  # highest number wins
        self.privileged = privileged

    def perms(self, address: int) -> int:
        """R/W/X rights at ``address`` (ALL when the MPU does not restrict)."""
        if not self.ctrl & CTRL_ENABLE:
            return ALL
        for reg in self.regions:
            if reg.covers(address):
                rights = AP_RIGHTS[reg.ap][0 if self.privileged else 1]
                if rights & R and not reg.xn:
                    rights |= X
                return rights
        if self.privileged and self.ctrl & CTRL_PRIVDEFENA:
            return ALL
        return 0

    def intervals(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """``(start, end, perms)`` runs covering ``[lo, hi)``, adjacent equal runs merged."""
        edges = {lo, hi}
        for reg in self.regions:
            edges.update(e for e in reg.edges() if lo < e < hi)
        points = sorted(edges)
        out: list[tuple[int, int, int]] = []
        for a, b in itertools.pairwise(points):
            p = self.perms(a)
            if out and out[-1][2] == p and out[-1][1] == a:
                out[-1] = (out[-1][0], b, p)
            else:
                out.append((a, b, p))
        return out

    def page_perms(self, lo: int, hi: int, page: int) -> list[tuple[int, int, int, int]]:
        """``(start, end, perms, varies)`` runs of whole pages over ``[lo, hi)``.

        Writes get the rights common to the whole page (a refused store traps on every
        access, so the machine checks the exact address then). Reads and fetches get the
        union, and ``varies`` names the rights (R, X) that differ inside the page: a trap
        would only fire once per page for those (the TLB keeps the answer), so the machine
        watches such pages with a range hook instead.
        """
        runs = self.intervals(lo, hi)
        out: list[tuple[int, int, int, int]] = []
        i = 0
        addr = lo
        while addr < hi:
            end = min(addr + page, hi)
            while runs[i][1] <= addr:
                i += 1
            both, either = ALL, 0
            j = i
            while j < len(runs) and runs[j][0] < end:
                both &= runs[j][2]
                either |= runs[j][2]
                j += 1
            if runs[i][1] >= end:  # the whole page in one run: jump to the run's end
                end = max(end, (runs[i][1] - lo) // page * page + lo)
            perms = (both & W) | (either & (R | X))
            varies = (both ^ either) & (R | X)
            if out and out[-1][2:] == (perms, varies) and out[-1][1] == addr:
                out[-1] = (out[-1][0], end, perms, varies)
            else:
                out.append((addr, end, perms, varies))
            addr = end
        return out


def paint(segs: list[tuple[int, int, V]], lo: int, hi: int, value: V) -> list[tuple[int, int, V]]:
    """``segs`` ([lo, hi) address segments, each with a value) with [lo, hi) given ``value``
    where it overlaps them: how a higher-numbered region's attributes cover a lower one's
    (the D-cache's write policies, twin/dcache.py; Device memory, twin/device_memory.py)."""
    out = []
    for a, b, v in segs:
        if b <= lo or a >= hi:
            out.append((a, b, v))
            continue
        if a < lo:
            out.append((a, lo, v))
        if b > hi:
            out.append((hi, b, v))
        out.append((max(a, lo), min(b, hi), value))
    return out
