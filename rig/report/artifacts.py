"""Artifacts of one test: files written for the report, links, serial log, transcript, capture, timings.

Everything shown inline is capped (:data:`UART_TAIL_LINES`, :data:`MAX_EVENTS`) and escaped by
the templates; the complete data is in the linked files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from rig.errors import PHASES
from rig.report._html import num, rel_href, render

if TYPE_CHECKING:
    from rig.evidence import Evidence

UART_TAIL_LINES = 60
MAX_EVENTS = 60
MAX_SEGMENTS = 40
MAX_LIST_ITEMS = 64


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


def artifact_links(files: Mapping[str, Path], link_base: Path | None) -> Markup:
    """A list of links with file sizes (missing files are named, not linked)."""
    items: list[tuple[str, Path, str | None, str]] = []  # label, path, href (None: missing), size
    for label, path in files.items():
        path = Path(path)
        if path.exists():
            size = f" ({num(path.stat().st_size)} bytes)" if path.is_file() else ""
            items.append((label, path, rel_href(path, link_base), size))
        else:
            items.append((label, path, None, ""))
    return render("artifacts.html", items=items)


def uart_view(text: str, lines: int = UART_TAIL_LINES) -> Markup:
    """The last ``lines`` lines of the serial log."""
    all_lines = text.splitlines() if text else []
    tail = all_lines[-lines:]
    note = (
        f"last {len(tail)} of {len(all_lines)} lines"
        if len(all_lines) > len(tail)
        else f"{len(all_lines)} line(s)"
    )
    return render("serial.html", captured=bool(text), tail="\n".join(tail), note=note)


def _scalars(d: Mapping[str, Any], skip: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in d.items() if k not in skip and not isinstance(v, (dict, list, tuple))]


def _cells(d: Mapping[str, Any], keys: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(d.get(k, "") for k in keys)


def transcript_view(tr: Mapping[str, Any] | None) -> Markup:
    """Outcome/reason/bytes of the OTA session plus the first and last events."""
    if not tr:
        return render("transcript.html", tables=None, events=None, hidden=0)
    tables = [_scalars(tr)]
    inner = tr.get("transcript") if isinstance(tr.get("transcript"), dict) else tr
    events = inner.get("events") if isinstance(inner, dict) else None
    if isinstance(inner, dict) and inner is not tr:
        tables.append(_scalars(inner))
    shown: list[tuple[Any, ...] | None] | None = None
    hidden = 0
    if isinstance(events, list) and events:
        picked: list[Any] = events
        if len(events) > MAX_EVENTS:
            half = MAX_EVENTS // 2
            picked, hidden = [*events[:half], None, *events[-half:]], len(events) - MAX_EVENTS
        keys = ("t", "dir", "kind", "nbytes", "text")
        shown = [None if e is None else _cells(e, keys) for e in picked if e is None or isinstance(e, dict)]
    return render("transcript.html", tables=tables, events=shown, hidden=hidden)


def _short_list(values: list[Any]) -> str:
    text = ", ".join(str(v) for v in values[:MAX_LIST_ITEMS])
    return text + (f", … ({num(len(values))} in all)" if len(values) > MAX_LIST_ITEMS else "")


def _list_at(d: Mapping[str, Any], key: str) -> list[Any]:
    """``d[key]`` if it is a list, else an empty one."""
    value = d.get(key)
    return value if isinstance(value, list) else []


def capture_view(cap: Mapping[str, Any] | None, link_base: Path | None) -> Markup:
    """pcap link, connection counters, token placement and the first segments."""
    if not cap:
        return render("capture.html", cap=None)
    flat: dict[str, Any] = dict(cap)
    if isinstance(cap.get("analysis"), dict):
        flat.update(cap["analysis"])
    pcap = None
    if flat.get("pcap") or flat.get("path"):
        path = Path(str(flat.get("pcap") or flat.get("path")))
        pcap = (path, rel_href(path, link_base) if path.exists() else None)
    lists = [
        (key, _short_list(flat[key])) for key in ("sizes_down", "sizes_up") if isinstance(flat.get(key), list)
    ]
    tokens, segs = _list_at(flat, "tokens"), _list_at(flat, "segments")
    token_keys = ("dir", "text", "start", "end", "segments")
    segment_keys = ("index", "time", "dir", "offset", "length", "flags", "retransmission")
    return render(
        "capture.html",
        cap=flat,
        pcap=pcap,
        scalars=_scalars(flat, skip=("pcap", "path")),
        lists=lists,
        tokens=[_cells(t, token_keys) for t in tokens[:MAX_EVENTS] if isinstance(t, dict)],
        segments=[_cells(x, segment_keys) for x in segs[:MAX_SEGMENTS] if isinstance(x, dict)],
        total_segments=len(segs),
        max_segments=MAX_SEGMENTS,
    )


def timings_view(timings: Mapping[str, float]) -> Markup:
    """Seconds per phase (pipeline order first) with proportional bars."""
    order = [p for p in PHASES if p in timings] + [p for p in timings if p not in PHASES]
    top = max((float(timings[p]) for p in order), default=0.0) or 1.0
    rows = [(p, f"{float(timings[p]):.3f}", max(1, int(200 * float(timings[p]) / top))) for p in order]
    total = f"{sum(float(timings[p]) for p in order):.3f}"
    return render("timings.html", rows=rows, total=total)
