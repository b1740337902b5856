"""The reference bootloader's config record (flash sector 4, 0x08020000).

The rig programs it through the probe to ask the bootloader for an update over a given
transport (board file ``update.method: config_record``) and reads it back after an update
to see what the bootloader recorded. Layout (little-endian uint32), shared with
``firmware/`` (see firmware/README.md):

    magic 0x4341544F "OTAC", version 1, flags (bit0 UPDATE_REQUESTED), transport (0 eth,
    1 wifi), server_ip (host order), server_port, app_size, app_crc (zlib CRC-32),
    app_version, record_crc (zlib CRC-32 of the 36 bytes before it)

The sector is a log of records in :data:`SLOT`-byte slots: the bootloader appends a new
record in the first erased slot and never rewrites one, so a power cut while it writes
tears only the new record and the previous one stays in force (its settings with it). The
record in force is the last valid one before the first erased slot (:func:`current`);
the bootloader erases the sector only when every slot is used. The rig writes its record
as the only one, in slot 0 (the rest erased).
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


#: bytes per record slot of the config log (the 40-byte record, then erased bytes)
SLOT = 64


def _erased(chunk: bytes) -> bool:
    return chunk.count(0xFF) == len(chunk)


def log_end(region: bytes) -> int:
    """Bytes of the log in use: the end of the last slot that is not erased (0: none)."""
    end = 0
    for off in range(0, len(region) - SLOT + 1, SLOT):
        if not _erased(region[off : off + SLOT]):
            end = off + SLOT
    return end


def current(region: bytes) -> tuple[int | None, BootConfig | None, list[int]]:
    """The record in force in a config log: ``(its slot, the record, slots skipped)`` —
    the last valid record before the first erased slot; ``skipped`` lists the slots before
    that which are neither erased nor valid (a torn record). ``(None, None, ...)`` if none."""
    slot, found, skipped = None, None, []
    for i, off in enumerate(range(0, len(region) - SLOT + 1, SLOT)):
        chunk = region[off : off + SLOT]
        if _erased(chunk):
            break
        cfg = BootConfig.unpack(chunk)
        if cfg is None:
            skipped.append(i)
        else:
            slot, found = i, cfg
    return slot, found, skipped
