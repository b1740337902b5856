"""The board's own Ethernet frames in the report: a target that can record what goes in and
out of the board's MAC (the twin's cable, ``frames.pcap``) records each Ethernet update, and
the pcap is attached to the test's evidence. Unlike the host-side capture (the OTA server's
socket on the host), it shows the segments the board's own TCP/IP stack (lwIP) produced and
received, after every hop in between.

A real board has no such recorder: the host-side capture (``--capture-iface``) is all there is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rig.evidence import Evidence

if TYPE_CHECKING:
    from rig.hil import Bench

#: the artifact's name in the report
ARTIFACT = "pcap (board's cable)"


def start(bench: Bench, transport: str) -> Path | None:
    """Start recording the board's frames for an update over ``transport``; the pcap's path,
    or None (not Ethernet, or a target without a recorder)."""
    if transport != "eth":
        return None
    path = bench.artifacts / "board-frames.pcap"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path if bench.target.frame_capture(path) else None


def finish(bench: Bench, ev: Evidence, path: Path | None, *, analyse: bool) -> None:
    """Stop the recording, attach the pcap and, with ``analyse``, add what its TCP segments
    show (a note, and the evidence's capture until a host-side capture replaces it)."""
    if path is None:
        return
    bench.target.frame_capture(None)
    if not path.is_file():
        return
    ev.artifacts[ARTIFACT] = path
    if not analyse:
        return
    from rig.capture import analyze_pcap

    try:
        analysis = analyze_pcap(path, bench.target.dial[1])
    except Exception as exc:  # a capture the analysis cannot read must not fail the update
        ev.notes.append(f"board's cable: cannot analyse {path.name}: {exc}")
        return
    summary = analysis.summary()
    ev.notes.append(f"board's cable (frames in and out of its MAC): {summary}")
    # the report's capture section shows it unless the host-side capture replaces it after this
    ev.capture = {"pcap": str(path), "where": ARTIFACT, "summary": summary, "analysis": analysis.to_dict()}
