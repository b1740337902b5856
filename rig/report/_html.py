"""Small HTML helpers shared by the report renderers: escaping, numbers, links, the CSS.

Everything that is not markup written by this package goes through :func:`esc` (or
:func:`attr`) before it reaches the HTML, including text that came from the device.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from urllib.parse import quote

#: CSS class of the fragment's root element; every style rule is scoped under it.
ROOT = "otarig"

CSS = f"""
.{ROOT}{{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2125;max-width:1400px}}
.{ROOT} h3{{font-size:15px;margin:14px 0 6px;border-bottom:1px solid #d0d7de;padding-bottom:2px}}
.{ROOT} h4{{font-size:13px;margin:10px 0 4px}}
.{ROOT} table{{border-collapse:collapse;margin:4px 0 8px}}
.{ROOT} th,.{ROOT} td{{border:1px solid #d0d7de;padding:2px 6px;text-align:left;vertical-align:top}}
.{ROOT} th{{background:#f3f5f7;font-weight:600}}
.{ROOT} code,.{ROOT} .mono,.{ROOT} pre{{font:12px/1.35 ui-monospace,"DejaVu Sans Mono",Menlo,monospace}}
.{ROOT} pre{{background:#f6f8fa;border:1px solid #d0d7de;padding:6px;margin:4px 0;overflow:auto;
  max-height:360px;white-space:pre-wrap;word-break:break-all}}
.{ROOT} .verdict{{padding:8px 10px;border-radius:4px;margin:4px 0 8px}}
.{ROOT} .verdict.fail{{background:#fdecea;border:1px solid #e5534b}}
.{ROOT} .verdict.pass{{background:#e9f7ef;border:1px solid #2da44e}}
.{ROOT} .verdict .head{{font-size:15px;font-weight:600}}
.{ROOT} .phase{{display:inline-block;background:#cf222e;color:#fff;border-radius:3px;padding:0 6px;
  margin-right:6px;font-weight:600}}
.{ROOT} .pass .phase{{background:#2da44e}}
.{ROOT} ul.diag{{margin:4px 0;padding-left:20px}}
.{ROOT} .kind{{font:600 11px ui-monospace,monospace;background:#eaeef2;border-radius:3px;padding:0 4px}}
.{ROOT} .ok{{color:#1a7f37;font-weight:600}}
.{ROOT} .bad{{color:#cf222e;font-weight:600}}
.{ROOT} .muted{{color:#6e7781}}
.{ROOT} tr.fail td{{background:#fff1f0}}
.{ROOT} tr.unchecked td{{color:#6e7781}}
.{ROOT} mark{{background:#ffc9c4;color:#a40e26;font-weight:700;padding:0}}
.{ROOT} .pc td{{background:#fff8c5;font-weight:700}}
.{ROOT} .set td{{background:#fff1f0;font-weight:600}}
.{ROOT} .hex td,.{ROOT} .hex th{{white-space:pre;border:none;padding:0 8px 0 0;font-size:11px}}
.{ROOT} .hexwrap{{display:inline-block;border:1px solid #d0d7de;padding:4px 6px;margin:2px 8px 8px 0}}
.{ROOT} .chips span{{display:inline-block;background:#eaeef2;border-radius:10px;padding:0 8px;margin:0 4px 2px 0}}
.{ROOT} .bar{{display:inline-block;height:9px;background:#54aeff;vertical-align:middle}}
.{ROOT} details>summary{{cursor:pointer;color:#0969da}}
.{ROOT} svg text{{font:11px system-ui,sans-serif}}
.{ROOT} td.mono{{white-space:nowrap}}
.{ROOT} .num{{text-align:right;font-variant-numeric:tabular-nums}}
"""


def esc(value: object) -> str:
    """HTML-escape any value (quotes included) after ``str()``."""
    return html.escape(str(value), quote=True)


def attr(value: object) -> str:
    """Escape a value for a double-quoted attribute (newlines kept as character references)."""
    return esc(value).replace("\n", "&#10;")


def num(n: int | float) -> str:
    """Group digits with thin spaces: 41203 -> '41 203'."""
    if isinstance(n, float) and not n.is_integer():
        return f"{n:,.3f}".replace(",", " ")
    return f"{int(n):,}".replace(",", " ")


def hex32(v: int) -> str:
    """0x-prefixed, 8 upper-case hex digits."""
    return f"0x{v & 0xFFFFFFFF:08X}"


def size_text(n: int) -> str:
    """A size in bytes as KiB/MiB when it divides evenly, bytes otherwise."""
    if n and n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n and n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{num(n)} B"


def rel_href(path: Path | str, link_base: Path | None) -> str:
    """A URL-quoted link to ``path``, relative to ``link_base`` (the HTML file's directory)."""
    p = Path(path)
    if link_base is not None:
        try:
            p = Path(os.path.relpath(p.resolve(), Path(link_base).resolve()))
        except ValueError:  # another drive (Windows): keep it absolute
            p = p.resolve()
    text = p.as_posix()
    return quote(text, safe="/:._-~")


def link(path: Path | str, label: str, link_base: Path | None) -> str:
    """An ``<a>`` to a file, relative to ``link_base``, label escaped."""
    return f'<a href="{attr(rel_href(path, link_base))}">{esc(label)}</a>'


def section(title: str, body: str, anchor: str = "") -> str:
    """An ``<h3>`` heading and its body (``anchor`` names the section for tests and links)."""
    sid = f' data-section="{attr(anchor)}"' if anchor else ""
    return f"<section{sid}><h3>{esc(title)}</h3>{body}</section>"
