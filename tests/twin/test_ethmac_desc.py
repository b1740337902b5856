"""ETH DMA descriptor engines: ring and chain, multi-descriptor frames, checksum offload,
errors, FBES. Descriptor bits from RM0410 §42.6.7 (TDES0: OWN 31, IC 30, LS 29, FS 28,
DC 27, DP 26, CIC 23:22, TER 21, TCH 20, IHE 16, ES 15, JT 14, FF 13, IPE 12, LCA 11,
NC 10, VF 7, UF 1; RDES0: OWN 31, AFM 30, FL 29:16, ES 15, DE 14, LE 12, FS 9, LS 8,
IPHCE 7, FT 5, RWT 4, CE 1, PCE/ESA 0; RDES1: DIC 31, RBS2 28:16, RER 15, RCH 14,
RBS1 12:0), written out here."""

from __future__ import annotations

import random
import struct
import time
import zlib

import pytest
from ethmac_harness import (
    BOARD_MAC,
    DMABMR,
    DMAIER,
    DMAMFBOCR,
    DMAOMR,
    DMARDLAR,
    DMARPDR,
    DMASR,
    DMATDLAR,
    DMATPDR,
    ETH,
    HOST_MAC,
    MACCR,
    MACFFR,
    Rig,
    csum,
    ether,
    icmp_echo,
    ipv4,
    l4_checksum,
    tcp,
    udp,
    wire,
    with_l4_checksum,
)

OWN, IC, LS, FS, DC, DP = 1 << 31, 1 << 30, 1 << 29, 1 << 28, 1 << 27, 1 << 26
TER, TCH = 1 << 21, 1 << 20
R_FS, R_LS, R_ES, R_DE, R_CE, R_FT, R_IPHCE, R_PCE = (
    1 << 9,
    1 << 8,
    1 << 15,
    1 << 14,
    1 << 1,
    1 << 5,
    1 << 7,
    1,
)
DIC, RER, RCH = 1 << 31, 1 << 15, 1 << 14
TS, TBUS, TJTS, TUS, RS, RBUS, ROS, FBES, AIS, NIS = (1 << n for n in (0, 2, 3, 5, 6, 7, 4, 13, 15, 16))
TXD, TXB, RXD, RXB = 0x20001000, 0x20010000, 0x20002000, 0x20020000


def _rig() -> Rig:
    """Link up; both lists point at CPU-owned (zeroed) RAM until a test sets its own."""
    rig = Rig()
    rig.link_up_now()
    rig.w(DMARDLAR, 0x20004000)
    rig.w(DMATDLAR, 0x20004000)
    return rig


def _frame(n: int, seed: int = 1) -> bytes:
    body = bytes((i * seed + 7) & 0xFF for i in range(n - 14))
    return ether(body, dst=HOST_MAC, src=BOARD_MAC, etype=0x88B5)


# ------------------------------------------------------------------ transmit
def test_tx_ring_wraps_and_interrupts_only_with_ic() -> None:
    rig = _rig()
    frames = [_frame(100 + 10 * i, i + 1) for i in range(4)]
    for i in range(3):
        rig.desc(TXD + 16 * i, 0, 0, TXB + 0x800 * i, 0)
    rig.w(DMATDLAR, TXD)
    rig.w(DMAIER, 1 << 16 | 1 << 0)  # NISE, TIE
    rig.start()
    for n, f in enumerate(frames):
        i = n % 3
        rig.poke(TXB + 0x800 * i, f)
        ctrl = OWN | LS | FS | (TER if i == 2 else 0) | (IC if n == 1 else 0)
        rig.desc(TXD + 16 * i, ctrl, len(f))
        rig.w(DMATPDR, 0)
        assert rig.r32(TXD + 16 * i) == ctrl & ~OWN
        assert rig.net.sent[-1] == f + struct.pack("<I", zlib.crc32(f))
        assert bool(rig.r(DMASR) & TS) == (n == 1)
        rig.w(DMASR, TS | NIS)
    assert len(rig.net.sent) == 4
    assert rig.r(ETH + 0x1048) == TXD + 16  # DMACHTDR: the next one, after the wrap
    assert rig.r(DMASR) >> 20 & 7 == 6 and rig.r(DMASR) & TBUS  # suspended: TX buffer unavailable
    assert rig.r(ETH + 0x168) == 4  # MMCTGFCR


