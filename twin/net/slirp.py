"""The twin's Ethernet cable: frames between the ETH MAC and libslirp, on one engine thread.

:class:`SlirpNetwork` implements :class:`twin.net.frames.FrameNetwork`. Behind it,
libslirp (QEMU's user-mode network engine) plays the bench LAN: DHCP (from 192.168.1.100),
ARP, ICMP echo of the host address, and TCP/UDP to real host sockets. The LAN forwards
(``--forward``) go through :class:`twin.net.frame_nat.LanForwards`; host -> board forwards
(``--hostfwd``) are libslirp's own.

Threading: libslirp is not thread-safe, so every call into it (``slirp_new``,
``slirp_input``, ``slirp_pollfds_fill/poll``, timers, forwards, ``slirp_cleanup``) happens
on the engine thread. :meth:`SlirpNetwork.transmit` (any thread) queues the frame and
wakes the engine through a pipe; the engine calls the MAC's ``receive`` and ``on_link``.
The control thread arms faults and starts/stops the pcap under ``_lock``.

Order of stages, to the board: libslirp -> forward source put back -> pad -> faults ->
(delay) -> link check -> pcap -> FCS -> ``receive``. From the board: ``transmit`` -> runt
and FCS check -> pcap -> link check -> faults -> (delay) -> FCS check (corruption with a
bad FCS dies here) -> LAN guard/forwards -> ``slirp_input``. The pcap therefore shows what
the MAC received and what it sent.

Owns: the libslirp instance, the engine thread, the link state, the counters. Must not
touch: the machine, device registers (the MAC receives frames only through its callback).
"""

from __future__ import annotations

import heapq
import ipaddress
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twin.net import libslirp as ls
from twin.net.frame_faults import FrameFaults, Out
from twin.net.frame_nat import LanForwards
from twin.net.frames import FCS_LEN, MIN_FRAME, PcapWriter, fcs, pad
from twin.net.hostfwd import HostFwd, bind_hostfwds
from twin.net.slirp_engine import SlirpEngine

IDLE_POLL_MS = 1000
TXQ_MAX = 4096
START_TIMEOUT_S = 10.0


@dataclass
class Lan:
    """The bench LAN libslirp plays (defaults: the board file's 192.168.1.0/24)."""

    network: str = "192.168.1.0/24"
    host: str = "192.168.1.10"  #: libslirp's own address: gateway, DHCP server, the OTA host
    dhcp_start: str = "192.168.1.100"
    mtu: int = 1500

    def check(self) -> ipaddress.IPv4Network:
        net = ipaddress.IPv4Network(self.network)
        for name in ("host", "dhcp_start"):
            if ipaddress.IPv4Address(getattr(self, name)) not in net:
                raise ValueError(f"LAN {name} {getattr(self, name)} is not in {net}")
        return net


@dataclass
class _Counters:
    to_board: dict[str, int] = field(default_factory=dict)
    from_board: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in (self.to_board, self.from_board):
            d.update(frames=0, bytes=0, link_dropped=0)
        self.to_board.update(no_receiver=0)
        self.from_board.update(fcs_errors=0, runts=0, blocked=0, queue_overflow=0)


