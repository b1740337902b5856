"""Device-controlled text is inert in the report: the templates escape it, nothing interprets it.

Every place where the board (or a test, or the board file) puts text into the page gets the
same hostile strings: HTML (``<script>``, an ``onerror`` attribute, a ``</pre>`` that tries to
close the log), rich markup (``[/]``), jinja2 syntax (``{{ }}``, ``{% %}``, ``{# #}``), printf
directives (``%s``), quotes and ampersands. Each must come out as the same text, verbatim, and
add no element, attribute or script to the page.
"""

from __future__ import annotations

import ast
import dataclasses
import html
from pathlib import Path

import pytest
from report_html import ALLOWED_TAGS, Inspector
from report_samples import never_erased_evidence

from rig.evidence import Evidence
from rig.report import SummaryRow, extras_for, render_evidence, summary_html
from rig.report._html import compact, environment, render
from rig.report.render import error_fragment

#: one string with every kind of syntax something on the way could interpret
HOSTILE = (
    "<script>alert(1)</script> [/] [bold red]x[/] {{ 7*7 }} {% if 1 %}y{% endif %} {# c #} "
    "%s %(x)s %d ' \" & &amp; </pre></td></table><img src=x onerror=alert(2)>"
)
#: console lines as the UART delivers them (CR LF, a line that tries to close the <pre>)
CONSOLE = f"boot\r\n{HOSTILE}\r\n</pre><script>alert(3)</script>\r\nOTA_READY %s {{{{x}}}} [/]\r\n"


def _hostile_evidence(tmp: Path) -> Evidence:
    """The never-erased failure with device/test/board-file text replaced by hostile strings."""
    ev = never_erased_evidence(tmp, uart=CONSOLE)
    ev.test_id = f"tests_hil/t.py::test_x[{HOSTILE}]"
    ev.message = f"reason: {HOSTILE}"
    ev.notes.append(HOSTILE)
    ev.scenario = {"transport": HOSTILE, "image_size": 4096, "scenario": HOSTILE, HOSTILE: "key"}
    check = ev.regions[0]
    ev.regions[0] = dataclasses.replace(check, name=HOSTILE)
    assert ev.jump is not None
    rows = tuple(dataclasses.replace(r, reason=HOSTILE, actual=HOSTILE) for r in ev.jump.rows)
    ev.jump = dataclasses.replace(ev.jump, rows=rows)
    assert ev.transcript is not None
    ev.transcript["reason"] = HOSTILE
    ev.transcript["transcript"]["events"].append({"t": 2.0, "dir": "rx", "kind": "msg", "text": HOSTILE})
    assert ev.capture is not None
    ev.capture["analysis"]["tokens"].append(
        {"dir": "up", "text": HOSTILE, "start": 1, "end": 2, "segments": 1}
    )
    ev.capture["pcap"] = str(tmp / HOSTILE.replace("/", "_"))
    ev.artifacts[HOSTILE] = tmp / "missing-file.bin"
    return ev


def _assert_inert(page: str) -> Inspector:
    doc = Inspector(page)
    assert doc.names() <= ALLOWED_TAGS, doc.names() - ALLOWED_TAGS
    assert not [a for _, attrs in doc.tags for a in attrs if a.startswith("on")]
    assert "<script" not in page.lower() and "<img" not in page.lower()
    return doc


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp = tmp_path_factory.mktemp("hostile")
    return str(render_evidence(_hostile_evidence(tmp), tmp / "artifacts" / "t", link_base=tmp))


def test_every_device_string_is_shown_verbatim_and_adds_no_markup(page: str) -> None:
    doc = _assert_inert(page)
    text = doc.text
    # verdict (message, region name, jump reasons, notes, chips), mismatch and sector tables,
    # hex dump titles, jump table (actual + reason per row), transcript reason and event,
    # capture token: each shows the whole string as text
    assert text.count(HOSTILE) >= 12, text.count(HOSTILE)
    assert f"reason: {HOSTILE}" in text
    assert "{{ 7*7 }}" in text and "{% if 1 %}y{% endif %}" in text  # not evaluated as a template
    assert "%s %(x)s %d" in text  # not formatted
    assert "[bold red]x[/]" in text  # not rich markup


