"""The chip's silicon revision, read through the probe and recorded in every report.

DBGMCU_IDCODE (0xE0042000): DEV_ID in bits 11:0 (0x451 = STM32F76x/F77x), REV_ID in bits
31:16 (0x1000 = revision A, 0x1001 = revision Z; RM0410, ES0334). Revision A F767s receive
erroneous Ethernet data in RMII configuration by themselves (errata ES0334, "Ethernet
erroneous data received in RMII configuration", fixed in revision Z): an Ethernet failure on
such a chip may be the silicon, not the bootloader, so the report says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

DBGMCU_IDCODE = 0xE0042000
#: DEV_ID -> the device line it names
DEVICES = {0x451: "STM32F76x/F77x", 0x449: "STM32F74x/F75x", 0x452: "STM32F72x/F73x"}
#: (DEV_ID, REV_ID) -> the revision's letter (ES0334 for the F76x/F77x)
REVISIONS = {(0x451, 0x1000): "A", (0x451, 0x1001): "Z"}
#: revisions whose Ethernet RX is corrupted in RMII mode (ES0334)
RMII_ERRATUM = {(0x451, 0x1000)}


class _Reads32(Protocol):
    def read32(self, address: int) -> int: ...


@dataclass(frozen=True)
class Silicon:
    """DEV_ID and REV_ID of the chip under test."""

    dev_id: int
    rev_id: int

    @classmethod
    def read(cls, probe: _Reads32) -> Silicon:
        """Read DBGMCU_IDCODE through ``probe`` (32-bit access only, RM0410)."""
        idcode = int(probe.read32(DBGMCU_IDCODE))
        return cls(idcode & 0xFFF, idcode >> 16)

    @property
    def revision(self) -> str | None:
        """The revision's letter (A, Z), None if this rig does not know it."""
        return REVISIONS.get((self.dev_id, self.rev_id))

    def text(self) -> str:
        """e.g. ``STM32F76x/F77x rev Z (DEV_ID 0x451, REV_ID 0x1001)``."""
        device = DEVICES.get(self.dev_id, "unknown device")
        rev = f"rev {self.revision}" if self.revision else "unknown revision"
        return f"{device} {rev} (DEV_ID 0x{self.dev_id:03X}, REV_ID 0x{self.rev_id:04X})"

    def ethernet_warning(self) -> str | None:
        """The warning for an Ethernet test on this chip, or None."""
        if (self.dev_id, self.rev_id) not in RMII_ERRATUM:
            return None
        return (
            f"warning: this chip is {self.text()}: revision A receives erroneous Ethernet data in "
            "RMII configuration by itself (errata ES0334, fixed in revision Z); an Ethernet "
            "failure here may be the silicon, not the bootloader — run it on a revision Z board"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "dev_id": f"0x{self.dev_id:03X}",
            "rev_id": f"0x{self.rev_id:04X}",
            "revision": self.revision,
            "text": self.text(),
        }


def record(evidence: object, silicon: Silicon | None, transport: str | None) -> None:
    """Put the silicon revision into a test's evidence (a scenario chip of the report) and,
    for an Ethernet test on revision A, the erratum warning into its notes."""
    if silicon is None:
        return
    scenario = getattr(evidence, "scenario", None)
    notes = getattr(evidence, "notes", None)
    if isinstance(scenario, dict):
        scenario["silicon"] = silicon.text()
    warning = silicon.ethernet_warning() if transport == "eth" else None
    if warning and isinstance(notes, list) and warning not in notes:
        notes.append(warning)
