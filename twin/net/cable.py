"""The twin's Ethernet cable on the command line and the control port.

``python -m twin`` options (in the network group): ``--forward LAN_IP:PORT=HOST:PORT``
(shared with the WiFi module), ``--hostfwd [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT``
(repeatable), ``--pcap FILE`` and ``--eth-link up|down``. :func:`build` turns them into the
one :class:`~twin.net.slirp.SlirpNetwork` of a board, which the board hands to the ETH MAC.

Control commands (:func:`commands`; JSON in, JSON out):

* ``frames.status``: link, counters per direction, armed faults and their hits, forwards,
  connections, blocked frames, bound host forwards, pcap.
* ``frames.fault {"kind": ...}``: a frame fault (``drop``, ``duplicate``, ``corrupt``,
  ``delay``, ``reorder``: see twin/net/frame_faults.py), ``link`` (``{"up": bool}``),
  ``link_flap`` (``{"down_ms": D}``) or ``clear`` (``{"counters": true}`` zeroes them).
* ``frames.pcap {"path": FILE}`` starts a capture (replacing a running one),
  ``{"stop": true}`` stops it.
* ``frames.link {"up": bool}`` plugs or pulls the cable.

Owns: the option definitions, their parsing and the command table. Must not touch: the
machine, the MAC's registers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

from twin.net.hostfwd import HostFwd
from twin.net.nat import parse_forward
from twin.net.slirp import SlirpNetwork

Command = Callable[[dict[str, Any]], dict[str, Any]]


def add_arguments(group: argparse._ArgumentGroup) -> None:
    """Add ``--hostfwd`` and ``--pcap`` to the network option group."""
    group.add_argument(
        "--hostfwd",
        action="append",
        default=[],
        metavar="[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT",
        help="carry host connections to HOSTADDR:HOSTPORT (default address 127.0.0.1; port 0 = "
        "a free one, see the start-up line) to GUESTPORT of the board's Ethernet (default "
        "address: the first DHCP lease, 192.168.1.100), e.g. tcp:127.0.0.1:8080-:80 (repeatable)",
    )
    group.add_argument(
        "--pcap",
        metavar="FILE",
        help="write every Ethernet frame in and out of the ETH MAC to FILE (pcap, no FCS)",
    )


def build(args: argparse.Namespace, log: Callable[[str], None] | None = None) -> SlirpNetwork:
    """The board's cable from parsed ``args`` (ValueError on a bad option, OSError without libslirp)."""
    forwards: dict[tuple[str, int], tuple[str, int]] = {}
    for spec in getattr(args, "forward", None) or []:
        guest, host = parse_forward(spec)
        forwards[guest] = host
    hostfwds = [HostFwd.parse(spec) for spec in getattr(args, "hostfwd", None) or []]
    pcap = getattr(args, "pcap", None)
    network = SlirpNetwork(
        forwards=forwards,
        hostfwds=hostfwds,
        pcap=os.path.abspath(pcap) if pcap else None,
        log=log,
    )
    if getattr(args, "eth_link", "up") == "down":
        network.set_link(False)
    return network


def commands(network: SlirpNetwork) -> dict[str, Command]:
    """The ``frames.*`` control commands of ``network``."""

    def pcap(req: dict[str, Any]) -> dict[str, Any]:
        if req.get("stop"):
            return network.stop_pcap()
        path = req.get("path")
        if not isinstance(path, str) or not path:
            raise ValueError('frames.pcap needs {"path": FILE} or {"stop": true}')
        return network.start_pcap(os.path.abspath(path))

    def link(req: dict[str, Any]) -> dict[str, Any]:
        network.set_link(bool(req.get("up", True)))
        return {"link": network.link_up()}

    return {
        "frames.status": lambda req: network.snapshot(),
        "frames.fault": network.arm_fault,
        "frames.pcap": pcap,
        "frames.link": link,
    }
