"""Every teardown ends in bounded time whatever died first (issue 21, finding 2): the twin (its
probe server and console with it), a probe server that stops answering, a pyOCD close that
never returns. And the twin runs in its own session, so a Ctrl-C in the user's terminal does
not stop it before the rig has let go of it."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable

import pytest
from pyocd.core.exceptions import ProbeDisconnected

from rig import probe as probe_mod
from rig.console import Console
from rig.ota import OtaServer
from rig.probe import Probe
from rig.probe_remote import BoundedClientSocket
from rig.targets.twin import TwinTarget


def _within(seconds: float, fn: Callable[[], object]) -> float:
    """Run ``fn`` in a thread; its duration, or a failure if it has not returned in ``seconds``."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    t0 = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"{getattr(fn, '__name__', fn)} still running after {seconds} s"
    if errors:
        raise errors[0]
    return time.monotonic() - t0


def test_the_twin_runs_in_its_own_session(twin: TwinTarget) -> None:
    pid = twin.proc.pid
    assert os.getsid(pid) == pid and os.getpgid(pid) == pid
    assert os.getpgid(pid) != os.getpgid(0), "a Ctrl-C for this process group would reach the twin"


def test_teardown_after_the_twin_died_ends_in_bounded_time(twin: TwinTarget) -> None:
    """The twin is killed under an open probe, console and OTA server (what Ctrl-C did when it
    reached the twin first): using the probe fails at once, and closing everything ends."""
    p = Probe(twin.probe_uid).open()
    con = Console(twin.serial_port).open()
    srv = OtaServer(b"\x00" * 1024).start()
    assert p.read32(0xE000ED00) != 0  # CPUID: the probe works
    os.kill(twin.proc.pid, signal.SIGKILL)
    twin.proc.wait(timeout=10)

    def use_probe() -> None:
        with pytest.raises(Exception) as err:  # pyOCD's lock bookkeeping may raise over it
            p.read32(0xE000ED00)
        chain, exc = [], err.value
        while exc is not None:
            chain.append(exc)
            exc = exc.__cause__ or exc.__context__
        assert any(isinstance(e, ProbeDisconnected) for e in chain), chain

    assert _within(10, use_probe) < 5
    took = _within(30, lambda: (p.close(), con.close(), srv.close(), twin.stop()))
    assert took < 10, f"teardown took {took:.1f} s"


def test_a_probe_server_that_closes_or_goes_silent_ends_the_read() -> None:
    """pyOCD's own readline spins for ever on b"" and waits for ever on silence."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        host, port = server.getsockname()
        accepted: list[socket.socket] = []
        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        client = BoundedClientSocket(host, port, request_timeout=1.0)
        client.connect()
        client.set_timeout(0.1)
        deadline = time.monotonic() + 5
        while not accepted and time.monotonic() < deadline:
            time.sleep(0.01)
        client.write(b'{"id": 0, "request": "hello"}\n')
        with pytest.raises(ProbeDisconnected, match="no answer within 1 s"):
            _within(5, client.readline)
        with pytest.raises(ProbeDisconnected):  # gone: every later call fails at once
            client.write(b"x\n")

        threading.Thread(target=lambda: accepted.append(server.accept()[0]), daemon=True).start()
        client = BoundedClientSocket(host, port, request_timeout=30.0)
        client.connect()
        client.set_timeout(0.1)
        while len(accepted) < 2 and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        accepted[1].close()  # the server is gone
        with pytest.raises(ProbeDisconnected, match="closed the connection"):
            assert _within(5, client.readline) < 1
        for s in accepted:
            s.close()


def test_a_probe_server_killed_with_a_request_in_flight_reads_as_closed() -> None:
    """A killed server's kernel answers the pending request with RST (ECONNRESET), not FIN:
    the same words as a close, so the failure says the probe server went away."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        host, port = server.getsockname()
        client = BoundedClientSocket(host, port, request_timeout=30.0)
        client.connect()
        client.set_timeout(0.1)
        conn, _ = server.accept()
        client.write(b'{"id": 0, "request": "hello"}\n')
        time.sleep(0.1)  # the request sits unread in the server's buffer
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # closed with unread data and linger 0: RST
        with pytest.raises(ProbeDisconnected, match="the probe server closed the connection"):
            _within(5, client.readline)


def test_probe_close_is_bounded_even_if_pyocd_never_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    class StuckSession:
        def close(self) -> None:
            time.sleep(3600)

    monkeypatch.setattr(probe_mod, "CLOSE_TIMEOUT", 0.5)
    p = Probe("remote:127.0.0.1:1")
    p._session = StuckSession()
    assert _within(5, p.close) < 2
    p.close()  # idempotent
