"""twin/lines.py: the JSON-lines loop of the debug and control ports, with and without the
spin before a receive that the debug port uses while the core is halted."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from twin.lines import request_batches


def _collect(spin, chunks: list[bytes], gap: float = 0.0) -> list[list[bytes | None]]:
    a, b = socket.socketpair()
    stop = threading.Event()
    spins: list[float] = []

    def counted() -> float:
        spins.append(spin)
        return spin

    def feed() -> None:
        for c in chunks:
            a.sendall(c)
            time.sleep(gap)
        a.close()

    t = threading.Thread(target=feed)
    t.start()
    try:
        out = list(request_batches(b, stop, poll=0.05, max_line=64, spin=counted))
    finally:
        t.join(5)
        b.close()
    assert spins, "the spin callable was never asked"
    return out


@pytest.mark.parametrize("spin", [0.0, 0.002])
@pytest.mark.parametrize("gap", [0.0, 0.01])
def test_lines_arrive_whole_with_or_without_the_spin(spin: float, gap: float) -> None:
    chunks = [b'{"id": 1}\n{"id"', b": 2}\n\n", b"x" * 70, b"y\n", b'{"id": 3}\n']
    lines = [x for batch in _collect(spin, chunks, gap) for x in batch]
    assert lines == [b'{"id": 1}', b'{"id": 2}', None, b'{"id": 3}']


def test_a_peer_that_closes_during_the_spin_ends_the_loop() -> None:
    t0 = time.monotonic()
    assert _collect(0.5, []) == []
    assert time.monotonic() - t0 < 0.5 + 1.0


def test_the_debug_port_spins_only_while_the_core_is_halted() -> None:
    from twin.debugport import SPIN_S, DebugServer

    class _M:
        halted = False

    server = DebugServer.__new__(DebugServer)
    server.m = _M()
    assert server._spin() == 0.0
    server.m.halted = True
    assert server._spin() == SPIN_S > 0
