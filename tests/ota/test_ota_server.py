"""OtaServer + ThreadProtocol against the scripted board and raw hostile clients."""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ota_board import ScriptedBoard

from rig.errors import ConfigError, OtaError
from rig.ota import OtaServer, Protocol, Timeouts, Verdict

FAST = Timeouts(connect=10, request=3, ready=3, ack=3, send=5, stall=2, linger=0.2)
IMAGE = os.urandom(20000)


def ota_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("ota-")]


def raw_session(srv: OtaServer, payload: bytes, *, hold: float = 0.0, read: bool = True) -> bytes:
    """Connect, send ``payload``, optionally wait, read what the server sends until it closes."""
    got = b""
    with socket.create_connection(srv.address, timeout=5) as s:
        if payload:
            s.sendall(payload)
        if hold:
            time.sleep(hold)
        if read:
            try:
                while chunk := s.recv(65536):
                    got += chunk
            except (TimeoutError, ConnectionResetError):
                pass
    return got


def test_happy_path_with_crc_and_result_fields() -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        assert srv.address[0] == "127.0.0.1"
        board = ScriptedBoard(srv.address).run()
        res = srv.wait_session(5)
    assert board.outcome == "ack" and board.data == IMAGE
    assert board.crc == zlib.crc32(IMAGE)
    assert board.lines_in[:3] == [
        f"FILE_SIZE:{len(IMAGE)}",
        f"FILE_CRC:{zlib.crc32(IMAGE):08X}",
        "OTA_UPDATE",
    ]
    assert res.outcome == "ack" and res.ok and res.phase == "done"
    assert res.bytes_sent == len(IMAGE) and res.bytes_acked == len(IMAGE)
    assert res.throughput > 0 and res.policy == "natural"
    assert res.transcript.messages("rx") == ["REQ_FW", "OTA_READY", "ACK"]
    assert res.transcript.messages("tx")[-1] == "OTA_DONE"
    d = json.loads(json.dumps(res.to_dict()))
    assert d["outcome"] == "ack" and d["transcript"]["data_sent"] == len(IMAGE)
    text = res.to_text()
    assert "REQ_FW" in text and f"[0, {len(IMAGE)})" in text and "outcome ack" in text
    assert ota_threads() == []


def test_without_crc_no_file_crc_line() -> None:
    with OtaServer(IMAGE, crc=False, timeouts=FAST) as srv:
        board = ScriptedBoard(srv.address).run()
        res = srv.wait_session(5)
    assert board.outcome == "ack" and board.crc is None
    assert not any(line.startswith("FILE_CRC") for line in board.lines_in)
    assert res.outcome == "ack"


def test_board_refuses_a_too_large_image_before_data() -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        board = ScriptedBoard(srv.address, max_size=len(IMAGE) - 1).run()
        res = srv.wait_session(5)
    assert board.outcome == "nack:too_large"
    assert (res.outcome, res.nack_reason, res.phase, res.bytes_sent) == ("nack", "too_large", "ready", 0)


def test_server_refuses_oversized_or_empty_image_before_serving() -> None:
    with pytest.raises(OtaError) as info:
        OtaServer(IMAGE, max_size=len(IMAGE) - 1)
    assert info.value.reason == "too_large" and "1 too many" in str(info.value) and info.value.hint
    with pytest.raises(OtaError, match="empty"):
        OtaServer(b"")
    with pytest.raises(OtaError, match="cannot read image"):
        OtaServer("/nonexistent/app.bin")
    OtaServer(IMAGE, max_size=len(IMAGE)).close()


def test_board_nack_during_data_stops_the_stream() -> None:
    image = os.urandom(300_000)
    with OtaServer(image, policy="per-message", timeouts=FAST) as srv:
        board = ScriptedBoard(srv.address, nack_after=8192).run()
        res = srv.wait_session(5)
    assert board.outcome == "nack:flash"
    assert res.outcome == "nack" and res.nack_reason == "flash" and res.phase == "data"
    assert res.bytes_sent < len(image)


