"""Flash-operation recording and replay onto saved non-volatile state (the power-cut campaign).

A campaign (``rig campaign power-cut``) needs, for every cut point of an update, the board
as it is right after power failed there. A power cut is a power-on reset: SRAM, ITCM,
backup SRAM, the core, every peripheral, pending events and the debug logic are lost; only
the flash array and the option bytes survive. So the state a cut leaves behind is the
non-volatile state at that flash operation, plus what the cut did to the operation it
interrupted. This module gives the twin exactly that, without re-running the update and
without the network (libslirp's TCP state cannot be saved):

* :class:`OpLog`: while recording, every operation the flash controller starts — a sector
  or mass erase (one per sector), a program store as the controller sees it (one per
  PSIZE-wide store, with its value), an option-byte write (OPTSTRT) — with its index,
  kind, address and length, in order. A dry run is an update with recording on.
* :class:`NvSnapshots`: in-memory snapshots of the non-volatile state (the 2 MiB array and
  the option bytes) keyed by an id, and :meth:`NvSnapshots.restore`: the snapshot, then the
  first ``ops`` recorded operations applied as the controller applied them, then the cut's
  effect on the next one (:func:`partial_effect`, the same code a live ``flash.cut`` uses),
  then a power-on reset. ``tests/twin/test_twin_flash_record.py`` checks that the flash
  after such a restore equals the flash after a live cut at the same operation.

Owns: the operation log, the saved non-volatile states and the replay. Must not touch: the
controller's registers or timing (it writes the array and the option bytes through the
controller's attributes, then asks the machine for the power-on reset).
"""

from __future__ import annotations

from typing import Any

from twin.memory import FLASH_BASE

KINDS = ("erase", "program", "options")
#: what a cut does to the operation it interrupts (``before``: it never started)
CUT_MODES = ("before", "half", "torn", "abort")
MAX_SNAPSHOTS = 16


