"""A board that resets, reconnects at once or reads very slowly (issue 21, finding 3): a reset
during a paced stream is reported as the board resetting, at once; the board's retry is the
next session, never BUSY; a session has an overall limit."""

from __future__ import annotations

import socket
import struct
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ota_board import ScriptedBoard

from rig.ota import OtaServer, Timeouts

IMAGE = bytes(range(256)) * 4096  # 1 MiB: far more than a small receive window holds


def _stalled_board(address: tuple[str, int]) -> socket.socket:
    """A board that asks for the image, says OTA_READY and then stops reading (its receive
    window is tiny, so the server's queue stays full)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(address)
    s.sendall(b"REQ_FW\n")
    buf = b""
    while b"OTA_UPDATE\n" not in buf:
        chunk = s.recv(1)  # one byte at a time: nothing beyond OTA_UPDATE is consumed
        assert chunk, "the server closed before OTA_UPDATE"
        buf += chunk
    s.sendall(b"OTA_READY\n")
    return s


def _reset(s: socket.socket) -> None:
    """Close with SO_LINGER {1, 0}: the kernel sends RST, as a rebooting board's stack does."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def test_a_reset_during_a_paced_stream_is_the_board_resetting_and_its_retry_is_served() -> None:
    timeouts = Timeouts(connect=10, request=3, ready=3, ack=5, send=20, stall=2, linger=0.2)
    with OtaServer(IMAGE, policy="per-message", timeouts=timeouts) as srv:
        board = _stalled_board(srv.address)
        time.sleep(1.0)  # the server is now waiting for its queue to drain
        t0 = time.monotonic()
        _reset(board)
        retry = ScriptedBoard(srv.address, max_size=len(IMAGE), timeout=20).run()  # at once
        first = srv.wait_session(10)
        second = srv.wait_session(30)
        ended_after = first.duration
    assert first.outcome == "closed", first.to_text()
    assert "reset the connection (RST)" in first.reason and "stayed unsent" not in first.reason
    assert ended_after < 1.0 + (time.monotonic() - t0), first.to_text()
    assert time.monotonic() - t0 < timeouts.send, "the reset was noticed only by the send timeout"
    assert retry.outcome == "ack" and second.outcome == "ack", (retry, second.to_text())
    assert srv.refused == [], "the board's retry after its reset was refused as BUSY"


def test_reconnects_right_after_a_nack_or_a_close_are_never_busy() -> None:
    """A board that NACKs (or ACKs) and reconnects the same instant, twenty times in a row."""
    image = bytes(range(256)) * 256  # 64 KiB
    timeouts = Timeouts(connect=10, request=3, ready=3, ack=3, send=5, stall=2, linger=0.3)
    with OtaServer(image, timeouts=timeouts) as srv:
        outcomes = []
        for i in range(20):
            board = ScriptedBoard(srv.address, nack_after=4096 if i % 2 else None)
            outcomes.append(board.run().outcome)
        results = [srv.wait_session(10) for _ in range(20)]
    assert "busy" not in outcomes, outcomes
    assert srv.refused == [], srv.refused
    assert [r.outcome for r in results] == ["ack", "nack"] * 10, [r.summary() for r in results]


def test_a_second_board_is_still_refused_while_a_session_runs() -> None:
    timeouts = Timeouts(connect=10, request=5, ready=3, ack=3, send=5, stall=2, linger=0.2)
    with OtaServer(IMAGE, timeouts=timeouts) as srv, socket.create_connection(srv.address) as first:
        time.sleep(0.1)
        with socket.create_connection(srv.address, timeout=5) as second:
            assert second.recv(16) == b"BUSY\n"
        first.sendall(b"REQ_FW\n")
    assert len(srv.refused) == 1


def test_a_very_slow_reader_is_ended_by_the_session_limit() -> None:
    """It reads a little every 50 ms: every write makes progress (no send timeout), but the
    session as a whole may not last longer than Timeouts.session."""
    timeouts = Timeouts(connect=10, request=3, ready=3, ack=3, send=5, stall=2, linger=0.2, session=2.0)
    with OtaServer(IMAGE, policy="per-message", timeouts=timeouts) as srv:
        board = _stalled_board(srv.address)
        try:
            t0 = time.monotonic()
            res = None
            while time.monotonic() - t0 < 15:
                try:
                    if not board.recv(512):
                        break
                except OSError:
                    break
                time.sleep(0.05)
            res = srv.wait_session(10)
        finally:
            board.close()
    assert res is not None and res.outcome == "timeout", res.to_text()
    assert "exceeded its limit of 2 s" in res.reason and 1.9 < res.duration < 5, res.to_text()
    assert 0 < res.bytes_sent < len(IMAGE)


def test_the_session_limit_is_documented_and_checked() -> None:
    import pytest

    from rig.errors import ConfigError

    assert Timeouts().session == 600.0
    text = (Path(__file__).resolve().parents[2] / "docs" / "ota-server.md").read_text()
    assert "session=600" in text and "--session-limit" in text
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match=r"Timeouts\.session"):
            Timeouts(session=bad)
