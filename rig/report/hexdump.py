"""Hexdump windows around the first mismatches: expected and actual side by side.

A window is :data:`WINDOW_LINES` lines of 16 bytes starting two lines before a mismatch.
Windows open at each diagnosis' address first, then at the first differing bytes not yet
shown; at most :data:`MAX_WINDOWS` windows, so 2 MiB of mismatches stay a few KiB of HTML.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

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
            px, pa = _cells(prev, lo, hi, ls, np.zeros(hi - lo, dtype=bool))
            cells += f"<td>{px}</td><td>{pa}</td>"
        rows.append(f"<tr>{cells}</tr>")
    where = ""
    addr = arr.base + offset
    if layout is not None and layout.base <= addr < layout.end:
        loc = layout.locate(addr)
        where = f", bank {loc.bank} sector {loc.sector} +0x{loc.offset:X}" + (f", {loc.region}" if loc.region else "")
    n_diff = int(np.count_nonzero(diff))
    title = f"{hex32(arr.base + lo)}..{hex32(arr.base + hi - 1)} ({arr.check.name}{where}): {num(n_diff)} of {num(hi - lo)} bytes differ"
    head = "<th>address</th><th>expected</th><th></th><th>actual (readback)</th><th></th>"
    if prev is not None:
        head += "<th>previous</th><th></th>"
    lab = f'<span class="kind">{esc(label)}</span> ' if label else ""
    return (f'<div class="hexwrap"><div>{lab}{esc(title)}</div><table class="hex mono">'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


def windows(arrays: Sequence[CheckArrays], layout: FlashLayout | None, max_windows: int = MAX_WINDOWS) -> str:
    """Hexdump windows: one per diagnosis address, then the first mismatches; at most ``max_windows``."""
    wanted: list[tuple[CheckArrays, int, str]] = []
    for arr in arrays:
        for d in arr.check.analysis.diagnoses:
            off = d.address - arr.base
            if 0 <= off < arr.length:
                # open at the first differing byte at or after the diagnosis' address
                k = int(np.searchsorted(arr.idx, off))
                if k < arr.idx.size:
                    wanted.append((arr, int(arr.idx[k]), d.kind))
    for arr in arrays:
        for off in arr.idx[:max_windows * WINDOW_LINES * LINE].tolist():
            wanted.append((arr, int(off), ""))
            if len(wanted) > 8 * max_windows:
                break
    shown: list[tuple[CheckArrays, int, int]] = []
    out = []
    for arr, off, label in wanted:
        if len(out) >= max_windows:
            break
        if any(a is arr and s <= off < e for a, s, e in shown):
            continue
        s = max(((arr.base + off) // LINE - 2) * LINE - arr.base, 0)
        shown.append((arr, s, s + WINDOW_LINES * LINE))
        out.append(window(arr, off, layout, label))
    if not out:
        return '<p class="ok">No differing bytes: nothing to dump.</p>'
    total = sum(int(a.idx.size) for a in arrays)
    note = (f"{len(out)} window(s) of {WINDOW_LINES * LINE} bytes (differing bytes highlighted); "
            f"{num(total)} differing byte(s) in all — see the full list for the rest.")
    return f'<p class="muted">{esc(note)}</p>' + "".join(out)