@pytest.mark.parametrize(
    "payload,outcome,needle,phase",
    [
        (b"HELLO\n", "protocol", "expected REQ_FW, got 'HELLO'", "request"),
        (b"A" * 100, "protocol", "longer than 64 bytes", "request"),
        (b"REQ_FW\r\n", "protocol", "invalid byte 0x0d", "request"),
        (b"REQ\x00FW\n", "protocol", "invalid byte 0x00", "request"),
        (b"REQ_FW\nREQ_FW\n", "protocol", "'REQ_FW' before OTA_UPDATE was sent (wrong order)", "ready"),
        (b"REQ_FW\nOTA_READY\n", "protocol", "'OTA_READY' before OTA_UPDATE was sent", "ready"),
        (b"REQ_FW\nNACK:\n", "protocol", "malformed NACK", "ready"),
        (b"REQ_FW\nNACK:bad_size\n", "nack", "bad_size", "ready"),
        (b"REQ_F", "timeout", "no REQ_FW from the board within 3 s; partial line 'REQ_F'", "request"),
        (b"REQ_FW\n", "timeout", "no OTA_READY", "ready"),
    ],
)
def test_strict_about_what_the_board_sends(payload: bytes, outcome: str, needle: str, phase: str) -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        raw_session(srv, payload)
        res = srv.wait_session(5)
    assert res.outcome == outcome, res.to_text()
    assert needle in res.reason
    assert res.phase == phase
    assert res.transcript.events[-1].kind == "error"


def board_reaching(srv: OtaServer, token: bytes) -> socket.socket:
    """A client that sends REQ_FW and reads until ``token`` arrived."""
    s = socket.create_connection(srv.address, timeout=5)
    s.sendall(b"REQ_FW\n")
    buf = b""
    while token not in buf:
        chunk = s.recv(65536)
        assert chunk, buf
        buf += chunk
    return s


def test_ack_during_data_is_a_protocol_error() -> None:
    with (
        OtaServer(IMAGE, policy="per-message", timeouts=FAST) as srv,
        board_reaching(srv, b"OTA_UPDATE\n") as s,
    ):
        s.sendall(b"OTA_READY\nACK\n")
        res = srv.wait_session(5)
    assert res.outcome == "protocol" and "'ACK' while the image was being sent" in res.reason
    assert res.phase == "data"


def test_silence_after_the_image_times_out() -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv, board_reaching(srv, b"OTA_UPDATE\n") as s:
        s.sendall(b"OTA_READY\n")
        res = srv.wait_session(5)
    assert (res.outcome, res.phase) == ("timeout", "ack") and "no ACK" in res.reason
    assert res.bytes_sent == len(IMAGE)


def test_a_session_whose_board_is_known_gone_is_abandoned_at_once() -> None:
    """A board whose power the rig cut never sends FIN or RST: ``abandon_if`` ends the session
    without waiting for its timeouts (here 3 s for the ACK), and is not asked before then."""
    slow = Timeouts(connect=10, request=30, ready=30, ack=30, send=30, stall=30, linger=0.2)
    asked: list[float] = []
    gone_at = time.monotonic() + 0.5

    def gone() -> bool:
        asked.append(time.monotonic())
        return time.monotonic() >= gone_at

    with OtaServer(IMAGE, timeouts=slow) as srv, board_reaching(srv, b"OTA_UPDATE\n") as s:
        s.sendall(b"OTA_READY\n")  # then silence, as from a board without power
        t0 = time.monotonic()
        res = srv.wait_session(5, abandon_if=gone)
        took = time.monotonic() - t0
    assert not res.ok and res.outcome != "ack"
    assert 0.4 <= took < 3.0, took
    assert asked and all(b - a >= 0.09 for a, b in itertools.pairwise(asked))  # polled, not spun


def test_a_board_that_will_never_connect_is_given_up_on_with_the_reason() -> None:
    """``give_up_if`` ends the wait for a board that cannot connect any more (the rig saw it
    stop at a breakpoint) with its reason, polled, long before the connect timeout; no board
    connects here, so ``abandon_if`` is never asked."""
    asked: list[float] = []
    stop_at = time.monotonic() + 0.5

    def stopped() -> str | None:
        asked.append(time.monotonic())
        return "the core halted at 0x08040000" if time.monotonic() >= stop_at else None

    with OtaServer(IMAGE) as srv:
        t0 = time.monotonic()
        res = srv.wait_session(
            20, abandon_if=lambda: pytest.fail("asked without a session"), give_up_if=stopped
        )
        took = time.monotonic() - t0
    assert (res.outcome, res.phase) == ("timeout", "connect") and "halted at 0x08040000" in res.reason
    assert 0.4 <= took < 3.0, took
    assert len(asked) >= 3 and all(b - a >= 0.09 for a, b in itertools.pairwise(asked))


def test_early_close_is_reported() -> None:
    # closing with the server's lines unread ends in FIN or RST depending on timing
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        raw_session(srv, b"REQ_FW\nOTA_RE", read=False)
        res = srv.wait_session(5)
    assert res.outcome == "closed" and "phase ready" in res.reason and "'OTA_RE'" in res.reason