class SlirpNetwork:
    """A :class:`~twin.net.frames.FrameNetwork` backed by libslirp.

    Args:
        lan: addresses of the bench LAN.
        forwards: ``{(lan_ip, lan_port): (host_ip, host_port)}`` board -> host (``--forward``).
        hostfwds: host -> board forwards (``--hostfwd``); port 0 = pick a free port.
        pcap: write every frame to this file from the start (``--pcap``).
        log: line logger (the twin's stderr).
    """

    def __init__(
        self,
        lan: Lan | None = None,
        forwards: dict[tuple[str, int], tuple[str, int]] | None = None,
        hostfwds: list[HostFwd] | None = None,
        pcap: str | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.lib = ls.load()  # a missing library is an error here, at twin start
        self.lan = lan or Lan()
        self._net = self.lan.check()
        self._log_fn = log or (lambda _m: None)
        self.hostfwds = list(hostfwds or [])
        self.nat = LanForwards(
            self.lan.host,
            self._net,
            dict(forwards or {}),
            {h.guest_port for h in self.hostfwds if h.proto == "udp"},
            self.log,
        )
        self.faults = FrameFaults()
        self.counters = _Counters()
        self.bound: list[HostFwd] = []
        self._lock = threading.Lock()
        self._pcap_path = pcap
        self.pcap: PcapWriter | None = None
        self._receive: Callable[[bytes], None] | None = None
        self._on_link: list[Callable[[bool], None]] = []
        self._link = True
        self.link_changes = {"downs": 0, "ups": 0}
        self.callback_errors = 0
        self._txq: deque[bytes] = deque()
        self._calls: deque[Callable[[], None]] = deque()
        self._delayed: list[tuple[float, int, str, Out]] = []
        self._timed: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._woken = False
        self._rfd = self._wfd = -1  # the wake-up pipe, made by start()
        self._stop = threading.Event()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.engine = SlirpEngine(
            self.lib,
            self._net,
            self.lan.host,
            self.lan.dhcp_start,
            self.lan.mtu,
            self._to_board,
            self._wake,
            self.log,
        )

    # ------------------------------------------------------------------ FrameNetwork
    def attach(self, receive: Callable[[bytes], None]) -> None:
        self._receive = receive

    def attach_link(self, on_link: Callable[[bool], None]) -> None:
        self._on_link.append(on_link)

    def transmit(self, frame: bytes) -> None:
        if len(self._txq) >= TXQ_MAX:  # the engine is gone or hopelessly behind: the cable drops it
            self.counters.from_board["queue_overflow"] += 1
            return
        self._txq.append(bytes(frame))
        self._wake()

    def link_up(self) -> bool:
        return self._link

    # ------------------------------------------------------------------ life cycle
    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Start the engine; returns once libslirp runs and the host forwards are bound.

        Raises:
            OSError: libslirp refused to start or a host forward could not be bound.
        """
        if self._thread is not None:
            return
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        os.set_blocking(self._wfd, False)
        if self._pcap_path:
            self.start_pcap(self._pcap_path)
        self._thread = threading.Thread(target=self._engine, name="twin-slirp", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise OSError(f"the network engine did not start within {timeout:.0f} s")
        if self._error is not None:
            self.close()
            raise self._error

    def close(self) -> None:
        """Stop the engine thread (libslirp cleaned up on it), close the pcap. Idempotent."""
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5.0)
        self.stop_pcap()
        for fd in (self._rfd, self._wfd):
            if fd >= 0:
                os.close(fd)
        self._rfd = self._wfd = -1

    def log(self, message: str) -> None:
        self._log_fn(message)

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the engine thread (thread-safe)."""
        self._calls.append(fn)
        self._wake()

    def _wake(self) -> None:
        if self._woken:
            return
        self._woken = True
        try:
            os.write(self._wfd, b"w")
        except OSError:
            pass

    # ------------------------------------------------------------------ control (any thread)
    def set_link(self, up: bool) -> None:
        """Plug (True) or pull (False) the cable; the MAC hears it on the engine thread."""
        with self._lock:
            if up == self._link:
                return
            self._link = up
            self.link_changes["ups" if up else "downs"] += 1
        self.log(f"frames: link {'up' if up else 'down'}")
        self.call(lambda: self._tell_link(up))

    def _tell_link(self, up: bool) -> None:
        for fn in list(self._on_link):
            try:
                fn(up)
            except Exception as exc:  # the MAC's bug must not stop the cable
                self._callback_failed("on_link", exc)

    def flap(self, down_ms: float) -> None:
        """Link down now, up again ``down_ms`` wall milliseconds later."""
        self.set_link(False)
        at = time.monotonic() + down_ms / 1000.0
        self.call(lambda: self._schedule_call(at, lambda: self.set_link(True)))

    def _schedule_call(self, at: float, fn: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._timed, (at, self._seq, fn))

    def arm_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Arm one frame fault (see twin.net.frame_faults) or ``link`` / ``link_flap`` / ``clear``."""
        kind = spec.get("kind")
        if kind == "link":
            self.set_link(bool(spec.get("up", False)))
        elif kind == "link_flap":
            self.flap(float(spec.get("down_ms", 100.0)))
        elif kind == "clear":
            with self._lock:
                held = self.faults.clear()
                if spec.get("counters"):
                    self.faults.reset_counters()
            self.call(lambda: self._send_all(held))
        else:
            with self._lock:
                self.faults.arm(spec)
        self.log(f"frames: fault {spec}")
        return self.snapshot()

    def start_pcap(self, path: str) -> dict[str, Any]:
        """Write every frame in and out of the MAC to ``path`` (replaces a running capture)."""
        writer = PcapWriter(path)
        with self._lock:
            old, self.pcap = self.pcap, writer
        if old is not None:
            old.close()
        self.log(f"frames: pcap -> {path}")
        return writer.snapshot()

    def stop_pcap(self) -> dict[str, Any]:
        with self._lock:
            old, self.pcap = self.pcap, None
        if old is None:
            return {"open": False}
        old.close()
        return old.snapshot()

    def snapshot(self) -> dict[str, Any]:
        """Link, counters, faults, forwards and pcap (for ``frames.status`` / ``net.status``)."""
        with self._lock:
            return {
                "engine": f"libslirp {ls.version()}",
                "lan": {
                    "network": self.lan.network,
                    "host": self.lan.host,
                    "dhcp_start": self.lan.dhcp_start,
                },
                "link": self._link,
                "link_changes": dict(self.link_changes),
                "counters": {
                    "to_board": dict(self.counters.to_board),
                    "from_board": dict(self.counters.from_board),
                },
                "faults": self.faults.snapshot(),
                "nat": self.nat.snapshot(),
                "hostfwd": [h.announce() for h in self.bound],
                "pcap": self.pcap.snapshot() if self.pcap else None,
                "callback_errors": self.callback_errors,
                "engine_error": None
                if self._error is None
                else f"{type(self._error).__name__}: {self._error}",
            }

    # ------------------------------------------------------------------ engine thread
    def _engine(self) -> None:
        try:
            slirp = self.engine.open()
            self.bound = bind_hostfwds(self.lib, slirp, self.hostfwds, self.lan.dhcp_start)
        except BaseException as exc:
            self._error = exc
            self.engine.close()
            self._started.set()
            return
        self._started.set()
        try:
            while not self._stop.is_set():
                self._consume_wake()
                self._run_calls()
                self._drain_tx()
                self._release_due()
                self._poll_once()
        except BaseException as exc:  # keep the twin alive; the status shows why
            self._error = exc
            self.log(f"frames: network engine stopped: {type(exc).__name__}: {exc}")
        finally:
            self.engine.close()

    def _run_calls(self) -> None:
        while self._calls:
            self._calls.popleft()()

    def _consume_wake(self) -> None:
        # read first, then clear: a producer that saw the flag set appended before the clear
        try:
            os.read(self._rfd, 4096)
        except OSError:
            pass
        self._woken = False

    def _drain_tx(self) -> None:
        while self._txq:
            self._from_board(self._txq.popleft())

    def _from_board(self, frame: bytes) -> None:
        now = time.monotonic()
        with self._lock:
            c = self.counters.from_board
            c["frames"] += 1
            c["bytes"] += len(frame)
            if len(frame) < MIN_FRAME + FCS_LEN:
                c["runts"] += 1
                if c["runts"] <= 3:
                    self.log(f"frames: runt of {len(frame)} bytes from the MAC dropped (pad to 64 with FCS)")
                return
            body, wire_fcs = frame[:-FCS_LEN], frame[-FCS_LEN:]
            if self.pcap is not None:
                self.pcap.write(body)
            if wire_fcs != fcs(body):
                c["fcs_errors"] += 1
                return
            if not self._link:
                c["link_dropped"] += 1
                return
            outs = self.faults.apply("from_board", body, now)
        for direction, out in outs:
            self._send(direction, out, now)

    def _to_board(self, body: bytes) -> None:
        now = time.monotonic()
        body = pad(self.nat.to_board(body))
        with self._lock:
            outs = self.faults.apply("to_board", body, now)
        for direction, out in outs:
            self._send(direction, out, now)

    def _send_all(self, outs: list[tuple[str, Out]]) -> None:
        for direction, out in outs:
            self._send(direction, out)

    def _send(self, direction: str, out: Out, now: float | None = None) -> None:
        if now is None:
            now = time.monotonic()
        if out.at > now:
            self._seq += 1
            heapq.heappush(self._delayed, (out.at, self._seq, direction, out))
        elif direction == "to_board":
            self._deliver(out)
        else:
            self._input(out)

    def _deliver(self, out: Out) -> None:
        with self._lock:
            c = self.counters.to_board
            if not self._link:
                c["link_dropped"] += 1
                return
            receive = self._receive
            if receive is None:  # no MAC on this cable
                c["no_receiver"] += 1
                return
            c["frames"] += 1
            c["bytes"] += len(out.body) + FCS_LEN
            if self.pcap is not None:
                self.pcap.write(out.body)
        try:
            receive(out.body + (out.fcs if out.fcs is not None else fcs(out.body)))
        except Exception as exc:  # the MAC's bug must not stop the cable
            self._callback_failed("receive", exc)

    def _callback_failed(self, what: str, exc: Exception) -> None:
        with self._lock:
            self.callback_errors += 1
            first = self.callback_errors <= 3
        if first:
            self.log(f"frames: the MAC's {what} callback raised {type(exc).__name__}: {exc}")

    def _input(self, out: Out) -> None:
        with self._lock:
            c = self.counters.from_board
            if not self._link:
                c["link_dropped"] += 1
                return
            if out.fcs is not None and out.fcs != fcs(out.body):
                c["fcs_errors"] += 1
                return
        frame, answer = self.nat.from_board(out.body)
        if frame is None:
            with self._lock:
                self.counters.from_board["blocked"] += 1
        else:
            self.engine.input(frame)
        if answer is not None:
            self._to_board(answer)

    def _release_due(self) -> None:
        now = time.monotonic()
        with self._lock:
            expired = self.faults.expired(now)
        for direction, out in expired:
            self._send(direction, out, now)
        while self._delayed and self._delayed[0][0] <= now:
            _, _, direction, out = heapq.heappop(self._delayed)
            self._send(direction, out, now)
        while self._timed and self._timed[0][0] <= now:
            heapq.heappop(self._timed)[2]()

    def _poll_once(self) -> None:
        now = time.monotonic()
        wait = IDLE_POLL_MS / 1000.0
        for queue in (self._delayed, self._timed):
            if queue:
                wait = min(wait, queue[0][0] - now)
        held = self.faults.next_deadline()
        if held is not None:
            wait = min(wait, held - now)
        if self._txq or self._calls:
            wait = 0.0
        if self.pcap is not None:
            self.pcap.flush()
        self.engine.poll(self._rfd, max(0.0, wait) * 1000.0)
