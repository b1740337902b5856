"""Host side of the twin's networking: user-mode NAT from firmware TCP to host loopback.

Like QEMU's user-mode networking, each TCP connection the firmware opens to a
forwarded ``ip:port`` is carried by a real host socket to ``127.0.0.1:PORT``. Nothing
else leaves the twin: an address with no forward fails like an unreachable host.

Threading: every :class:`Connection` owns a reader and a writer thread that do the
blocking socket work. They hand results to the CPU thread only through
``services.post(fn)``; the device (the :class:`ConnectionSink`) is only ever called
on the CPU thread. The reader is flow-controlled: it stops reading from the host
socket while more than ``window`` bytes are waiting for the firmware, so the host
sender sees real TCP back-pressure.

This module knows nothing about registers: the WiFi module's sockets use it (the
Ethernet goes through libslirp, twin/net/slirp.py).

Owns: the host sockets, their threads and the forwards. Must not touch: device registers
or the machine (it posts to the CPU thread through the callbacks it is given).
"""

from __future__ import annotations

import collections
import functools
import ipaddress
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

DEFAULT_WINDOW = 64 * 1024
CONNECT_TIMEOUT_S = 5.0
UNREACHABLE_DELAY_NS = 200_000_000  # virtual time before "no route" is reported


class Reason:
    """Why a connection attempt failed or a connection ended."""

    REFUSED = "refused"  #: host port closed (RST to the SYN)
    UNREACHABLE = "unreachable"  #: no forward for that address / link down
    TIMEOUT = "timeout"  #: host did not answer in time
    EOF = "eof"  #: peer closed cleanly (FIN)
    RESET = "reset"  #: peer reset the connection (RST) or link lost
    LOCAL = "local"  #: the firmware closed it


class ConnectionSink(Protocol):
    """What a network device implements to hear about its connection (CPU thread only)."""

    def on_connected(self, conn: Connection) -> None: ...

    def on_connect_failed(self, conn: Connection, reason: str) -> None: ...

    def on_data(self, conn: Connection) -> None: ...

    def on_closed(self, conn: Connection, reason: str) -> None: ...

    def on_sent(self, conn: Connection, count: int) -> None: ...