def test_tx_chain_enhanced_frame_over_three_descriptors_and_two_buffers() -> None:
    rig = _rig()
    f = _frame(1000)
    a, b, c = TXD, TXD + 0x100, TXD + 0x40  # chained anywhere, 8-word descriptors
    rig.poke(TXB, f[:300])
    rig.poke(TXB + 0x1000, f[300:700])
    rig.poke(TXB + 0x2000, f[700:])
    rig.desc(a, OWN | FS | TCH, 300, TXB, b)
    rig.desc(b, OWN | TCH, 400, TXB + 0x1000, c)
    rig.desc(c, OWN | LS | TCH | IC, 300, TXB + 0x2000, a)
    rig.w(DMABMR, 1 << 7)  # EDE
    rig.w(DMATDLAR, a)
    rig.start()
    assert rig.net.sent == [f + struct.pack("<I", zlib.crc32(f))]
    assert [rig.r32(x) for x in (a, b, c)] == [FS | TCH, TCH, LS | TCH | IC]
    # ring mode with both buffers of one descriptor and a skip of 2 words
    rig.w(DMAOMR, 0)
    rig.w(DMABMR, 2 << 2)  # normal descriptors, DSL = 2
    rig.w(DMATDLAR, 0x20003000)
    rig.desc(0x20003000, OWN | FS | LS, 500 << 16 | 500, TXB, TXB + 0x1000)
    rig.poke(TXB, f[:500])
    rig.poke(TXB + 0x1000, f[500:])
    rig.w(DMAOMR, 1 << 21 | 1 << 13)
    assert rig.net.sent[-1][:-4] == f
    assert rig.r(ETH + 0x1048) == 0x20003000 + 16 + 8  # next: descriptor size + DSL words


def test_tx_padding_and_crc_control() -> None:
    rig = _rig()
    short = ether(b"hi", dst=HOST_MAC, src=BOARD_MAC, etype=0x88B5)
    rig.poke(TXB, short)
    rig.w(DMATDLAR, TXD)
    rig.start()
    for ctrl, expect in (
        (0, wire(short)),  # padded to 60, FCS
        (DC, wire(short)),  # padding appends the FCS even with DC
        (DC | DP, short),  # as is
    ):
        rig.desc(TXD, OWN | FS | LS | TER | ctrl, len(short), TXB)
        rig.w(DMATPDR, 1)
        assert rig.net.sent[-1] == expect
    long = _frame(80)
    rig.poke(TXB, long)
    rig.desc(TXD, OWN | FS | LS | TER | DC, len(long), TXB)
    rig.w(DMATPDR, 1)
    assert rig.net.sent[-1] == long


def _send_with_cic(rig: Rig, frame: bytes, cic: int) -> tuple[bytes, int]:
    rig.poke(TXB, frame)
    rig.desc(TXD, OWN | FS | LS | TER | cic << 22, len(frame), TXB)
    rig.w(DMATPDR, 1)
    return rig.net.sent[-1][:-4], rig.r32(TXD)


@pytest.mark.parametrize("proto", ["tcp", "udp", "icmp"])
def test_tx_checksum_insertion_modes(proto: str) -> None:
    rig = _rig()
    rig.w(DMATDLAR, TXD)
    rig.start()
    seg = {"tcp": tcp(b"x" * 33), "udp": udp(b"y" * 21), "icmp": icmp_echo(b"z" * 17)}[proto]
    ip = ipv4({"tcp": 6, "udp": 17, "icmp": 1}[proto], seg, good=False)  # both checksums 0
    frame = ether(ip)
    at = 14 + 20 + {"tcp": 16, "udp": 6, "icmp": 2}[proto]
    good_ip = ipv4(ip[9], seg)  # header checksum right
    sent, tdes0 = _send_with_cic(rig, frame, 0)
    assert sent[: len(frame)] == frame and tdes0 & (1 << 15) == 0
    sent, _ = _send_with_cic(rig, frame, 1)  # IPv4 header only
    assert sent[14:34] == good_ip[:20] and sent[at : at + 2] == b"\0\0"
    sent, _ = _send_with_cic(rig, frame, 3)  # everything, pseudo-header included
    assert sent[14 : 14 + len(ip)] == with_l4_checksum(good_ip)
    # mode 2: software put the pseudo-header sum in the field; the MAC does the rest
    pseudo = 0 if proto == "icmp" else (~csum(ip[12:20] + struct.pack(">BBH", 0, ip[9], len(seg))) & 0xFFFF)
    pre = frame[:at] + struct.pack(">H", pseudo) + frame[at + 2 :]
    sent, _ = _send_with_cic(rig, pre, 2)
    assert struct.unpack(">H", sent[at : at + 2])[0] == l4_checksum(good_ip)


