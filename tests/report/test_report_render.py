"""render_evidence on constructed Evidence (real rig.diff.analyze, real board file)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from report_html import ALLOWED_TAGS, Inspector
from report_samples import APP_BASE, HOSTILE_UART, never_erased_evidence, passing_evidence, random_evidence

from rig.board import load_board
from rig.diff import analyze
from rig.evidence import Evidence, RegionCheck
from rig.report import extras_for, failed, render_evidence


@pytest.fixture(scope="module")
def never_erased(tmp_path_factory: pytest.TempPathFactory) -> tuple[Evidence, str, Path]:
    tmp = tmp_path_factory.mktemp("never_erased")
    ev = never_erased_evidence(tmp)
    adir = tmp / "artifacts" / "t1"
    return ev, render_evidence(ev, adir, link_base=tmp), adir


def _diff_lines(ev: Evidence) -> list[int]:
    """Independent count: 16-byte lines with a differing byte, per check, as absolute line addresses."""
    out = []
    for r in ev.regions:
        a, b = np.frombuffer(r.expected, np.uint8), np.frombuffer(r.actual, np.uint8)
        idx = np.flatnonzero(a != b) + r.base
        out += sorted(set((idx // 16 * 16).tolist()))
    return out


def test_sections_in_order_and_diagnosis_on_top(never_erased: tuple[Evidence, str, Path]) -> None:
    _ev, html, _ = never_erased
    order = [
        "verdict",
        "mismatches",
        "flashmap",
        "hexdump",
        "jump",
        "fault",
        "artifacts",
        "timings",
        "serial",
        "transcript",
        "capture",
    ]
    pos = [html.index(f'data-section="{name}"') for name in order]
    assert pos == sorted(pos)
    top = Inspector(html[: pos[1]]).text
    assert "copy" in top
    assert "sector 6 was programmed without an erase" in top
    assert "only 1->0 changes" in top
    assert "to the end of the data" in top  # the erased tail
    assert "jump.vtor" in top and "FORCED" in top  # jump failure and the fault, in words


def test_mismatch_table_rows_match_an_independent_diff(never_erased: tuple[Evidence, str, Path]) -> None:
    ev, html, adir = never_erased
    lines = _diff_lines(ev)
    m = re.search(r'<table class="mismatches" data-rows="(\d+)"', html)
    assert m and int(m.group(1)) == len(lines)
    with (adir / "mismatches.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(lines)
    first = rows[0]
    r = ev.regions[0]
    addr = int(first["address"], 16)
    assert addr // 16 * 16 == lines[0]
    off = addr - r.base
    n = int(first["length"])
    assert first["expected"] == r.expected[off : off + n].hex(" ")
    assert first["actual"] == r.actual[off : off + n].hex(" ")
    assert first["xor"] == bytes(
        x ^ y for x, y in zip(r.expected[off : off + n], r.actual[off : off + n], strict=True)
    ).hex(" ")
    assert (first["bank"], first["sector"], first["region"]) == ("1", "6", "app_slot")
    data = json.loads((adir / "mismatches.json").read_text())
    assert data["total_rows"] == len(lines) and len(data["rows"]) == len(lines)
    assert data["rows"][0][data["columns"].index("address")] == addr
    # the inline table shows the same first row, and links both files
    assert f"0x{addr:08X}" in html
    hrefs = [a["href"] for a in Inspector(html).find("a")]
    assert "artifacts/t1/mismatches.csv" in hrefs and "artifacts/t1/mismatches.json" in hrefs


def test_flash_map_colours_each_sector(never_erased: tuple[Evidence, str, Path]) -> None:
    _, html, _ = never_erased
    svg = html[html.index("<svg") : html.index("</svg>") + 6]
    status = dict(re.findall(r'data-sector="(\d+)" data-status="(\w+)"', svg))
    assert status == {
        "0": "outside",
        "1": "outside",
        "2": "outside",
        "3": "outside",
        "4": "outside",
        "5": "match",
        "6": "mismatch",
        "7": "mismatch",
        "8": "outside",
        "9": "outside",
        "10": "outside",
        "11": "outside",
    }
    assert "sector 6 (bank 1, SNB 0x06) 0x08080000..0x080BFFFF, 256 KiB" in svg
    for label in ("match", "mismatch", "erased", "outside the image"):
        assert f">{label}</text>" in svg
    assert "no sector is drawn narrower than" in html


def test_flash_map_erased_and_dual_bank(tmp_path: Path) -> None:
    spec = load_board()
    layout = spec.layout(dual_bank=True)
    sec = layout.sector(14)  # bank 2, 16 KiB
    exp = bytes(range(256)) * (sec.size // 256)
    act = b"\xff" * sec.size
    ev = Evidence(
        layout=layout, regions=[RegionCheck("app", sec.base, exp, act, analyze(exp, act, sec.base, layout))]
    )
    html = render_evidence(ev, tmp_path / "a")
    status = dict(re.findall(r'data-sector="(\d+)" data-status="(\w+)"', html))
    assert len(status) == 24
    assert status["14"] == "erased"
    assert {v for k, v in status.items() if k != "14"} == {"outside"}
    assert ">bank 1</text>" in html and ">bank 2</text>" in html


def test_sector_widths_scale_with_a_minimum() -> None:
    from rig.report.flashmap import MIN_W, sector_widths

    sizes = [32, 32, 32, 32, 128] + [256] * 7
    w = sector_widths([s * 1024 for s in sizes], 900.0)
    assert sum(w) == pytest.approx(900.0)
    assert all(x >= MIN_W - 1e-9 for x in w)
    assert w[5] == pytest.approx(2 * w[4])  # linear above the minimum
    assert w[0] == pytest.approx(MIN_W)


def test_hexdump_highlights_exactly_the_differing_bytes(tmp_path: Path) -> None:
    layout = load_board().active_layout
    exp = bytes(range(256)) * 16
    act = bytearray(exp)
    act[0x123] ^= 0x10
    ev = Evidence(
        layout=layout,
        regions=[
            RegionCheck("app_slot", APP_BASE, exp, bytes(act), analyze(exp, bytes(act), APP_BASE, layout))
        ],
    )
    html = render_evidence(ev, tmp_path / "a")
    dump = html[html.index('data-section="hexdump"') : html.index('data-section="jump"')]
    assert dump.count('<div class="hexwrap">') == 1
    # one differing byte: hex + ASCII on the expected side and on the actual side
    assert dump.count("<mark>") == 4
    assert "<mark>23</mark>" in dump and "<mark>33</mark>" in dump
    assert "0x08040120" in dump and "1 of 128 bytes differ" in dump


def test_jump_table_and_fault_view(never_erased: tuple[Evidence, str, Path]) -> None:
    ev, html, _ = never_erased
    jump = html[html.index('data-section="jump"') : html.index('data-section="fault"')]
    assert ev.jump is not None
    for row in ev.jump.rows:
        assert f'<td class="mono">{row.name}</td>' in jump
    assert jump.count(">FAIL<") == len(ev.jump.failures)
    assert "the app&#x27;s interrupts vector into the bootloader&#x27;s table" in jump
    fault = html[html.index('data-section="fault"') : html.index('data-section="artifacts"')]
    assert '<tr class="pc">' in fault and "0x08081234" in fault
    assert re.search(
        r'<tr class="set"><td>UFSR</td><td class="num">16</td><td class="mono">UNDEFINSTR', fault
    )
    assert re.search(r'<tr class="set"><td>HFSR</td><td class="num">30</td><td class="mono">FORCED', fault)
    assert fault.count('<tr class="set">') == 2
    assert "not valid (BFARVALID=0)" in fault


def test_passing_evidence_has_no_fault_section(tmp_path: Path) -> None:
    ev = passing_evidence()
    assert not failed(ev)
    html = render_evidence(ev, tmp_path / "a")
    assert 'class="verdict pass"' in html
    assert 'data-section="fault"' not in html
    assert "all 204 800 compared bytes match" in Inspector(html).text
    assert "Jump contract holds" in html
    assert "No differing bytes in the compared regions." in html


def test_device_text_is_escaped(tmp_path: Path) -> None:
    ev = never_erased_evidence(tmp_path, uart=HOSTILE_UART + "</pre></div><script>x()</script>")
    ev.test_id = "t[<script>alert(3)</script>]"
    ev.notes.append('<img src=x onerror="alert(4)">')
    ev.scenario["variant"] = "<b onclick=alert(5)>"
    html = render_evidence(ev, tmp_path / "a")
    doc = Inspector(html)
    assert doc.names() <= ALLOWED_TAGS
    assert not [a for _, attrs in doc.tags for a in attrs if a.startswith("on")]
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert "<script>alert('pwned')</script>" in doc.text  # shown as text, verbatim
    assert "FILE_SIZE:614400&lt;b&gt;" in html  # transcript text escaped too
    assert "ota.pcap" in html and "missing" in html  # a capture file that is not there is named, not linked


def test_fragment_is_self_contained_and_links_are_relative(never_erased: tuple[Evidence, str, Path]) -> None:
    _ev, html, adir = never_erased
    doc = Inspector(html)
    assert not doc.find("script") and not doc.find("link") and not doc.find("img")
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", html)
    base = adir.parent.parent
    for a in doc.find("a"):
        href = a["href"] or ""
        assert not href.startswith("/") and "://" not in href
        assert (base / href).exists(), href


def test_two_mib_of_random_mismatches_stays_bounded(tmp_path: Path) -> None:
    ev = random_evidence()
    html = render_evidence(ev, tmp_path / "a")
    assert len(html.encode()) < 400_000
    m = re.search(r'data-rows="(\d+)"', html)
    assert m and int(m.group(1)) == len(_diff_lines(ev))
    assert html.count('<tr><td class="num">') <= 100 + 32  # inline rows are capped
    assert html.count('<div class="hexwrap">') <= 6
    with (tmp_path / "a" / "mismatches.csv").open() as fh:
        assert sum(1 for _ in fh) - 1 == len(_diff_lines(ev))


def test_extras_for_gives_html_json_and_relative_urls(tmp_path: Path) -> None:
    ev = never_erased_evidence(tmp_path)
    extras = extras_for(ev, tmp_path / "artifacts" / "x", link_base=tmp_path)
    kinds = [e["format_type"] for e in extras]
    assert kinds[0] == "html" and "json" in kinds and "url" in kinds
    assert 'data-section="flashmap"' in extras[0]["content"]
    js = next(e for e in extras if e["format_type"] == "json")
    assert js["content"]["phase"] == "copy"
    json.dumps(js["content"])
    for e in extras:
        if e["format_type"] == "url":
            assert (tmp_path / e["content"]).exists()


def test_transfer_failure_without_readback_or_layout(tmp_path: Path) -> None:
    ev = Evidence(
        test_id="t",
        phase="transfer",
        message="NACK:crc after 300 000 bytes",
        transcript={"outcome": "nack", "nack_reason": "crc"},
        timings={"transfer": 2.0},
    )
    html = render_evidence(ev, tmp_path / "a")
    assert 'class="verdict fail"' in html and "NACK:crc after 300 000 bytes" in html
    for absent in ("mismatches", "flashmap", "hexdump", "fault"):
        assert f'data-section="{absent}"' not in html
    assert "The jump was not reached or not checked" in html
    assert not (tmp_path / "a" / "mismatches.csv").exists()


def test_regions_without_a_layout(tmp_path: Path) -> None:
    exp = bytes(1024)
    act = bytes(1000) + b"OTA_DONE" + bytes(16)
    ev = Evidence(
        phase="write", regions=[RegionCheck("blob", 0x2000_0000, exp, act, analyze(exp, act, 0x2000_0000))]
    )
    html = render_evidence(ev, tmp_path / "a")
    assert 'data-section="flashmap"' not in html
    assert "foreign_text" in html and "OTA_DONE" in Inspector(html).text
    assert "<td>—</td>" in html  # no bank/sector without a layout


def test_a_rendering_bug_becomes_a_visible_error_not_a_crash(tmp_path: Path) -> None:
    ev = Evidence(test_id="t<1>", phase="copy")
    ev.regions.append(RegionCheck("broken", 0, b"\x00", b"\x01", analysis=None))  # type: ignore[arg-type]
    extras = extras_for(ev, tmp_path / "a")
    assert len(extras) == 1 and extras[0]["format_type"] == "html"
    html = extras[0]["content"]
    assert "report rendering failed for t&lt;1&gt;" in html and "Traceback" in html
