"""A WINC3400-like socket-offload WiFi module on SPI1 (protocol: docs/twin-network.md).

Two layers:

* :class:`~twin.net.winc_wire.WincFraming` (twin/net/winc_wire.py) turns the SPI byte
  stream into commands and event reads (the twin's own simple framing). It is the
  replaceable part: a later class speaking Microchip's real WINC HIF/SPI protocol can
  take its place with the same module.
* :class:`WincModule` is the chip: up to 7 TCP sockets carried by the NAT host, the
  event queue (connect result, recv with size >0 / 0 closed / <0 error, send result),
  the IRQN line (PB1 -> EXTI1), RESET_N / CHIP_EN / CS pins and the fault plan.

The shield wiring of the thread (our choice, documented): SPI1 SCK PA5, MISO PA6,
MOSI PB5, CS PD14 (Arduino D10, software NSS), IRQN PB1, RESET_N PF12 (D8),
CHIP_EN PF13 (D7).

Owns: the module's sockets, event queue, pins and power state. Must not touch: the machine
beyond the SPI device's Services, host sockets (the NAT host's).
"""

from __future__ import annotations

import collections
import random
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twin.net.faults import WincFaults
from twin.net.nat import Connection, Reason
from twin.net.winc_wire import (
    EV_CONNECT,
    EV_READY,
    EV_RECV,
    EV_SEND,
    OP_CLOSE,
    OP_CONNECT,
    OP_NOP,
    OP_RECV,
    OP_SEND,
    SOCKET_BUFFER_MAX_LENGTH,
    ST_ACK,
    ST_ARG,
    ST_CRC,
    ST_OPCODE,
    ST_STATE,
    WincFraming,
    crc16,
)

if TYPE_CHECKING:
    from twin.net.stack import NetStack

PINS = {"cs": ("gpiod", 14), "reset_n": ("gpiof", 12), "chip_en": ("gpiof", 13), "irqn": ("gpiob", 1)}

TCP_SOCK_MAX = 7
SOCK_ERR_CONN_ABORTED = -12
SOCK_ERR_TIMEOUT = -13
BOOT_NS = 1_000_000  # virtual time from RESET_N high to "ready"
PIN_POLL_NS = 500_000  # RESET_N / CHIP_EN / CS sampling period


class WincSocket:
    """One of the module's TCP sockets."""

    def __init__(self, sid: int) -> None:
        self.id = sid
        self.conn: Connection | None = None
        self.phase = "idle"  # idle|connecting|open|peer_closed|aborted
        self.rx_len = 0  # armed receive buffer length (0 = not armed)
        self.rx_timer: object | None = None
        self.tx_busy = False


