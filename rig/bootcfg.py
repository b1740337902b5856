"""The reference bootloader's config record (flash sector 4, 0x08020000).

The rig programs it through the probe to ask the bootloader for an update over a given
transport — what a lab would otherwise do with a button or a backup register — and reads
it back after an update to see what the bootloader recorded. Layout (little-endian uint32),
shared with ``firmware/`` (see firmware/README.md):

    magic 0x4341544F "OTAC", version 1, flags (bit0 UPDATE_REQUESTED), transport (0 eth,
    1 wifi), server_ip (host order), server_port, app_size, app_crc (zlib CRC-32),
    app_version, record_crc (zlib CRC-32 of the 36 bytes before it)
"""

from __future__ import annotations

import ipaddress
import struct
import zlib
from dataclasses import dataclass

from rig.errors import ConfigError

MAGIC = 0x4341544F
VERSION = 1
FLAG_UPDATE_REQUESTED = 1 << 0
TRANSPORTS = {"eth": 0, "wifi": 1}
_FMT = "<9I"
SIZE = struct.calcsize(_FMT) + 4


@dataclass(frozen=True)
class BootConfig:
    transport: str = "eth"
    server_ip: str = "192.168.1.10"
    server_port: int = 5000
    update_requested: bool = False
    app_size: int = 0
    app_crc: int = 0
    app_version: int = 0

    def pack(self) -> bytes:
        if self.transport not in TRANSPORTS:
            raise ConfigError(f"unknown transport {self.transport!r}", expected="eth or wifi")
        if not 0 < self.server_port < 65536:
            raise ConfigError(f"server port {self.server_port} out of range", expected="1..65535")
        body = struct.pack(
            _FMT,
            MAGIC,
            VERSION,
            FLAG_UPDATE_REQUESTED if self.update_requested else 0,
            TRANSPORTS[self.transport],
            int(ipaddress.IPv4Address(self.server_ip)),
            self.server_port,
            self.app_size,
            self.app_crc,
            self.app_version,
        )
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def unpack(cls, data: bytes) -> BootConfig | None:
        """Parse a record; None when the sector holds no valid record (erased, torn, foreign)."""
        if len(data) < SIZE:
            return None
        body, (crc,) = data[: SIZE - 4], struct.unpack("<I", data[SIZE - 4 : SIZE])
        magic, version, flags, transport, ip, port, size, app_crc, app_version = struct.unpack(_FMT, body)
        if magic != MAGIC or version != VERSION or zlib.crc32(body) != crc:
            return None
        names = {v: k for k, v in TRANSPORTS.items()}
        if transport not in names:
            return None
        return cls(
            transport=names[transport],
            server_ip=str(ipaddress.IPv4Address(ip)),
            server_port=port,
            update_requested=bool(flags & FLAG_UPDATE_REQUESTED),
            app_size=size,
            app_crc=app_crc,
            app_version=app_version,
        )
