"""Which debug probe: pyOCD's list of connected probes, the one a UID names (exactly; a prefix
never matches), or the only one; and the probe object for a ``remote:HOST:PORT`` (the twin's,
pyOCD's probe server) with every wait bounded."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

from rig.errors import ProbeError
from rig.probe_options import pyocd_command


@dataclass(frozen=True)
class ProbeInfo:
    uid: str
    description: str


def list_probes() -> list[ProbeInfo]:
    """Every debug probe pyOCD sees on this host (USB; remote probes are never listed)."""
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    return [ProbeInfo(p.unique_id, p.description) for p in probes]


def _listing(probes: Sequence[ProbeInfo]) -> str:
    return ", ".join(f"{p.uid} ({p.description})" if p.description else p.uid for p in probes)


def select_probe(uid: str | None, probes: Sequence[ProbeInfo], *, source: str = "--probe-uid") -> ProbeInfo:
    """The probe to drive: the one whose unique ID is ``uid`` (exact, case-insensitive: a
    prefix never matches), or, with no ``uid``, the only probe connected.

    ``source`` says where ``uid`` came from (``--probe-uid``, ``OTA_RIG_PROBE_UID``, the
    board file) so the error names what to change. Raises a ProbeError that lists the
    connected probes (or says none is) when there is no single answer.
    """
    if not probes:
        asked = f" (wanted {uid}, from {source})" if uid else ""
        raise ProbeError(
            f"no debug probe is connected to this host{asked}",
            hint=f"plug in the NUCLEO's ST-LINK USB and check that `{pyocd_command('list')}` shows it "
            "(udev rules in docs/lab.md), or run on the twin with --board twin",
        )
    if uid is None:
        if len(probes) > 1:
            raise ProbeError(
                f"{len(probes)} probes are connected ({_listing(probes)}) and none was chosen",
                hint="pass --probe-uid (or set OTA_RIG_PROBE_UID or targets.nucleo.probe_uid) to "
                "the exact unique ID of the board under test",
            )
        return probes[0]
    exact = [p for p in probes if p.uid.lower() == uid.lower()]
    if not exact:
        raise ProbeError(
            f"the probe {uid!r} (from {source}) is not connected; connected: {_listing(probes)}",
            hint=f"copy the exact ID from `{pyocd_command('list')}` into {source}",
        )
    return exact[0]


def _find_probe(uid: str | None):  # -> pyocd DebugProbe
    """Resolve ``uid`` to exactly one probe, or raise a ProbeError that says what to pass."""
    from pyocd.probe.aggregator import DebugProbeAggregator

    if uid and uid.startswith("remote:"):
        from rig.probe_remote import bound_remote_probe

        probe = DebugProbeAggregator.get_probe_with_id(uid)
        if probe is None:
            raise ProbeError(f"pyOCD cannot create a remote probe for {uid!r}", hint="use remote:HOST:PORT")
        return bound_remote_probe(probe)  # no request waits for ever on a server that is gone
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    chosen = select_probe(uid, [ProbeInfo(p.unique_id, p.description) for p in probes])
    return next(p for p in probes if p.unique_id == chosen.uid)


def _is_connection_error(exc: BaseException | None) -> bool:
    while exc is not None:
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False
