"""SVG flash map: every sector of the current bank layout, coloured by what the readback shows.

Scale: one horizontal strip per bank; a sector's width is proportional to its size, except
that no sector is drawn narrower than :data:`MIN_W` pixels (on the STM32F767 that widens the
16/32 KiB sectors; the rest keep one linear scale). Each compared span is coloured
match / mismatch / erased; sectors (or parts) no check covered are "outside the image".
A thin strip under each bank shows where inside a sector the differing bytes are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from rig.report._html import hex32, num, render, size_text

if TYPE_CHECKING:
    from rig.board import FlashLayout, Sector
    from rig.report.mismatches import CheckArrays

WIDTH = 1000
LABEL_W = 58
MIN_W = 28
ROW_H = 44
BRACKET_H = 22
DENSITY_H = 8
COLORS = {"match": "#2da44e", "mismatch": "#cf222e", "erased": "#e3b341", "outside": "#d0d7de"}
LEGEND = (
    ("match", "match — the readback equals the expected bytes"),
    ("mismatch", "mismatch — some bytes differ"),
    ("erased", "erased — reads back all 0xFF where data was expected (erased, never written)"),
    ("outside", "outside the image — not compared"),
)


@dataclass
class Span:
    """A compared part of one sector and its status."""

    lo: int
    hi: int
    status: str
    differing: int
    blank: bool


@dataclass
class SectorView:
    """What the map shows for one sector."""

    sector: Sector
    x: float
    w: float
    spans: list[Span] = field(default_factory=list)
    hist: np.ndarray | None = None

    @property
    def compared(self) -> int:
        return sum(s.hi - s.lo for s in self.spans)

    @property
    def differing(self) -> int:
        return sum(s.differing for s in self.spans)

    @property
    def status(self) -> str:
        """The sector's overall status (the worst of its spans)."""
        kinds = {s.status for s in self.spans}
        for k in ("mismatch", "erased", "match"):
            if k in kinds:
                return k
        return "outside"


def sector_widths(sizes: Sequence[int], avail: float, min_w: float = MIN_W) -> list[float]:
    """Widths proportional to ``sizes`` summing to ``avail``, none below ``min_w``."""
    fixed: set[int] = set()
    while True:
        rest = [s for i, s in enumerate(sizes) if i not in fixed]
        space = avail - min_w * len(fixed)
        if not rest or space <= 0:
            return [avail / len(sizes)] * len(sizes)
        scale = space / sum(rest)
        small = {i for i, s in enumerate(sizes) if i not in fixed and s * scale < min_w}
        if not small:
            return [min_w if i in fixed else s * scale for i, s in enumerate(sizes)]
        fixed |= small


def _views(layout: FlashLayout, arrays: Sequence[CheckArrays]) -> dict[int, list[SectorView]]:
    banks: dict[int, list[Sector]] = {}
    for sec in layout.sectors:
        banks.setdefault(sec.bank, []).append(sec)
    out: dict[int, list[SectorView]] = {}
    for bank, secs in banks.items():
        widths = sector_widths([s.size for s in secs], WIDTH - LABEL_W - 4)
        x = float(LABEL_W)
        views = []
        for sec, w in zip(secs, widths, strict=True):
            v = SectorView(sec, x, w)
            bins = max(1, int(w))
            hist = np.zeros(bins, dtype=np.int64)
            for arr in arrays:
                lo, hi = max(sec.base, arr.base), min(sec.end, arr.base + arr.length)
                if hi <= lo:
                    continue
                o0, o1 = lo - arr.base, hi - arr.base
                i0, i1 = np.searchsorted(arr.idx, [o0, o1])
                diff_off = arr.idx[i0:i1]
                differing = int(diff_off.size)
                blank = bool(np.all(arr.b[o0:o1] == 0xFF))
                status = "match" if differing == 0 else ("erased" if blank else "mismatch")
                v.spans.append(Span(lo, hi, status, differing, blank))
                if differing:
                    pos = (diff_off + arr.base - sec.base) * bins // sec.size
                    hist += np.bincount(pos, minlength=bins)[:bins]
            v.hist = hist
            views.append(v)
            x += w
        out[bank] = views
    return out


