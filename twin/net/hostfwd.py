"""Host -> board forwards (``--hostfwd``) in QEMU's syntax, bound through libslirp.

``[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT``, e.g. ``tcp:127.0.0.1:8080-:80``:
a host client connecting to 127.0.0.1:8080 reaches port 80 of the board. Unlike QEMU, an
empty HOSTADDR means 127.0.0.1 (never every interface of the machine). An empty GUESTADDR
means the first DHCP address (192.168.1.100): a board with a static address names it.
HOSTPORT 0 picks a free port; the bound ports are in the twin's start-up line.

Owns: parsing and binding (on the network engine thread: it calls libslirp). Must not
touch: frames, the MAC.
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
from dataclasses import dataclass, replace
from typing import Any

from twin.net import libslirp as ls

BIND_TRIES = 10


@dataclass(frozen=True)
class HostFwd:
    """One host -> board forward."""

    proto: str
    host_addr: str
    host_port: int
    guest_addr: str
    guest_port: int

    @classmethod
    def parse(cls, spec: str) -> HostFwd:
        """Parse QEMU's ``[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT`` (ValueError)."""
        try:
            proto, rest = spec.split(":", 1)
            proto = proto or "tcp"
            host, guest = rest.split("-", 1)
            haddr, hport = host.rsplit(":", 1)
            gaddr, gport = guest.rsplit(":", 1)
            if proto not in ("tcp", "udp"):
                raise ValueError(f"protocol {proto!r} is not tcp or udp")
            haddr = "127.0.0.1" if haddr in ("", "localhost") else str(ipaddress.IPv4Address(haddr))
            gaddr = str(ipaddress.IPv4Address(gaddr)) if gaddr else ""
            h, g = int(hport), int(gport)
            if not (0 <= h <= 65535 and 0 < g <= 65535):
                raise ValueError(
                    "ports must be 0..65535 on the host (0 = any free) and 1..65535 on the board"
                )
        except ValueError as exc:
            raise ValueError(
                f"bad --hostfwd {spec!r}: expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT, "
                f"e.g. tcp:127.0.0.1:8080-:80 ({exc})"
            ) from exc
        return cls(proto, haddr, h, gaddr, g)

    @property
    def spec(self) -> str:
        return f"{self.proto}:{self.host_addr}:{self.host_port}-{self.guest_addr}:{self.guest_port}"

    def announce(self) -> dict[str, Any]:
        """How the start-up line and the status report a bound forward."""
        return {
            "spec": self.spec,
            "proto": self.proto,
            "host": f"{self.host_addr}:{self.host_port}",
            "host_port": self.host_port,
            "guest": f"{self.guest_addr}:{self.guest_port}",
            "guest_port": self.guest_port,
        }


def _free_port(proto: str, addr: str) -> int:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((addr, 0))
        return int(s.getsockname()[1])


def bind_hostfwds(lib: ctypes.CDLL, slirp: int, fwds: list[HostFwd], default_guest: str) -> list[HostFwd]:
    """Add each forward to libslirp; returns them with their bound ports and guest address.

    Raises:
        OSError: a forward could not be bound (port in use, address not on this machine).
    """
    bound = []
    for fwd in fwds:
        fwd = replace(fwd, guest_addr=fwd.guest_addr or default_guest)
        tries = BIND_TRIES if fwd.host_port == 0 else 1
        for _ in range(tries):
            port = fwd.host_port or _free_port(fwd.proto, fwd.host_addr)
            rc = lib.slirp_add_hostfwd(
                slirp,
                int(fwd.proto == "udp"),
                ls.in_addr(fwd.host_addr),
                port,
                ls.in_addr(fwd.guest_addr),
                fwd.guest_port,
            )
            if rc == 0:
                bound.append(replace(fwd, host_port=port))
                break
        else:
            raise OSError(
                f"--hostfwd {fwd.spec}: libslirp could not listen on {fwd.host_addr}:{fwd.host_port or port} "
                "(port in use, or not an address of this machine)"
            )
    return bound
