"""A board in a labgrid farm: reserve and acquire its place, take its resources, release it.

``pytest tests_hil --board nucleo --lg-place NAME`` (``-n N --lg-place A,B``: one place per
worker) asks labgrid's coordinator (``$LG_COORDINATOR``, default ``127.0.0.1:20408``; labgrid
26, gRPC) for the place: a reservation filtered on its name, waited for while another user
holds it (saying who, every 30 s, up to the lock timeout), then the acquisition, which the
reservation's owner is allowed. The place's resources, exported by the labgrid exporter on
the board's host, say where the board is:

- ``NetworkSerialPort`` (``protocol: rfc2217``; labgrid's exporter makes one from a
  ``USBSerialPort``/``RawSerialPort`` by starting ser2net): the console, ``rfc2217://host:port``;
- ``PyOCDServer`` (``host``, ``port``; a resource class of ours, which labgrid's exporter
  publishes as given): the board's ``pyocd server``, ``remote:host:port``;
- ``OtaListen`` (``host``, ``port``; ours, optional): where this board's OTA connections reach
  the runner (the board file's ``listen`` for this place), when places differ in it;
- a power port (``NetworkPowerPort``, ``PDUDaemonPort``, ... any class ending in ``PowerPort``
  or ``Port`` with ``power`` in its name): recorded; the rig cuts power with the board file's
  ``power:`` (labgrid's own power driver is not used).

Release cancels the reservation and releases the place on every exit path (the plugin's
``finally``; an interpreter exit through ``atexit``). labgrid is imported only here, and only
when a place is used: ``pip install ota-rig[lab]``; the twin never needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rig.board import Endpoint, LabBoard
from rig.errors import ConfigError, TargetError

DEFAULT_COORDINATOR = "127.0.0.1:20408"
#: resource classes of ours (labgrid's exporter publishes an unknown class with its params)
PYOCD_SERVER, OTA_LISTEN = "PyOCDServer", "OtaListen"
#: labgrid.remote.common.ReservationState's values
WAITING, ALLOCATED, ACQUIRED = 0, 1, 2
#: seconds to reach the coordinator
CONNECT_TIMEOUT = 20.0


def coordinator_address() -> str:
    return os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


@dataclass(frozen=True)
class PlaceResources:
    """What an acquired place says about its board."""

    place: str
    probe_uid: str  #: ``remote:HOST:PORT`` (the PyOCDServer resource)
    serial_port: str  #: ``rfc2217://HOST:PORT`` (the NetworkSerialPort resource)
    ota_listen: tuple[str, int] | None = None  #: the OtaListen resource, if the place has one
    power: dict[str, Any] | None = None  #: a power port's class and parameters, if any
    resources: dict[str, dict[str, Any]] = field(default_factory=dict)  #: every resource, by class


def places_for_run(
    option: str | None, board_file: Path, *, board: str, probe_uid: str | None
) -> tuple[str, ...]:
    """``--lg-place A,B``, else the board file's ``targets.nucleo.labgrid_place``; only with
    ``--board nucleo`` and without a probe UID (the place says where the probe is)."""
    from rig.board import load_board
    from rig.errors import RigError
    from rig.lab import split_list

    places = split_list(option)
    if not places and board == "nucleo":
        try:
            nucleo = load_board(board_file).targets.get("nucleo")
        except RigError:
            return ()  # the board_spec fixture reports a bad board file (exit 4)
        places = split_list(nucleo.labgrid_place if nucleo else None)
    if places and board != "nucleo":
        raise ConfigError("--lg-place: a labgrid place is a real board: add --board nucleo")
    if places and probe_uid:
        raise ConfigError(
            f"--lg-place {','.join(places)} and a probe UID ({probe_uid}): the place says where its "
            "probe is; give one of them"
        )
    return tuple(places)


def board_of_place(template: LabBoard, res: PlaceResources) -> LabBoard:
    """The board file's board (where it dials, its own address, its power switch) with what
    the place says: its probe server, its console and, if it has one, where its OTA
    connections reach the runner."""
    listen = Endpoint(*res.ota_listen) if res.ota_listen else template.listen
    return replace(
        template,
        probe_uid=res.probe_uid,
        serial_port=res.serial_port,
        usb_serial=None,
        listen=listen,
        listen_key=f"the OtaListen resource of labgrid place {res.place}"
        if res.ota_listen
        else template.listen_key,
    )


def _labgrid() -> Any:
    try:
        from labgrid.remote import client
    except ImportError as exc:
        raise ConfigError(
            f"--lg-place needs labgrid ({exc})",
            hint="pip install 'ota-rig[lab]' (labgrid 26 or later, its gRPC coordinator)",
        ) from None
    return client


def resources_of(place: str, entries: dict[str, dict[str, Any]]) -> PlaceResources:
    """The rig's view of a place's resources (``{class: params}``); a missing probe or console
    is a TargetError naming what the place has."""
    have = ", ".join(sorted(entries)) or "none"
    serial = entries.get("NetworkSerialPort")
    probe = entries.get(PYOCD_SERVER)
    if probe is None or serial is None:
        missing = [n for n, r in ((PYOCD_SERVER, probe), ("NetworkSerialPort", serial)) if r is None]
        raise TargetError(
            f"labgrid place {place} has no {' and no '.join(missing)} resource (it has: {have})",
            hint="export the board's `pyocd server` as PyOCDServer {host, port} and its console as "
            "a USBSerialPort/RawSerialPort (ser2net) or NetworkSerialPort with protocol rfc2217 (docs/lab.md)",
        )
    if serial.get("protocol", "rfc2217") != "rfc2217":
        raise TargetError(
            f"labgrid place {place}: NetworkSerialPort speaks {serial['protocol']}, not rfc2217"
        )
    listen = entries.get(OTA_LISTEN)
    power = next(({"cls": c, **p} for c, p in entries.items() if "power" in c.lower()), None)
    return PlaceResources(
        place,
        probe_uid=f"remote:{probe['host']}:{probe['port']}",
        serial_port=f"rfc2217://{serial['host']}:{serial['port']}",
        ota_listen=(str(listen["host"]), int(listen["port"])) if listen else None,
        power=power,
        resources=entries,
    )


class LabgridPlace:
    """One place of the farm, acquired by :meth:`acquire` and given back by :meth:`release`."""

    def __init__(
        self,
        name: str,
        *,
        coordinator: str | None = None,
        timeout: float = 600.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.name = name
        self.coordinator = coordinator or coordinator_address()
        self.timeout = timeout
        self.say = say
        self.acquired = False
        self._session: Any = None
        self._token: str | None = None

    # -- the coordinator ---------------------------------------------------------------
    def _run(self, coro: Any, what: str, timeout: float = 30.0) -> Any:
        client = _labgrid()
        try:
            return self._session.loop.run_until_complete(asyncio.wait_for(coro, timeout))
        except (TimeoutError, client.Error, Exception) as exc:
            raise TargetError(
                f"labgrid coordinator {self.coordinator}: {what} failed: {type(exc).__name__}: {exc}",
                hint="is labgrid-coordinator running there, and $LG_COORDINATOR right?",
            ) from None

    def _connect(self) -> None:
        """A client session (labgrid's start_session, with a bounded start: an address that
        swallows packets must not hang the run)."""
        client = _labgrid()
        try:
            loop = client.ensure_event_loop(None)
            address = client.proxymanager.get_grpc_address(self.coordinator, default_port=20408)
            args = argparse.Namespace(allow_unmatched=False, kick=False)
            session = client.ClientSession(address, loop, args=args)
            self._session = session
            loop.run_until_complete(asyncio.wait_for(session.start(), CONNECT_TIMEOUT))
        except Exception as exc:
            self._session = None
            raise TargetError(
                f"labgrid coordinator {self.coordinator} cannot be reached: {type(exc).__name__}: {exc}",
                hint="start labgrid-coordinator there, or set $LG_COORDINATOR to where it runs",
            ) from None

    def _stub_call(self, method: str, request: Any, what: str) -> Any:
        return self._run(getattr(self._session.stub, method)(request), what)

    def _pb2(self) -> Any:
        from labgrid.remote.generated import labgrid_coordinator_pb2

        return labgrid_coordinator_pb2

    # -- acquire / release -------------------------------------------------------------
    def acquire(self) -> PlaceResources:
        """Reserve the place, wait for it, acquire it and read its resources."""
        self._connect()
        try:
            self._reserve_and_wait()
            self._run(self._session._acquire_place(self.name), f"acquiring place {self.name}")
            self.acquired = True
            self._run(self._session.sync_with_coordinator(), "reading the place")
            place = self._session.get_place(self.name)
            entries = {cls: _params(r) for (_, cls), r in self._session.get_target_resources(place).items()}
            return resources_of(self.name, entries)
        except BaseException:
            self.release()
            raise

    def _reserve_and_wait(self) -> None:
        pb2 = self._pb2()
        if self.name not in self._session.places:
            known = ", ".join(sorted(self._session.places)) or "none"
            raise TargetError(f"labgrid has no place {self.name} (places: {known})")
        flt = {"main": pb2.Reservation.Filter(filter={"name": self.name})}
        reply = self._stub_call(
            "CreateReservation", pb2.CreateReservationRequest(filters=flt, prio=0.0), "reserving"
        )
        self._token = reply.reservation.token
        deadline, said = time.monotonic() + self.timeout, 0.0
        while True:
            res = self._stub_call("PollReservation", pb2.PollReservationRequest(token=self._token), "polling")
            state = res.reservation.state  # labgrid.remote.common.ReservationState
            if state in (ALLOCATED, ACQUIRED):
                return
            if state != WAITING:
                raise TargetError(f"labgrid place {self.name}: the reservation ended (state {state})")
            now = time.monotonic()
            holder = getattr(self._session.places.get(self.name), "acquired", None) or "another reservation"
            if now > deadline:
                raise TargetError(
                    f"labgrid place {self.name} is held by {holder}: gave up after {self.timeout:.0f} s",
                    hint=f"labgrid-client -p {self.name} show; release it there, or raise OTA_RIG_LOCK_TIMEOUT",
                )
            if now - said >= 30:
                self.say(f"ota-rig: labgrid place {self.name} is held by {holder}; waiting")
                said = now
            time.sleep(1.0)

    def release(self) -> None:
        """Release the place and cancel the reservation; never raises (a teardown path)."""
        if self._session is None:
            return
        pb2 = self._pb2()
        for what, call in (
            ("releasing", self.acquired and pb2.ReleasePlaceRequest(placename=self.name)),
            ("cancelling the reservation", self._token and pb2.CancelReservationRequest(token=self._token)),
        ):
            if not call:
                continue
            method = "ReleasePlace" if what == "releasing" else "CancelReservation"
            try:
                self._stub_call(method, call, what)
            except TargetError as exc:
                self.say(f"ota-rig: {exc}")
        self.acquired, self._token = False, None
        session, self._session = self._session, None
        try:
            session.loop.run_until_complete(asyncio.wait_for(session.stop(), 10))
            session.loop.run_until_complete(asyncio.wait_for(session.close(), 10))
        except Exception:
            pass


def _params(entry: Any) -> dict[str, Any]:
    params = dict(getattr(entry, "params", {}) or {})
    params.pop("extra", None)
    return params
