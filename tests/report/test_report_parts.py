"""Fault decoding, disassembly, the summary table and the report hooks' helpers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from report_html import Inspector

from rig.fixtures.report_hooks import artifact_dir_for
from rig.report import SummaryRow, summary_html
from rig.report.disasm import around, decode
from rig.report.faults import decode_cfsr, decode_hfsr, exc_return_text, exception_name, fault_summary


def test_cfsr_bits_decode_each_field() -> None:
    bits = decode_cfsr(0x00010000)
    assert [b.name for b in bits if b.set] == ["UNDEFINSTR"]
    by_name = {b.name: b for b in decode_cfsr(0x02028082)}
    assert by_name["DACCVIOL"].set and by_name["DACCVIOL"].register == "MMFSR"
    assert by_name["MMARVALID"].set and by_name["PRECISERR"].set is False
    assert by_name["BFARVALID"].set and by_name["BFARVALID"].register == "BFSR"
    assert by_name["INVSTATE"].set and by_name["DIVBYZERO"].set and by_name["UNALIGNED"].set is False
    assert {b.register for b in bits} == {"MMFSR", "BFSR", "UFSR"}


def test_hfsr_and_summaries() -> None:
    assert [b.name for b in decode_hfsr(0x40000002) if b.set] == ["VECTTBL", "FORCED"]
    assert fault_summary(0x00020000, 0x40000000) == "HFSR.FORCED, UFSR.INVSTATE"
    assert fault_summary(0, 0) == "none"
    assert exception_name(3) == "HardFault" and exception_name(16 + 7) == "IRQ 7"
    assert exc_return_text(0xFFFFFFFD) == "EXC_RETURN: return to thread mode, PSP, basic frame"
    assert exc_return_text(0x08000001) is None


def test_disassembly_restarts_at_the_pc() -> None:
    # push {r7, lr}; add r7, sp, #0; mov.w r3, #0; bx lr
    code = bytes.fromhex("80b500af4ff000037047")
    insns = around(code, 0x08040000, 0x08040005)  # Thumb bit set: still the mov.w
    assert [i.address for i in insns] == [0x08040000, 0x08040002, 0x08040004, 0x08040008]
    assert insns[2].mnemonic == "mov.w" and insns[2].raw == bytes.fromhex("4ff00003")
    assert insns[0].text == "push {r7, lr}"
    # starting mid-instruction: the PC line still decodes from the PC
    assert around(code, 0x08040000, 0x08040006)[-2].address == 0x08040006
    assert around(code, 0x08040000, 0x09000000) == []


def test_undecodable_halfwords_become_data() -> None:
    # erased flash (0xFFFF halfwords) does not decode as one instruction per halfword
    insns = decode(bytes.fromhex("ffffffff7047"), 0x100)
    assert insns[0].mnemonic == ".short" and insns[0].operands == "0xffff" and insns[0].address == 0x100
    assert sum(len(i.raw) for i in insns) == 6  # every byte is accounted for
    assert decode(bytes.fromhex("7047"), 0x100)[0].text == "bx lr"


def _rows() -> list[SummaryRow]:
    return [
        SummaryRow("t::a[eth-16K]", "eth", 16384, "update", "passed"),
        SummaryRow("t::a[eth-512K]", "eth", 524288, "update", "failed", phase="copy"),
        SummaryRow("t::a[wifi-16K]", "wifi", 16384, "update", "passed"),
        SummaryRow("t::b[wifi-16K]", "wifi", 16384, "update", "failed", phase="transfer"),
        SummaryRow("t::c[eth-16K]", "eth", 16384, "power_cut", "skipped"),
        SummaryRow("t::<script>", "eth", "odd<size>", "x<y>", "passed"),
    ]


def test_summary_pivots_transport_size_and_scenario() -> None:
    html = summary_html(_rows())
    doc = Inspector(html)
    assert "script" not in doc.names()
    assert "x&lt;y&gt;" in html and "odd&lt;size&gt;" in html
    heads = [h for h in re.findall(r"<th[^>]*>([^<]*)</th>", html)]
    assert heads[:3] == ["scenario", "eth", "wifi"]
    assert heads[3:] == ["16 KiB", "512 KiB", "odd&lt;size&gt;", "16 KiB"]
    body = re.findall(r"<tr><td>(.*?)</td>(.*?)</tr>", html)
    cells = {name: re.findall(r'data-outcome="(\w+)"|<td class="muted">·', rest) for name, rest in body}
    assert cells["update"] == ["passed", "failed", "", "failed"]  # wifi 16K: one pass + one fail -> failed
    assert "failed [copy]" in html and "failed [transfer] ×2" in html
    assert "6 test(s): 2 failed, 3 passed, 1 skipped" in doc.text


def test_summary_from_scenario_and_empty() -> None:
    row = SummaryRow.from_scenario(
        "tests_hil/t.py::test_x[eth]", "failed", {"transport": "eth", "image_size": 300 * 1024}, phase="jump"
    )
    assert (row.transport, row.image_size, row.scenario, row.phase) == ("eth", 307200, "test_x", "jump")
    assert "No OTA scenarios ran" in summary_html([])


def test_artifact_dir_is_a_safe_name(tmp_path: Path) -> None:
    d = artifact_dir_for(tmp_path, "tests_hil/test_ota.py::test_update[eth-../../x y]")
    assert d.parent == tmp_path / "artifacts"
    assert d.resolve().parent == (tmp_path / "artifacts").resolve()
    assert re.fullmatch(r"[A-Za-z0-9_.=-]+", d.name)


@pytest.mark.parametrize("size,text", [(16384, "16 KiB"), (2 * 1024 * 1024, "2 MiB"), (1000, "1 000 B")])
def test_size_text(size: int, text: str) -> None:
    from rig.report._html import size_text

    assert size_text(size) == text


def test_default_link_base_follows_the_reports_layout(tmp_path: Path) -> None:
    from rig.report.render import default_link_base

    assert default_link_base(tmp_path / "reports" / "artifacts" / "t") == tmp_path / "reports"
    assert default_link_base(tmp_path / "out" / "t") == tmp_path / "out"