class WincModule:
    """The WINC3400-like chip behind SPI1 (an :class:`~twin.net.spi.SpiSlave`)."""

    def __init__(
        self,
        stack: NetStack,
        seed: int = 0,
        split_prob: float = 0.25,
        pins: dict[str, tuple[str, int]] | None = None,
        framing: Callable[[WincModule], Any] = WincFraming,
    ) -> None:
        self.stack = stack
        self.services: Any = None
        self.pins = dict(pins or PINS)
        self.faults = WincFaults()
        self.framing = framing(self)
        self.seed = seed
        self.split_prob = split_prob
        self.rng = random.Random(seed)
        self.sockets = [WincSocket(i) for i in range(TCP_SOCK_MAX)]
        self.events: collections.deque[bytes] = collections.deque()
        self.power = "off"  # off|booting|ready
        self.irqn_low = False  # what the module drives on IRQN
        self._irq_pending_assert = False
        self._poll_handle: object | None = None
        self._boot_handle: object | None = None
        self._gpio_cache: dict[str, Any] = {}
        self._hooked = False
        self._missing_pins: set[str] = set()
        self.stats = {"events": 0, "commands": 0, "crc_errors": 0, "garbage": 0, "recv_events": 0}
        self.recv_sizes: collections.Counter[int] = collections.Counter()

    # ---------------------------------------------------------------- wiring
    def attach(self, services: Any) -> None:
        """Called by the SPI device when the machine attaches it."""
        self.services = services
        self.stack.attach(services)

    def mcu_reset(self, kind: str) -> None:
        """The MCU was reset: the module is a separate chip, only its pin watching restarts."""
        if not self._hooked:
            self._hooked = self._hook_pins()
        if self._hooked:
            self.sample_pins()
        else:
            self._start_poll()

    def _hook_pins(self) -> bool:
        """Follow CS/RESET_N/CHIP_EN through GPIO listeners (no polling) when the ports offer them."""
        if self.services is None:
            return False
        watched: dict[str, set[int]] = {}
        for which in ("cs", "reset_n", "chip_en"):
            g = self._gpio(which)
            if g is None or not hasattr(g[0], "add_listener"):
                return False
            watched.setdefault(self.pins[which][0], set()).add(self.pins[which][1])
        for port, pins in watched.items():
            dev = self._gpio_cache[port]
            dev.add_listener(lambda pin, level, p=frozenset(pins): self.sample_pins() if pin in p else None)
        irq = self._gpio("irqn")
        if irq is not None and hasattr(irq[0], "add_read_hook"):
            irq[0].add_read_hook(self._irqn_polled)
        return True

    def _irqn_polled(self) -> None:
        """The firmware reads the IRQN port: if no event is pending and a socket waits for
        the host (connect / armed receive), it only polls for us — let the machine idle at
        wall pace until host data is posted (firmware timeouts then match wall time)."""
        if self.irqn_low or self.events or self.services is None:
            return
        if any(s.phase == "connecting" or (s.rx_len and s.phase == "open") for s in self.sockets):
            idle = getattr(self.services, "idle_wait", None)
            if idle is not None:
                idle()

    def _start_poll(self) -> None:
        if self.services is None:
            return
        if self._poll_handle is not None:
            self.services.cancel(self._poll_handle)
        self._poll_handle = self._schedule_ns(PIN_POLL_NS, self._poll)

    def _schedule_ns(self, ns: int, fn: Callable[[], None]) -> object:
        cycles = max(1, ns * self.services.core_hz // 1_000_000_000)
        return self.services.schedule(cycles, fn)

    def _gpio(self, which: str) -> tuple[Any, int] | None:
        port, pin = self.pins[which]
        dev = self._gpio_cache.get(port)
        if dev is None and port not in self._missing_pins:
            try:
                dev = self.services.device(port)
                self._gpio_cache[port] = dev
            except (KeyError, AttributeError):
                self._missing_pins.add(port)
                self._log(
                    f"no device {port!r}: {which} treated as always {'low' if which == 'cs' else 'high'}"
                )
        return (dev, pin) if dev is not None else None

    def _pin_out(self, which: str, default: bool) -> bool:
        g = self._gpio(which)
        if g is None:
            return default
        return bool(g[0].output_level(g[1]))

    def _log(self, msg: str) -> None:
        self.stack.log(f"winc: {msg}")

    # ---------------------------------------------------------------- pins and power
    def _poll(self) -> None:
        self._poll_handle = None
        self.sample_pins()
        self._start_poll()

    def sample_pins(self) -> None:
        """Follow RESET_N / CHIP_EN (power state) and CS (frame abort)."""
        enabled = self._pin_out("reset_n", True) and self._pin_out("chip_en", True)
        if not enabled and self.power != "off":
            self._power_off("RESET_N/CHIP_EN low")
        elif enabled and self.power == "off":
            self.power = "booting"
            self._boot_handle = self._schedule_ns(BOOT_NS, self._booted)
        if self._pin_out("cs", False):
            self.framing.reset()

    def _power_off(self, why: str) -> None:
        self._log(f"module held in reset ({why})")
        self._wipe()
        self.power = "off"
        if self._boot_handle is not None:
            self.services.cancel(self._boot_handle)
            self._boot_handle = None

    def _wipe(self) -> None:
        for s in self.sockets:
            if s.conn is not None:
                s.conn.close(abort=True)
            if s.rx_timer is not None and self.services is not None:
                self.services.cancel(s.rx_timer)
        self.sockets = [WincSocket(i) for i in range(TCP_SOCK_MAX)]
        self.events.clear()
        self.framing.reset()
        self._drive_irqn(False)

    def _booted(self) -> None:
        self._boot_handle = None
        if self.power != "booting":
            return
        self.power = "ready"
        self._log("module ready")
        self._push(bytes([EV_READY, 0xFF]))

    def fault_reset(self) -> None:
        """Fault: the module resets by itself (brown-out, watchdog); sockets are lost."""
        self.faults.counters["module_resets"] += 1
        self._log("fault: module reset")
        self._wipe()
        self.power = "booting"
        self._boot_handle = self._schedule_ns(BOOT_NS, self._booted)

    # ---------------------------------------------------------------- SPI side
    def exchange(self, mosi: int) -> int:
        """SpiSlave: one byte while SPI1 clocks."""
        if self._pin_out("cs", False):
            return 0xFF  # not selected: MISO floats high
        if self.power != "ready":
            return 0xFF
        return self.framing.exchange(mosi)

    def note_garbage(self, byte: int, why: str = "") -> None:
        """A byte outside any frame (framing lost); counted, logged once per burst."""
        self.stats["garbage"] += 1
        if self.stats["garbage"] in (1, 10, 100, 1000):
            self._log(f"unexpected SPI byte 0x{byte:02X} {why} (count {self.stats['garbage']})")

    def crc_error(self) -> int:
        """A command frame failed its CRC."""
        self.stats["crc_errors"] += 1
        return ST_CRC

    def event_wire(self) -> tuple[bytes, tuple[int, int]]:
        """The next event as wire bytes (len16 body crc16) and its payload byte range."""
        if not self.events:
            return b"\x00\x00", (0, 0)
        body = self.events[0]
        wire = struct.pack("<H", len(body)) + body + struct.pack("<H", crc16(body))
        payload = (2 + 6, 2 + len(body)) if body[0] == EV_RECV else (0, 0)
        return wire, payload

    def event_consumed(self) -> None:
        """The host clocked the whole head event out."""
        if self.events:
            self.events.popleft()
        if not self.events:
            self._drive_irqn(False)

    # ---------------------------------------------------------------- events and IRQN
    def _push(self, body: bytes) -> None:
        self.events.append(body)
        self.stats["events"] += 1
        if len(self.events) == 1:
            self._assert_irq()

    def _assert_irq(self) -> None:
        mode, delay_us = self.faults.irq_fault()
        if mode == "lost":
            self._log("fault: interrupt lost")
            return
        if mode == "delay":
            self._log(f"fault: interrupt delayed {delay_us} us")
            self._schedule_ns(delay_us * 1000, lambda: self._drive_irqn(bool(self.events)))
            return
        self._drive_irqn(True)

    def _drive_irqn(self, active: bool) -> None:
        if active == self.irqn_low:
            return
        self.irqn_low = active
        g = self._gpio("irqn") if self.services is not None else None
        if g is not None and hasattr(g[0], "drive_input"):
            g[0].drive_input(g[1], not active)  # IRQN is active low

    # ---------------------------------------------------------------- commands
    def command(self, body: bytes) -> int:
        """Execute one command frame body; return the status byte."""
        self.stats["commands"] += 1
        op = body[0]
        try:
            if op == OP_NOP:
                return ST_ACK
            if op == OP_CONNECT:
                sid, ip, port = struct.unpack_from("<BIH", body, 1)
                return self._connect(sid, ip, port)
            if op == OP_SEND:
                sid, n = struct.unpack_from("<BH", body, 1)
                data = body[4:]
                if n != len(data) or not 0 < n <= SOCKET_BUFFER_MAX_LENGTH:
                    self._log(
                        f"SEND length {n} (frame carries {len(data)}; max "
                        f"{SOCKET_BUFFER_MAX_LENGTH}) rejected"
                    )
                    return ST_ARG
                return self._send(sid, data)
            if op == OP_RECV:
                sid, buflen, timeout_ms = struct.unpack_from("<BHI", body, 1)
                return self._recv(sid, buflen, timeout_ms)
            if op == OP_CLOSE:
                (sid,) = struct.unpack_from("<B", body, 1)
                return self._close(sid)
        except struct.error:
            return ST_ARG
        return ST_OPCODE

    def _sock(self, sid: int) -> WincSocket | None:
        return self.sockets[sid] if 0 <= sid < TCP_SOCK_MAX else None

    def _connect(self, sid: int, ip: int, port: int) -> int:
        s = self._sock(sid)
        if s is None or port == 0:
            return ST_ARG
        if s.phase != "idle":
            return ST_STATE
        s.phase = "connecting"
        s.conn = self.stack.nat.open(f"wifi/{sid}", ip, port, self)
        return ST_ACK

    def _send(self, sid: int, data: bytes) -> int:
        s = self._sock(sid)
        if s is None:
            return ST_ARG
        if s.phase == "aborted":
            self._push(struct.pack("<BBh", EV_SEND, sid, SOCK_ERR_CONN_ABORTED))
            return ST_ACK
        if s.phase not in ("open", "peer_closed") or s.conn is None or s.tx_busy:
            return ST_STATE
        s.tx_busy = True
        s.conn.send(data)
        return ST_ACK

    def _recv(self, sid: int, buflen: int, timeout_ms: int) -> int:
        s = self._sock(sid)
        if s is None or buflen == 0:
            return ST_ARG
        if s.rx_len:
            return ST_STATE
        if s.phase == "aborted":
            self._recv_event(s, SOCK_ERR_CONN_ABORTED)
            return ST_ACK
        if s.phase not in ("open", "peer_closed"):
            return ST_STATE
        s.rx_len = buflen
        if timeout_ms:
            s.rx_timer = self._schedule_ns(timeout_ms * 1_000_000, lambda: self._recv_timeout(s))
        self._deliver(s)
        return ST_ACK

    def _close(self, sid: int) -> int:
        s = self._sock(sid)
        if s is None:
            return ST_ARG
        if s.conn is not None:
            s.conn.close()
        if s.rx_timer is not None:
            self.services.cancel(s.rx_timer)
        self.sockets[sid] = WincSocket(sid)
        return ST_ACK

    # ---------------------------------------------------------------- receive path
    def _deliver(self, s: WincSocket) -> None:
        if not s.rx_len or s.conn is None:
            return
        avail = s.conn.available()
        if avail:
            n = min(s.rx_len, SOCKET_BUFFER_MAX_LENGTH, avail)
            if n > 1 and self.rng.random() < self.split_prob:
                n = self.rng.randint(1, n)  # the module splits where it likes
            data = s.conn.take(n)
            self.recv_sizes[n] += 1
            self._recv_event(s, n, data, s.conn.available())
        elif s.phase == "peer_closed":
            self._recv_event(s, 0)

    def _recv_event(self, s: WincSocket, size: int, data: bytes = b"", remaining: int = 0) -> None:
        s.rx_len = 0
        if s.rx_timer is not None:
            self.services.cancel(s.rx_timer)
            s.rx_timer = None
        self.stats["recv_events"] += 1
        self._push(struct.pack("<BBhH", EV_RECV, s.id, size, min(remaining, 0xFFFF)) + data)

    def _recv_timeout(self, s: WincSocket) -> None:
        s.rx_timer = None
        if s.rx_len and self.sockets[s.id] is s:
            self._recv_event(s, SOCK_ERR_TIMEOUT)

    def _by_conn(self, conn: Connection) -> WincSocket | None:
        for s in self.sockets:
            if s.conn is conn:
                return s
        return None

    # ---------------------------------------------------------------- ConnectionSink
    def on_connected(self, conn: Connection) -> None:
        s = self._by_conn(conn)
        if s is not None:
            s.phase = "open"
            self._push(struct.pack("<BBb", EV_CONNECT, s.id, 0))

    def on_connect_failed(self, conn: Connection, reason: str) -> None:
        s = self._by_conn(conn)
        if s is not None:
            s.conn = None
            s.phase = "idle"
            err = SOCK_ERR_CONN_ABORTED if reason == Reason.REFUSED else SOCK_ERR_TIMEOUT
            self._push(struct.pack("<BBb", EV_CONNECT, s.id, err))

    def on_data(self, conn: Connection) -> None:
        s = self._by_conn(conn)
        if s is not None:
            self._deliver(s)

    def on_closed(self, conn: Connection, reason: str) -> None:
        s = self._by_conn(conn)
        if s is None:
            return
        if reason == Reason.EOF:
            s.phase = "peer_closed"
            self._deliver(s)
            return
        s.phase = "aborted"
        if s.rx_len:
            self._recv_event(s, SOCK_ERR_CONN_ABORTED)
        if s.tx_busy:
            s.tx_busy = False
            self._push(struct.pack("<BBh", EV_SEND, s.id, SOCK_ERR_CONN_ABORTED))

    def on_sent(self, conn: Connection, count: int) -> None:
        s = self._by_conn(conn)
        if s is not None and s.tx_busy:
            s.tx_busy = False
            self._push(struct.pack("<BBh", EV_SEND, s.id, count))

    # ---------------------------------------------------------------- control
    def snapshot(self) -> dict[str, Any]:
        """Module state, counters and fault plan."""
        return {
            "power": self.power,
            "irqn_low": self.irqn_low,
            "events_queued": len(self.events),
            "sockets": [
                {"id": s.id, "phase": s.phase, "rx_armed": s.rx_len, "conn": s.conn.id if s.conn else None}
                for s in self.sockets
                if s.phase != "idle"
            ],
            "stats": dict(self.stats),
            "recv_sizes": {str(k): v for k, v in sorted(self.recv_sizes.items())},
            "faults": self.faults.snapshot(),
        }