def test_tx_checksum_errors_and_bypass() -> None:
    rig = _rig()
    rig.w(DMATDLAR, TXD)
    rig.start()
    bad_version = ether(b"\x55" + ipv4(6, tcp(b"a"))[1:])
    _, tdes0 = _send_with_cic(rig, bad_version, 3)
    assert tdes0 & (1 << 16 | 1 << 15) == 1 << 16 | 1 << 15  # IHE, ES
    ip = ipv4(17, udp(b"b" * 40))
    truncated = ether(ip[:-10])  # the IP header says 10 bytes more
    sent, tdes0 = _send_with_cic(rig, truncated, 3)
    assert tdes0 & (1 << 12 | 1 << 15) == 1 << 12 | 1 << 15  # payload error, ES
    arp = ether(bytes(28), etype=0x0806)
    sent, tdes0 = _send_with_cic(rig, arp, 3)
    assert sent[:42] == arp and tdes0 & 0x1FFFF == 0
    frag = bytearray(ether(ipv4(6, tcp(b"c" * 8), good=False)))
    frag[14 + 6] = 0x20  # more fragments
    sent, _ = _send_with_cic(rig, bytes(frag), 3)
    assert sent[14 + 10 : 14 + 12] != b"\0\0" and sent[14 + 20 + 16 : 14 + 20 + 18] == b"\0\0"
    rig.w(DMAOMR, 1 << 13)  # threshold mode: insertion needs store and forward
    tcp_frame = ether(ipv4(6, tcp(b"d"), good=False))
    sent, _ = _send_with_cic(rig, tcp_frame, 3)
    assert sent[: len(tcp_frame)] == tcp_frame


def test_tx_suspended_mid_frame_waits_for_poll_demand_store_and_forward() -> None:
    rig = _rig()
    f = _frame(200)
    rig.poke(TXB, f)
    rig.desc(TXD, OWN | FS | TCH, 100, TXB, TXD + 0x20)
    rig.desc(TXD + 0x20, 0, 100, TXB + 100, TXD)  # not handed over yet
    rig.w(DMATDLAR, TXD)
    rig.start()
    assert rig.net.sent == [] and rig.r(DMASR) >> 20 & 7 == 6
    rig.desc(TXD + 0x20, OWN | LS | TCH, 100, TXB + 100, TXD)
    rig.w(DMASR, TBUS)
    rig.w(DMATPDR, 0)
    assert rig.net.sent == [f + struct.pack("<I", zlib.crc32(f))]


def test_tx_underflow_in_threshold_mode() -> None:
    rig = _rig()
    rig.poke(TXB, _frame(200))
    rig.desc(TXD, OWN | FS | TCH, 100, TXB, TXD + 0x20)
    rig.desc(TXD + 0x20, 0, 100, TXB + 100, TXD)
    rig.w(DMATDLAR, TXD)
    rig.w(DMAIER, 1 << 15 | 1 << 5)  # AISE, TUIE
    rig.w(MACCR, 1 << 14 | 1 << 11 | 1 << 3)
    rig.w(DMAOMR, 1 << 13)  # ST, threshold mode (TSF off)
    assert rig.net.sent == []
    assert rig.r(DMASR) & (TUS | AIS) == TUS | AIS and rig.s.irqs[61] is True
    assert rig.r32(TXD) & (1 << 1 | 1 << 15) == 1 << 1 | 1 << 15  # UF, ES


def test_tx_flush_drops_a_half_gathered_frame() -> None:
    rig = _rig()
    rig.poke(TXB, _frame(200))
    rig.desc(TXD, OWN | FS | TCH, 100, TXB, TXD + 0x20)
    rig.desc(TXD + 0x20, 0, 100, TXB + 100, TXD)
    rig.w(DMATDLAR, TXD)
    rig.start()
    rig.w(DMAOMR, 1 << 21 | 1 << 20 | 1 << 13 | 1 << 1)  # FTF
    assert rig.r(DMAOMR) & 1 << 20 == 0
    assert rig.r32(TXD) & (1 << 13) == 1 << 13  # FF


