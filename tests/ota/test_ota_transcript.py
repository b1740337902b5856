"""Transcript and SessionResult rendering (pure)."""

from __future__ import annotations

import json

from rig.capture import iface_for_address, tcp_fields
from rig.ota.transcript import SessionResult, Transcript, printable


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        self.t += 0.001
        return self.t


def test_events_and_text() -> None:
    tr = Transcript(policy="tiny:size=7", image_size=20, clock=Clock())
    tr.rx(b"REQ_FW\n")
    tr.tx(b"FILE_SIZE:20\n")
    tr.data(0, 7)
    tr.data(7, 7)
    tr.data(14, 6)
    tr.tx(b"OTA_DONE\n")
    tr.note("policy x")
    tr.error("outcome nack: crc")
    assert tr.messages() == ["REQ_FW", "FILE_SIZE:20", "OTA_DONE"]
    assert tr.messages("rx") == ["REQ_FW"] and tr.data_sent == 20 and tr.data_writes == 3
    times = [e.t for e in tr.events]
    assert times == sorted(times) and times[0] > 0
    text = tr.to_text()
    assert "-> data  [0, 20) 20 bytes in 3 write(s)" in text
    assert "<- msg   REQ_FW" in text and "ERROR outcome nack: crc" in text
    d = json.loads(json.dumps(tr.to_dict()))
    assert [e["kind"] for e in d["events"]] == ["msg", "msg", "data", "data", "data", "msg", "note", "error"]
    assert d["events"][3]["offset"] == 7


def test_data_events_are_bounded() -> None:
    tr = Transcript(clock=Clock())
    tr.MAX_DATA_EVENTS = 10
    for i in range(100):
        tr.data(i * 3, 3)
    assert len(tr.events) == 10 and tr.events[-1].nbytes == 3 * 91 and tr.data_sent == 300
    assert tr.events[-1].text == "data [27, 300)"


def test_printable_escapes_and_bounds() -> None:
    assert printable(b"A\r\n\x00\xff") == "A\\r\\n\\x00\\xff"
    assert printable(b"x" * 100, 10) == "x" * 10 + "...(+90 bytes)"


def test_result_summary_and_dict() -> None:
    tr = Transcript(policy="natural", clock=Clock())
    r = SessionResult(
        "nack", "crc", "ack", 1000, 0, 0.5, "natural", tr, peer="127.0.0.1:1", nack_reason="crc"
    )
    assert not r.ok and r.throughput == 2000
    assert "session 0: nack (crc) phase=ack sent=1000" in r.summary()
    d = json.loads(json.dumps(r.to_dict()))
    assert d["nack_reason"] == "crc" and d["throughput"] == 2000.0 and "transcript" in d
    zero = SessionResult("timeout", "x", "connect", 0, 0, 0.0, "natural", tr)
    assert zero.throughput == 0.0


def test_tcp_fields_and_iface() -> None:
    from scapy.all import IP, TCP, Ether, Raw

    frame = bytes(
        Ether()
        / IP(src="127.0.0.1", dst="127.0.0.1")
        / TCP(sport=5000, dport=40000, seq=7, flags="PA")
        / Raw(b"abc")
    )
    assert tcp_fields(frame) == (5000, 40000, 7, 0x18, 3)
    assert tcp_fields(b"\x00" * 60) is None
    assert iface_for_address("127.0.0.1") == "lo"
