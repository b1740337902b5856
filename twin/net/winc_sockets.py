"""The WINC3400 firmware's socket layer (HIF group 2), carried by the twin's NAT host.

The host allocates socket numbers itself (TCP 0-6, UDP 7-10) and a session ID per
``socket()``; every reply carries back the session of its request. Requests and replies
(Microchip's ``m2m_socket_host_if.h``, little-endian, addresses in network byte order):

| request | control part | reply |
|---|---|---|
| ``0x41`` bind | addr(8) sock - session | ``0x41`` {sock, 0, session} |
| ``0x42`` listen | sock backlog session | ``0x42`` {sock, -9, session}: no inbound connections |
| ``0x44`` connect | addr(8) sock ssl session | ``0x44`` {sock, error, 88}: 0, -12 refused, -13 no answer or no forward, -9 no WiFi/IP or busy |
| ``0x45``/``0x47`` send/sendto | sock - size addr(8) session -; data at +80 / +68 | ``0x45``/``0x47`` {sock, -, sent, session, -} once the host socket took the data; -6 for 0 or more than 1400 bytes, -12 after a reset, -9 not connected |
| ``0x46``/``0x48`` recv/recvfrom | timeout_ms sock - session buf_len | ``0x46``/``0x48`` {addr(8), status, offset 48, sock, -, session} + data at +48 |
| ``0x49`` close | sock - session | none (FIN after the data already sent) |
| ``0x4A`` resolve | host name + NUL | ``0x4A`` {name[100], ip}: a dotted quad itself, else 0 (no DNS) |

Receive rules (what the thread's bootloader depends on): every recv request gets exactly
one reply, in order. ``status`` > 0 is the byte count: at most the posted ``buf_len`` and
at most 1400, and, with probability ``split`` (seeded), fewer than are waiting, cut where
the module likes, so TCP data splits at arbitrary points. 0 = the peer closed and nothing
is left, -12 = reset, -13 = the request's timeout passed (0 and 0xFFFFFFFF = none; the
socket stays open). Nothing arrives without a request: the host re-arms after each reply.
UDP sockets take bind/sendto/recvfrom, but no datagram leaves the twin (a sendto is
reported sent and logged once).

Owns: the module's sockets, their armed receives and pending send replies. Must not
touch: registers, memory or the HIF transport (replies go through the firmware's
``send``), host sockets beyond the NAT's :class:`~twin.net.nat.Connection` API.
"""

from __future__ import annotations

import collections
import random
import struct
from typing import TYPE_CHECKING, Any

from twin.net.nat import Connection, Reason

if TYPE_CHECKING:
    from twin.net.stack import NetStack
    from twin.net.winc_hif import WincFirmware

GROUP_IP = 2
BIND, LISTEN, CONNECT, SEND, RECV, SENDTO, RECVFROM, CLOSE = 0x41, 0x42, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49
DNS_RESOLVE, SET_SOCKET_OPTION = 0x4A, 0x4F
HOSTNAME_MAX_SIZE = 100
TCP_SOCK_MAX, MAX_SOCKET = 7, 12  # 7 TCP, 4 UDP, the raw socket 11
SOCKET_BUFFER_MAX_LENGTH = 1400
TCP_TX_OFFSET, UDP_TX_OFFSET = 80, 68  # socket data offset from the control part (socket.c)
APP_DATA_OFFSET = 88  # tstrConnectReply.u16AppDataOffset (the host keeps it - 8)
RECV_DATA_OFFSET = 48  # data offset from the start of tstrRecvReply (16 bytes + a gap)
NO_TIMEOUT = (0, 0xFFFFFFFF)

ERR_INVALID_ARG, ERR_INVALID, ERR_CONN_ABORTED, ERR_TIMEOUT = -6, -9, -12, -13


class PendingRecv:
    """One armed receive (a recv/recvfrom request awaiting its reply)."""

    def __init__(self, op: int, session: int, buflen: int) -> None:
        self.op, self.session, self.buflen = op, session, buflen
        self.timer: object | None = None


