"""Where a real board's power is cut: the moment one flash operation of an update starts,
found through the probe (``rig campaign power-cut --board nucleo``).

The dry run (a twin running the same binaries) gives the update's flash operations in order.
On the board the rig stops the core at the start of operation ``i`` with the Cortex-M7's own
debug units, then the power switch cuts:

* a **program** of the word at A is the CPU's store to A: a DWT data watchpoint on A halts
  the core right after it; the n-th hit when the dry run programmed A n-1 times before;
* an **erase** (or an option-byte write) starts with the store that sets FLASH_CR.STRT
  (FLASH_OPTCR.OPTSTRT): watchpoints on both registers, armed once the closest program
  before it has been seen (so the thousands of program stores do not each halt the core),
  halt on every store to them; a store after which FLASH_SR.BSY is set with SER/MER in
  FLASH_CR (or OPTSTRT in FLASH_OPTCR) while the previous one saw the controller idle is a
  start, and the k-th start after the anchor is the operation;
* **after the last operation** is a breakpoint on the new application's reset handler.

No symbol of the bootloader is needed (a breakpoint on its flash routine would need one, and
would halt on every call instead of only near the wanted one). The watches are removed
before the cut. On silicon the flash controller goes on while the core is halted (an erase
keeps erasing), so the cut lands inside the operation for an erase (milliseconds of switch
latency against ~1-2 s) and shortly after it for a program (16 us): approximate, as
docs/power-cut-campaign.md says.

Owns: turning an operation index into watches and running the board to it. Must not touch:
the power switch or the verdict (rig/campaign_lab.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.errors import RigError

if TYPE_CHECKING:
    from rig.campaign_points import Op
    from rig.probe import Probe

FLASH_SR, FLASH_CR, FLASH_OPTCR = 0x40023C0C, 0x40023C10, 0x40023C14
SR_BSY = 1 << 16
CR_ERASE = (1 << 1) | (1 << 2) | (1 << 15)  # SER, MER, MER2
OPTCR_OPTSTRT = 1 << 1
POLL = 0.002


class NotReached(RigError):
    """The board did not do the operation the dry run recorded (within the time)."""


@dataclass(frozen=True)
class Watch:
    """Stop at the ``nth`` qualifying hit: ``store`` (a store to ``address``, ``size``
    bytes), ``start`` (an erase/option-byte write starting) or ``entry`` (a breakpoint)."""

    kind: str
    address: int = 0
    size: int = 4
    nth: int = 1

    def describe(self) -> str:
        if self.kind == "store":
            return f"store #{self.nth} to 0x{self.address:08X}"
        if self.kind == "start":
            return f"erase/option-byte start #{self.nth}"
        return f"the application's entry 0x{self.address:08X}"


def _store_watch(ops: Sequence[Op], j: int) -> Watch:
    op = ops[j]
    size = 4 if op.length >= 4 else (2 if op.length >= 2 else 1)
    address = op.address & ~(size - 1)
    nth = 1 + sum(1 for o in ops[:j] if o.kind == "program" and o.address & ~(size - 1) == address)
    return Watch("store", address, size, nth)


def watches_for(ops: Sequence[Op], index: int, entry: int) -> list[Watch]:
    """The watches that stop the core at the start of ``ops[index]`` (``len(ops)``: at the
    new application's ``entry``, after the last operation), in order."""
    if index >= len(ops):
        return [Watch("entry", entry & ~1, 2, 1)]
    if ops[index].kind == "program":
        return [_store_watch(ops, index)]
    j = index - 1
    while j >= 0 and ops[j].kind != "program":
        j -= 1
    anchor = [_store_watch(ops, j)] if j >= 0 else []
    return [*anchor, Watch("start", nth=index - j)]  # ops j+1..index are all starts


class Runner:
    """Runs a halted board through :class:`Watch` es with the probe."""

    def __init__(self, probe: Probe, timeout: float) -> None:
        self.probe, self.timeout = probe, timeout
        self.hits = 0
        self.detail = ""

    def _arm(self, w: Watch, on: bool) -> None:
        p = self.probe
        if w.kind == "entry":
            (p.set_breakpoint if on else p.remove_breakpoint)(w.address)
        elif w.kind == "store":
            (p.set_watchpoint if on else p.remove_watchpoint)(w.address, w.size)
        else:
            for reg in (FLASH_CR, FLASH_OPTCR):
                (p.set_watchpoint if on else p.remove_watchpoint)(reg, 4)

    def run(self, watches: Sequence[Watch], started: Callable[[], None] = lambda: None) -> str:
        """From a halted core: run until the last watch's moment, then leave the core halted
        there with every watch removed. ``started`` is called after the first resume (what
        the update method does after a reset). Returns where it stopped, in words.

        Raises:
            NotReached: a watch did not come within the timeout (the board did something
                else than the dry run, or stopped).
        """
        deadline = time.monotonic() + self.timeout
        first, busy_before = True, False
        for w in watches:
            self._arm(w, True)
            seen = 0
            try:
                while seen < w.nth:
                    self.probe.resume()
                    if first:
                        started()
                        first = False
                    if not self.probe.wait_halted(max(0.0, deadline - time.monotonic()), poll=POLL):
                        raise NotReached(f"{w.describe()} never came (seen {seen}) within {self.timeout:g} s")
                    self.hits += 1
                    if w.kind == "start":
                        sr, cr, optcr = (self.probe.read32(a) for a in (FLASH_SR, FLASH_CR, FLASH_OPTCR))
                        busy = bool(sr & SR_BSY) and bool(cr & CR_ERASE or optcr & OPTCR_OPTSTRT)
                        new, busy_before = busy and not busy_before, busy
                        if not new:
                            continue
                        self.detail = f"FLASH_CR=0x{cr:08X} FLASH_SR=0x{sr:08X} FLASH_OPTCR=0x{optcr:08X}"
                    seen += 1
            finally:
                self._arm(w, False)
        pc = self.probe.registers(["pc"])["pc"]
        return f"halted at PC=0x{pc:08X} after {watches[-1].describe()}" + (
            f" ({self.detail})" if self.detail else ""
        )
