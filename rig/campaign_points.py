"""Which cut points a power-cut campaign visits (``rig campaign power-cut``).

The dry run gives the update's flash operations in order (:class:`Op`: index, kind,
address, length). A cut point is an operation index and what the cut does there
(:class:`Point`): ``before`` (the operation never started), ``half`` (an erase interrupted:
the sector left half erased, half old), ``torn`` (a program interrupted: the low half of
its bytes programmed), ``abort`` (an option-byte write lost); index ``len(ops)`` with
``before`` is "after the last operation, before the reset that follows".

Covered always (:func:`plan`): for every operation *class* (kind × the board file's region
it lands in) its first and last operation; every erase and option-byte write; every program
that starts a sector or ends one (a sector boundary); every operation in the regions the
board file marks ``preserve`` (the bootloader's own record); the point after the last
operation — each before and interrupted. The rest of the space (every operation × both
modes) is sampled with a seeded ``random.Random`` up to ``points``; ``exhaustive`` takes it
all. :func:`multi_cuts` draws the seeded multi-cut runs.

Owns: the choice of points and the seed's use. Must not touch: the board (no I/O).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from rig.board_spec import FlashLayout

MID = {"erase": "half", "program": "torn", "options": "abort"}


@dataclass(frozen=True)
class Op:
    """One recorded flash operation of the dry run."""

    index: int
    kind: str  # erase | program | options
    address: int
    length: int
    region: str  # the board file's region holding it ("-" outside every region)

    @property
    def op_class(self) -> str:
        return f"{self.kind}:{self.region}"


@dataclass(frozen=True, order=True)
class Point:
    """Cut at operation ``op`` (``len(ops)``: after the last one) in ``mode``."""

    op: int
    mode: str  # before | half | torn | abort
    why: str = ""

    @property
    def key(self) -> tuple[int, str]:
        return (self.op, self.mode)


def ops_from_columns(page: dict, layout: FlashLayout) -> list[Op]:
    """The twin's ``flash.ops`` columns as :class:`Op` objects, each tagged with its region."""
    regions = sorted(layout.regions.values(), key=lambda r: r.base)
    out = []
    for i, (kind, addr, length) in enumerate(zip(page["kind"], page["address"], page["length"], strict=True)):
        name = next((r.name for r in regions if r.base <= addr < r.base + r.size), "-")
        out.append(Op(int(page["first"]) + i, str(kind), int(addr), int(length), name))
    return out


def boundary_programs(ops: Sequence[Op], layout: FlashLayout) -> list[Op]:
    """Programs that write the first or the last bytes of a sector."""
    starts = {s.base for s in layout.sectors}
    ends = {s.end for s in layout.sectors}
    return [o for o in ops if o.kind == "program" and (o.address in starts or o.address + o.length in ends)]


def covered(ops: Sequence[Op], layout: FlashLayout, preserved: Sequence[str] = ()) -> list[Point]:
    """The points every campaign visits (see the module docstring)."""
    chosen: dict[Op, str] = {}
    by_class: dict[str, list[Op]] = {}
    for o in ops:
        by_class.setdefault(o.op_class, []).append(o)
    for name, members in by_class.items():
        chosen.setdefault(members[0], f"first of {name}")
        chosen.setdefault(members[-1], f"last of {name}")
    for o in ops:
        if o.kind in ("erase", "options"):
            chosen.setdefault(o, f"every {o.kind}")
        elif o.region in preserved:
            chosen.setdefault(o, f"{o.region} (preserved region)")
    for o in boundary_programs(ops, layout):
        chosen.setdefault(o, f"sector boundary 0x{o.address:08X}")
    points = [Point(len(ops), "before", "after the last operation, before the reset")]
    for o, why in chosen.items():
        points += [Point(o.index, "before", why), Point(o.index, MID[o.kind], why)]
    return sorted(points)


def plan(
    ops: Sequence[Op],
    layout: FlashLayout,
    *,
    seed: int,
    points: int | None,
    exhaustive: bool = False,
    preserved: Sequence[str] = (),
) -> tuple[list[Point], int]:
    """The campaign's single-cut points, sorted, and the size of the whole space.

    ``points``: how many in all (the covered ones first, the rest sampled with ``seed``;
    never fewer than the covered ones); None or ``exhaustive``: every point."""
    space = [Point(o.index, m) for o in ops for m in ("before", MID[o.kind])]
    space.append(Point(len(ops), "before", "after the last operation, before the reset"))
    if exhaustive or points is None:
        whys = {p.key: p.why for p in covered(ops, layout, preserved)}
        return sorted(Point(p.op, p.mode, whys.get(p.key, p.why or "exhaustive")) for p in space), len(space)
    must = covered(ops, layout, preserved)
    taken = {p.key for p in must}
    rest = [p for p in space if p.key not in taken]
    k = max(0, min(len(rest), points - len(must)))
    sample = random.Random(seed).sample(rest, k)
    return sorted(must + [Point(p.op, p.mode, f"sampled (seed {seed})") for p in sample]), len(space)


@dataclass(frozen=True)
class MultiCut:
    """k cuts in one update: the first at ``first`` (replayed), then each next one at the
    ``nth`` flash operation after power came back (a live ``flash.cut``)."""

    first: Point
    then: tuple[tuple[int, str], ...]  # (nth operation after power returned, mode)


def multi_cuts(ops: Sequence[Op], *, seed: int, runs: int, cuts: int = 3) -> list[MultiCut]:
    """``runs`` seeded multi-cut runs of ``cuts`` cuts each (replayable with the same seed)."""
    if not ops or runs <= 0:
        return []
    rnd = random.Random(seed ^ 0x5EED)
    out = []
    for _ in range(runs):
        o = ops[rnd.randrange(len(ops))]
        first = Point(o.index, rnd.choice(("before", MID[o.kind])), f"multi-cut (seed {seed})")
        then = tuple((rnd.randint(1, len(ops)), rnd.choice(("half", "torn"))) for _ in range(cuts - 1))
        out.append(MultiCut(first, then))
    return out