def test_tx_jabber_and_no_carrier() -> None:
    rig = _rig()
    big = _frame(3000)
    rig.poke(TXB, big)
    rig.desc(TXD, OWN | FS | LS | TCH, 3000, TXB, TXD)
    rig.w(DMATDLAR, TXD)
    rig.start()
    assert len(rig.net.sent[-1]) == 2048 + 4
    assert rig.r32(TXD) & (1 << 14 | 1 << 15) == 1 << 14 | 1 << 15 and rig.r(DMASR) & TJTS
    rig.net.set_link(False)
    rig.s.run_posted()
    rig.w(MACCR, 1 << 14 | 1 << 3 | 1 << 2)  # half duplex
    f = _frame(100)
    rig.poke(TXB, f)
    rig.desc(TXD, OWN | FS | LS | TCH, 100, TXB, TXD)
    rig.w(DMATPDR, 0)
    assert rig.r32(TXD) & (1 << 10 | 1 << 11 | 1 << 15) == 1 << 10 | 1 << 11 | 1 << 15  # NC, LCA, ES
    assert len(rig.net.sent) == 1


def test_tx_zero_length_descriptor_is_closed_and_nothing_sent() -> None:
    rig = _rig()
    rig.desc(TXD, OWN | FS | LS | TER, 0, TXB)
    rig.w(DMATDLAR, TXD)
    rig.start()
    assert rig.net.sent == [] and rig.r32(TXD) & OWN == 0


@pytest.mark.parametrize(
    ("where", "ebs"),
    [("descriptor", 0b111), ("buffer", 0b011)],
)
def test_tx_fatal_bus_error(where: str, ebs: int) -> None:
    rig = _rig()
    rig.w(DMAIER, 1 << 15 | 1 << 13)  # AISE, FBEIE
    if where == "descriptor":
        rig.w(DMATDLAR, 0x60000000)  # FMC bank: no memory there
    else:
        rig.desc(TXD, OWN | FS | LS | TER, 64, 0x10000000)
        rig.w(DMATDLAR, TXD)
    rig.start()
    st = rig.r(DMASR)
    assert st & (FBES | AIS) == FBES | AIS and st >> 23 & 7 == ebs and st >> 20 & 7 == 0
    assert rig.s.irqs[61] is True
    rig.desc(TXD, OWN | FS | LS | TER, 64, TXB)
    rig.w(DMATDLAR, TXD)
    rig.w(DMATPDR, 0)
    assert rig.net.sent == []  # stopped until a reset
    rig.w(DMABMR, 1)
    assert rig.r(DMASR) == 0
    rig.w(DMATDLAR, TXD)
    rig.start()
    assert len(rig.net.sent) == 1


# ------------------------------------------------------------------ receive
def _rx_ring(rig: Rig, n: int, size: int, chained: bool = False, enhanced: bool = False) -> list[int]:
    step = 32 if enhanced else 16
    addrs = [RXD + step * i for i in range(n)]
    for i, a in enumerate(addrs):
        ctl = RCH if chained else (RER if i == n - 1 else 0)
        rig.desc(a, OWN, ctl | size, RXB + 0x800 * i, addrs[(i + 1) % n] if chained else 0)
    if enhanced:
        rig.w(DMABMR, 1 << 7)
    rig.w(DMARDLAR, RXD)
    return addrs


def test_rx_ring_frame_length_status_and_rs() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 1536)
    rig.w(DMAIER, 1 << 16 | 1 << 6)
    rig.start()
    body = ether(bytes(range(100)), etype=0x88B5)
    rig.wire_in(wire(body))
    d0 = rig.r32(addrs[0])
    assert d0 == (len(body) + 4) << 16 | R_FS | R_LS | R_FT  # FL counts the FCS (CSTF off)
    assert rig.peek(RXB, len(body) + 4) == wire(body)
    assert rig.r(DMASR) & (RS | NIS) == RS | NIS and rig.s.irqs[61] is True
    assert rig.r(DMASR) >> 17 & 7 == 3  # running, waiting for a frame
    assert rig.r(ETH + 0x104C) == addrs[1] and rig.r(ETH + 0x1C4) == 1  # DMACHRDR, MMCRGUFCR


