"""A real NUCLEO-F767ZI on this host: ST-LINK by probe UID, virtual COM port by USB serial.

The ST-LINK/V2-1 on a NUCLEO exposes its debug interface and its virtual COM port under
one USB serial number, which is also the probe's unique ID in pyOCD. Matching both by that
number is what keeps the rig from flashing one board while listening to another when two
are plugged in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rig.board import PowerSpec
from rig.errors import TargetError
from rig.probe import ProbeInfo, list_probes, select_probe
from rig.targets.base import Target

if TYPE_CHECKING:
    from rig.labgrid_place import LabgridPlace
    from rig.power import PowerSwitch


@dataclass(frozen=True)
class PortInfo:
    device: str
    serial_number: str | None
    description: str


def list_serial_ports() -> list[PortInfo]:
    from serial.tools import list_ports

    return [PortInfo(p.device, p.serial_number, p.description or "") for p in list_ports.comports()]


def find_vcp(usb_serial: str, ports: list[PortInfo] | None = None) -> str:
    """The serial device whose USB serial number is ``usb_serial`` (exact, case-insensitive)."""
    ports = list_serial_ports() if ports is None else ports
    matches = [p for p in ports if p.serial_number and p.serial_number.lower() == usb_serial.lower()]
    if len(matches) == 1:
        return matches[0].device
    listing = ", ".join(f"{p.device} (serial {p.serial_number or '-'})" for p in ports) or "none"
    if not matches:
        raise TargetError(
            f"no serial port belongs to the ST-LINK with USB serial {usb_serial}; ports: {listing}",
            hint="check the USB cable, or pass --serial-port explicitly",
        )
    raise TargetError(
        f"several serial ports match USB serial {usb_serial}: {listing}", hint="pass --serial-port explicitly"
    )


class NucleoTarget(Target):
    """A NUCLEO-F767ZI reached through its ST-LINK and the lab network."""

    #: the board file's ``power:`` for this board (rig.power builds the switch on first use)
    power_spec: PowerSpec | None = None
    #: the ST-LINK VCP's USB serial number, to find the console again after a power cut
    usb_serial: str | None = None
    _switch: PowerSwitch | None = None
    #: the labgrid place the board was acquired from (``--lg-place``), released by :meth:`stop`
    place: LabgridPlace | None = None

    def power_switch(self) -> PowerSwitch | None:
        from rig.power import switch_for

        if self._switch is None and self.power_spec is not None:
            self._switch = switch_for(self.power_spec, probe_uid=self.probe_uid)
        return self._switch

    def reopen_console_path(self) -> str:
        if self.usb_serial is None:
            return self.serial_port
        try:
            self.serial_port = find_vcp(self.usb_serial)
        except TargetError:
            pass  # not back yet: the console's reopen says so
        return self.serial_port

    def stop(self) -> None:
        """Release the labgrid place, if any (the probe and console are closed by their
        owners); idempotent."""
        place, self.place = self.place, None
        if place is not None:
            place.release()


def nucleo_target(
    *,
    probe_uid: str | None,
    serial_port: str | None,
    usb_serial: str | None,
    ota_bind: tuple[str, int],
    uid_source: str = "--probe-uid",
    probes: Sequence[ProbeInfo] | None = None,
    board_ip: str | None = None,
    ota_dial: tuple[str, int] | None = None,
    power: PowerSpec | None = None,
) -> NucleoTarget:
    """Resolve a NUCLEO from the options and the board file.

    The probe is the one whose unique ID is ``probe_uid`` among those pyOCD lists (``probes``,
    default :func:`rig.probe.list_probes`), or with no ``probe_uid`` the only probe
    connected; a UID that is not connected, no probe at all, or several probes and no UID
    are a ProbeError naming the probes present (``uid_source`` says where the UID came from).
    A ``remote:HOST:PORT`` probe is taken as given (pyOCD cannot list remote probes). The
    console is ``serial_port`` if given, else the port whose USB serial is ``usb_serial`` or,
    failing that, the probe's UID. The board dials ``ota_dial`` (default ``ota_bind``); the
    OTA server listens on ``ota_bind`` (the same address unless the lab network carries the
    board's connections elsewhere: rig.lab) and accepts only ``board_ip``.
    """
    if probe_uid and probe_uid.startswith("remote:"):
        uid = probe_uid
    else:
        found = list_probes() if probes is None else probes
        uid = select_probe(probe_uid, found, source=uid_source).uid
    port = serial_port or find_vcp(usb_serial or uid)
    target = NucleoTarget(
        kind="nucleo",
        probe_uid=uid,
        serial_port=port,
        ota_bind=ota_bind,
        info={"probe_uid": uid, "serial": port, "ota": f"{ota_bind[0]}:{ota_bind[1]}", "board_ip": board_ip},
        board_ip=board_ip,
        ota_dial=ota_dial,
    )
    target.power_spec = power
    target.usb_serial = None if serial_port else (usb_serial or uid)
    return target
