"""The report's templating: one jinja2 environment with autoescape, and the small formatting helpers.

Every fragment of the report is a template in ``rig/report/templates/`` (package data). The
environment escapes every ``{{ value }}`` that is not already markup, so text from the device
(UART lines, flash bytes shown as ASCII, OTA transcript lines, test ids, notes) cannot reach the
page unescaped: there is no escaping call to forget. Only what a template renders counts as
markup; Python code hands the templates plain data, never HTML strings.

Escaping is :func:`html.escape` with quotes (``'`` -> ``&#x27;``), applied through the
environment's ``finalize``; jinja2's own autoescape stays on underneath as the backstop.

Templates are written indented for reading. The loader drops each line break and the
indentation after it (:func:`compact`), so markup comes out without layout whitespace (``<pre>``
and ``white-space:pre`` cells hold only what the data says); write a space explicitly where
text continues on the next line.
"""

from __future__ import annotations

import functools
import html
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

#: CSS class of the fragment's root element; every style rule is scoped under it.
ROOT = "otarig"


def num(n: int | float) -> str:
    """Group digits with spaces: 41203 -> '41 203'."""
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
    return quote(p.as_posix(), safe="/:._-~")


# ------------------------------------------------------------------------------ the environment
def _escape(value: Any) -> Markup:
    """``finalize`` of every ``{{ }}``: markup stays, anything else is ``str()``-ed and escaped."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def _attr(value: Any) -> Markup:
    """Filter for a multi-line attribute value (a tooltip): escaped, line breaks as ``&#10;``."""
    return Markup(html.escape(str(value), quote=True).replace("\n", "&#10;"))


#: a jinja comment (kept as it is), or a line break and the indentation after it
_LAYOUT = re.compile(r"\{#.*?#\}|\n[ \t]*", re.S)


def compact(source: str) -> str:
    """Template source without its layout: outside comments, each line break and the indentation
    after it become a jinja comment holding the line break (no output; line numbers in template
    errors stay right). A tag or expression must therefore fit on one line."""
    return _LAYOUT.sub(lambda m: m.group() if m.group().startswith("{#") else "{#\n#}", source)


class _CompactLoader(jinja2.PackageLoader):
    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Any]:
        source, filename, uptodate = super().get_source(environment, template)
        return compact(source), filename, uptodate


@functools.cache
def environment() -> jinja2.Environment:
    """The report's jinja2 environment (templates from the ``rig.report`` package)."""
    env = jinja2.Environment(
        loader=_CompactLoader("rig.report", "templates"),
        autoescape=True,
        finalize=_escape,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        auto_reload=False,
    )
    env.filters.update(num=num, hex32=hex32, size_text=size_text, attr=_attr)
    env.globals.update(root=ROOT)
    return env


def render(template: str, **context: Any) -> Markup:
    """Render ``template`` (a file in ``rig/report/templates/``) with ``context``."""
    return Markup(environment().get_template(template).render(**context))
