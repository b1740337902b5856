"""The WINC3400's firmware as the host sees it through HIF: message dispatch and the WiFi group.

Messages from the host arrive from the chip (twin/net/winc_chip.py) as ``(gid, op,
payload)``; replies go back through ``chip.send_to_host``. Group 1 (WiFi) is here, group
2 (IP/sockets) in twin/net/winc_sockets.py. Layouts are those of Microchip's driver v1.1.0
(``m2m_types.h``), little-endian, addresses in network byte order:

* ``0x3D`` ``M2M_WIFI_REQ_CONN`` (48-byte ``tstrM2mWifiConnHdr`` + credentials, e.g. the
  108-byte ``tstrM2mWifiPsk``) and the legacy ``0x28`` ``M2M_WIFI_REQ_CONNECT`` (104
  bytes): 50 ms later ``0x2C`` ``M2M_WIFI_RESP_CON_STATE_CHANGED`` {state, error, pad}
  and, when connected, 20 ms later ``0x32`` ``M2M_WIFI_REQ_DHCP_CONF`` {ip, gateway, dns,
  mask, lease}. With an access point configured (``--winc-ap SSID[:PASSPHRASE]``) another
  SSID fails with error 1 (scan fail) and another passphrase with 3 (auth fail); without
  one, any SSID connects.
* ``0x2B`` disconnect: ``0x2C`` {0, 0}; live sockets are aborted (RST to the host).
* ``0x07`` connection info: ``0x08`` (48-byte ``tstrM2MConnInfo``); ``0x03`` RSSI:
  ``0x04`` {-40}.
* ``0x23`` gain table and anything else: no reply (an unknown request is logged once).

The firmware version is not a message: the host reads the version record the chip holds
(``nm_get_firmware_full_info``).

Owns: the WiFi connection state, the station's address and the dispatch of requests.
Must not touch: registers or memory (the chip's), host sockets (the NAT's, through
twin/net/winc_sockets.py).
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twin.net.winc_chip import MAC
from twin.net.winc_sockets import WincSockets

if TYPE_CHECKING:
    from twin.net.stack import NetStack
    from twin.net.winc_chip import WincChip

GROUP_WIFI, GROUP_IP = 1, 2
REQ_CONN, REQ_CONNECT_LEGACY, REQ_DISCONNECT = 0x3D, 0x28, 0x2B
RESP_CON_STATE_CHANGED, REQ_DHCP_CONF = 0x2C, 0x32
REQ_GET_CONN_INFO, RESP_CONN_INFO, REQ_CURRENT_RSSI, RESP_CURRENT_RSSI = 0x07, 0x08, 0x03, 0x04
REQ_SET_GAIN_TABLE = 0x23
ERR_SCAN_FAIL, ERR_AUTH_FAIL = 1, 3
SEC_OPEN, SEC_WPA_PSK = 1, 2
CONNECT_NS, DHCP_NS = 50_000_000, 20_000_000
RSSI = -40

STATION = {"ip": "192.168.1.101", "gateway": "192.168.1.1", "dns": "192.168.1.1", "mask": "255.255.255.0"}
LEASE_S = 86400


class WincFirmware:
    """The module's firmware: WiFi state, request dispatch, the socket layer."""

    def __init__(
        self,
        chip: WincChip,
        stack: NetStack,
        schedule_ns: Callable[[int, Callable[[], None]], object],
        cancel: Callable[[object], None],
        log: Callable[[str], None],
        rng: random.Random,
        split_prob: float,
        ap: tuple[str, str | None] | None = None,
    ) -> None:
        self.chip = chip
        self.schedule_ns = schedule_ns
        self.cancel = cancel
        self.log = log
        self.ap = ap
        self.wifi = "idle"  # idle|connecting|connected|ip
        self.ssid = ""
        self._timer: object | None = None
        self._unknown: set[tuple[int, int]] = set()
        self.stats = {"requests": 0, "replies": 0}
        self.sockets = WincSockets(self, stack, rng, split_prob)

    # ---------------------------------------------------------------- chip side
    def start(self) -> None:
        """The firmware booted: no WiFi connection, no sockets."""
        self._reset()

    def stop(self) -> None:
        """The CPU stopped or lost power: connections die (RST to the host)."""
        self._reset()

    def _reset(self) -> None:
        if self._timer is not None:
            self.cancel(self._timer)
            self._timer = None
        self.wifi = "idle"
        self.sockets.reset()

    def send(self, gid: int, op: int, body: bytes, payload: tuple[int, int] | None = None) -> None:
        """A reply or event for the host."""
        self.stats["replies"] += 1
        self.chip.send_to_host(gid, op, body, payload)

    def request(self, gid: int, op: int, payload: bytes) -> None:
        """One message from the host (``op`` without the data-packet bit)."""
        self.stats["requests"] += 1
        if gid == GROUP_IP:
            self.sockets.request(op, payload)
        elif gid == GROUP_WIFI:
            self._wifi_request(op, payload)
        else:
            self.unknown(gid, op)

    def unknown(self, gid: int, op: int, why: str = "not modelled, no reply") -> None:
        """Log a request the model does not act on, once per (group, opcode)."""
        if (gid, op) not in self._unknown:
            self._unknown.add((gid, op))
            self.log(f"HIF request group {gid} opcode 0x{op:02X}: {why}")

    @property
    def has_ip(self) -> bool:
        """The station is associated and has its DHCP address (sockets may connect)."""
        return self.wifi == "ip"

    # ---------------------------------------------------------------- WiFi group
    def _wifi_request(self, op: int, payload: bytes) -> None:
        if op == REQ_CONN and len(payload) >= 48:
            ssid_len = payload[4]
            ssid = payload[5 : 5 + min(ssid_len, 32)].decode("latin-1")
            auth = payload[44]
            secret = self._credentials(auth, payload[48:])
            self._connect(ssid, auth, secret)
        elif op == REQ_CONNECT_LEGACY and len(payload) >= 104:
            ssid = payload[70:103].split(b"\0", 1)[0].decode("latin-1")
            auth = payload[65]
            secret = payload[0:65].split(b"\0", 1)[0].decode("latin-1") if auth == SEC_WPA_PSK else None
            self._connect(ssid, auth, secret)
        elif op == REQ_DISCONNECT:
            self._disconnect()
        elif op == REQ_GET_CONN_INFO:
            self.send(GROUP_WIFI, RESP_CONN_INFO, self._conn_info())
        elif op == REQ_CURRENT_RSSI:
            self.send(GROUP_WIFI, RESP_CURRENT_RSSI, struct.pack("<b3x", RSSI))
        elif op != REQ_SET_GAIN_TABLE:
            self.unknown(GROUP_WIFI, op)

    @staticmethod
    def _credentials(auth: int, data: bytes) -> str | None:
        """The passphrase of a WPA-PSK request (``tstrM2mWifiPsk``: length, text)."""
        if auth != SEC_WPA_PSK or not data:
            return None
        return data[1 : 1 + min(data[0], 64)].decode("latin-1")

    def _connect(self, ssid: str, auth: int, secret: str | None) -> None:
        if self._timer is not None:
            self.cancel(self._timer)
        self.wifi = "connecting"
        self.ssid = ssid
        err = 0
        if self.ap is not None:
            ap_ssid, ap_pass = self.ap
            if ssid != ap_ssid:
                err = ERR_SCAN_FAIL
            elif ap_pass is not None and (auth != SEC_WPA_PSK or secret != ap_pass):
                err = ERR_AUTH_FAIL
        self.log(f"WiFi connect to {ssid!r} (auth {auth}): {'ok' if not err else f'fails, error {err}'}")
        self._timer = self.schedule_ns(CONNECT_NS, lambda: self._associated(err))

    def _associated(self, err: int) -> None:
        self._timer = None
        if err:
            self.wifi = "idle"
            self.send(GROUP_WIFI, RESP_CON_STATE_CHANGED, struct.pack("<BB2x", 0, err))
            return
        self.wifi = "connected"
        self.send(GROUP_WIFI, RESP_CON_STATE_CHANGED, struct.pack("<BB2x", 1, 0))
        self._timer = self.schedule_ns(DHCP_NS, self._dhcp)

    def _dhcp(self) -> None:
        self._timer = None
        self.wifi = "ip"
        body = b"".join(ipaddress.IPv4Address(STATION[k]).packed for k in ("ip", "gateway", "dns", "mask"))
        self.send(GROUP_WIFI, REQ_DHCP_CONF, body + struct.pack("<I", LEASE_S))

    def _disconnect(self) -> None:
        if self._timer is not None:
            self.cancel(self._timer)
            self._timer = None
        self.wifi = "idle"
        self.sockets.reset()
        self.send(GROUP_WIFI, RESP_CON_STATE_CHANGED, struct.pack("<BB2x", 0, 0))

    def _conn_info(self) -> bytes:
        ssid = self.ssid.encode("latin-1")[:32].ljust(33, b"\0")
        ip = ipaddress.IPv4Address(STATION["ip"]).packed if self.has_ip else bytes(4)
        return ssid + bytes((SEC_WPA_PSK,)) + ip + MAC + struct.pack("<b3x", RSSI)

    def snapshot(self) -> dict[str, Any]:
        """WiFi state, sockets and counters."""
        return {
            "wifi": self.wifi,
            "ssid": self.ssid,
            "ip": STATION["ip"] if self.has_ip else None,
            **self.stats,
            **self.sockets.snapshot(),
        }
