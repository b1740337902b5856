"""The ETH MAC's checksum offload engine (COE) and its frame arithmetic (RM0410 §42.5.7-8).

Transmit (per frame, TDES0.CIC of its first descriptor): 1 inserts the IPv4 header
checksum; 2 also the TCP/UDP/ICMP checksum computed over the segment with the checksum
field taken as it is (software put the pseudo-header sum there); 3 computes the
pseudo-header too (the field is ignored). IPv4 and IPv6 (no extension headers), optionally
behind one VLAN tag. IP header errors (version/EtherType mismatch, IHL < 5, frame shorter
than the header) give IHE, and the payload is then left alone; a frame shorter than the IP
length says gives the payload error (TDES0 bit 12); fragments and other protocols are
left alone. UDP's computed 0 is sent as 0xFFFF.

Receive (MACCR.IPCO): the IPv4 header checksum and the TCP/UDP/ICMP payload checksum
(with pseudo-header) are checked; the result is returned as :class:`RxCheck`, which the
MAC turns into RDES0 bits 7/5/0 (normal descriptors) or RDES4 (enhanced).

Also here: the Ethernet FCS and the destination-address hash of the MAC's filter.

Owns: pure functions on frame bytes.
Must not touch: device state (registers, descriptors, the network).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_VLAN = 0x0800, 0x86DD, 0x8100
PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMPV6 = 1, 6, 17, 58
#: offset of the checksum field inside the segment, minimum segment header length
L4 = {PROTO_TCP: (16, 20), PROTO_UDP: (6, 8), PROTO_ICMP: (2, 4), PROTO_ICMPV6: (2, 4)}
#: RDES4 IP payload type field values
PAYLOAD_TYPE = {PROTO_UDP: 1, PROTO_TCP: 2, PROTO_ICMP: 3, PROTO_ICMPV6: 3}

TX_IHE, TX_IPE = 1 << 16, 1 << 12  # TDES0: IP header error, IP payload error


def ones_sum(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """The 16-bit ones' complement sum of ``data`` (big-endian words, odd byte padded).

    The bytes read as one big-endian number are the sum of their 16-bit words times powers
    of 65536 = 1 (mod 0xFFFF), so the end-around-carry sum is that number mod 0xFFFF, with
    0xFFFF standing for a nonzero multiple (ones' complement addition never yields 0 then).
    """
    if len(data) & 1:
        data = bytes(data) + b"\0"
    total = int.from_bytes(data, "big") + start
    folded = total % 0xFFFF
    return 0xFFFF if folded == 0 and total else folded


def fcs(body: bytes | bytearray) -> bytes:
    """The 4 FCS bytes of ``body`` as transmitted (CRC-32, little-endian)."""
    return struct.pack("<I", zlib.crc32(body))


def hash_index(da: bytes) -> int:
    """Bit of MACHTHR:MACHTLR a destination address selects: the upper 6 bits of the
    bit-reversed Ethernet CRC of the address (bit 5 picks HTHR)."""
    crc = zlib.crc32(da[:6]) & 0xFFFFFFFF
    return int(f"{crc:032b}"[::-1], 2) >> 26


def l3_offset(frame: bytes | bytearray) -> tuple[int, int]:
    """(EtherType, offset of the L3 header), looking through one VLAN tag; (len/type, 14)."""
    if len(frame) < 14:
        return 0, 14
    etype = int.from_bytes(frame[12:14], "big")
    if etype == ETHERTYPE_VLAN and len(frame) >= 18:
        return int.from_bytes(frame[16:18], "big"), 18
    return etype, 14


@dataclass
class IpView:
    """Where an IP datagram's parts lie in a frame (offsets from the frame start)."""

    version: int
    l3: int
    header_len: int
    proto: int = -1  # -1: payload not checksummed by the COE (fragment, extension header)
    l4: int = 0
    l4_len: int = 0  # length the IP header gives the payload
    header_error: bool = False
    short: bool = False  # the frame holds less payload than the IP header says


def parse_ip(frame: bytes | bytearray) -> IpView | None:
    """The IP datagram of an IPv4/IPv6 frame, or None for other frames."""
    etype, l3 = l3_offset(frame)
    if etype == ETHERTYPE_IPV4:
        return _parse_v4(frame, l3)
    if etype == ETHERTYPE_IPV6:
        return _parse_v6(frame, l3)
    return None


def _parse_v4(frame: bytes | bytearray, l3: int) -> IpView:
    if len(frame) < l3 + 20 or frame[l3] >> 4 != 4 or frame[l3] & 0xF < 5:
        return IpView(4, l3, 20, header_error=True)
    ihl = (frame[l3] & 0xF) * 4
    if len(frame) < l3 + ihl:
        return IpView(4, l3, ihl, header_error=True)
    total = int.from_bytes(frame[l3 + 2 : l3 + 4], "big")
    view = IpView(4, l3, ihl, l4=l3 + ihl, l4_len=max(0, total - ihl))
    flags_frag = int.from_bytes(frame[l3 + 6 : l3 + 8], "big")
    if total < ihl:
        view.header_error = True
    elif flags_frag & 0x3FFF == 0 and frame[l3 + 9] in (PROTO_TCP, PROTO_UDP, PROTO_ICMP):
        view.proto = frame[l3 + 9]
    view.short = len(frame) < l3 + max(total, ihl)
    return view


def _parse_v6(frame: bytes | bytearray, l3: int) -> IpView:
    if len(frame) < l3 + 40 or frame[l3] >> 4 != 6:
        return IpView(6, l3, 40, header_error=True)
    plen = int.from_bytes(frame[l3 + 4 : l3 + 6], "big")
    view = IpView(6, l3, 40, l4=l3 + 40, l4_len=plen)
    if frame[l3 + 6] in (PROTO_TCP, PROTO_UDP, PROTO_ICMPV6):
        view.proto = frame[l3 + 6]
    view.short = len(frame) < l3 + 40 + plen
    return view


def _pseudo_sum(frame: bytes | bytearray, ip: IpView) -> int:
    if ip.version == 4:
        if ip.proto == PROTO_ICMP:
            return 0
        addrs = frame[ip.l3 + 12 : ip.l3 + 20]
        return ones_sum(addrs, ip.proto + ip.l4_len)
    addrs = frame[ip.l3 + 8 : ip.l3 + 40]
    return ones_sum(addrs, ip.proto + (ip.l4_len >> 16) + (ip.l4_len & 0xFFFF))


def insert_checksums(frame: bytearray, cic: int) -> int:
    """Apply TDES0.CIC ``cic`` (1..3) to ``frame`` (no FCS) in place; returns the TDES0
    status bits (IHE, payload error)."""
    ip = parse_ip(frame)
    if ip is None:
        return 0
    status = 0
    if ip.version == 4 and len(frame) >= ip.l3 + 20 and frame[ip.l3] & 0xF >= 5:
        hl = (frame[ip.l3] & 0xF) * 4
        if len(frame) >= ip.l3 + hl:  # the header checksum goes in even with a header error
            frame[ip.l3 + 10 : ip.l3 + 12] = b"\0\0"
            frame[ip.l3 + 10 : ip.l3 + 12] = (~ones_sum(frame[ip.l3 : ip.l3 + hl]) & 0xFFFF).to_bytes(
                2, "big"
            )
    if ip.header_error:
        return TX_IHE
    if cic < 2 or ip.proto < 0:
        return status
    at, min_len = L4[ip.proto]
    if ip.short or ip.l4_len < min_len:
        return status | TX_IPE
    seg = slice(ip.l4, ip.l4 + ip.l4_len)
    field = ip.l4 + at
    start = 0
    if cic == 3:
        frame[field : field + 2] = b"\0\0"
        start = _pseudo_sum(frame, ip)
    value = ~ones_sum(frame[seg], start) & 0xFFFF
    if ip.proto == PROTO_UDP and value == 0:
        value = 0xFFFF
    frame[field : field + 2] = value.to_bytes(2, "big")
    return status


@dataclass
class RxCheck:
    """What the receive COE found in a frame."""

    frame_type: bool  # EtherType/length field >= 0x600
    ip_version: int = 0  # 4, 6, or 0 (not IP)
    header_error: bool = False
    payload_error: bool = False
    bypassed: bool = False  # IP, but the payload is not one the COE checks
    payload_type: int = 0  # RDES4 IPPT: 1 UDP, 2 TCP, 3 ICMP


def check_rx(frame: bytes | bytearray) -> RxCheck:
    """Run the receive COE over ``frame`` (without FCS)."""
    etype, _ = l3_offset(frame)
    result = RxCheck(frame_type=etype >= 0x600)
    ip = parse_ip(frame)
    if ip is None:
        return result
    result.ip_version = ip.version
    if ip.header_error:
        result.header_error = True
        return result
    if ip.version == 4 and ones_sum(frame[ip.l3 : ip.l3 + ip.header_len]) != 0xFFFF:
        result.header_error = True
    if ip.proto < 0:
        result.bypassed = True
        return result
    result.payload_type = PAYLOAD_TYPE[ip.proto]
    at, min_len = L4[ip.proto]
    if ip.short or ip.l4_len < min_len:
        result.payload_error = True
        return result
    seg = frame[ip.l4 : ip.l4 + ip.l4_len]
    if ip.proto == PROTO_UDP and ip.version == 4 and seg[at : at + 2] == b"\0\0":
        return result  # UDP over IPv4 without a checksum
    if ones_sum(seg, _pseudo_sum(frame, ip)) != 0xFFFF:
        result.payload_error = True
    return result
