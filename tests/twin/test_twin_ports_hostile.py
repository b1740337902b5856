"""The twin's control and debug ports answer malformed requests with one error and keep
serving; a stale debug client does not lock the port for ever (issue 21: finding 4)."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from twin_core_util import TwinProcess

from twin.board import Board, BoardOptions


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Conn:
    def __init__(self, addr: str, timeout: float = 10.0) -> None:
        host, port = addr.removeprefix("remote:").split(":")
        self.s = socket.create_connection((host, int(port)), timeout=timeout)
        self.buf = b""

    def ask(self, raw: bytes) -> dict:
        self.s.sendall(raw if raw.endswith(b"\n") else raw + b"\n")
        return self.reply()

    def reply(self) -> dict:
        while b"\n" not in self.buf:
            chunk = self.s.recv(65536)
            assert chunk, "connection dropped"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def close(self) -> None:
        self.s.close()


@pytest.fixture(scope="module")
def twin():
    with TwinProcess() as t:
        yield t


def _probe_req(rid: int, name: str, *args) -> bytes:
    return json.dumps({"id": rid, "request": name, "arguments": list(args)}).encode()


CONTROL_BAD = [
    b"[" * 3000 + b"]" * 3000,
    b'{"cmd": "status", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}",
    b'{"cmd": "read", "address": ' + b"9" * 5000 + b"}",
    b'{"cmd": "status", "n": ' + b"1" * 4301 + b"}",
    b'{"cmd": "' + b"x" * 100_000 + b'"}',
]


def test_control_port_answers_malformed_requests_and_keeps_serving(twin: TwinProcess) -> None:
    c = _Conn(twin.info["control"])
    try:
        for bad in CONTROL_BAD:
            r = c.ask(bad)
            assert r["ok"] is False and r["error"] and len(json.dumps(r)) < 2000
            assert c.ask(b'{"cmd": "status"}')["ok"] is True
    finally:
        c.close()
    assert "Traceback" not in twin.stderr()


def test_overlong_line_gets_one_error_and_is_dropped(twin: TwinProcess) -> None:
    assert twin.proc is not None
    rss0 = _rss_kib(twin.proc.pid)
    for addr in (twin.info["control"], twin.probe):
        c = _Conn(addr, timeout=30)
        try:
            chunk = b"x" * (1 << 20)
            t0 = time.monotonic()
            for _ in range(24):  # 24 MiB without a newline
                c.s.sendall(chunk)
            c.s.sendall(b"\n")
            r = c.reply()
            assert "longer than" in r["error"]
            if addr == twin.probe:
                assert c.ask(_probe_req(1, "hello", 1)) == {"id": 1, "status": 0}
            else:
                assert c.ask(b'{"cmd": "status"}')["ok"] is True
            assert time.monotonic() - t0 < 10
        finally:
            c.close()
    assert _rss_kib(twin.proc.pid) - rss0 < 32 * 1024  # never buffered whole
    assert "Traceback" not in twin.stderr()


PROBE_BAD = [
    ("read_mem", 0, 0x20000000, 16384),
    ("read_mem", 0, 0x20000000, -8),
    ("read_mem", 0, 0x20000000, 12),
    ("read_mem", 0, -4, 32),
    ("read_mem", 0, 1 << 40, 32),
    ("write_mem", 0, 0x20000000, 1, 1 << 40),
    ("write_mem", 0, 0x20000000, 1, 1 << 32),
    ("write_mem", 0, 0x20000000, "x", 32),
    ("read_block32", 0, 0x20000000, 1 << 30),
    ("read_block8", 0, 0x20000000, -1),
    ("write_block8", 0, 0x20000000, [256]),
    ("write_block32", 0, 0x20000000, [1 << 40]),
    ("write_block32", 0, 0x20000000, "abc"),
    ("read_ap_multiple", 0x0C, 1 << 40),
    ("hello", [[[]]]),
]


def test_debug_port_answers_malformed_requests_and_keeps_serving(twin: TwinProcess) -> None:
    assert twin.proc is not None
    rss0 = _rss_kib(twin.proc.pid)
    c = _Conn(twin.probe)
    try:
        for i, (name, *args) in enumerate(PROBE_BAD):
            t0 = time.monotonic()
            r = c.ask(_probe_req(i, name, *args))
            assert r["id"] == i and r["status"] != 0 and r["error"], (name, args, r)
            assert time.monotonic() - t0 < 2, (name, args)
            assert c.ask(_probe_req(1000 + i, "read_mem", 0, 0x20000000, 32))["status"] == 0
        r = c.ask(b'{"id": ' + b"[" * 3000 + b"]" * 3000 + b', "request": "hello"}')
        assert r["status"] != 0
    finally:
        c.close()
    assert _rss_kib(twin.proc.pid) - rss0 < 32 * 1024
    assert "Traceback" not in twin.stderr()


def test_stale_debug_client_is_dropped_for_a_new_debugger() -> None:
    b = Board(BoardOptions(pty=False))
    try:
        b.start(0, 0)
        assert b.debug_server is not None
        b.debug_server.stale_after = 1.0
        addr = f"127.0.0.1:{b.debug_server.port}"
        old = _Conn(addr)
        assert old.ask(_probe_req(1, "hello", 1))["status"] == 0
        # an active client keeps the port: the newcomer is refused
        busy = _Conn(addr)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            old.ask(_probe_req(2, "lock"))
            time.sleep(0.1)
            busy.s.setblocking(False)
            try:
                if busy.s.recv(1, socket.MSG_PEEK):
                    break
            except BlockingIOError:
                pass
            finally:
                busy.s.setblocking(True)
        assert busy.reply()["status"] == 3
        busy.close()
        # the old client goes silent: after stale_after the next debugger takes over
        time.sleep(1.2)
        new = _Conn(addr)
        t0 = time.monotonic()
        assert new.ask(_probe_req(1, "hello", 1)) == {"id": 1, "status": 0}
        assert time.monotonic() - t0 < 4
        old.s.settimeout(5)
        assert old.s.recv(65536) == b""  # the stale session was closed
        new.close()
        old.close()
    finally:
        b.close()
    assert os.getpid()