def test_rx_crc_strip_and_pad_strip() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 1536)
    rig.start(maccr_extra=1 << 25 | 1 << 7)  # CSTF, APCS
    typed = ether(bytes(80), etype=0x88B5)
    rig.wire_in(wire(typed))
    assert rig.r32(addrs[0]) >> 16 & 0x3FFF == len(typed)
    llc = ether(b"\xaa" * 10, etype=10)  # an 802.3 length frame, padded on the wire
    rig.wire_in(wire(llc))
    assert rig.r32(addrs[1]) >> 16 & 0x3FFF == 24 and rig.peek(RXB + 0x800, 24) == llc


def test_rx_frame_over_three_descriptors_in_a_chain() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 256, chained=True)
    rig.start()
    body = ether(bytes(i & 0xFF for i in range(600)), etype=0x88B5)
    rig.wire_in(wire(body))
    total = len(body) + 4
    d = [rig.r32(a) for a in addrs[:3]]
    assert d[0] == 256 << 16 | R_FS  # intermediate: bytes so far
    assert d[1] == 512 << 16
    assert d[2] == total << 16 | R_LS | R_FT
    got = rig.peek(RXB, 256) + rig.peek(RXB + 0x800, 256) + rig.peek(RXB + 0x1000, total - 512)
    assert got == wire(body)


def test_rx_unaligned_buffer_loses_the_bytes_before_it() -> None:
    rig = _rig()
    rig.desc(RXD, OWN, RER | 64, RXB + 2, 0)
    rig.w(DMARDLAR, RXD)
    rig.start()
    f = wire(ether(bytes(50), etype=0x88B5))
    rig.wire_in(f)
    d0 = rig.r32(RXD)
    assert d0 & (R_LS | R_DE) == R_LS | R_DE and d0 >> 16 & 0x3FFF == 62  # 64 - 2 bytes of room


def test_rx_descriptor_error_buffer_unavailable_and_missed_frames() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 2, 128)
    rig.w(DMAIER, 1 << 15 | 1 << 7)  # AISE, RBUIE
    rig.start()
    big = wire(ether(bytes(300), etype=0x88B5))
    rig.wire_in(big)  # 128 + 128 bytes, then nothing: cut with DE
    assert rig.r32(addrs[0]) == 128 << 16 | R_FS
    assert rig.r32(addrs[1]) == 256 << 16 | R_LS | R_DE | R_ES | R_FT
    st = rig.r(DMASR)
    assert st & (RBUS | AIS) == RBUS | AIS and st >> 17 & 7 == 4  # suspended
    rig.w(DMASR, RBUS | AIS)
    for _ in range(3):
        rig.wire_in(wire(ether(bytes(50), etype=0x88B5)))
    assert rig.r(DMASR) & RBUS == 0  # set only when the process was running
    assert rig.r(DMAMFBOCR) == 3 and rig.r(DMAMFBOCR) == 0
    for a in addrs:  # the CPU hands them back; a poll demand resumes reception
        rig.desc(a, OWN)
    rig.w(DMARPDR, 0)
    assert rig.r(DMASR) >> 17 & 7 == 3
    rig.wire_in(wire(ether(bytes(50), etype=0x88B5)))
    assert rig.r32(addrs[0]) & (OWN | R_LS) == R_LS


def test_rx_fifo_holds_frames_with_dfrf_then_overflows() -> None:
    rig = _rig()
    rig.desc(RXD, 0, RER | 1536, RXB, 0)  # the CPU's
    rig.w(DMARDLAR, RXD)
    rig.start(omr_extra=1 << 24)  # DFRF: no flushing
    frames = [wire(ether(bytes([n]) * 586, etype=0x88B5)) for n in range(4)]  # 604 bytes each
    for f in frames:
        rig.wire_in(f)
    assert rig.r(DMAMFBOCR) == 1 << 17 and rig.r(DMASR) & ROS  # the fourth did not fit in 2 KiB
    rig.desc(RXD, OWN, RER | 1536, RXB, 0)
    rig.w(DMARPDR, 0)
    assert rig.peek(RXB, len(frames[0])) == frames[0]  # oldest first
    assert rig.r(DMASR) >> 17 & 7 == 4  # one descriptor: suspended again


