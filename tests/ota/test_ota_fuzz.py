"""Property test: hostile board input never crashes or hangs the server, and every session
ends with an outcome and a reason. The number of inputs tried is counted by the same test
that tries them (no dependency on test order or on xdist's distribution), printed and
recorded as a test-suite property."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rig.ota import OtaServer, Timeouts
from rig.ota.transcript import OUTCOMES

TOKENS = [
    b"REQ_FW\n",
    b"OTA_READY\n",
    b"ACK\n",
    b"NACK:crc\n",
    b"NACK:\n",
    b"NACK:not-a-reason!\n",
    b"NACK:timeout\n",
    b"OTA_DONE\n",
    b"FILE_SIZE:12\n",
    b"REQ_F",
    b"W\n",
    b"OTA_",
    b"\r\n",
    b"\x00",
    b"\n",
    b"A" * 63 + b"\n",
    b"B" * 64 + b"\n",
    b"\xff\xfe",
]

chunk = st.one_of(
    st.sampled_from(TOKENS), st.binary(max_size=80), st.binary(min_size=60, max_size=3000)
)  # huge lines / floods
action = st.one_of(
    st.tuples(st.just("send"), chunk),
    st.tuples(st.just("drip"), st.binary(min_size=1, max_size=12)),  # slow client, byte by byte
    st.tuples(st.just("sleep"), st.floats(0, 0.05)),
    st.tuples(st.just("read"), st.none()),
    st.tuples(st.just("second"), st.none()),  # concurrent 2nd client
)
ending = st.sampled_from(["close", "rst", "shutdown", "silent"])

FUZZ = Timeouts(connect=5, request=0.15, ready=0.15, ack=0.15, send=1.0, stall=0.3, linger=0.05)
LEFT_OPEN: list[socket.socket] = []


@pytest.fixture(scope="module")
def server() -> Iterator[OtaServer]:
    with OtaServer(bytes(range(256)) * 12, timeouts=FUZZ) as srv:
        yield srv
    for s in LEFT_OPEN:
        s.close()


def _read_until(s: socket.socket, token: bytes) -> None:
    buf = b""
    deadline = time.monotonic() + 2
    while token not in buf and time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except TimeoutError:
            continue
        except OSError:
            return  # the server ended the session (e.g. its timeout on a loaded machine)
        if not chunk:
            return
        buf += chunk


def _play(srv: OtaServer, actions: list, end: str, depth: int, stats: dict) -> None:
    s = socket.create_connection(srv.address, timeout=2)
    s.settimeout(0.2)
    try:
        try:
            if depth >= 1:  # behave until OTA_UPDATE, then turn hostile
                s.sendall(b"REQ_FW\n")
                _read_until(s, b"OTA_UPDATE\n")
            if depth >= 2:  # ... or until the whole image arrived
                s.sendall(b"OTA_READY\n")
                _read_until(s, b"OTA_DONE\n")
        except OSError:
            actions = []  # the server already ended the session: nothing hostile left to do
        for kind, arg in actions:
            try:
                if kind == "send":
                    s.sendall(arg)
                    stats["bytes"] += len(arg)
                elif kind == "drip":
                    for b in arg:
                        s.send(bytes([b]))
                        time.sleep(0.003)
                    stats["bytes"] += len(arg)
                elif kind == "sleep":
                    time.sleep(arg)
                elif kind == "read":
                    try:
                        s.recv(65536)
                    except TimeoutError:
                        pass
                elif kind == "second":
                    with socket.create_connection(srv.address, timeout=2) as s2:
                        s2.settimeout(2)
                        assert s2.recv(100) in (b"BUSY\n", b"")
            except (BrokenPipeError, ConnectionResetError):
                break  # the server ended the session: fine
        try:
            if end == "rst":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif end == "shutdown":
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # already closed by the server
        if end == "silent":
            return  # keep the socket open; the server must time out by itself
    finally:
        if end != "silent":
            s.close()
        else:
            LEFT_OPEN.append(s)  # closed at teardown, after the server gave up on it


def _one_hostile_session(server: OtaServer, actions: list, end: str, depth: int, stats: dict) -> None:
    index = server.sessions_started
    _play(server, actions, end, depth, stats)
    t0 = time.monotonic()
    # generous: every session timeout is <= 1 s, but CI machines may be loaded
    res = server.wait_session(timeout=20)
    while res.phase != "connect" and res.index < index:  # a leftover of an earlier (shrunk) example
        res = server.wait_session(timeout=20)
    elapsed = time.monotonic() - t0
    stats["inputs"] += 1
    stats["outcomes"][res.outcome] = stats["outcomes"].get(res.outcome, 0) + 1
    assert res.phase != "connect", "the session never ended: the server hung or lost the client"
    assert res.index == index
    assert res.outcome in OUTCOMES and res.outcome != "error", res.to_text()
    assert res.reason.strip(), res.to_text()
    assert any(
        e.kind in ("error", "note") and e.text == f"outcome {res.outcome}: {res.reason}"
        for e in res.transcript.events
    ), res.to_text()
    assert elapsed < 30, f"session took {elapsed:.1f} s with every timeout <= 1 s"
    assert server.serving


def test_hostile_clients_never_crash_or_hang_the_server(
    server: OtaServer, record_testsuite_property: Callable[[str, object], None]
) -> None:
    """Every hostile input ends in a session with an outcome; at least 100 inputs were tried
    and they reached at least 3 different outcomes (counted here, by the test that runs them)."""
    stats: dict = {"inputs": 0, "bytes": 0, "outcomes": {}}

    @settings(max_examples=220, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(actions=st.lists(action, max_size=8), end=ending, depth=st.integers(0, 2))
    def hostile_client(actions: list, end: str, depth: int) -> None:
        _one_hostile_session(server, actions, end, depth, stats)

    hostile_client()
    counts = ", ".join(f"{k}={v}" for k, v in sorted(stats["outcomes"].items()))
    print(f"\n[ota fuzz] {stats['inputs']} hostile inputs, {stats['bytes']} bytes sent; outcomes: {counts}")
    record_testsuite_property("ota_fuzz_inputs", stats["inputs"])
    assert stats["inputs"] >= 100, stats
    assert len(stats["outcomes"]) >= 3, stats
