"""One flash sector of the board in a given bank mode (re-exported by :mod:`rig.board_spec`
and :mod:`rig.board`). A module of its own with no imports beyond the standard library:
``rig diff``'s board snapshot (rig/diff_board.py) builds sectors without the board schema.

Owns: the sector record. Must not touch: anything else of the board description.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sector:
    """One flash sector in a given bank mode."""

    index: int
    bank: int
    snb: int
    base: int
    size: int

    @property
    def end(self) -> int:
        """First address after the sector."""
        return self.base + self.size