def test_console_lines_stay_inside_the_serial_log(page: str) -> None:
    doc = Inspector(page)
    pre = page[page.index('<pre class="uart">') : page.index("</pre>", page.index('<pre class="uart">'))]
    for line in ("boot", HOSTILE, "</pre><script>alert(3)</script>", "OTA_READY %s {{x}} [/]"):
        assert line in Inspector(pre).text, line
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)&lt;/script&gt;" in pre
    assert doc.find("pre", **{"class": "uart"})


def test_attributes_keep_hostile_values_inside_their_quotes(page: str) -> None:
    doc = Inspector(page)
    (root,) = doc.find("div", **{"class": "otarig"})
    assert root["data-test"] == f"tests_hil/t.py::test_x[{HOSTILE}]"
    rows = [
        SummaryRow(f"t::a[{HOSTILE}]", HOSTILE, HOSTILE, HOSTILE, "failed", phase=HOSTILE, variant=HOSTILE),
        SummaryRow("t::b", "eth", 4096, "update", "passed"),
    ]
    summary = str(summary_html(rows))
    sdoc = _assert_inert(summary)
    (cell,) = sdoc.find("td", data_outcome="failed")
    assert cell["title"] == f"t::a[{HOSTILE}]: failed [{HOSTILE}]"
    assert sdoc.text.count(HOSTILE) >= 4  # transport, size, scenario, variant, phase


def test_links_and_extras_escape_their_names(tmp_path: Path) -> None:
    ev = _hostile_evidence(tmp_path)
    real = tmp_path / "serial <b onclick=x>log 'a' & \"b\".txt"
    real.write_text("x")
    ev.artifacts[f"{HOSTILE} real"] = real
    extras = extras_for(ev, tmp_path / "artifacts" / "x", link_base=tmp_path)
    _assert_inert(extras[0]["content"])
    names = [e["name"] for e in extras if e["format_type"] == "url"]
    assert html.escape(f"{HOSTILE} real") in names  # pytest-html puts link names into the page as HTML
    hrefs = [e["content"] for e in extras if e["format_type"] == "url"]
    assert all('"' not in h and "<" not in h and " " not in h for h in hrefs)  # URL-quoted


def test_a_rendering_error_shows_the_traceback_as_text(tmp_path: Path) -> None:
    ev = Evidence(test_id=HOSTILE, phase=None)
    page = str(error_fragment(ev, f"Traceback (most recent call last):\n  {HOSTILE}\n"))
    doc = _assert_inert(page)
    assert HOSTILE in doc.text and f"report rendering failed for {HOSTILE}" in doc.text


def test_the_environment_escapes_by_default() -> None:
    env = environment()
    assert env.autoescape is True
    out = str(env.from_string("<p title='{{ v }}'>{{ v }}</p>").render(v=HOSTILE))
    assert Inspector(out).find("p")[0]["title"] == HOSTILE and Inspector(out).text == HOSTILE
    assert "<script" not in out
    # the same escaping as html.escape, so a quote never ends an attribute of either kind
    assert (
        str(render("serial.html", captured=True, tail="'\"<&>", note="")).count("&#x27;&quot;&lt;&amp;&gt;")
        == 1
    )


def test_template_layout_is_not_output() -> None:
    src = "<ul>\n  {# a\n  comment #}\n  <li>{{ x }}</li>\n</ul>\n"
    assert environment().from_string(compact(src)).render(x="a b") == "<ul><li>a b</li></ul>"


def test_no_python_module_of_the_report_builds_markup() -> None:
    """Only templates make markup: ``Markup(...)`` (which bypasses escaping) is built in one place."""
    package = Path(render.__code__.co_filename).parent
    for path in sorted(package.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        calls = [
            node
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Markup"
        ]
        assert not calls or path.name == "_html.py", f"{path.name} builds Markup itself"