@pytest.mark.parametrize("ending", ["fin", "rst"])
def test_early_close_names_fin_or_rst_phase_and_partial_line(ending: str) -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        with socket.create_connection(srv.address, timeout=5) as s:
            s.sendall(b"REQ_FW\n")
            got = b""
            while b"OTA_UPDATE\n" not in got:  # read all three lines: nothing left unread
                chunk = s.recv(4096)
                assert chunk, got
                got += chunk
            s.sendall(b"OTA_RE")
            time.sleep(0.2)
            if ending == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        res = srv.wait_session(5)
    assert res.outcome == "closed" and res.phase == "ready"
    assert "phase ready" in res.reason and "'OTA_RE'" in res.reason
    assert ("reset the connection (RST)" in res.reason) == (ending == "rst"), res.reason


def test_bytes_after_ack_are_a_protocol_error() -> None:
    class Chatty(ScriptedBoard):
        def send(self, text: str) -> None:
            super().send(text + ("\nEXTRA" if text == "ACK" else ""))

    with OtaServer(IMAGE, timeouts=FAST) as srv:
        Chatty(srv.address).run()
        res = srv.wait_session(5)
    assert res.outcome == "protocol" and "after ACK" in res.reason


def test_second_concurrent_client_is_refused_and_recorded() -> None:
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        first = socket.create_connection(srv.address, timeout=5)
        try:
            time.sleep(0.2)  # let the server accept the first one
            got = raw_session(srv, b"REQ_FW\n")
            assert got == b"BUSY\n"
            first.sendall(b"REQ_FW\n")
            first.recv(100)
        finally:
            first.close()
        res = srv.wait_session(5)
        assert len(srv.refused) == 1
    assert res.refused == srv.refused
    assert any("one board at a time" in e.text for e in res.transcript.events)


def test_a_board_reconnecting_right_after_a_session_is_not_refused() -> None:
    """The next session may start as soon as the previous result is out, even while that
    session's thread still runs its callbacks (a board retrying at once, the next test)."""
    with OtaServer(IMAGE, timeouts=FAST) as srv:
        srv.on_session = lambda res: time.sleep(0.5)  # keeps the old thread alive
        ScriptedBoard(srv.address).run()
        first = srv.wait_session(5)
        second_board = ScriptedBoard(srv.address).run()  # connects inside those 0.5 s
        second = srv.wait_session(5)
    assert first.outcome == "ack" and second.outcome == "ack", second.to_text()
    assert srv.refused == [] and second.index == 1 and second_board.outcome == "ack"


def test_a_board_reconnecting_while_the_last_result_is_written_is_not_refused(monkeypatch) -> None:
    """Between closing a session's connection and publishing its result the server is not
    busy with a board any more: a reconnect in that window waits and becomes the next
    session instead of getting BUSY."""
    import rig.ota.server as server_mod

    class SlowEnd(server_mod.Transcript):
        def note(self, text: str) -> None:  # the outcome line is written after the close
            if text.startswith("outcome "):
                time.sleep(0.4)
            super().note(text)

        def error(self, text: str) -> None:
            if text.startswith("outcome "):
                time.sleep(0.4)
            super().error(text)

    monkeypatch.setattr(server_mod, "Transcript", SlowEnd)
    quick = Timeouts(connect=10, request=0.2, ready=3, ack=3, send=5, stall=2, linger=0.2)
    with OtaServer(IMAGE, timeouts=quick) as srv:
        assert raw_session(srv, b"") == b""  # a silent board: the server gives up first
        board = ScriptedBoard(srv.address).run()  # and the board reconnects at once
        first, second = srv.wait_session(5), srv.wait_session(5)
    assert srv.refused == [], srv.refused
    assert first.outcome == "timeout" and second.outcome == "ack" and board.outcome == "ack"


def test_policy_per_session_drop_then_recover() -> None:
    with OtaServer(IMAGE, policy=["drop-at:byte=1000", "natural"], timeouts=FAST) as srv:
        first = ScriptedBoard(srv.address).run()
        r1 = srv.wait_session(5)
        second = ScriptedBoard(srv.address).run()
        r2 = srv.wait_session(5)
    assert first.outcome == "nack:short" and len(first.data) == 1000
    assert r1.outcome == "aborted" and r1.nack_reason == "short" and r1.bytes_sent == 1000
    assert second.outcome == "ack" and r2.outcome == "ack" and (r1.index, r2.index) == (0, 1)


def test_bind_safety() -> None:
    for bad in ("", "0.0.0.0", "::"):
        with pytest.raises(ConfigError, match="all interfaces"):
            OtaServer(IMAGE, bind=bad)
    with pytest.raises(ConfigError, match="not an IP"):
        OtaServer(IMAGE, bind="lab-host")
    with pytest.raises(OtaError, match="cannot listen"):
        OtaServer(IMAGE, bind="192.0.2.77").start()  # TEST-NET address not on this host
    with OtaServer(IMAGE, bind="localhost") as srv:
        assert srv.address[0] == "127.0.0.1"


