"""Which operations a real-board power-cut campaign cuts at (``--board nucleo``).

A point on a real board costs a real update and a power cycle (tens of seconds), so the plan
is short and ordered by what matters most: the point after the last operation (before the
new application starts), every erase and option-byte write, the last operation of each
class (kind × region: where a step of the update completes, e.g. the boot record's last
word), the first of each, the regions the board file marks ``preserve``, the programs on a
sector boundary; then programs sampled with the seed. Each chosen operation is cut at
every moment of ``--cut-at`` (``halted``, ``+N ms``). ``points`` caps the total; the
covered operations that do not fit are left out in that order (the count is reported).

Owns: the real board's choice of points. Must not touch: the board (no I/O).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from rig.board_spec import FlashLayout
from rig.campaign_points import Op, Point, boundary_programs


def covered_ops(ops: Sequence[Op], layout: FlashLayout, preserved: Sequence[str] = ()) -> dict[int, str]:
    """The operation indices every real-board campaign would visit, most important first
    (``len(ops)``: after the last one), each with why."""
    chosen: dict[int, str] = {len(ops): "after the last operation, before the new app starts"}
    for o in ops:
        if o.kind in ("erase", "options"):
            chosen.setdefault(o.index, f"every {o.kind}")
    by_class: dict[str, list[Op]] = {}
    for o in ops:
        by_class.setdefault(o.op_class, []).append(o)
    for name, members in by_class.items():  # where a step of the update completes
        chosen.setdefault(members[-1].index, f"last of {name}")
    for name, members in by_class.items():
        chosen.setdefault(members[0].index, f"first of {name}")
    for o in ops:
        if o.region in preserved:
            chosen.setdefault(o.index, f"{o.region} (preserved region)")
    for o in boundary_programs(ops, layout):
        chosen.setdefault(o.index, f"sector boundary 0x{o.address:08X}")
    return chosen


def lab_plan(
    ops: Sequence[Op],
    layout: FlashLayout,
    *,
    seed: int,
    points: int | None,
    offsets: Sequence[str],
    preserved: Sequence[str] = (),
) -> tuple[list[Point], int]:
    """The points (operation × cut moment, in the order they run) and the size of the space
    (every operation and the one after the last, at every moment). ``points`` None: all."""
    space = (len(ops) + 1) * len(offsets)
    budget = None if points is None else max(1, points // max(1, len(offsets)))
    chosen = list(covered_ops(ops, layout, preserved).items())
    if budget is not None:
        chosen = chosen[:budget]
    taken = {i for i, _ in chosen}
    rest = [o.index for o in ops if o.index not in taken]
    k = len(rest) if budget is None else max(0, min(len(rest), budget - len(chosen)))
    chosen += [(i, f"sampled (seed {seed})") for i in sorted(random.Random(seed).sample(rest, k))]
    return [Point(i, mode, why) for i, why in chosen for mode in offsets], space
