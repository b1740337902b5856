"""Power cuts during flash operations: the bench's relay, armed on the n-th matching one.

:class:`PowerCutPlan` is what ``flash.cut`` (control port) and
``FlashController.arm_power_cut`` arm: cut power when the n-th erase or program from now
that touches an address range starts. The flash controller asks :meth:`PowerCutPlan.fires`
at the start of every operation and, when it fires, leaves the array as the mode says
and requests a power-on reset.

Owns: the armed cut and its match counter; :func:`apply_cut`, what a fired cut does to the
controller (its array through ``partial_effect``, its cut list and log, its power-on reset
request through its services). Must not touch: the machine other than through those
services.
"""

from __future__ import annotations

from typing import Any

from twin.device import ResetKind
from twin.flash_record import partial_effect
from twin.memory import FLASH_BASE, FLASH_ITCM_BASE, FLASH_SIZE

MODES = ("half", "abort", "torn")


class PowerCutPlan:
    """At most one armed power cut."""

    def __init__(self) -> None:
        self.armed: dict[str, object] | None = None

    def arm(
        self,
        nth: int = 1,
        mode: str = "half",
        kind: str | None = None,
        address: int | None = None,
        length: int | None = None,
    ) -> None:
        """Cut power when the ``nth`` matching flash operation from now starts.

        Args:
            nth: 1 = the next matching operation.
            mode: "half" (an erase leaves the first half of its sector erased, a program
                writes nothing), "abort" (nothing of that operation happens) or "torn" (a
                program writes only the low half of its bytes; an erase as "half").
            kind: "erase", "program" or "options" (an option-byte write, OPTSTRT; it
                counts only without an address filter) (None: any).
            address, length: only operations touching [address, address+length) count
                (None: anywhere in flash; an ITCM-alias address means the same flash).
        """
        if nth < 1:
            raise ValueError("nth must be >= 1")
        if mode not in MODES:
            raise ValueError("mode must be 'half', 'abort' or 'torn'")
        if kind not in (None, "erase", "program", "options"):
            raise ValueError("kind must be 'erase', 'program' or 'options'")
        lo = FLASH_BASE if address is None else int(address)
        if FLASH_ITCM_BASE <= lo < FLASH_ITCM_BASE + FLASH_SIZE:
            lo += FLASH_BASE - FLASH_ITCM_BASE
        hi = FLASH_BASE + FLASH_SIZE if length is None else lo + int(length)
        self.armed = {"nth": int(nth), "mode": mode, "kind": kind, "lo": lo, "hi": hi, "seen": 0}
        self.armed["anywhere"] = address is None  # option-byte writes count only then

    def cancel(self) -> None:
        """Disarm."""
        self.armed = None

    def fires(self, kind: str, address: int, length: int) -> dict[str, object] | None:
        """An operation of ``kind`` on ``[address, address+length)`` starts: count it if it
        matches; return the cut (now disarmed) when this is the n-th, else None."""
        cut = self.armed
        if cut is None:
            return None
        if cut["kind"] not in (None, kind):
            return None
        if kind == "options" and not cut["anywhere"]:
            return None
        if kind != "options" and not (cut["lo"] < address + length and address < cut["hi"]):
            return None
        cut["seen"] += 1
        if cut["seen"] < cut["nth"]:
            return None
        self.armed = None
        return cut


class EraseInFlight:
    """The erase the controller is busy with (datasheet timing), so a power loss before it
    finishes leaves what silicon leaves: the part erased so far and the old bytes after it.

    The controller erases the array at once when the operation starts (the CPU sees it
    busy for the datasheet time); :meth:`begin` keeps the old bytes of its sectors, and
    :meth:`power_lost` puts back those past the fraction of the time that had elapsed
    (word-aligned, from the first sector's start). A mass erase counts as one run over its
    sectors. Unlike :class:`PowerCutPlan` this touches the array, as the cut does.
    """

    def __init__(self) -> None:
        self.sectors: list[tuple[int, bytes]] = []  # (offset in the array, old bytes)
        self.start = 0  # core cycles
        self.cycles = 0  # duration in core cycles

    def begin(self, fl: Any, runs: list[tuple[int, int]], duration_us: int) -> None:
        """The controller ``fl`` is about to erase ``runs`` ((address, size) each) taking
        ``duration_us``; nothing to keep when its timing is instant."""
        sv = fl.services
        if fl.timing == "fast" or sv is None:
            self.sectors = []
            return
        mv = fl.mv
        self.sectors = [(a - FLASH_BASE, bytes(mv[a - FLASH_BASE : a - FLASH_BASE + n])) for a, n in runs]
        self.start, self.cycles = sv.now_cycles(), max(1, duration_us * sv.core_hz // 1_000_000)

    def clear(self) -> None:
        """The erase finished (or the array was replaced): nothing to put back."""
        self.sectors = []

    def power_lost(self, fl: Any) -> None:
        """Power went now: put back the not-yet-erased part of the erase in flight (if any)
        in ``fl``'s array and say so in the twin's log."""
        if not self.sectors:
            return
        mv, total = fl.mv, sum(len(old) for _, old in self.sectors)
        frac = min(1.0, max(0.0, (fl.services.now_cycles() - self.start) / self.cycles))
        done = int(total * frac) & ~3
        left = done
        for off, old in self.sectors:
            keep = min(left, len(old))
            mv[off + keep : off + len(old)] = old[keep:]
            left -= keep
        first = self.sectors[0][0] + FLASH_BASE
        self.sectors = []
        fl._log(
            f"POWER LOST during flash: erase of 0x{first:08X}+{total} interrupted after {frac:.1%}: "
            f"{done} bytes erased, {total - done} old"
        )


def apply_cut(fl: Any, cut: dict[str, object], kind: str, address: int, length: int, value: int) -> None:
    """Cut ``fl``'s power as the fired ``cut`` says, at the start of operation ``kind``: the
    array left as its mode says, the cut recorded and logged, a power-on reset requested."""
    mode = str(cut["mode"])
    what = partial_effect(fl.mv, kind, address, length, value, mode)
    if kind == "erase":
        fl._dirty(address, length // 2)
    fl.cuts.append(
        {
            "op": fl.started,
            "nth": cut["nth"],
            "kind": kind,
            "address": address,
            "length": length,
            "mode": mode,
        }
    )
    fl._log(
        f"POWER CUT during flash {kind} #{cut['nth']} in the armed range "
        f"(op {fl.started}) at 0x{address:08X}: {what}"
    )
    if fl.services is not None:
        fl.services.request_reset(ResetKind.POWER, "power")
