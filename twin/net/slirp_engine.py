"""One libslirp instance: its configuration, callbacks, timers and poll step.

:class:`SlirpEngine` is driven by the network thread of ``twin.net.slirp.SlirpNetwork``
and must only ever be called on that thread (libslirp is not thread-safe): ``open`` (
``slirp_new``), ``input`` (``slirp_input``), ``poll`` (``slirp_pollfds_fill``, one
``poll(2)`` over libslirp's sockets plus the caller's wake-up descriptor,
``slirp_pollfds_poll``, due timers) and ``close`` (``slirp_cleanup``). Frames libslirp
sends to the board come out of ``on_frame`` (called inside ``input``/``poll``).

Clock: libslirp's clock is the host's monotonic clock (its TCP timers run against real
host sockets), not the twin's virtual time.

Owns: the Slirp pointer, the ctypes callbacks (kept alive here), the timer table. Must not
touch: frames' FCS, faults, the pcap, the MAC.
"""

from __future__ import annotations

import ctypes
import ipaddress
import select
import time
from collections.abc import Callable
from typing import Any

from twin.net import libslirp as ls

_POLL_TO_SLIRP = (
    (select.POLLIN, ls.SLIRP_POLL_IN),
    (select.POLLOUT, ls.SLIRP_POLL_OUT),
    (select.POLLPRI, ls.SLIRP_POLL_PRI),
    (select.POLLERR, ls.SLIRP_POLL_ERR),
    (select.POLLHUP, ls.SLIRP_POLL_HUP),
)


