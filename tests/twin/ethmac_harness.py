"""Test helpers for the ETH MAC model: a fake cable, a rig around the device, frames.

Bit positions and register values in the tests are written out from RM0410 §42 and the
LAN8742A datasheet; nothing here imports constants from the model. Frames, FCS and
Internet checksums are computed here independently of the model's code.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from twin.net.ethmac import EthMac
from twin.testing import RAM_BASE, ServicesDouble

ETH = 0x40028000
DMA = 0x40029000
# DMA register addresses (RM0410 §42.8.5)
DMABMR, DMATPDR, DMARPDR, DMARDLAR, DMATDLAR = DMA, DMA + 0x04, DMA + 0x08, DMA + 0x0C, DMA + 0x10
DMASR, DMAOMR, DMAIER, DMAMFBOCR = DMA + 0x14, DMA + 0x18, DMA + 0x1C, DMA + 0x20
MACCR, MACFFR, MACMIIAR, MACMIIDR = ETH + 0x00, ETH + 0x04, ETH + 0x10, ETH + 0x14
MACA0HR, MACA0LR = ETH + 0x40, ETH + 0x44

BOARD_MAC = bytes.fromhex("02000000a1b2")
HOST_MAC = bytes.fromhex("525400123456")


class FakeNetwork:
    """A FrameNetwork double: records what the MAC sends, injects frames and link changes."""

    def __init__(self, up: bool = True) -> None:
        self.up = up
        self.sent: list[bytes] = []
        self.receive: Callable[[bytes], None] | None = None
        self.on_link: Callable[[bool], None] | None = None

    def attach(self, receive: Callable[[bytes], None]) -> None:
        self.receive = receive

    def attach_link(self, on_link: Callable[[bool], None]) -> None:
        self.on_link = on_link

    def transmit(self, frame: bytes) -> None:
        self.sent.append(bytes(frame))

    def link_up(self) -> bool:
        return self.up

    def set_link(self, up: bool) -> None:
        self.up = up
        assert self.on_link is not None
        self.on_link(up)


class Rig:
    """An EthMac on a ServicesDouble with a FakeNetwork (and optionally RCC/SYSCFG/GPIO)."""

    def __init__(
        self,
        parts: list[object] | None = None,
        autoneg_ns: int = 200_000_000,
        up: bool = True,
        wiring: object = None,
    ):
        self.s = ServicesDouble()
        self.net = FakeNetwork(up)
        self.mac = EthMac(self.net, autoneg_ns=autoneg_ns, wiring=wiring)  # type: ignore[arg-type]
        self.s.add(*(parts or []), self.mac)

    # registers
    def w(self, address: int, value: int, size: int = 4) -> None:
        self.mac.write(address - ETH, size, value)

    def r(self, address: int, size: int = 4) -> int:
        return self.mac.read(address - ETH, size)

    # RAM
    def poke(self, address: int, data: bytes) -> None:
        off = address - RAM_BASE
        self.s.ram[off : off + len(data)] = data

    def peek(self, address: int, length: int) -> bytes:
        off = address - RAM_BASE
        return bytes(self.s.ram[off : off + length])

    def w32(self, address: int, value: int) -> None:
        self.poke(address, struct.pack("<I", value & 0xFFFFFFFF))

    def r32(self, address: int) -> int:
        return struct.unpack("<I", self.peek(address, 4))[0]

    def desc(self, address: int, *words: int) -> None:
        for i, word in enumerate(words):
            self.w32(address + 4 * i, word)

    # MDIO (HAL_ETH_ReadPHYRegister style, CR = 0b010: HCLK/16)
    def mdio(self, reg: int, phy: int = 0, write: int | None = None) -> int:
        miiar = phy << 11 | reg << 6 | 0b010 << 2 | 1
        if write is not None:
            self.w(MACMIIDR, write)
            miiar |= 1 << 1
        self.w(MACMIIAR, miiar)
        self.s.advance(64 * 16 + 1)
        assert self.r(MACMIIAR) & 1 == 0
        return self.r(MACMIIDR)

    def wire_in(self, frame: bytes) -> None:
        """A frame arrives from the cable (network thread → post → CPU thread)."""
        assert self.net.receive is not None
        self.net.receive(frame)
        self.s.run_posted()

    def link_up_now(self) -> None:
        """Let auto-negotiation finish."""
        self.s.advance_ns(250_000_000)
        self.s.run_posted()

    def start(self, maccr_extra: int = 0, omr_extra: int = 0) -> None:
        """MAC address, MAC 100 Mbit/s full duplex, TE/RE, DMA ST/SR with store and forward
        both ways (TSF, RSF), as ST's HAL sets them."""
        self.w(MACA0HR, int.from_bytes(BOARD_MAC[4:6], "little"))
        self.w(MACA0LR, int.from_bytes(BOARD_MAC[0:4], "little"))
        self.w(MACCR, 1 << 14 | 1 << 11 | 1 << 3 | 1 << 2 | maccr_extra)
        self.w(DMAOMR, 1 << 25 | 1 << 21 | 1 << 13 | 1 << 1 | omr_extra)


# ------------------------------------------------------------------ frames
def fcs(body: bytes) -> bytes:
    return struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)


def wire(body: bytes) -> bytes:
    """``body`` padded to 60 bytes with the FCS appended, as on the wire."""
    body = body + bytes(max(0, 60 - len(body)))
    return body + fcs(body)


def csum(data: bytes) -> int:
    """Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total = sum((data[i] << 8) | data[i + 1] for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(
    proto: int, payload: bytes, src: str = "192.168.1.100", dst: str = "192.168.1.10", good: bool = True
) -> bytes:
    """An IPv4 header (checksum right, or 0 with ``good=False``) + payload."""
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0x1234, 0, 64, proto, 0, s, d)
    if good:
        hdr = hdr[:10] + struct.pack(">H", csum(hdr)) + hdr[12:]
    return hdr + payload


def l4_checksum(ip: bytes) -> int:
    """The right TCP/UDP/ICMP checksum for the IPv4 datagram ``ip`` (field taken as 0)."""
    proto, ihl = ip[9], (ip[0] & 0xF) * 4
    seg = bytearray(ip[ihl:])
    at = {6: 16, 17: 6, 1: 2}[proto]
    seg[at : at + 2] = b"\0\0"
    pseudo = b"" if proto == 1 else ip[12:20] + struct.pack(">BBH", 0, proto, len(seg))
    value = csum(pseudo + bytes(seg))
    return 0xFFFF if proto == 17 and value == 0 else value


def tcp(payload: bytes, sport: int = 5000, dport: int = 49152, checksum: int = 0) -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, 1, 2, 0x50, 0x18, 8192, checksum, 0) + payload


def udp(payload: bytes, sport: int = 67, dport: int = 68, checksum: int = 0) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), checksum) + payload


def icmp_echo(payload: bytes, checksum: int = 0) -> bytes:
    return struct.pack(">BBHHH", 8, 0, checksum, 1, 1) + payload


def ether(payload: bytes, dst: bytes = BOARD_MAC, src: bytes = HOST_MAC, etype: int = 0x0800) -> bytes:
    return dst + src + struct.pack(">H", etype) + payload


def with_l4_checksum(ip: bytes) -> bytes:
    """``ip`` with its TCP/UDP/ICMP checksum filled in correctly."""
    proto, ihl = ip[9], (ip[0] & 0xF) * 4
    at = ihl + {6: 16, 17: 6, 1: 2}[proto]
    return ip[:at] + struct.pack(">H", l4_checksum(ip)) + ip[at + 2 :]
