"""The host OTA server: serves one configured image to one board session at a time.

Example::

    with OtaServer(Path("app.bin").read_bytes(), port=5000, policy="split-tokens",
                   max_size=board.app_slot_size) as srv:
        board.reset()
        result = srv.wait_session(timeout=30)
        assert result.outcome == "ack", result.to_text()
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rig.errors import ConfigError, OtaError
from rig.ota.policy import LinkPolicy, parse_policy
from rig.ota.protocol import Protocol, ReferenceProtocol
from rig.ota.server_args import check_bind, load_image_arg, open_listener
from rig.ota.session import ProgressFn, Session, SessionEnd, Timeouts
from rig.ota.session_pcaps import SessionPcaps
from rig.ota.transcript import SessionResult, Transcript

LOG = logging.getLogger(__name__)

#: sent to a client refused because a session is already running (then closed)
BUSY_MESSAGE = b"BUSY\n"
#: seconds (on top of ``Timeouts.linger``) a newcomer waits for the running session to end
#: before it is refused as a second board (see ``OtaServer._await_previous_session``)
RECONNECT_GRACE = 0.5
_JOIN = 5.0
#: how often wait_session asks its abandon_if while a session runs (seconds)
ABANDON_POLL = 0.1
_PCAP_WAIT = 7.0  # a session's pcap waits up to 5 s for the sniffer


class OtaServer:
    """Serve ``image`` over TCP to a board, through a link policy.

    Args:
        image: the image bytes (or a path to a .bin). Only this image is ever served.
        bind: address to listen on. Loopback by default; a lab address must be given
            explicitly; ``""``/``0.0.0.0``/``::`` (all interfaces) is refused.
        port: TCP port (0 = a free one; see ``address``). SO_REUSEADDR is set.
        policy: a spec string, a :class:`LinkPolicy`, or a sequence of them (session i uses
            item i, the last one repeats; e.g. ``["drop-at:byte=4096", "natural"]``).
        protocol: the protocol (default :class:`~rig.ota.protocol.ReferenceProtocol` with
            ``crc``; see :func:`rig.ota.protocol.load_protocol` for ``thread`` and your own).
        crc: announce FILE_CRC (default protocol only).
        max_size: the board's slot size; a larger image is refused before serving.
        timeouts: a :class:`Timeouts`.
        allow: if given, only these peer IP addresses may connect.
        capture: directory for one pcap per session (None: no capture).
        capture_iface: interface to sniff (default: the one owning ``bind``).
        on_progress: ``fn(phase, data_sent, data_total)`` called from the server thread.
        on_session: ``fn(result)`` called when a session ends.

    Raises:
        OtaError: image empty or larger than ``max_size``.
        ConfigError: bad bind address, policy or option.
    """

    def __init__(
        self,
        image: bytes | str | Path,
        *,
        bind: str = "127.0.0.1",
        port: int = 0,
        policy: str | LinkPolicy | Sequence[str | LinkPolicy] | None = None,
        protocol: Protocol | None = None,
        crc: bool = True,
        max_size: int | None = None,
        timeouts: Timeouts | None = None,
        allow: Sequence[str] | None = None,
        capture: str | Path | None = None,
        capture_iface: str | None = None,
        on_progress: ProgressFn | None = None,
        on_session: Callable[[SessionResult], None] | None = None,
    ) -> None:
        self.image = load_image_arg(image, max_size)
        self.max_size = max_size
        self.bind = check_bind(bind)
        self.port = int(port)
        self.protocol = protocol or ReferenceProtocol(crc=crc)
        specs = [policy] if policy is None or isinstance(policy, (str, LinkPolicy)) else list(policy)
        if not specs:
            raise ConfigError("empty policy list", source="policy", hint="pass at least one policy")
        self.policies = [parse_policy(p) for p in specs]
        for p in self.policies:
            p.validate(len(self.image), crc=bool(getattr(self.protocol, "crc", False)))
        self.timeouts = timeouts or Timeouts()
        self.allow = {str(ipaddress.ip_address(a)) for a in allow} if allow else None
        self.capture_dir = Path(capture) if capture is not None else None
        self.capture_iface = capture_iface
        self._pcaps = SessionPcaps(self.capture_dir, capture_iface) if self.capture_dir is not None else None
        self.on_progress = on_progress
        self.on_session = on_session
        self.results: list[SessionResult] = []
        self.refused: list[str] = []
        self._results: queue.Queue[SessionResult] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._lsock: socket.socket | None = None
        self._address: tuple[str, int] | None = None
        self._conn: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._session_thread: threading.Thread | None = None
        self._session_started = threading.Event()
        self._session_closed = threading.Event()  # its connection is closed, result pending
        self._current: Transcript | None = None
        self._current_refused: list[str] = []
        self._count = 0
        self._closed = False

    # ------------------------------------------------------------------ lifecycle
    @property
    def capture_error(self) -> str | None:
        """Why packet capture is off although a capture directory was given (None otherwise)."""
        return self._pcaps.error if self._pcaps is not None else None

    @property
    def address(self) -> tuple[str, int]:
        """``(host, port)`` the server listens on (after ``start``)."""
        if self._address is None:
            raise OtaError(
                "server not started", reason="state", hint="use `with OtaServer(...)` or call start()"
            )
        return self._address

    def start(self) -> OtaServer:
        """Bind, listen and start the accept thread (and the sniffer if capture is on)."""
        if self._lsock is not None:
            return self
        lsock = open_listener(self.bind, self.port)
        self._lsock = lsock
        host, port = lsock.getsockname()[:2]
        self._address = (host, port)
        if self._pcaps is not None:
            self._pcaps.start(self.bind, port)
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name=f"ota-accept-{self.address[1]}", daemon=True
        )
        self._accept_thread.start()
        LOG.info("OTA server on %s:%d policy=%s", *self.address, self.policies[0].describe())
        return self

    def close(self) -> None:
        """Stop serving: close the listener and any session, join threads (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self.abandon()
        for t in (self._accept_thread, self._session_thread):
            if t is not None and t is not threading.current_thread():
                t.join(_JOIN)
        if self._lsock is not None:
            self._lsock.close()
        if self._pcaps is not None:
            self._pcaps.close(self.results)

    def __enter__(self) -> OtaServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ results
    @property
    def sessions_started(self) -> int:
        """How many board sessions were accepted so far (the next one gets this index)."""
        return self._count

    @property
    def serving(self) -> bool:  # True while the accept thread runs
        return self._accept_thread is not None and self._accept_thread.is_alive()

    def wait_session(
        self,
        timeout: float | None = None,
        *,
        abandon_if: Callable[[], bool] | None = None,
        give_up_if: Callable[[], str | None] | None = None,
    ) -> SessionResult:
        """Wait for the next finished session.

        Args:
            timeout: seconds for a board to connect (default ``timeouts.connect``). Once
                connected, the session itself is bounded by its own timeouts.
            abandon_if: asked every :data:`ABANDON_POLL` s while a session runs; True: the
                board is gone (power cut: no FIN or RST will come), :meth:`abandon` it now.
            give_up_if: asked as often while no board has connected; a reason: it never
                will (it stopped at a breakpoint), stop waiting with that reason.

        Returns:
            The SessionResult; ``outcome="timeout", phase="connect"`` if no board connected.
        """
        if self._lsock is None:
            raise OtaError("server not started", reason="state", hint="use `with OtaServer(...)`")
        timeout = self.timeouts.connect if timeout is None else timeout
        deadline = time.monotonic() + timeout
        asked = 0.0
        while True:
            try:
                return self._results.get(timeout=0.05)
            except queue.Empty:
                pass
            ask = time.monotonic() - asked >= ABANDON_POLL
            asked = time.monotonic() if ask else asked
            if self._session_started.is_set() or self._session_running():
                if ask and abandon_if is not None and abandon_if():
                    self.abandon()
                continue
            why = give_up_if() if ask and give_up_if is not None else None
            if self._closed or why:
                return self._no_session(why or "the server was closed before a board connected")
            if time.monotonic() >= deadline:
                host, port = self.address
                return self._no_session(
                    f"no board connected to {host}:{port} within {timeout:g} s "
                    "(is the board reset and configured for this server's address?)"
                )

    def abandon(self) -> None:
        """The running session's board is gone (the rig cut its power): end it now."""
        _shut(self._conn)

    def _session_running(self) -> bool:
        t = self._session_thread
        return t is not None and t.is_alive()

    def _no_session(self, reason: str) -> SessionResult:
        tr = Transcript(
            policy=self._policy_for(self._count).describe(),
            protocol=self.protocol.describe(),
            image_size=len(self.image),
        )
        tr.error(reason)
        return SessionResult(
            "timeout", reason, "connect", 0, 0, 0.0, tr.policy, tr, refused=list(self._current_refused)
        )

    def _policy_for(self, index: int) -> LinkPolicy:
        return self.policies[min(index, len(self.policies) - 1)]

    # ------------------------------------------------------------------ threads
    def _accept_loop(self) -> None:
        import select

        lsock = self._lsock
        assert lsock is not None
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([lsock], [], [], 0.05)
            except (OSError, ValueError):
                return
            if not r:
                continue
            try:
                conn, peer = lsock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as exc:
                if self._stop.is_set() or exc.errno in (errno.EBADF, errno.EINVAL, errno.ENOTSOCK):
                    return  # the listening socket was closed
                # a client that reset before accept (ECONNABORTED), out of descriptors or
                # buffers: the server must keep serving the next board
                LOG.warning("OTA server: accept failed (%s); still listening", exc)
                time.sleep(0.01)
                continue
            peer_s = f"{peer[0]}:{peer[1]}"
            if self.allow is not None and peer[0] not in self.allow:
                self._refuse(conn, peer_s, f"peer {peer[0]} is not in the allow list")
                continue
            self._await_previous_session()
            with self._lock:
                # the flag, not the thread: a finished session's thread may still be alive
                # for a moment after publishing its result, and a board that reconnects at
                # once (a retry, the next test) must not be refused for that
                if self._session_started.is_set():
                    self._refuse(conn, peer_s, "a session is already running (one board at a time)")
                    continue
                self._session_closed.clear()
                self._session_started.set()
                self._current_refused = []
                self._conn = conn
                index = self._count
                self._count += 1
                self._session_thread = threading.Thread(
                    target=self._run_session,
                    args=(conn, peer, index),
                    name=f"ota-session-{index}",
                    daemon=True,
                )
                self._session_thread.start()

    def _await_previous_session(self) -> None:
        """Before a newcomer is refused as a second board: it is most often the running
        session's board reconnecting (after its ACK or NACK, or rebooted: FIN or RST a
        moment ago) before the session thread saw the end, or while the server still
        watches for stray bytes (``Timeouts.linger``). Give the session that long plus
        :data:`RECONNECT_GRACE` to close its connection, then the time its result takes to
        be written (no network; a pcap needs the sniffer to catch up)."""
        if not self._session_started.is_set():
            return
        grace = time.monotonic() + self.timeouts.linger + RECONNECT_GRACE
        while (
            self._session_started.is_set()
            and not self._session_closed.is_set()
            and time.monotonic() < grace
            and not self._stop.is_set()
        ):
            time.sleep(0.002)
        if not self._session_closed.is_set():
            return  # still running: a second board
        deadline = time.monotonic() + (_PCAP_WAIT if self._pcaps is not None else 2.0)
        while self._session_started.is_set() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.002)

    def _refuse(self, conn: socket.socket, peer: str, why: str) -> None:
        msg = f"refused {peer}: {why}"
        LOG.warning("OTA server %s", msg)
        self.refused.append(peer)
        self._current_refused.append(peer)
        if self._current is not None:
            self._current.note(msg)
        try:
            conn.setblocking(False)
            conn.send(BUSY_MESSAGE)
        except OSError:
            pass
        conn.close()

    def _run_session(self, conn: socket.socket, peer: tuple, index: int) -> None:
        policy = self._policy_for(index)
        tr = Transcript(
            policy=policy.describe(), protocol=self.protocol.describe(), image_size=len(self.image)
        )
        tr.peer = f"{peer[0]}:{peer[1]}"
        tr.note(f"board connected from {tr.peer}")
        self._current = tr
        session, (outcome, reason, phase, acked, nack_reason) = self._drive(conn, policy, tr, index)
        if outcome == "ack":
            tr.note(f"outcome ack: {reason}")
        else:
            tr.error(f"outcome {outcome}: {reason}")
        sent = session.data_sent if session else 0
        result = SessionResult(
            outcome,
            reason,
            phase,
            sent,
            acked,
            tr.now(),
            policy.describe(),
            tr,
            peer=tr.peer,
            refused=list(self._current_refused),
            nack_reason=nack_reason,
            index=index,
        )
        if self._pcaps is not None:
            result.pcap = self._pcaps.write(result, peer[1], session)
        self._publish(result, len(session.offer.data) if session else len(self.image))

    def _drive(
        self, conn: socket.socket, policy: LinkPolicy, tr: Transcript, index: int
    ) -> tuple[Session | None, tuple[str, str, str, int, str | None]]:
        """Run the protocol on the connection, then close it; the session and
        ``(outcome, reason, phase, bytes acked, NACK reason)``."""
        session: Session | None = None
        nack_reason = None
        acked = 0
        try:
            session = Session(
                conn,
                self.image,
                policy,
                tr,
                self.timeouts,
                self._stop,
                crc=bool(getattr(self.protocol, "crc", False)),
                progress=self.on_progress,
                framing=self.protocol.board_framing() if hasattr(self.protocol, "board_framing") else None,
            )
            verdict = self.protocol.run(session)
            outcome, reason, acked, nack_reason = (
                verdict.outcome,
                verdict.reason,
                verdict.acked,
                verdict.nack_reason,
            )
            phase = session.phase
        except SessionEnd as end:
            outcome, reason, nack_reason = end.outcome, end.reason, end.nack_reason
            phase = end.phase or (session.phase if session else "request")
        except Exception as exc:
            LOG.exception("OTA session %d crashed", index)
            outcome, reason = "error", f"internal error in protocol {self.protocol.name}: {exc!r}"
            phase = session.phase if session else "request"
        finally:
            # flagged before the close: the board may reconnect the instant it sees EOF,
            # and that connection must find the session marked as closing
            self._session_closed.set()
            try:
                conn.close()
            except OSError:
                pass
        return session, (outcome, reason, phase, acked, nack_reason)

    def _publish(self, result: SessionResult, total: int) -> None:
        """Make a finished session's result visible, free the server for the next board."""
        with self._lock:
            self._current = None
            self._conn = None
            self.results.append(result)
            self._session_started.clear()  # before the result is seen: the next board
            self._results.put(result)  # may connect as soon as a waiter has it
        if self.on_progress:
            self.on_progress("end", result.bytes_sent, total)
        if self.on_session:
            try:
                self.on_session(result)
            except Exception:
                LOG.exception("on_session callback failed")


def _shut(conn: socket.socket | None) -> None:
    """Shut a session's connection (if any) down both ways (its thread sees the end)."""
    if conn is not None:
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