def test_allow_list_refuses_other_peers() -> None:
    with OtaServer(IMAGE, allow=["10.9.9.9"], timeouts=FAST) as srv:
        assert raw_session(srv, b"REQ_FW\n") == b"BUSY\n"
        res = srv.wait_session(0.3)
        assert srv.refused and res.outcome == "timeout" and res.phase == "connect"


def test_wait_session_without_board_times_out_with_the_address() -> None:
    with OtaServer(IMAGE) as srv:
        res = srv.wait_session(0.2)
        host, port = srv.address
    assert res.outcome == "timeout" and f"{host}:{port}" in res.reason


def test_close_during_a_session_aborts_and_frees_everything() -> None:
    srv = OtaServer(IMAGE, timeouts=Timeouts(request=30)).start()
    port = srv.address[1]
    s = socket.create_connection(srv.address, timeout=5)
    time.sleep(0.2)
    t0 = time.monotonic()
    srv.close()
    elapsed = time.monotonic() - t0
    res = srv.results[-1]
    s.close()
    assert res.outcome == "aborted" and "server closed" in res.reason
    assert ota_threads() == [], f"threads left after close ({elapsed:.2f} s)"
    with OtaServer(IMAGE, port=port) as again:  # fixed port reusable right away (SO_REUSEADDR)
        assert again.address[1] == port
        board = ScriptedBoard(again.address).run()
        assert again.wait_session(5).outcome == "ack" and board.outcome == "ack"
    with OtaServer(IMAGE, port=port) as third:  # and again after a finished session (TIME_WAIT)
        assert third.address[1] == port


class HelloProtocol(Protocol):
    """The docstring example of rig.ota.protocol, verbatim in spirit."""

    name = "hello"

    def run(self, session):  # type: ignore[no-untyped-def]
        t = session.timeouts
        if session.expect("HELLO", t.request) != "HELLO":
            raise session.fail("protocol", "expected HELLO")
        session.phase = "data"
        offer = session.offer
        line = session.send(session.control(f"SIZE {offer.declared_size}"), session.data(offer.data))
        session.phase = "ack"
        line = line or session.expect("OK", t.ack)
        if line == "OK":
            return Verdict("ack", "board answered OK", acked=len(offer.data))
        raise session.fail("protocol", f"expected OK, got {line!r}")


def test_custom_protocol_plugs_in_with_policies() -> None:
    with OtaServer(IMAGE, protocol=HelloProtocol(), policy="split-tokens", timeouts=FAST) as srv:
        with socket.create_connection(srv.address, timeout=5) as s:
            s.sendall(b"HELLO\n")
            buf = b""
            while b"\n" not in buf:
                buf += s.recv(100)
            head, _, rest = buf.partition(b"\n")
            n = int(head.split()[1])
            while len(rest) < n:
                rest += s.recv(65536)
            s.sendall(b"OK\n")
        res = srv.wait_session(5)
    assert rest == IMAGE and res.outcome == "ack" and res.transcript.protocol == "hello"
    assert res.transcript.messages("tx") == [f"SIZE {len(IMAGE)}"]


def test_a_crashing_protocol_is_reported_and_the_server_keeps_serving() -> None:
    class Broken(Protocol):
        name = "broken"
        calls = 0

        def run(self, session):  # type: ignore[no-untyped-def]
            Broken.calls += 1
            if Broken.calls == 1:
                raise ZeroDivisionError("bug")
            return Verdict("ack", "fine")

    with OtaServer(IMAGE, protocol=Broken(), timeouts=FAST) as srv:
        raw_session(srv, b"")
        r1 = srv.wait_session(5)
        raw_session(srv, b"")
        r2 = srv.wait_session(5)
    assert r1.outcome == "error" and "ZeroDivisionError" in r1.reason
    assert r2.outcome == "ack"


def test_progress_callback_sees_monotonic_data_progress() -> None:
    seen: list[tuple[str, int, int]] = []
    with OtaServer(
        IMAGE, policy="per-message", timeouts=FAST, on_progress=lambda ph, n, tot: seen.append((ph, n, tot))
    ) as srv:
        ScriptedBoard(srv.address).run()
        srv.wait_session(5)
    data = [n for ph, n, _ in seen if ph == "data"]
    assert data == sorted(data) and data[-1] == len(IMAGE) and len(data) == 20
    assert seen[-1][0] == "end"