def test_rx_crc_errors_runts_and_fef_fugf() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 1536)
    rig.start()
    good = wire(ether(bytes(70), etype=0x88B5))
    bad = good[:-1] + bytes([good[-1] ^ 1])
    rig.wire_in(bad)
    assert rig.r32(addrs[0]) & OWN and rig.r(ETH + 0x194) == 1  # dropped, MMCRFCECR
    rig.wire_in(ether(bytes(20), etype=0x88B5) + b"\0\0\0\0")  # runt
    assert rig.r32(addrs[0]) & OWN
    rig.w(DMAOMR, 1 << 21 | 1 << 13 | 1 << 1 | 1 << 7 | 1 << 6)  # FEF, FUGF (threshold mode)
    rig.wire_in(bad)
    assert rig.r32(addrs[0]) & (OWN | R_CE | R_ES) == R_CE | R_ES
    short = ether(bytes(20), etype=0x88B5)
    rig.wire_in(short + struct.pack("<I", zlib.crc32(short)))
    assert rig.r32(addrs[1]) >> 16 & 0x3FFF == 38
    rig.w(DMAOMR, 1 << 21 | 1 << 13 | 1 << 1)  # threshold mode, RTC 64 bytes, no FEF
    rig.wire_in(bad[:60] + struct.pack("<I", zlib.crc32(bad[:60]) ^ 1))  # 64 bytes: dropped
    assert rig.r32(addrs[2]) & OWN
    rig.wire_in(bad)  # 74 bytes: already on its way to the DMA when the FCS turns out wrong
    assert rig.r32(addrs[2]) & (OWN | R_CE) == R_CE


def test_rx_address_filter() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 1536)
    rig.start()
    other = bytes.fromhex("02aabbccddee")
    mcast = bytes.fromhex("01005e000001")
    rig.wire_in(wire(ether(bytes(50), dst=other)))
    rig.wire_in(wire(ether(bytes(50), dst=mcast)))
    assert rig.r32(addrs[0]) & OWN  # both filtered
    rig.wire_in(wire(ether(bytes(50), dst=b"\xff" * 6)))
    assert not rig.r32(addrs[0]) & OWN
    crc = zlib.crc32(mcast) & 0xFFFFFFFF
    index = int(f"{crc:032b}"[::-1], 2) >> 26  # upper 6 bits of the bit-reversed CRC
    rig.w(ETH + (0x08 if index >= 32 else 0x0C), 1 << (index & 31))
    rig.w(MACFFR, 1 << 2)  # HM
    rig.wire_in(wire(ether(bytes(50), dst=mcast)))
    assert not rig.r32(addrs[1]) & OWN
    rig.w(MACFFR, 1 << 31)  # RA: everything, with AFM on what failed
    rig.wire_in(wire(ether(bytes(50), dst=other)))
    assert rig.r32(addrs[2]) & (1 << 30)


def test_rx_checksum_offload_status_normal_and_enhanced() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 4, 1536)
    rig.start(maccr_extra=1 << 10 | 1 << 25)  # IPCO, CSTF
    good = ether(with_l4_checksum(ipv4(6, tcp(b"data" * 10))))
    rig.wire_in(wire(good))
    assert rig.r32(addrs[0]) & (R_FT | R_IPHCE | R_PCE | R_ES) == R_FT
    arp = ether(bytes(28), etype=0x0806)
    rig.wire_in(wire(arp))
    assert rig.r32(addrs[1]) & (R_FT | R_IPHCE | R_PCE | R_ES) == R_IPHCE | R_PCE  # neither IPv4 nor IPv6
    bad_payload = bytearray(good)
    bad_payload[-1] ^= 0xFF
    rig.wire_in(wire(bytes(bad_payload)))
    assert rig.r32(addrs[2]) & OWN  # dropped (DTCEFD and FEF off)
    rig.w(DMAOMR, 1 << 26 | 1 << 21 | 1 << 13 | 1 << 1)  # DTCEFD: keep them
    rig.wire_in(wire(bytes(bad_payload)))
    assert rig.r32(addrs[2]) & (R_FT | R_IPHCE | R_PCE | R_ES) == R_FT | R_PCE
    # enhanced descriptors: ESA and RDES4 (IPv4, TCP, no error)
    rig2 = _rig()
    eaddrs = _rx_ring(rig2, 2, 1536, enhanced=True)
    rig2.start(maccr_extra=1 << 10 | 1 << 25)
    rig2.wire_in(wire(good))
    assert rig2.r32(eaddrs[0]) & (R_FT | R_PCE) == R_FT | R_PCE
    assert rig2.r32(eaddrs[0] + 16) == 1 << 6 | 2  # IPV4PR, IPPT = TCP
    udp_frame = ether(with_l4_checksum(ipv4(17, udp(b"u" * 9))))
    rig2.wire_in(wire(udp_frame))
    assert rig2.r32(eaddrs[1] + 16) == 1 << 6 | 1


