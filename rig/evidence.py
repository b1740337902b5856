"""What one HIL test collected: the data the HTML report renders and failures carry.

Filled by :mod:`rig.hil` as a scenario runs (whether it passes or fails), attached to the
pytest item by the plugin, rendered by :mod:`rig.report`. Only data, no hardware access.
Byte buffers are kept (expected/actual/previous per region) so the report can draw hex
dumps and the flash map; artifacts written to disk are listed in ``artifacts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.board import FlashLayout
from rig.diff import Analysis
from rig.jump import JumpState, JumpVerdict


@dataclass
class RegionCheck:
    """A readback of one region compared with what it should hold."""

    name: str  #: board region name ("app_slot", "bootloader", "scratch"...)
    base: int  #: address of expected[0] / actual[0]
    expected: bytes
    actual: bytes
    analysis: Analysis
    previous: bytes | None = None  #: what the region held before the update, if known
    phase: str = "copy"  #: the phase a mismatch here points to

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "base": self.base,
            "length": len(self.expected),
            "phase": self.phase,
            "analysis": self.analysis.to_dict(),
        }


@dataclass
class FaultInfo:
    """Where the core ended up when the jump did not reach the application."""

    pc: int
    state: str  #: "halted", "lockup", "running"...
    registers: dict[str, int] = field(default_factory=dict)  #: cfsr, hfsr, mmfar, bfar, xpsr, lr, msp...
    code_base: int = 0  #: address of ``code`` (for a disassembly around pc)
    code: bytes = b""

    def to_dict(self) -> dict[str, Any]:
        return {
            "pc": self.pc,
            "state": self.state,
            "registers": self.registers,
            "code_base": self.code_base,
            "code_len": len(self.code),
        }


@dataclass
class Evidence:
    """Everything one test observed. ``phase``/``message`` are set when it failed."""

    test_id: str = ""
    scenario: dict[str, Any] = field(default_factory=dict)  #: transport, image_size, scenario, variant
    layout: FlashLayout | None = None
    phase: str | None = None
    message: str | None = None
    regions: list[RegionCheck] = field(default_factory=list)
    jump_state: JumpState | None = None
    jump: JumpVerdict | None = None
    fault: FaultInfo | None = None
    uart: str = ""
    transcript: dict[str, Any] | None = None  #: rig.ota transcript/result to_dict()
    capture: dict[str, Any] | None = None  #: pcap path + segment analysis
    artifacts: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  #: phase -> seconds
    notes: list[str] = field(default_factory=list)

    @property
    def diagnoses(self) -> list[str]:
        """Every diagnosis sentence, region by region."""
        return [f"{r.name}: {d.summary()}" for r in self.regions for d in r.analysis.diagnoses]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test_id": self.test_id,
            "scenario": self.scenario,
            "phase": self.phase,
            "message": self.message,
            "layout": self.layout.mode if self.layout else None,
            "regions": [r.to_dict() for r in self.regions],
            "jump_state": self.jump_state.to_dict() if self.jump_state else None,
            "jump": self.jump.to_dict() if self.jump else None,
            "fault": self.fault.to_dict() if self.fault else None,
            "uart": self.uart,
            "transcript": self.transcript,
            "capture": self.capture,
            "artifacts": {k: str(v) for k, v in self.artifacts.items()},
            "timings": self.timings,
            "notes": self.notes,
        }
