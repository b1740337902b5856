"""What the rest of the rig needs from a connected board."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rig.power import PowerSwitch


@dataclass
class Target:
    """A board ready to be driven.

    Attributes:
        kind: "twin" or "nucleo".
        probe_uid: what :class:`rig.probe.Probe` is opened with (an ST-LINK UID or remote:HOST:PORT).
        serial_port: the board's console (/dev/ttyACM0 or a PTY).
        ota_bind: (host, port) the host OTA server must listen on so the board reaches it.
        info: anything else worth putting in the report (pid, ports, versions).
        ota_dial: (ip, port) the board dials: what the rig tells a bootloader that takes the
            address from its settings. None: ``ota_bind`` (a real board dials where the
            server listens; the twin dials its LAN address, carried to ``ota_bind``).
        board_ip: the board's own address: the OTA server accepts only it (None: any peer).
    """

    kind: str
    probe_uid: str
    serial_port: str
    ota_bind: tuple[str, int]
    info: dict[str, object] = field(default_factory=dict)
    ota_dial: tuple[str, int] | None = None
    board_ip: str | None = None

    @property
    def dial(self) -> tuple[str, int]:
        """Where the board dials (``ota_dial``, else ``ota_bind``)."""
        return self.ota_dial or self.ota_bind

    @property
    def ota_allow(self) -> list[str] | None:
        """The peers the OTA server accepts (``[board_ip]``), None: any."""
        return [self.board_ip] if self.board_ip else None

    def power_cycle(self) -> None:
        """Remove and restore power (twin: control interface; lab: a relay). Optional."""
        switch = self.power_switch()
        if switch is None:
            raise NotImplementedError(f"{self.kind}: no power switch is configured for this board")
        switch.cycle()

    def power_switch(self) -> PowerSwitch | None:
        """The board's power switch (:mod:`rig.power`), None if it has none (a real board
        without a ``power:`` section). Built on first use: a missing uhubctl is an error only
        for the scenarios that switch power."""
        return None

    def reopen_console_path(self) -> str:
        """The console's device after the board (and its ST-LINK) lost power: it may come
        back under another name (/dev/ttyACM1)."""
        return self.serial_port

    def control(self, cmd: str, **args: object) -> dict[str, object]:
        """Lab-equipment actions (faults, buttons) — only the twin has them."""
        raise NotImplementedError(f"{self.kind}: no control interface ({cmd})")

    @property
    def has_control(self) -> bool:
        return False

    def frame_capture(self, path: Path | None) -> bool:
        """Start recording every frame in and out of the board's Ethernet MAC into ``path``
        (stop with None). False: this target has no such recorder (a real board)."""
        return False

    def stop(self) -> None:
        """Release everything this target started or opened (idempotent)."""