def test_rx_disable_interrupt_on_completion() -> None:
    rig = _rig()
    rig.desc(RXD, OWN, DIC | RER | 1536, RXB, 0)
    rig.w(DMARDLAR, RXD)
    rig.start()
    rig.wire_in(wire(ether(bytes(50), etype=0x88B5)))
    assert not rig.r32(RXD) & OWN and rig.r(DMASR) & RS == 0


@pytest.mark.parametrize(("where", "ebs"), [("descriptor", 0b110), ("buffer", 0b000)])
def test_rx_fatal_bus_error(where: str, ebs: int) -> None:
    rig = _rig()
    if where == "descriptor":
        rig.w(DMARDLAR, 0x60000000)
    else:
        rig.desc(RXD, OWN, RER | 1536, 0x08000000, 0)  # flash: the DMA cannot write there
        rig.w(DMARDLAR, RXD)
    rig.start()
    rig.wire_in(wire(ether(bytes(50), etype=0x88B5)))
    st = rig.r(DMASR)
    assert st & FBES and st >> 23 & 7 == ebs and st >> 17 & 7 == 0
    assert any("FBES" in line for line in rig.s.logs)


def test_loopback_and_speed_mismatch() -> None:
    rig = _rig()
    addrs = _rx_ring(rig, 2, 1536)
    rig.w(DMATDLAR, TXD)
    f = _frame(100)
    rig.poke(TXB, f)
    rig.desc(TXD, OWN | FS | LS | TER, len(f), TXB)
    rig.w(MACFFR, 1 << 0)  # promiscuous: the frame is to the host's address
    rig.start(maccr_extra=1 << 12)  # LM
    assert rig.net.sent == [] and rig.peek(RXB, len(f)) == f
    rig.w(MACCR, 1 << 11 | 1 << 3 | 1 << 2)  # FES = 0: 10 Mbit/s against the PHY's 100
    rig.wire_in(wire(ether(bytes(50))))
    assert rig.r32(addrs[1]) & OWN and rig.r(ETH + 0x194) == 1
    assert any("garbled" in line for line in rig.s.logs)


def test_rx_zero_size_descriptors_cut_the_frame() -> None:
    rig = _rig()
    for i in range(3):
        rig.desc(RXD + 16 * i, OWN, (RER if i == 2 else 0) | 0, RXB, 0)  # RBS1 = RBS2 = 0
    rig.w(DMARDLAR, RXD)
    rig.start()
    rig.wire_in(wire(ether(bytes(50), etype=0x88B5)))
    assert rig.r32(RXD) & OWN == 0 and rig.r32(RXD + 32) & (R_DE | R_LS) == R_DE | R_LS
    assert rig.r(DMASR) >> 17 & 7 == 4


def test_garbage_descriptors_and_registers_never_raise_or_hang() -> None:
    rnd = random.Random(16)
    for _ in range(40):
        rig = _rig()
        for a in range(0x20001000, 0x20003000, 4):  # descriptors full of noise, OWN often set
            rig.w32(a, rnd.getrandbits(32) | (OWN if rnd.random() < 0.7 else 0))
        rig.w(DMABMR, rnd.getrandbits(32) & ~1)
        rig.w(DMATDLAR, rnd.choice([TXD, RXD, 0x20001FF0, 0x60000000, rnd.getrandbits(32)]))
        rig.w(DMARDLAR, rnd.choice([RXD, TXD, 0x2007FFF8, 0x08000000, rnd.getrandbits(32)]))
        rig.w(DMAIER, rnd.getrandbits(32))
        rig.w(MACCR, rnd.getrandbits(32))
        rig.w(MACFFR, rnd.getrandbits(32))
        t0 = time.monotonic()
        rig.w(DMAOMR, rnd.getrandbits(32) | 1 << 13 | 1 << 1)
        for n in range(5):
            rig.wire_in(wire(ether(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(40, 1600))))))
            rig.w(DMATPDR, n)
            rig.w(DMARPDR, n)
        assert time.monotonic() - t0 < 5
        rig.r(DMASR)