def partial_effect(mv: memoryview, kind: str, address: int, length: int, value: int, mode: str) -> str:
    """Leave the array as power failing during this operation does; say what it left.

    half/torn erase: the first half of the sector erased; torn program: only the low half
    of its bytes programmed (bits only cleared); anything else: nothing done."""
    off = address - FLASH_BASE
    if kind == "erase" and mode in ("half", "torn"):
        mv[off : off + length // 2] = b"\xff" * (length // 2)
        return "first half erased"
    if kind == "program" and mode == "torn":
        half = max(1, length // 2)
        old = int.from_bytes(mv[off : off + half], "little")
        mv[off : off + half] = (old & value & ((1 << (8 * half)) - 1)).to_bytes(half, "little")
        return f"torn: {half} of {length} bytes programmed"
    return "not done"


class OpLog:
    """The recorded flash operations (columns, to keep 150 000 of them cheap)."""

    def __init__(self) -> None:
        self.on = False
        self.kind: list[str] = []
        self.address: list[int] = []
        self.length: list[int] = []
        self.value: list[int] = []

    def start(self) -> None:
        """Forget what was recorded and record from now."""
        self.on = True
        self.kind, self.address, self.length, self.value = [], [], [], []

    def add(self, kind: str, address: int, length: int, value: int) -> None:
        self.kind.append(kind)
        self.address.append(address)
        self.length.append(length)
        self.value.append(value)

    def __len__(self) -> int:
        return len(self.kind)

    def page(self, first: int, count: int) -> dict[str, Any]:
        """Operations ``first .. first+count-1`` (index from 0) as columns."""
        if first < 0 or count < 0:
            raise ValueError("first and count must be >= 0")
        end = min(len(self), first + min(count, 50_000))
        return {
            "recording": self.on,
            "count": len(self),
            "first": first,
            "kind": self.kind[first:end],
            "address": self.address[first:end],
            "length": self.length[first:end],
        }


class NvSnapshots:
    """Saved non-volatile states of one flash controller, and the replay of its op log."""

    def __init__(self, flash: Any, log: OpLog) -> None:
        self.flash = flash
        self.log = log
        self.saved: dict[int, tuple[bytes, int, int]] = {}
        self._next = 1

    def save(self) -> int:
        """Save the array and the option bytes; return the snapshot's id."""
        if len(self.saved) >= MAX_SNAPSHOTS:
            raise ValueError(f"{MAX_SNAPSHOTS} snapshots held already: drop one first")
        sid, self._next = self._next, self._next + 1
        self.saved[sid] = (bytes(self.flash.mv), self.flash.ob_optcr, self.flash.ob_optcr1)
        return sid

    def drop(self, sid: int) -> None:
        self.saved.pop(sid)

    def restore(self, sid: int, ops: int = 0, cut: str = "before") -> dict[str, Any]:
        """Snapshot ``sid``, then the first ``ops`` recorded operations, then ``cut`` applied
        to operation ``ops`` (index from 0; none when ``ops`` is the log's length). The caller
        does the power-on reset."""
        if sid not in self.saved:
            raise KeyError(f"no snapshot {sid} (held: {sorted(self.saved)})")
        if cut not in CUT_MODES:
            raise ValueError(f"cut must be one of {', '.join(CUT_MODES)}, not {cut!r}")
        if not 0 <= ops <= len(self.log):
            raise ValueError(f"ops must be 0..{len(self.log)} (the recorded operations)")
        data, optcr, optcr1 = self.saved[sid]
        fl = self.flash
        mv = fl.mv
        fl.in_flight.clear()  # the array is replaced: no erase of the old one to finish
        mv[:] = data
        fl.ob_optcr, fl.ob_optcr1 = optcr, optcr1
        self._apply(ops)
        done = "power-on reset after the last operation"
        if ops < len(self.log) and cut != "before":
            log = self.log
            kind, address, length, value = log.kind[ops], log.address[ops], log.length[ops], log.value[ops]
            if kind == "options":
                done = "option bytes not written"
            else:
                done = partial_effect(mv, kind, address, length, value, cut)
        elif ops < len(self.log):
            done = "cut before the operation started"
        return {"snapshot": sid, "ops": ops, "cut": cut, "effect": done}

    def _apply(self, ops: int) -> None:
        """Apply the first ``ops`` recorded operations fully (NOR: programs AND)."""
        fl, mv, log = self.flash, self.flash.mv, self.log
        kinds, addrs, lens, vals = log.kind, log.address, log.length, log.value
        for i in range(ops):
            kind, off, n = kinds[i], addrs[i] - FLASH_BASE, lens[i]
            if kind == "program":
                old = int.from_bytes(mv[off : off + n], "little")
                mv[off : off + n] = (old & vals[i]).to_bytes(n, "little")
            elif kind == "erase":
                mv[off : off + n] = b"\xff" * n
            else:  # options: OPTCR in the low word, OPTCR1 in the high word
                fl.ob_optcr, fl.ob_optcr1 = vals[i] & 0xFFFFFFFF, vals[i] >> 32


def commands(flash: Any) -> dict[str, Any]:
    """The control commands (``fn(machine, request) -> dict``), registered by twin/board.py:

    * ``flash.record {"on": true|false}``: start (forgetting the old log) or stop recording;
    * ``flash.ops {"first": i, "count": n}``: the recorded operations (columns, ≤ 50 000);
    * ``snapshot.save``: save flash + option bytes, answer ``{"id": N}``;
    * ``snapshot.restore {"id": N, "ops": k, "cut": MODE}``: that state, the first ``k``
      recorded operations, the cut's effect on operation ``k``, then a power-on reset (the
      cut is added to ``flash``'s ``cuts`` with ``"replayed": true``); with ``"arm":
      {"nth": n, "mode": m}`` a live cut is armed before power returns (multi-cuts);
    * ``snapshot.drop {"id": N}``;
    * ``flash.timing {"timing": "fast"|"datasheet"}``: switch the operation timing (a
      campaign runs its thousands of cuts with instant flash).
    """
    from twin.device import ResetKind

    def record(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        if req.get("on", True):
            flash.oplog.start()
        else:
            flash.oplog.on = False
        return {"recording": flash.oplog.on, "count": len(flash.oplog)}

    def ops(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        return flash.oplog.page(int(req.get("first", 0)), int(req.get("count", 50_000)))

    def save(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        return {"id": flash.nv.save(), "held": sorted(flash.nv.saved)}

    def restore(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        done = flash.nv.restore(int(req["id"]), int(req.get("ops", 0)), str(req.get("cut", "before")))
        k = done["ops"]
        log = flash.oplog
        if k < len(log):
            what = {"kind": log.kind[k], "address": log.address[k], "length": log.length[k]}
        else:
            what = {"kind": "after-last", "address": 0, "length": 0}
        flash.cuts.append({"op": k, "mode": done["cut"], "replayed": True, **what})
        arm = req.get("arm")  # the next cut of a multi-cut run, armed before power returns
        if isinstance(arm, dict):
            flash.arm_power_cut(int(arm.get("nth", 1)), str(arm.get("mode", "half")))
        m.flush_code_cache()
        m.reset_held = False
        m.reset(ResetKind.POWER, "power")
        m.wake()
        return done

    def drop(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        flash.nv.drop(int(req["id"]))
        return {"held": sorted(flash.nv.saved)}

    def timing(m: Any, req: dict[str, Any]) -> dict[str, Any]:
        old = flash.timing
        if "timing" in req:
            if req["timing"] not in ("fast", "datasheet"):
                raise ValueError(f"timing must be 'fast' or 'datasheet', not {req['timing']!r}")
            flash.timing = req["timing"]
        return {"timing": flash.timing, "was": old}

    return {
        "flash.timing": timing,
        "flash.record": record,
        "flash.ops": ops,
        "snapshot.save": save,
        "snapshot.restore": restore,
        "snapshot.drop": drop,
    }