class SlirpEngine:
    """libslirp configured as the bench LAN.

    Args:
        lib: the loaded library (``twin.net.libslirp.load()``).
        network: the board's subnet; ``host`` is libslirp's own address in it (gateway,
            DHCP server, and the alias of the host's 127.0.0.1), ``dhcp_start`` the first
            address DHCP hands out, ``mtu`` the interface MTU/MRU.
        on_frame: gets each frame libslirp sends to the board (no FCS).
        wake: called when libslirp asks to be polled again soon (``notify``).
        log: line logger.
    """

    def __init__(
        self,
        lib: ctypes.CDLL,
        network: ipaddress.IPv4Network,
        host: str,
        dhcp_start: str,
        mtu: int,
        on_frame: Callable[[bytes], None],
        wake: Callable[[], None],
        log: Callable[[str], None],
    ) -> None:
        self.lib = lib
        self.network, self.host, self.dhcp_start, self.mtu = network, host, dhcp_start, mtu
        self.on_frame, self.wake, self.log = on_frame, wake, log
        self.slirp: int | None = None
        self._timers: dict[int, list[Any]] = {}
        self._next_timer = 1
        self._pollfds: list[tuple[int, int]] = []
        self._revents: dict[int, int] = {}
        self._make_callbacks()

    # ------------------------------------------------------------------ life cycle
    def open(self) -> int:
        """``slirp_new`` with a version-4 SlirpConfig; returns the Slirp pointer (OSError if
        libslirp refuses the configuration)."""
        cfg = ls.SlirpConfig()
        cfg.version = ls.SLIRP_CONFIG_VERSION
        cfg.restricted = 0  # LanForwards keeps the LAN closed; libslirp must reach 127.0.0.1
        cfg.in_enabled = True
        cfg.vnetwork = ls.in_addr(str(self.network.network_address))
        cfg.vnetmask = ls.in_addr(str(self.network.netmask))
        cfg.vhost = ls.in_addr(self.host)
        cfg.in6_enabled = False
        cfg.vhostname = b"ota-rig-twin"
        cfg.vdhcp_start = ls.in_addr(self.dhcp_start)
        cfg.vnameserver = ls.in_addr(str(self.network.network_address + 3))
        cfg.if_mtu = cfg.if_mru = self.mtu
        cfg.disable_host_loopback = False
        cfg.disable_dns = True  # hermetic: the board's DNS queries never reach the host's resolver
        cfg.disable_dhcp = False
        self._cfg = cfg  # libslirp copies what it needs; kept for the strings' lifetime anyway
        slirp = self.lib.slirp_new(ctypes.byref(cfg), ctypes.byref(self._cbs), None)
        if not slirp:
            raise OSError(f"libslirp {ls.version()} refused the configuration (slirp_new returned NULL)")
        self.slirp = int(slirp)
        return self.slirp

    def close(self) -> None:
        if self.slirp is not None:
            self.lib.slirp_cleanup(self.slirp)
            self.slirp = None
            self._timers.clear()

    # ------------------------------------------------------------------ work
    def input(self, frame: bytes) -> None:
        """Hand a frame from the board (no FCS) to libslirp."""
        self.lib.slirp_input(self.slirp, frame, len(frame))

    def poll(self, wake_fd: int, max_wait_ms: float) -> None:
        """Wait up to ``max_wait_ms`` (less if libslirp's TCP timers or its own timers say so)
        for libslirp's sockets or ``wake_fd``, then let libslirp do its socket and timer work."""
        timeout = ctypes.c_uint32(int(min(max_wait_ms, 0xFFFFFFFE)))
        self._pollfds = []
        self.lib.slirp_pollfds_fill(self.slirp, ctypes.byref(timeout), self._cb_add_poll, None)
        wait_ms = float(timeout.value)
        now_ms = time.monotonic_ns() / 1e6
        for t in self._timers.values():
            if t[0] is not None:
                wait_ms = min(wait_ms, max(0.0, t[0] - now_ms))
        events: dict[int, int] = {wake_fd: select.POLLIN}
        for fd, ev in self._pollfds:
            events[fd] = events.get(fd, 0) | ev
        poller = select.poll()
        for fd, ev in events.items():
            poller.register(fd, ev)
        error = 0
        try:
            self._revents = dict(poller.poll(wait_ms))
        except OSError:
            self._revents, error = {}, 1
        self.lib.slirp_pollfds_poll(self.slirp, error, self._cb_get_revents, None)
        self._fire_timers()

    def connection_info(self) -> str:
        """libslirp's own table of its sockets (diagnostics)."""
        return ls.take_string(self.lib, self.lib.slirp_connection_info(self.slirp))

    # ------------------------------------------------------------------ callbacks
    def _make_callbacks(self) -> None:
        def guarded(fn: Callable[..., Any], default: Any = None) -> Callable[..., Any]:
            def call(*args: Any) -> Any:
                try:
                    return fn(*args)
                except Exception as exc:  # an exception must not unwind into C
                    self.log(f"frames: libslirp callback {fn.__name__}: {type(exc).__name__}: {exc}")
                    return default

            return call

        self._cbs = ls.SlirpCb(
            send_packet=ls.WRITE_CB(guarded(self._send_packet, -1)),
            guest_error=ls.GUEST_ERROR_CB(guarded(self._guest_error)),
            clock_get_ns=ls.CLOCK_GET_NS_CB(guarded(self._clock_get_ns, 0)),
            timer_new=ls.TIMER_NEW_CB(guarded(self._timer_new, None)),
            timer_free=ls.TIMER_FREE_CB(guarded(self._timer_free)),
            timer_mod=ls.TIMER_MOD_CB(guarded(self._timer_mod)),
            register_poll_fd=ls.POLL_FD_CB(guarded(self._poll_fd)),
            unregister_poll_fd=ls.POLL_FD_CB(guarded(self._poll_fd)),
            notify=ls.NOTIFY_CB(guarded(self._notify)),
            init_completed=ls.INIT_COMPLETED_CB(guarded(self._init_completed)),
            timer_new_opaque=ls.TIMER_NEW_OPAQUE_CB(guarded(self._timer_new_opaque, None)),
        )
        self._cb_add_poll = ls.ADD_POLL_CB(guarded(self._add_poll, -1))
        self._cb_get_revents = ls.GET_REVENTS_CB(guarded(self._get_revents, 0))

    def _send_packet(self, buf: int, length: int, _opaque: int) -> int:
        self.on_frame(ctypes.string_at(buf, length))
        return length

    def _guest_error(self, msg: bytes, _opaque: int) -> None:
        self.log(f"frames: libslirp: board error: {msg.decode(errors='replace')}")

    @staticmethod
    def _clock_get_ns(_opaque: int) -> int:
        return time.monotonic_ns()

    @staticmethod
    def _poll_fd(_fd: int, _opaque: int) -> None:
        """Every poll re-collects libslirp's descriptors (slirp_pollfds_fill): nothing to keep."""

    def _notify(self, _opaque: int) -> None:
        self.wake()

    @staticmethod
    def _init_completed(_slirp: int, _opaque: int) -> None:
        """Nothing to do: the engine keeps the pointer slirp_new returns."""

    def _timer_new(self, cb: int, cb_opaque: int, _opaque: int) -> int:
        return self._new_timer(["cb", ls.TIMER_CB(cb), cb_opaque])

    def _timer_new_opaque(self, timer_id: int, cb_opaque: int, _opaque: int) -> int:
        return self._new_timer(["id", timer_id, cb_opaque])

    def _new_timer(self, what: list[Any]) -> int:
        handle = self._next_timer
        self._next_timer += 1
        self._timers[handle] = [None, *what]  # [expire_ms or None, kind, cb or id, cb_opaque]
        return handle

    def _timer_free(self, timer: int, _opaque: int) -> None:
        self._timers.pop(timer, None)

    def _timer_mod(self, timer: int, expire_ms: int, _opaque: int) -> None:
        if timer in self._timers:
            self._timers[timer][0] = float(expire_ms)

    def _fire_timers(self) -> None:
        now_ms = time.monotonic_ns() / 1e6
        for t in [t for t in self._timers.values() if t[0] is not None and t[0] <= now_ms]:
            t[0] = None
            if t[1] == "cb":
                t[2](t[3])
            else:
                self.lib.slirp_handle_timer(self.slirp, t[2], t[3])

    def _add_poll(self, fd: int, events: int, _opaque: int) -> int:
        ev = 0
        for poll_bit, slirp_bit in _POLL_TO_SLIRP:
            if events & slirp_bit:
                ev |= poll_bit
        self._pollfds.append((fd, ev))
        return len(self._pollfds) - 1

    def _get_revents(self, idx: int, _opaque: int) -> int:
        if not 0 <= idx < len(self._pollfds):
            return 0
        rev = self._revents.get(self._pollfds[idx][0], 0)
        out = 0
        for poll_bit, slirp_bit in _POLL_TO_SLIRP:
            if rev & poll_bit:
                out |= slirp_bit
        return out
