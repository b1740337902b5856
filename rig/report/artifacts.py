"""Artifacts of one test: files written for the report, links, serial log, transcript, capture, timings.

Everything shown inline is capped (:data:`UART_TAIL_LINES`, :data:`MAX_EVENTS`) and escaped;
the complete data is in the linked files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.errors import PHASES
from rig.report._html import esc, num

if TYPE_CHECKING:
    from rig.evidence import Evidence

UART_TAIL_LINES = 60
MAX_EVENTS = 60
MAX_SEGMENTS = 40
MAX_LIST_ITEMS = 64

LinkFn = Callable[[Path, str], str]


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback: paths as text, bytes as hex, anything else as repr."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    return repr(value)


def write_evidence_files(ev: Evidence, directory: Path) -> dict[str, Path]:
    """Write what the evidence holds but has no file for yet; return name -> path.

    Files: ``evidence.json`` (always), ``serial.log`` (UART text), ``ota-transcript.json``,
    ``<check>-readback.bin`` / ``<check>-expected.bin`` per region check, unless the evidence
    already lists an artifact of that kind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    have = " ".join(ev.artifacts).lower()
    out: dict[str, Path] = {}
    p = directory / "evidence.json"
    p.write_text(json.dumps(ev.to_dict(), indent=1, default=json_default), encoding="utf-8")
    out["evidence.json"] = p
    if ev.uart and not any(k in have for k in ("uart", "serial")):
        p = directory / "serial.log"
        p.write_text(ev.uart, encoding="utf-8", errors="backslashreplace")
        out["serial log"] = p
    if ev.transcript is not None and "transcript" not in have:
        p = directory / "ota-transcript.json"
        p.write_text(json.dumps(ev.transcript, indent=1, default=json_default), encoding="utf-8")
        out["OTA transcript"] = p
    if "readback" not in have:
        for r in ev.regions:
            p = directory / f"{_safe(r.name)}-readback.bin"
            p.write_bytes(bytes(r.actual))
            out[f"{r.name} readback .bin"] = p
            p = directory / f"{_safe(r.name)}-expected.bin"
            p.write_bytes(bytes(r.expected))
            out[f"{r.name} expected .bin"] = p
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "region"


def artifact_links(files: Mapping[str, Path], link: LinkFn) -> str:
    """A list of links with file sizes (missing files are named, not linked)."""
    items = []
    for label, path in files.items():
        path = Path(path)
        if path.exists():
            size = f" ({num(path.stat().st_size)} bytes)" if path.is_file() else ""
            items.append(f"<li>{link(path, label)}{esc(size)}</li>")
        else:
            items.append(f'<li>{esc(label)}: <span class="muted">{esc(path)} (missing)</span></li>')
    if not items:
        return '<p class="muted">No artifacts.</p>'
    return f'<ul class="artifacts">{"".join(items)}</ul>'


def uart_view(text: str, lines: int = UART_TAIL_LINES) -> str:
    """The last ``lines`` lines of the serial log, escaped."""
    if not text:
        return '<p class="muted">No serial output captured.</p>'
    all_lines = text.splitlines()
    tail = all_lines[-lines:]
    note = (
        f"last {len(tail)} of {len(all_lines)} lines"
        if len(all_lines) > len(tail)
        else f"{len(all_lines)} line(s)"
    )
    return f'<p class="muted">{esc(note)}</p><pre class="uart">{esc(chr(10).join(tail))}</pre>'