def parse_forward(spec: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """Parse ``"192.168.1.10:5000=127.0.0.1:PORT"`` into ``((ip, port), (host, port))``.

    Raises:
        ValueError: with a message naming the expected form.
    """
    try:
        left, right = spec.split("=", 1)
        gip, gport = left.rsplit(":", 1)
        hhost, hport = right.rsplit(":", 1)
        ipaddress.IPv4Address(gip)
        g, h = int(gport), int(hport)
    except ValueError as exc:
        raise ValueError(
            f"bad --forward {spec!r}: expected GUEST_IP:PORT=HOST:PORT, "
            f"e.g. 192.168.1.10:5000=127.0.0.1:40000 ({exc})"
        ) from None
    if not (0 < g < 65536 and 0 < h < 65536):
        raise ValueError(f"bad --forward {spec!r}: ports must be 1..65535")
    return (gip, g), (hhost, h)


def ip_to_str(ip: int | str) -> str:
    """Dotted quad from a host-order integer (0xC0A8010A) or a string."""
    if isinstance(ip, str):
        return ip
    return str(ipaddress.IPv4Address(ip & 0xFFFFFFFF))


@dataclass
class ConnStats:
    """Per-connection counters, reported by the control interface."""

    bytes_to_fw: int = 0  #: bytes handed to the firmware
    chunks_to_fw: int = 0  #: deliveries to the firmware (device chunks)
    bytes_from_fw: int = 0  #: bytes the firmware sent
    chunks_from_fw: int = 0  #: send operations of the firmware
    host_reads: int = 0  #: recv() calls on the host socket that returned data
    chunk_sizes_to_fw: collections.Counter[int] = field(default_factory=collections.Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view (chunk sizes as a ``{size: count}`` map)."""
        sizes = self.chunk_sizes_to_fw
        return {
            "bytes_to_fw": self.bytes_to_fw,
            "chunks_to_fw": self.chunks_to_fw,
            "bytes_from_fw": self.bytes_from_fw,
            "chunks_from_fw": self.chunks_from_fw,
            "host_reads": self.host_reads,
            "max_chunk_to_fw": max(sizes) if sizes else 0,
            "min_chunk_to_fw": min(sizes) if sizes else 0,
            "chunk_sizes_to_fw": {str(k): v for k, v in sorted(sizes.items())},
        }


class Connection:
    """One firmware TCP connection carried to a host socket.

    Public methods are called on the CPU thread only.
    """

    def __init__(
        self,
        nat: NatHost,
        cid: int,
        owner: str,
        guest: tuple[str, int],
        host: tuple[str, int] | None,
        sink: ConnectionSink,
    ) -> None:
        self.nat = nat
        self.id = cid
        self.owner = owner
        self.guest = guest
        self.host = host
        self.sink = sink
        self.state = "connecting"  # connecting|open|peer_closed|closed|failed
        self.end_reason = ""
        self.stats = ConnStats()
        self.rx = bytearray()  # CPU side: bytes waiting for the firmware
        self.opened_wall = time.time()
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._inflight = 0  # bytes read from the host not yet taken by firmware
        self._txq: queue.Queue[bytes | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._abort = False

    # ---------------------------------------------------------------- CPU thread API
    def available(self) -> int:
        """Bytes waiting for the firmware."""
        return len(self.rx)

    def take(self, limit: int) -> bytes:
        """Remove up to ``limit`` waiting bytes (one delivery) and account them."""
        data = bytes(self.rx[:limit])
        del self.rx[: len(data)]
        if data:
            self.stats.bytes_to_fw += len(data)
            self.stats.chunks_to_fw += 1
            self.stats.chunk_sizes_to_fw[len(data)] += 1
            with self._cond:
                self._inflight -= len(data)
                self._cond.notify_all()
        return data

    def send(self, data: bytes) -> None:
        """Queue ``data`` for the host; ``sink.on_sent`` follows once the host socket took it."""
        if self.state not in ("open", "peer_closed"):
            raise RuntimeError(f"send on connection {self.id} in state {self.state}")
        self.stats.bytes_from_fw += len(data)
        self.stats.chunks_from_fw += 1
        self._txq.put(bytes(data))

    def close(self, abort: bool = False) -> None:
        """Close from the firmware side (FIN after pending data, or RST if ``abort``)."""
        if self.state in ("closed", "failed"):
            return
        self.nat.log(f"conn {self.id} {self.owner}: firmware {'aborts' if abort else 'closes'}")
        self._finish("closed", Reason.LOCAL, abort=abort)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state and counters."""
        return {
            "id": self.id,
            "owner": self.owner,
            "guest": f"{self.guest[0]}:{self.guest[1]}",
            "host": f"{self.host[0]}:{self.host[1]}" if self.host else None,
            "state": self.state,
            "end_reason": self.end_reason,
            "waiting": len(self.rx),
            **self.stats.as_dict(),
        }

    # ---------------------------------------------------------------- internals
    def _finish(self, state: str, reason: str, abort: bool = False) -> None:
        self.state = state
        self.end_reason = reason
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        sock = self._sock
        if sock is not None:
            # The writer thread flushes queued data then shuts down; an abort resets now.
            if abort:
                self._abort = True
                _abort_socket(sock)
            self._txq.put(None)
        self.nat._forget(self)

    def _start_connect(self) -> None:
        t = threading.Thread(target=self._connect_thread, name=f"net-conn{self.id}", daemon=True)
        self._threads.append(t)
        t.start()

    def _connect_thread(self) -> None:
        assert self.host is not None
        try:
            sock = socket.create_connection(self.host, timeout=CONNECT_TIMEOUT_S)
        except ConnectionRefusedError:
            self.nat.post(lambda: self._connect_result(None, Reason.REFUSED))
            return
        except OSError as exc:
            reason = Reason.TIMEOUT if isinstance(exc, TimeoutError) else Reason.UNREACHABLE
            self.nat.post(lambda: self._connect_result(None, reason))
            return
        sock.settimeout(0.2)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.nat.post(lambda: self._connect_result(sock, ""))

    def _connect_result(self, sock: socket.socket | None, reason: str) -> None:
        if sock is None:
            self.state = "failed"
            self.end_reason = reason
            self.nat.log(
                f"conn {self.id} {self.owner}: connect to {self.guest[0]}:{self.guest[1]} failed: {reason}"
            )
            self.nat._forget(self)
            self.sink.on_connect_failed(self, reason)
            return
        if self.state != "connecting":  # firmware gave up (closed) meanwhile
            sock.close()
            return
        self._sock = sock
        self.state = "open"
        self.nat.log(
            f"conn {self.id} {self.owner}: connected {self.guest[0]}:{self.guest[1]}"
            f" -> {self.host[0]}:{self.host[1]} (local port {sock.getsockname()[1]})"
        )
        for fn in (self._reader_thread, self._writer_thread):
            t = threading.Thread(target=fn, name=f"net-conn{self.id}-{fn.__name__}", daemon=True)
            self._threads.append(t)
            t.start()
        self.sink.on_connected(self)

    def _reader_thread(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            with self._cond:
                while self._inflight >= self.nat.window and not self._stop.is_set():
                    self._cond.wait(0.2)
            if self._stop.is_set():
                return
            try:
                data = sock.recv(16384)
            except TimeoutError:
                continue
            except OSError:
                if not self._stop.is_set():
                    self.nat.post(lambda: self._peer_ended(Reason.RESET))
                return
            if not data:
                self.nat.post(lambda: self._peer_ended(Reason.EOF))
                return
            with self._cond:
                self._inflight += len(data)
            self.nat.post(lambda d=data: self._deliver(d))

    def _writer_thread(self) -> None:
        sock = self._sock
        assert sock is not None
        while True:
            try:
                item = self._txq.get(timeout=0.2)
            except queue.Empty:
                if self._stop.is_set() and self.state not in ("open", "peer_closed"):
                    break
                continue
            if item is None or self._abort:
                break
            try:
                sock.settimeout(CONNECT_TIMEOUT_S)
                sock.sendall(item)
            except OSError:
                self.nat.post(lambda: self._peer_ended(Reason.RESET))
                break
            finally:
                sock.settimeout(0.2)
            self.nat.post(functools.partial(self._sent, len(item)))
        # Local close: flush done, send FIN (or RST on abort), then release the socket.
        if not self._abort:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._stop.set()
        for t in self._threads:
            if t is not threading.current_thread() and t.name.endswith("_reader_thread"):
                t.join(1.0)
        sock.close()

    def _deliver(self, data: bytes) -> None:
        if self.state not in ("open",):
            with self._cond:
                self._inflight -= len(data)
                self._cond.notify_all()
            return
        self.stats.host_reads += 1
        self.rx += data
        self.sink.on_data(self)

    def _sent(self, count: int) -> None:
        if self.state in ("open", "peer_closed"):
            self.sink.on_sent(self, count)

    def _peer_ended(self, reason: str) -> None:
        if self.state not in ("open", "peer_closed"):
            return
        self.nat.log(
            f"conn {self.id} {self.owner}: host side {reason} "
            f"({len(self.rx)} bytes still waiting for firmware)"
        )
        if reason == Reason.EOF:
            self.state = "peer_closed"
            self.end_reason = reason
            self.sink.on_closed(self, reason)
            return
        self._finish("closed", reason)
        self.sink.on_closed(self, reason)

    def _alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _join(self, timeout: float) -> None:
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout)


def _abort_socket(sock: socket.socket) -> None:
    """Make close() send RST instead of FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass


class NatHost:
    """The NAT table and the set of live connections of one twin.

    Args:
        post: thread-safe "run on the CPU thread" (``services.post``).
        forwards: guest ``(ip, port)`` -> host ``(host, port)``.
        log: line logger (``services.log``); wall time is added here, virtual time by it.
        now_ns: virtual time source for the in-memory event log.
        schedule_ns: ``fn(delay_ns, callback)`` on the CPU thread (for "unreachable" delays).
        window: max bytes read from a host socket but not yet taken by the firmware.
    """

    def __init__(
        self,
        post: Callable[[Callable[[], None]], None],
        forwards: dict[tuple[str, int], tuple[str, int]] | None = None,
        log: Callable[[str], None] | None = None,
        now_ns: Callable[[], int] | None = None,
        schedule_ns: Callable[[int, Callable[[], None]], object] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.post = post
        self.forwards = dict(forwards or {})
        self.window = window
        self._log = log
        self._now_ns = now_ns or (lambda: 0)
        self._schedule_ns = schedule_ns
        self._next_id = 1
        self.live: dict[int, Connection] = {}
        self.history: collections.deque[dict[str, Any]] = collections.deque(maxlen=64)
        self.events: collections.deque[str] = collections.deque(maxlen=2000)
        self._all: list[Connection] = []

    def log(self, message: str) -> None:
        """Log with wall and virtual timestamps (CPU thread)."""
        line = f"net[wall {time.time():.6f} virt {self._now_ns() / 1e9:.6f}s] {message}"
        self.events.append(line)
        if self._log is not None:
            self._log(line)

    def open(self, owner: str, ip: int | str, port: int, sink: ConnectionSink) -> Connection:
        """Start a connection to guest ``ip:port`` (CPU thread); the sink hears the result."""
        guest = (ip_to_str(ip), int(port))
        host = self.forwards.get(guest)
        self._all = [c for c in self._all if c.id in self.live or c._alive()]
        conn = Connection(self, self._next_id, owner, guest, host, sink)
        self._next_id += 1
        self.live[conn.id] = conn
        self._all.append(conn)
        if host is None:
            self.log(f"conn {conn.id} {owner}: {guest[0]}:{guest[1]} has no forward -> unreachable")
            if self._schedule_ns is not None:
                self._schedule_ns(
                    UNREACHABLE_DELAY_NS,
                    lambda: (
                        conn._connect_result(None, Reason.UNREACHABLE) if conn.state == "connecting" else None
                    ),
                )
            else:
                self.post(lambda: conn._connect_result(None, Reason.UNREACHABLE))
        else:
            self.log(f"conn {conn.id} {owner}: connecting {guest[0]}:{guest[1]} -> {host[0]}:{host[1]}")
            conn._start_connect()
        return conn

    def _forget(self, conn: Connection) -> None:
        if self.live.pop(conn.id, None) is not None:
            snap = conn.snapshot()
            self.history.append(snap)
            if conn.state != "failed":
                self.log(
                    f"conn {conn.id} {conn.owner}: ended ({conn.end_reason}); to firmware "
                    f"{snap['bytes_to_fw']} B in {snap['chunks_to_fw']} chunks "
                    f"(max {snap['max_chunk_to_fw']}), from firmware {snap['bytes_from_fw']} B "
                    f"in {snap['chunks_from_fw']} sends, {time.time() - conn.opened_wall:.3f} s wall"
                )

    def snapshot(self) -> dict[str, Any]:
        """Forwards, live connections and recently ended ones, for the control interface."""
        return {
            "forwards": {f"{g[0]}:{g[1]}": f"{h[0]}:{h[1]}" for g, h in self.forwards.items()},
            "connections": [c.snapshot() for c in self.live.values()],
            "ended": list(self.history),
        }

    def abort_all(self, owner: str | None = None) -> None:
        """Reset every live connection (of ``owner``): module reset, power cycle (CPU thread)."""
        for conn in list(self.live.values()):
            if owner is None or conn.owner == owner:
                if conn.state == "connecting":
                    conn.state = "failed"
                    conn.end_reason = Reason.LOCAL
                    self._forget(conn)
                else:
                    conn.close(abort=True)

    def shutdown(self, timeout: float = 2.0) -> None:
        """Close all sockets and join all threads (twin exit). Safe from any thread."""
        for conn in list(self._all):
            conn._stop.set()
            if conn._sock is not None:
                conn._abort = True
                _abort_socket(conn._sock)
                conn._txq.put(None)
        for conn in list(self._all):
            conn._join(timeout)
        self._all.clear()
        self.live.clear()
