"""Hexdump windows around the first mismatches: expected and actual side by side.

A window is :data:`WINDOW_LINES` lines of 16 bytes starting two lines before a mismatch.
Windows open at each diagnosis' address first, then at the start of each cluster of
differences (clusters are split by gaps of more than two windows) not yet shown; at most
:data:`MAX_WINDOWS` windows, so 2 MiB of mismatches stay a few KiB of HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from markupsafe import Markup

from rig.report._html import hex32, num, render

if TYPE_CHECKING:
    from rig.board import FlashLayout
    from rig.report.mismatches import CheckArrays

LINE = 16
WINDOW_LINES = 8
MAX_WINDOWS = 6


#: one cell of a dump line: its text (two hex digits or one ASCII character) and whether it differs
Cell = tuple[str, bool]
#: the gap between the two halves of a hex line (joined with spaces: two spaces in the middle)
_GAP: Cell = ("", False)


def _ascii(byte: int) -> str:
    return chr(byte) if 0x20 <= byte < 0x7F else "."


def _cells(data: np.ndarray, lo: int, hi: int, start: int, diff: np.ndarray) -> tuple[list[Cell], list[Cell]]:
    """Hex and ASCII cells of one line; ``start`` is the line's first offset (may be < lo)."""
    hx: list[Cell] = []
    asc: list[Cell] = []
    for off in range(start, start + LINE):
        if off < lo or off >= hi:
            hx.append(("  ", False))
            asc.append((" ", False))
            continue
        b = int(data[off])
        hot = bool(diff[off - lo])
        hx.append((f"{b:02x}", hot))
        asc.append((_ascii(b), hot))
        if (off - start) == 7:
            hx.append(_GAP)
    return hx, asc


def window(arr: CheckArrays, offset: int, layout: FlashLayout | None, label: str = "") -> Markup:
    """One window of ``arr`` around check offset ``offset`` (expected | actual [| previous])."""
    line0 = ((arr.base + offset) // LINE - 2) * LINE - arr.base
    start = max(line0, ((arr.base) // LINE) * LINE - arr.base)
    end = min(start + WINDOW_LINES * LINE, arr.length)
    lo, hi = max(start, 0), end
    diff = arr.a[lo:hi] != arr.b[lo:hi]
    prev = None
    if arr.check.previous is not None:
        p = np.frombuffer(bytes(arr.check.previous), dtype=np.uint8)
        prev = np.full(arr.length, 0xFF, dtype=np.uint8)
        prev[: min(p.size, arr.length)] = p[: arr.length]
    lines = []
    for ls in range(start, hi, LINE):
        (ex, ea), (ax, aa) = _cells(arr.a, lo, hi, ls, diff), _cells(arr.b, lo, hi, ls, diff)
        columns = [(ex, " "), (ea, ""), (ax, " "), (aa, "")]  # (cells, what joins them)
        if prev is not None:
            columns.append((_cells(prev, lo, hi, ls, np.zeros(hi - lo, dtype=bool))[0], " "))
        lines.append((arr.base + ls, columns))
    where = ""
    addr = arr.base + offset
    if layout is not None and layout.base <= addr < layout.end:
        loc = layout.locate(addr)
        where = f", bank {loc.bank} sector {loc.sector} +0x{loc.offset:X}" + (
            f", {loc.region}" if loc.region else ""
        )
    n_diff = int(np.count_nonzero(diff))
    title = (
        f"{hex32(arr.base + lo)}..{hex32(arr.base + hi - 1)} ({arr.check.name}{where}): "
        f"{num(n_diff)} of {num(hi - lo)} bytes differ"
    )
    return render("hexdump.html", label=label, title=title, previous=prev is not None, lines=lines)


def windows(
    arrays: Sequence[CheckArrays], layout: FlashLayout | None, max_windows: int = MAX_WINDOWS
) -> Markup:
    """Hexdump windows: one per diagnosis address, then one per cluster of differences; at most ``max_windows``."""
    wanted: list[tuple[CheckArrays, int, str]] = []
    for arr in arrays:
        for d in arr.check.analysis.diagnoses:
            off = d.address - arr.base
            if 0 <= off < arr.length:
                # open at the first differing byte at or after the diagnosis' address
                k = int(np.searchsorted(arr.idx, off))
                if k < arr.idx.size:
                    wanted.append((arr, int(arr.idx[k]), d.kind))
    shown: list[tuple[CheckArrays, int, int]] = []

    def covered(arr: CheckArrays, off: int) -> bool:
        return any(a is arr and s <= off < e for a, s, e in shown)

    def add(arr: CheckArrays, off: int) -> int:
        s = max(((arr.base + off) // LINE - 2) * LINE - arr.base, 0)
        shown.append((arr, s, s + WINDOW_LINES * LINE))
        return s + WINDOW_LINES * LINE

    picked: list[tuple[CheckArrays, int, str]] = []
    for arr, off, label in wanted:
        if len(picked) < max_windows and not covered(arr, off):
            add(arr, off)
            picked.append((arr, off, label))
    for arr in arrays:
        # then the start of each cluster of differences (clusters split by gaps > 2 windows)
        if arr.idx.size == 0 or len(picked) >= max_windows:
            continue
        gaps = np.flatnonzero(np.diff(arr.idx) > 2 * WINDOW_LINES * LINE)
        starts = np.concatenate(([arr.idx[0]], arr.idx[gaps + 1]))
        for off in starts[: 4 * max_windows].tolist():
            if len(picked) >= max_windows:
                break
            if not covered(arr, int(off)):
                add(arr, int(off))
                picked.append((arr, int(off), ""))
    picked.sort(key=lambda p: (p[0].base, p[1]))
    out = [window(arr, off, layout, label) for arr, off, label in picked]
    total = sum(int(a.idx.size) for a in arrays)
    note = (
        f"{len(out)} window(s) of {WINDOW_LINES * LINE} bytes (differing bytes highlighted); "
        f"{num(total)} differing byte(s) in all — see the full list for the rest."
    )
    return render("hexdump_windows.html", windows=out, note=note)