class WincSocket:
    """One of the module's sockets (0-6 TCP, 7-10 UDP)."""

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.udp = sid >= TCP_SOCK_MAX
        self.session = 0
        self.conn: Connection | None = None
        self.phase = "idle"  # idle|connecting|open|peer_closed|aborted
        self.recvs: collections.deque[PendingRecv] = collections.deque()
        self.sends: collections.deque[tuple[int, int]] = collections.deque()  # (op, session)
        self.local_port = 0


class WincSockets:
    """The IP group: requests in, replies out through the firmware, TCP through the NAT."""

    def __init__(self, fw: WincFirmware, stack: NetStack, rng: random.Random, split_prob: float) -> None:
        self.fw = fw
        self.stack = stack
        self.rng = rng
        self.split_prob = split_prob
        self.sockets = [WincSocket(i) for i in range(MAX_SOCKET)]
        self.recv_sizes: collections.Counter[int] = collections.Counter()
        self.stats = {"recv_replies": 0, "send_replies": 0, "connects": 0, "udp_dropped": 0}

    def reset(self) -> None:
        """Every socket gone: live connections reset (RST to the host), nothing replied."""
        for s in self.sockets:
            self._cancel_timers(s)
            if s.conn is not None:
                s.conn.close(abort=True)
        self.sockets = [WincSocket(i) for i in range(MAX_SOCKET)]

    def waiting_for_host(self) -> bool:
        """A socket waits for the host side: a connect, or a receive armed on an open one."""
        return any(s.phase == "connecting" or (s.recvs and s.phase == "open") for s in self.sockets)

    def _cancel_timers(self, s: WincSocket) -> None:
        for r in s.recvs:
            if r.timer is not None:
                self.fw.cancel(r.timer)

    def _sock(self, sid: int, op: int) -> WincSocket | None:
        if 0 <= sid < MAX_SOCKET:
            return self.sockets[sid]
        self.fw.log(f"socket request 0x{op:02X} for socket {sid} (0..{MAX_SOCKET - 1}): ignored")
        return None

    def _reply(self, op: int, body: bytes, payload: tuple[int, int] | None = None) -> None:
        self.fw.send(GROUP_IP, op, body, payload)

    # ---------------------------------------------------------------- requests
    def request(self, op: int, payload: bytes) -> None:
        """One IP-group request (``op`` without the data bit)."""
        # bytes up to the last field used (Microchip's driver sends sizeof: with the padding)
        handlers = {
            BIND: (12, self._bind),
            LISTEN: (4, self._listen),
            CONNECT: (12, self._connect),
            SEND: (14, self._send),
            SENDTO: (14, self._send),
            RECV: (10, self._recv),
            RECVFROM: (10, self._recv),
            CLOSE: (4, self._close),
            DNS_RESOLVE: (1, self._resolve),
        }
        entry = handlers.get(op)
        if entry is None:
            if op != SET_SOCKET_OPTION:
                self.fw.unknown(GROUP_IP, op)
            return
        size, fn = entry
        if len(payload) < size:
            self.fw.log(f"socket request 0x{op:02X} of {len(payload)} bytes (needs {size}): ignored")
            return
        fn(op, payload)

    def _bind(self, op: int, p: bytes) -> None:
        port = int.from_bytes(p[2:4], "big")
        sid, session = p[8], int.from_bytes(p[10:12], "little")
        s = self._sock(sid, op)
        if s is not None:
            s.session, s.local_port = session, port
            self._reply(BIND, struct.pack("<bbH", sid, 0, session))

    def _listen(self, op: int, p: bytes) -> None:
        sid, session = p[0], int.from_bytes(p[2:4], "little")
        self.fw.log(f"listen on socket {sid}: no inbound connections in the twin, answered {ERR_INVALID}")
        self._reply(LISTEN, struct.pack("<bbH", sid, ERR_INVALID, session))

    def _connect(self, op: int, p: bytes) -> None:
        port = int.from_bytes(p[2:4], "big")
        ip = ".".join(str(b) for b in p[4:8])
        sid, session = p[8], int.from_bytes(p[10:12], "little")
        s = self._sock(sid, op)
        if s is None:
            return
        s.session = session
        if not self.fw.has_ip or s.udp or s.phase in ("connecting", "open", "peer_closed"):
            why = "no WiFi/IP yet" if not self.fw.has_ip else "not a TCP socket" if s.udp else s.phase
            self.fw.log(f"connect socket {sid} to {ip}:{port}: {why}, answered {ERR_INVALID}")
            self._reply(CONNECT, struct.pack("<bbH", sid, ERR_INVALID, 0))
            return
        self.stats["connects"] += 1
        self._cancel_timers(s)
        s.recvs.clear()
        s.sends.clear()
        s.phase = "connecting"
        s.conn = self.stack.nat.open(f"wifi/{sid}", ip, port, self)

    def _send(self, op: int, p: bytes) -> None:
        sid, size = p[0], int.from_bytes(p[2:4], "little")
        session = int.from_bytes(p[12:14], "little")
        s = self._sock(sid, op)
        if s is None:
            return
        at = TCP_TX_OFFSET if op == SEND else UDP_TX_OFFSET
        data = p[at : at + size]
        if not 0 < size <= SOCKET_BUFFER_MAX_LENGTH or len(data) != size:
            self.fw.log(f"send of {size} bytes on socket {sid} (1..{SOCKET_BUFFER_MAX_LENGTH}): refused")
            self._send_reply(op, sid, ERR_INVALID_ARG, session)
        elif s.udp:
            self.stats["udp_dropped"] += 1
            if self.stats["udp_dropped"] == 1:
                self.fw.log("UDP datagram from the firmware: no UDP leaves the twin (dropped)")
            self._send_reply(op, sid, size, session)
        elif s.phase == "aborted":
            self._send_reply(op, sid, ERR_CONN_ABORTED, session)
        elif s.phase not in ("open", "peer_closed") or s.conn is None:
            self._send_reply(op, sid, ERR_INVALID, session)
        else:
            s.sends.append((op, session))
            s.conn.send(data)

    def _send_reply(self, op: int, sid: int, result: int, session: int) -> None:
        self.stats["send_replies"] += 1
        self._reply(op, struct.pack("<BxhHxx", sid, result, session))

    def _recv(self, op: int, p: bytes) -> None:
        timeout_ms, sid = int.from_bytes(p[0:4], "little"), p[4]
        session, buflen = int.from_bytes(p[6:8], "little"), int.from_bytes(p[8:10], "little")
        s = self._sock(sid, op)
        if s is None:
            return
        r = PendingRecv(op, session, buflen)
        s.recvs.append(r)
        if timeout_ms not in NO_TIMEOUT:
            r.timer = self.fw.schedule_ns(timeout_ms * 1_000_000, lambda: self._recv_timeout(s, r))
        self._deliver(s)

    def _close(self, op: int, p: bytes) -> None:
        s = self._sock(p[0], op)
        if s is None:
            return
        self._cancel_timers(s)
        if s.conn is not None:
            s.conn.close()
        self.sockets[s.id] = WincSocket(s.id)

    def _resolve(self, op: int, p: bytes) -> None:
        """gethostbyname: the twin has no DNS; a dotted quad resolves to itself, a name to 0."""
        name = p.split(b"\0", 1)[0][:HOSTNAME_MAX_SIZE]
        try:
            ip = bytes(int(x) for x in name.decode("ascii").split("."))
            ip = ip if len(ip) == 4 else bytes(4)
        except ValueError:
            ip = bytes(4)
        if ip == bytes(4):
            self.fw.log(f"DNS request for {name!r}: no DNS in the twin, answered 0.0.0.0")
        self._reply(DNS_RESOLVE, name.ljust(HOSTNAME_MAX_SIZE, b"\0") + ip)

    # ---------------------------------------------------------------- receive path
    def _deliver(self, s: WincSocket) -> None:
        """Answer armed receives from what waits: data, then 0 after a FIN, -12 after a reset."""
        while s.recvs:
            avail = s.conn.available() if s.conn is not None else 0
            if s.udp or (not avail and s.phase not in ("peer_closed", "aborted")):
                return
            r = s.recvs.popleft()
            if r.timer is not None:
                self.fw.cancel(r.timer)
            if s.phase == "aborted":
                self._recv_reply(s, r, ERR_CONN_ABORTED)
            elif avail:
                n = min(r.buflen, SOCKET_BUFFER_MAX_LENGTH, avail)
                if n > 1 and self.rng.random() < self.split_prob:
                    n = self.rng.randint(1, n)  # the module splits where it likes
                assert s.conn is not None
                self._recv_reply(s, r, n, s.conn.take(n))
            else:
                self._recv_reply(s, r, 0)

    def _recv_reply(self, s: WincSocket, r: PendingRecv, status: int, data: bytes = b"") -> None:
        guest = s.conn.guest if s.conn is not None else ("0.0.0.0", 0)
        addr = struct.pack("<H", 2) + guest[1].to_bytes(2, "big") + bytes(int(x) for x in guest[0].split("."))
        head = addr + struct.pack("<hHBxH", status, RECV_DATA_OFFSET, s.id, r.session)
        body = head.ljust(RECV_DATA_OFFSET, b"\0") + data if data else head
        self.stats["recv_replies"] += 1
        if data:
            self.recv_sizes[len(data)] += 1
        payload = (RECV_DATA_OFFSET, RECV_DATA_OFFSET + len(data)) if data else None
        self._reply(r.op, body, payload)

    def _recv_timeout(self, s: WincSocket, r: PendingRecv) -> None:
        r.timer = None
        if self.sockets[s.id] is s and r in s.recvs:
            s.recvs.remove(r)
            self._recv_reply(s, r, ERR_TIMEOUT)

    def _by_conn(self, conn: Connection) -> WincSocket | None:
        return next((s for s in self.sockets if s.conn is conn), None)

    # ---------------------------------------------------------------- ConnectionSink (NAT)
    def on_connected(self, conn: Connection) -> None:
        s = self._by_conn(conn)
        if s is not None:
            s.phase = "open"
            self._reply(CONNECT, struct.pack("<bbH", s.id, 0, APP_DATA_OFFSET))

    def on_connect_failed(self, conn: Connection, reason: str) -> None:
        s = self._by_conn(conn)
        if s is not None:
            s.conn, s.phase = None, "idle"
            err = ERR_CONN_ABORTED if reason == Reason.REFUSED else ERR_TIMEOUT
            self._reply(CONNECT, struct.pack("<bbH", s.id, err, 0))

    def on_data(self, conn: Connection) -> None:
        s = self._by_conn(conn)
        if s is not None:
            self._deliver(s)

    def on_closed(self, conn: Connection, reason: str) -> None:
        s = self._by_conn(conn)
        if s is None:
            return
        s.phase = "peer_closed" if reason == Reason.EOF else "aborted"
        if s.phase == "aborted":
            while s.sends:
                op, session = s.sends.popleft()
                self._send_reply(op, s.id, ERR_CONN_ABORTED, session)
        self._deliver(s)

    def on_sent(self, conn: Connection, count: int) -> None:
        s = self._by_conn(conn)
        if s is not None and s.sends:
            op, session = s.sends.popleft()
            self._send_reply(op, s.id, count, session)

    def snapshot(self) -> dict[str, Any]:
        """Open sockets, receive sizes and counters."""
        return {
            "sockets": [
                {
                    "id": s.id,
                    "phase": s.phase,
                    "session": s.session,
                    "recvs_armed": [r.buflen for r in s.recvs],
                    "sends_pending": len(s.sends),
                    "conn": s.conn.id if s.conn else None,
                }
                for s in self.sockets
                if s.phase != "idle" or s.recvs
            ],
            "recv_sizes": {str(k): v for k, v in sorted(self.recv_sizes.items())},
            **self.stats,
        }