def _scalar_table(d: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    rows = []
    for k, v in d.items():
        if k in skip or isinstance(v, (dict, list, tuple)):
            continue
        rows.append(f'<tr><td>{esc(k)}</td><td class="mono">{esc(v)}</td></tr>')
    return f"<table><tbody>{''.join(rows)}</tbody></table>" if rows else ""


def transcript_view(tr: Mapping[str, Any] | None) -> str:
    """Outcome/reason/bytes of the OTA session plus the first and last events."""
    if not tr:
        return '<p class="muted">No OTA session in this test.</p>'
    parts = [_scalar_table(tr)]
    inner = tr.get("transcript") if isinstance(tr.get("transcript"), dict) else tr
    events = inner.get("events") if isinstance(inner, dict) else None
    if isinstance(inner, dict) and inner is not tr:
        parts.append(_scalar_table(inner))
    if isinstance(events, list) and events:
        if len(events) > MAX_EVENTS:
            half = MAX_EVENTS // 2
            shown = events[:half] + [None] + events[-half:]
        else:
            shown = events
        rows = []
        data_events = 0
        for e in shown:
            if e is None:
                rows.append(
                    f'<tr><td colspan="5" class="muted">… {num(len(events) - MAX_EVENTS)} event(s) '
                    "not shown (see the transcript file) …</td></tr>"
                )
                continue
            if not isinstance(e, dict):
                continue
            data_events += e.get("kind") == "data"
            rows.append(
                f'<tr><td class="num">{esc(e.get("t", ""))}</td><td>{esc(e.get("dir", ""))}</td>'
                f'<td>{esc(e.get("kind", ""))}</td><td class="num">{esc(e.get("nbytes", ""))}</td>'
                f'<td class="mono">{esc(e.get("text", ""))}</td></tr>'
            )
        parts.append(
            '<table class="events"><thead><tr><th>t (s)</th><th>dir</th><th>kind</th><th>bytes</th>'
            f"<th>text</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(parts)


def _short_list(values: list[Any]) -> str:
    text = ", ".join(str(v) for v in values[:MAX_LIST_ITEMS])
    return text + (f", … ({num(len(values))} in all)" if len(values) > MAX_LIST_ITEMS else "")


def capture_view(cap: Mapping[str, Any] | None, link: LinkFn) -> str:
    """pcap link, connection counters, token placement and the first segments."""
    if not cap:
        return '<p class="muted">No packet capture in this test.</p>'
    parts = []
    flat: dict[str, Any] = dict(cap)
    if isinstance(cap.get("analysis"), dict):
        flat.update(cap["analysis"])
    pcap = flat.get("pcap") or flat.get("path")
    if pcap:
        path = Path(str(pcap))
        ref = (
            link(path, path.name)
            if path.exists()
            else f'{esc(path.name)} <span class="muted">({esc(path)} missing)</span>'
        )
        parts.append(f"<p>pcap: {ref}</p>")
    parts.append(_scalar_table(flat, skip=("pcap", "path")))
    for key in ("sizes_down", "sizes_up"):
        if isinstance(flat.get(key), list):
            parts.append(f'<p><b>{esc(key)}</b>: <span class="mono">{esc(_short_list(flat[key]))}</span></p>')
    tokens = flat.get("tokens")
    if isinstance(tokens, list) and tokens:
        rows = "".join(
            f'<tr><td>{esc(t.get("dir", ""))}</td><td class="mono">{esc(t.get("text", ""))}</td>'
            f'<td class="num">{esc(t.get("start", ""))}</td><td class="num">{esc(t.get("end", ""))}</td>'
            f'<td class="num">{esc(t.get("segments", ""))}</td></tr>'
            for t in tokens[:MAX_EVENTS]
            if isinstance(t, dict)
        )
        parts.append(
            "<h4>Control tokens in the stream</h4><table><thead><tr><th>dir</th><th>token</th>"
            f"<th>start</th><th>end</th><th>segments</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    segs = flat.get("segments")
    if isinstance(segs, list) and segs:
        rows = "".join(
            f'<tr><td class="num">{esc(s.get("index", ""))}</td><td class="num">{esc(s.get("time", ""))}</td>'
            f'<td>{esc(s.get("dir", ""))}</td><td class="num">{esc(s.get("offset", ""))}</td>'
            f'<td class="num">{esc(s.get("length", ""))}</td><td>{esc(s.get("flags", ""))}</td>'
            f"<td>{'retransmission' if s.get('retransmission') else ''}</td></tr>"
            for s in segs[:MAX_SEGMENTS]
            if isinstance(s, dict)
        )
        more = (
            f'<p class="muted">first {MAX_SEGMENTS} of {num(len(segs))} segments</p>'
            if len(segs) > MAX_SEGMENTS
            else ""
        )
        parts.append(
            "<h4>TCP segments</h4><table><thead><tr><th>#</th><th>t</th><th>dir</th><th>offset</th>"
            f"<th>length</th><th>flags</th><th></th></tr></thead><tbody>{rows}</tbody></table>{more}"
        )
    return "".join(parts)


def timings_view(timings: Mapping[str, float]) -> str:
    """Seconds per phase (pipeline order first) with proportional bars."""
    if not timings:
        return '<p class="muted">No timings recorded.</p>'
    order = [p for p in PHASES if p in timings] + [p for p in timings if p not in PHASES]
    top = max((float(timings[p]) for p in order), default=0.0) or 1.0
    rows = []
    for p in order:
        t = float(timings[p])
        rows.append(
            f'<tr><td>{esc(p)}</td><td class="num">{t:.3f}</td>'
            f'<td><span class="bar" style="width:{max(1, int(200 * t / top))}px"></span></td></tr>'
        )
    total = sum(float(timings[p]) for p in order)
    rows.append(f'<tr><td><b>total</b></td><td class="num"><b>{total:.3f}</b></td><td></td></tr>')
    return (
        '<table class="timings"><thead><tr><th>phase</th><th>seconds</th><th></th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )
