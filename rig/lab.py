"""Which real boards a run drives, and where each one's OTA server listens.

One source of truth per board: the board file says where the board dials
(``targets.nucleo.boards[i].host``, else ``ota.server``), and the host OTA server listens on
exactly that address, accepting only the board's own address (``board_ip``) when given. When
the lab network carries the board's connections elsewhere (a NAT, a port forward: what the
twin's ``--forward`` does), the board file says so, ``listen``, and the server listens there.
``--ota-bind`` may name the same address (a hostname is resolved first); a different one is
an error that names both, raised at start-up before any board is touched. Several boards
(``-n N --probe-uid A,B`` or ``targets.nucleo.boards``) each get their own entry; two boards
that would share a server address are refused.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import replace

from rig.board import BoardSpec, Endpoint, LabBoard
from rig.errors import ConfigError


def split_list(text: str | None) -> list[str]:
    """``A,B`` -> ``["A", "B"]`` (blank items dropped); None -> []."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def resolve_endpoint(text: str, *, option: str = "--ota-bind") -> list[Endpoint]:
    """``HOST:PORT`` -> every IPv4 address ``HOST`` names, with the port. A hostname is
    resolved now (a name that does not resolve, or resolves to no IPv4 address, is a
    ConfigError): never a name that fails inside every test."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{option} {text!r}: expected HOST:PORT, e.g. 192.168.1.10:5000")
    try:
        return [Endpoint(str(ipaddress.IPv4Address(host)), int(port))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, int(port), socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(
            f"{option} {text!r}: the host name {host!r} does not resolve ({exc})",
            hint="give the lab NIC's IPv4 address, or fix the name (/etc/hosts, DNS)",
        ) from None
    found = list(dict.fromkeys(Endpoint(str(info[4][0]), int(port)) for info in infos))
    if not found:
        raise ConfigError(f"{option} {text!r}: {host!r} has no IPv4 address")
    return found


def boards_for_run(
    spec: BoardSpec,
    *,
    probe_uids: Sequence[str] = (),
    uid_source: str = "--probe-uid",
    ota_binds: Sequence[str] = (),
) -> list[LabBoard]:
    """The real boards of this run, in worker order (worker gw<i> drives item i).

    ``probe_uids`` (``--probe-uid A,B`` / ``OTA_RIG_PROBE_UID``) choose boards of
    ``targets.nucleo.boards`` by UID, or give the one board of ``targets.nucleo`` its probe;
    ``ota_binds`` (``--ota-bind``, one per board) must name the address each board dials.

    Raises:
        ConfigError: a UID not in ``targets.nucleo.boards``, several boards that would share
            one OTA address, an ``--ota-bind`` that does not resolve or differs from where
            its board dials (both named), or a count that does not match the boards.
    """
    boards = _choose(spec, probe_uids, uid_source)
    if len(boards) > 1:
        _no_shared_server(boards, spec.source)
    if ota_binds:
        _check_ota_binds(boards, ota_binds, spec.source)
    return boards


def _choose(spec: BoardSpec, probe_uids: Sequence[str], uid_source: str) -> list[LabBoard]:
    """The boards ``probe_uids`` choose (all of them without UIDs)."""
    boards = spec.lab_boards()
    if not boards:
        raise ConfigError(
            "no targets.nucleo section: --board nucleo has nothing to drive", source=spec.source
        )
    if not probe_uids:
        return boards
    if not spec.targets["nucleo"].boards:
        return [replace(boards[0], probe_uid=uid) for uid in probe_uids]
    listed = {b.probe_uid.lower(): b for b in boards if b.probe_uid}
    chosen = []
    for uid in probe_uids:
        board = listed.get(uid.lower())
        if board is None:
            raise ConfigError(
                f"the probe {uid!r} (from {uid_source}) is not one of targets.nucleo.boards "
                f"({', '.join(b.probe_uid or '-' for b in boards)})",
                source=spec.source,
                hint="add the board (its probe_uid, host and board_ip) to targets.nucleo.boards",
            )
        chosen.append(board)
    return chosen


def _no_shared_server(boards: list[LabBoard], source: str) -> None:
    by_bind: dict[Endpoint, LabBoard] = {}
    for board in boards:
        other = by_bind.setdefault(board.bind, board)
        if other is not board:
            raise ConfigError(
                f"the boards {other.probe_uid} and {board.probe_uid} would share the OTA server "
                f"address {board.bind} ({board.bind_key}): the second server cannot listen there, "
                "and either board could take the other's session",
                source=source,
                hint="give each board its own address in targets.nucleo.boards "
                "(probe_uid, host, board_ip), see docs/lab.md",
            )


def _check_ota_binds(boards: list[LabBoard], ota_binds: Sequence[str], source: str) -> None:
    """Each ``--ota-bind`` names (or resolves to) where its board's server listens."""
    if len(ota_binds) != len(boards):
        raise ConfigError(
            f"--ota-bind gives {len(ota_binds)} address(es) for {len(boards)} board(s)",
            hint="give one HOST:PORT per board, in the order of --probe-uid",
        )
    for text, board in zip(ota_binds, boards, strict=True):
        resolved = resolve_endpoint(text)
        if board.bind in resolved:
            continue
        names = ", ".join(str(e) for e in resolved)
        shown = text if [str(e) for e in resolved] == [text] else f"{text} (= {names})"
        who = f"the board{' ' + board.probe_uid if board.probe_uid else ''}"
        if board.listen:
            said = (
                f"{who}'s server listens on {board.bind} ({board.bind_key} in {source}: the lab "
                f"network carries the board's connections to {board.host} there)"
            )
        else:
            said = (
                f"{who} dials {board.host} ({board.host_key} in {source}): the server must "
                "listen where the board dials"
            )
        raise ConfigError(
            f"--ota-bind {shown}, but {said}",
            hint=f"change {board.bind_key} in the board file (and the board's own network "
            "settings), or leave --ota-bind out",
        )
