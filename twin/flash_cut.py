"""Power cuts during flash operations: the bench's relay, armed on the n-th matching one.

:class:`PowerCutPlan` is what ``flash.cut`` (control port) and
``FlashController.arm_power_cut`` arm: cut power when the n-th erase or program from now
that touches an address range starts. The flash controller asks :meth:`PowerCutPlan.fires`
at the start of every operation and, when it fires, leaves the array as the mode says
and requests a power-on reset.

Owns: the armed cut and its match counter. Must not touch: the flash array or the
machine (the controller applies the cut).
"""

from __future__ import annotations

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
