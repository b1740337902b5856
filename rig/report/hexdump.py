"""Hexdump windows around the first mismatches: expected and actual side by side.

A window is :data:`WINDOW_LINES` lines of 16 bytes starting two lines before a mismatch.
Windows open at each diagnosis' address first, then at the start of each cluster of
differences (clusters are split by gaps of more than two windows) not yet shown; at most :data:`MAX_WINDOWS` windows, so 2 MiB of mismatches stay a few KiB of HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from rig.report._html import esc, hex32, num

if TYPE_CHECKING:
    from rig.board import FlashLayout
    from rig.report.mismatches import CheckArrays

LINE = 16
WINDOW_LINES = 8
MAX_WINDOWS = 6


def _ascii(byte: int) -> str:
    return esc(chr(byte)) if 0x20 <= byte < 0x7F else "."


def _cells(data: np.ndarray, lo: int, hi: int, start: int, diff: np.ndarray) -> tuple[str, str]:
    """Hex and ASCII text of one line; ``start`` is the line's first offset (may be < lo)."""
    hx, asc = [], []
    for off in range(start, start + LINE):
        if off < lo or off >= hi:
            hx.append("  ")
            asc.append(" ")
            continue
        b = int(data[off])
        h, a = f"{b:02x}", _ascii(b)
        if diff[off - lo]:
            h, a = f"<mark>{h}</mark>", f"<mark>{a}</mark>"
        hx.append(h)
        asc.append(a)
        if (off - start) == 7:
            hx.append("")
    return " ".join(hx), "".join(asc)


def window(arr: CheckArrays, offset: int, layout: FlashLayout | None, label: str = "") -> str:
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
    rows = []
    for ls in range(start, hi, LINE):
        ex, ea = _cells(arr.a, lo, hi, ls, diff)
        ax, aa = _cells(arr.b, lo, hi, ls, diff)
        cells = f"<td>{hex32(arr.base + ls)}</td><td>{ex}</td><td>{ea}</td><td>{ax}</td><td>{aa}</td>"
        if prev is not None:
            px, _ = _cells(prev, lo, hi, ls, np.zeros(hi - lo, dtype=bool))
            cells += f"<td>{px}</td>"
        rows.append(f"<tr>{cells}</tr>")
    where = ""
    addr = arr.base + offset
    if layout is not None and layout.base <= addr < layout.end:
        loc = layout.locate(addr)
        where = f", bank {loc.bank} sector {loc.sector} +0x{loc.offset:X}" + (
            f", {loc.region}" if loc.region else ""
        )
    n_diff = int(np.count_nonzero(diff))
    title = f"{hex32(arr.base + lo)}..{hex32(arr.base + hi - 1)} ({arr.check.name}{where}): {num(n_diff)} of {num(hi - lo)} bytes differ"
    head = "<th>address</th><th>expected</th><th></th><th>actual (readback)</th><th></th>"
    if prev is not None:
        head += "<th>previous (before the update)</th>"
    lab = f'<span class="kind">{esc(label)}</span> ' if label else ""
    return (
        f'<div class="hexwrap"><div>{lab}{esc(title)}</div><table class="hex mono">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def windows(arrays: Sequence[CheckArrays], layout: FlashLayout | None, max_windows: int = MAX_WINDOWS) -> str:
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
    if not out:
        return '<p class="ok">No differing bytes: nothing to dump.</p>'
    total = sum(int(a.idx.size) for a in arrays)
    note = (
        f"{len(out)} window(s) of {WINDOW_LINES * LINE} bytes (differing bytes highlighted); "
        f"{num(total)} differing byte(s) in all — see the full list for the rest."
    )
    return f'<p class="muted">{esc(note)}</p>' + "".join(out)