def _tooltip(v: SectorView, layout: FlashLayout) -> str:
    s = v.sector
    regions = [r.name for r in layout.regions.values() if r.base < s.end and s.base < r.end]
    lines = [
        f"sector {s.index} (bank {s.bank}, SNB 0x{s.snb:02X}) {hex32(s.base)}..{hex32(s.end - 1)}, "
        f"{size_text(s.size)}" + (f" — {', '.join(regions)}" if regions else "")
    ]
    if not v.spans:
        lines.append("outside the image: not compared")
    for sp in v.spans:
        what = {"match": "match", "mismatch": "MISMATCH", "erased": "ERASED (all 0xFF, data expected)"}[
            sp.status
        ]
        line = f"{hex32(sp.lo)}..{hex32(sp.hi - 1)}: {what}, {num(sp.differing)} of {num(sp.hi - sp.lo)} bytes differ"
        if sp.blank and sp.status == "match":
            line += " (blank: all 0xFF, as expected)"
        lines.append(line)
    if v.spans and v.compared < s.size:
        lines.append(f"{num(s.size - v.compared)} bytes of the sector not compared")
    return "\n".join(lines)


def _x_of(views: Sequence[SectorView], addr: int) -> float:
    for v in views:
        if v.sector.base <= addr <= v.sector.end:
            return v.x + v.w * (addr - v.sector.base) / v.sector.size
    return views[0].x if addr < views[0].sector.base else views[-1].x + views[-1].w


def _sector_shapes(v: SectorView, layout: FlashLayout, y: int) -> dict[str, Any]:
    """What the map draws for one sector whose strip starts at ``y`` (coordinates as text)."""
    s = v.sector
    spans = []
    for sp in v.spans:
        x0 = v.x + v.w * (sp.lo - s.base) / s.size
        x1 = v.x + v.w * (sp.hi - s.base) / s.size
        spans.append((f"{x0:.1f}", f"{max(x1 - x0, 1):.1f}", COLORS[sp.status]))
    density = []
    if v.hist is not None and v.hist.any():
        per_bin = s.size / v.hist.size
        for i in np.flatnonzero(v.hist).tolist():
            op = min(1.0, 0.35 + 0.65 * float(v.hist[i]) / per_bin)
            x, w = v.x + i * v.w / v.hist.size, max(v.w / v.hist.size, 1)
            density.append((f"{x:.1f}", f"{w:.1f}", f"{op:.2f}"))
    return {
        "index": s.index,
        "status": v.status,
        "tip": _tooltip(v, layout),
        "x": f"{v.x:.1f}",
        "w": f"{v.w:.1f}",
        "cx": f"{v.x + v.w / 2:.1f}",
        "spans": spans,
        "size": size_text(s.size).replace(" ", "") if v.w >= 40 else "",
        "yd": y + ROW_H + 2,
        "bg_x": f"{v.x + 0.5:.1f}",
        "bg_w": f"{max(v.w - 1, 1):.1f}",
        "density": density,
    }


def _bank_shapes(layout: FlashLayout, bank: int, views: Sequence[SectorView], y: int) -> dict[str, Any]:
    """One bank: the OTA regions as brackets above its strip (from ``y``), then its sectors."""
    regions = []
    for reg in layout.regions.values():
        lo, hi = max(reg.base, views[0].sector.base), min(reg.end, views[-1].sector.end)
        if hi <= lo:
            continue
        x0, x1 = _x_of(views, lo), _x_of(views, hi)
        yb = y + BRACKET_H - 4
        regions.append(
            {
                "tip": f"{reg.name}: {hex32(reg.base)}..{hex32(reg.end - 1)}, {size_text(reg.size)}",
                "path": f"M{x0 + 1:.1f} {yb} v-6 H{x1 - 1:.1f} v6",
                "x": f"{(x0 + x1) / 2:.1f}",
                "y": yb - 8,
                "name": reg.name,
            }
        )
    y += BRACKET_H
    sectors = [_sector_shapes(v, layout, y) for v in views]
    return {"number": bank, "regions": regions, "y": y, "label_y": y + ROW_H / 2 + 4, "sectors": sectors}


def render_flash_map(layout: FlashLayout, arrays: Sequence[CheckArrays]) -> Markup:
    """The ``<svg>`` flash map of ``layout`` with the checks' results, legend included."""
    banks = []
    y = 4
    for bank, views in _views(layout, arrays).items():
        banks.append(_bank_shapes(layout, bank, views, y))
        y += BRACKET_H + ROW_H + DENSITY_H + 10
    legend = []
    lx = LABEL_W
    for key, text in LEGEND:
        label = text.split(" — ")[0]
        legend.append((key, label, text, lx))
        lx += 30 + 7 * len(label)
    return render(
        "flashmap.html",
        width=WIDTH,
        height=y + 24,
        title=f"flash map, {layout.mode.replace('_', ' ')} layout",
        banks=banks,
        row_h=ROW_H,
        density_h=DENSITY_H,
        colors=COLORS,
        legend=legend,
        legend_y=y + 4,
        strip_x=lx,
        mode=layout.mode.replace("_", " "),
        sectors=len(layout.sectors),
        min_w=MIN_W,
    )
