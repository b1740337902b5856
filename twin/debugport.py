"""The server side of pyOCD's remote-probe protocol, backed by the machine's debug logic.

Stock pyOCD reaches it with ``-u remote:127.0.0.1:PORT -t stm32f767zi``: one JSON request
per line ``{"id", "request", "arguments"}`` answered by ``{"id", "status", "result"|"error"}``.
Behind it: an SW-DP (DPIDR 0x5BA02477) with one AHB-AP whose memory accesses go through the
machine's system bus (MMIO included). One client at a time: a second client waits up to
3 s for the first to close; if the first has sent nothing for ``STALE_AFTER`` seconds it is
dropped and the newcomer served (a stale client never locks the port for ever), otherwise the
newcomer gets an error line and is disconnected. Malformed requests (bad JSON, arguments of
the wrong type or range, lines over 1 MiB) get an error answer; the connection stays open.

Owns: the protocol, the DP/AP registers, the one-client rule and the NRST line of the
probe. Must not touch: memory or devices directly (every access goes through the machine's
bus and debug unit).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from twin.device import ResetKind
from twin.lines import MAX_LINE, request_batches
from twin.machine import Machine

STATUS_GENERAL, STATUS_PROBE, STATUS_TRANSFER_FAULT = 1, 3, 12

DPIDR = 0x5BA02477
AP0_IDR = 0x74770001
AP_BASE = 0xE00FF003
#: A debug client silent this long (seconds) is dropped when another debugger connects.
STALE_AFTER = 10.0
#: a halted core's debug port polls its socket this long (s) before sleeping in a receive
SPIN_S = 0.0005
#: Most items one read_block/write_block request may carry (2 MiB of bytes: all of flash).
MAX_BLOCK_ITEMS = 1 << 21


class ProbeRequestError(Exception):
    """A request failed; ``status`` is the remote-probe status code."""

    def __init__(self, message: str, status: int = STATUS_GENERAL) -> None:
        super().__init__(message)
        self.status = status


class DebugAccessPort:
    """DP/AP registers and memory access of the twin's SWD port (no socket)."""

    def __init__(self, machine: Machine) -> None:
        self.m = machine
        self.wire_protocol: str | None = None
        self.ctrl_stat = 0
        self.select = 0
        self.csw = 0x03000052  # DbgSwEnable | HPROT | DeviceEn | SIZE32
        self.tar = 0

    # -------------------------------------------------------------- properties
    def readprop(self, name: str) -> Any:
        """Probe properties pyOCD asks for."""
        props = {
            "vendor_name": "ota-rig",
            "product_name": "twin NUCLEO-F767ZI",
            "supported_wire_protocols": ["DEFAULT", "SWD"],
            "wire_protocol": self.wire_protocol,
            "capabilities": ["MANAGED_AP_SELECTION", "MANAGED_DPBANKSEL", "BANKED_DP_REGISTERS"],
            "unique_id": "twin",
            "is_open": True,
        }
        if name not in props:
            raise ProbeRequestError(f"unknown property name '{name}' requested")
        return props[name]

    def connect(self, protocol: str) -> None:
        if protocol not in ("DEFAULT", "SWD"):
            raise ProbeRequestError(f"wire protocol {protocol} not supported (SWD only)")
        self.wire_protocol = "SWD"

    def disconnect(self) -> None:
        self.wire_protocol = None

    # -------------------------------------------------------------- reset pin
    def assert_reset(self, asserted: bool) -> None:
        m = self.m
        with m.host():
            if asserted:
                m.reset_held = True
                if m.debug is not None:
                    m.debug.sticky |= 1 << 25
            elif m.reset_held:
                m.reset_held = False
                m.reset(ResetKind.SYSTEM, "pin")
                m.wake()

    def is_reset_asserted(self) -> bool:
        return self.m.reset_held

    def reset(self) -> None:
        m = self.m
        with m.host():
            m.reset_held = False
            m.reset(ResetKind.SYSTEM, "pin")
            m.wake()

    # -------------------------------------------------------------- DP / AP
    def read_dp(self, addr: int) -> int:
        if addr == 0x0:
            return DPIDR
        if addr == 0x4:
            req = self.ctrl_stat & 0x50000000
            return self.ctrl_stat | (req << 1)
        if addr == 0x8:
            return self.select
        return 0

    def write_dp(self, addr: int, data: int) -> None:
        if addr == 0x4:
            self.ctrl_stat = data & 0x5F00FFFF & ~0x32
        elif addr == 0x8:
            self.select = data & 0xFFFFFFFF

    def read_ap(self, addr: int) -> int:
        apsel, reg = (addr >> 24) & 0xFF, addr & 0xFC
        if apsel != 0:
            return 0
        if reg == 0x00:
            return self.csw
        if reg == 0x04:
            return self.tar
        if reg == 0x0C:
            return self._drw_read()
        if 0x10 <= reg < 0x20:
            return self._mem_read32((self.tar & ~0xF) + (reg - 0x10))
        if reg == 0xF4:
            return 0
        if reg == 0xF8:
            return AP_BASE
        if reg == 0xFC:
            return AP0_IDR
        return 0

    def write_ap(self, addr: int, data: int) -> None:
        apsel, reg = (addr >> 24) & 0xFF, addr & 0xFC
        if apsel != 0:
            return
        if reg == 0x00:
            self.csw = (data & 0xFFFFFFBF) | 0x40  # DeviceEn reads 1
        elif reg == 0x04:
            self.tar = data & 0xFFFFFFFF
        elif reg == 0x0C:
            self._drw_write(data)
        elif 0x10 <= reg < 0x20:
            self._mem_write32((self.tar & ~0xF) + (reg - 0x10), data)

    def _size(self) -> int:
        return {0: 1, 1: 2, 2: 4}.get(self.csw & 7, 4)

    def _incr(self, size: int) -> None:
        if (self.csw >> 4) & 3 == 1:
            self.tar = (self.tar & ~0x3FF) | ((self.tar + size) & 0x3FF)

    def _drw_read(self) -> int:
        size = self._size()
        a = self.tar
        val = self.read_mem(a & ~(size - 1), size * 8)
        self._incr(size)
        return (val << (8 * (a & 3))) & 0xFFFFFFFF if size < 4 else val

    def _drw_write(self, data: int) -> None:
        size = self._size()
        a = self.tar
        val = (data >> (8 * (a & 3))) & ((1 << (8 * size)) - 1) if size < 4 else data
        self.write_mem(a & ~(size - 1), val, size * 8)
        self._incr(size)

    def _mem_read32(self, addr: int) -> int:
        return self.read_mem(addr, 32)

    def _mem_write32(self, addr: int, data: int) -> None:
        self.write_mem(addr, data, 32)

    # -------------------------------------------------------------- memory interface
    def read_mem(self, addr: int, xfer_size: int) -> int:
        n = _xfer(xfer_size)
        addr = _u32("address", addr)
        with self.m.host():
            try:
                data = self.m.bus_read(addr, n, n)
            except ValueError as e:
                raise ProbeRequestError(str(e), STATUS_TRANSFER_FAULT) from None
        return int.from_bytes(data, "little")

    def write_mem(self, addr: int, value: int, xfer_size: int) -> None:
        n = _xfer(xfer_size)
        addr = _u32("address", addr)
        if not isinstance(value, int):
            raise ProbeRequestError(f"value must be an integer, not {type(value).__name__}")
        with self.m.host():
            try:
                self.m.bus_write(addr, (value & ((1 << xfer_size) - 1)).to_bytes(n, "little"), n)
            except ValueError as e:
                raise ProbeRequestError(str(e), STATUS_TRANSFER_FAULT) from None

    def read_block(self, addr: int, count: int, width: int) -> list[int]:
        addr = _u32("address", addr)
        if not isinstance(count, int) or not 0 <= count <= MAX_BLOCK_ITEMS:
            raise ProbeRequestError(f"count must be 0..{MAX_BLOCK_ITEMS}")
        with self.m.host():
            try:
                data = self.m.bus_read(addr, count * width, width)
            except ValueError as e:
                raise ProbeRequestError(str(e), STATUS_TRANSFER_FAULT) from None
        if width == 1:
            return list(data)
        return memoryview(data).cast("I").tolist()

    def write_block(self, addr: int, values: list[int], width: int) -> None:
        addr = _u32("address", addr)
        if not isinstance(values, list) or len(values) > MAX_BLOCK_ITEMS:
            raise ProbeRequestError(f"data must be a list of at most {MAX_BLOCK_ITEMS} integers")
        if not all(type(v) is int and 0 <= v <= (0xFF if width == 1 else 0xFFFFFFFF) for v in values):
            raise ProbeRequestError(f"data items must be {8 * width}-bit unsigned integers")
        if width == 1:
            data = bytes(values)
        else:
            data = b"".join((v & 0xFFFFFFFF).to_bytes(4, "little") for v in values)
        with self.m.host():
            try:
                self.m.bus_write(addr, data, width)
            except ValueError as e:
                raise ProbeRequestError(str(e), STATUS_TRANSFER_FAULT) from None


class DebugServer:
    """TCP server speaking pyOCD's remote-probe protocol on 127.0.0.1."""

    def __init__(self, machine: Machine, port: int = 0) -> None:
        self.m = machine
        self.dap = DebugAccessPort(machine)
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(4)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._client: socket.socket | None = None
        self._last_rx = 0.0  # monotonic time the current client last sent something
        self.stale_after = STALE_AFTER
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept_loop, name="twin-probe", daemon=True)
        self.requests = 0
        self.by_request: dict[str, int] = {}
        d = self.dap
        self._handlers: dict[str, tuple[Callable[..., Any], int]] = {
            "hello": (self._hello, 1),
            "readprop": (d.readprop, 1),
            "open": (_noop, 0),
            "close": (_noop, 0),
            "lock": (_noop, 0),
            "unlock": (_noop, 0),
            "flush": (_noop, 0),
            "set_clock": (lambda f: None, 1),
            "connect": (d.connect, 1),
            "disconnect": (d.disconnect, 0),
            "swj_sequence": (lambda n, b: None, 2),
            "reset": (d.reset, 0),
            "assert_reset": (d.assert_reset, 1),
            "is_reset_asserted": (d.is_reset_asserted, 0),
            "read_dp": (d.read_dp, 1),
            "write_dp": (d.write_dp, 2),
            "read_ap": (d.read_ap, 1),
            "write_ap": (d.write_ap, 2),
            "read_ap_multiple": (lambda a, n: [d.read_ap(a) for _ in range(_count(n))], 2),
            "write_ap_multiple": (
                lambda a, vs: [d.write_ap(a, v) for v in vs[: _count(len(vs))]] and None,
                2,
            ),
            "get_memory_interface_for_ap": (self._memif, 2),
            "has_swo": (lambda: False, 0),
            "swo_start": (lambda b: None, 1),
            "swo_stop": (_noop, 0),
            "swo_read": (list, 0),
            "read_mem": (lambda h, a, s: d.read_mem(a, s), 3),
            "write_mem": (lambda h, a, v, s: d.write_mem(a, v, s), 4),
            "read_block32": (lambda h, a, n: d.read_block(a, n, 4), 3),
            "write_block32": (lambda h, a, vs: d.write_block(a, vs, 4), 3),
            "read_block8": (lambda h, a, n: d.read_block(a, n, 1), 3),
            "write_block8": (lambda h, a, vs: d.write_block(a, vs, 1), 3),
        }

    def start(self) -> None:
        self._accept_thread.start()

    def close(self) -> None:
        """Stop serving; closes the listening socket and any client."""
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        c = self._client
        if c is not None:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept_thread.is_alive():
            self._accept_thread.join(2)
        for t in self._threads:
            t.join(2)

    @staticmethod
    def _hello(version: int) -> None:
        if version != 1:
            raise ProbeRequestError(f"client requested unsupported protocol version {version} (expected 1)")

    @staticmethod
    def _memif(ap_version: int, ap_address: int) -> int | None:
        return 0 if ap_version == 1 and ap_address == 0 else None

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            deadline = time.monotonic() + 3.0
            dropped = None
            while self._client is not None and time.monotonic() < deadline:
                if dropped is not self._client and time.monotonic() - self._last_rx >= self.stale_after:
                    dropped = self._client
                    self._drop_stale()
                time.sleep(0.01)  # a previous session may just be closing
            if self._client is not None:
                try:
                    conn.sendall(
                        json.dumps(
                            {
                                "id": -1,
                                "status": STATUS_PROBE,
                                "error": "twin debug port busy: another debugger is connected "
                                "(one client at a time)",
                            }
                        ).encode()
                        + b"\n"
                    )
                finally:
                    conn.close()
                continue
            self._client = conn
            self._last_rx = time.monotonic()
            t = threading.Thread(target=self._serve, args=(conn,), name="twin-probe-client", daemon=True)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _drop_stale(self) -> None:
        """The current client has been silent for STALE_AFTER s and another debugger wants
        the port: end the old session (its thread sees the socket close)."""
        c = self._client
        if c is None:
            return
        self.m.log(f"debug port: client silent for {self.stale_after:.0f} s dropped for a new connection")
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _spin(self) -> float:
        """How long to wait for the next request without sleeping: SPIN_S while the core is
        halted (a debugger is driving it: flash loaders, readbacks), else 0 (the running core
        needs the host CPU more than the debugger's polls need a fast answer)."""
        return SPIN_S if self.m.halted else 0.0

    def _touch(self) -> None:
        self._last_rx = time.monotonic()

    def _serve(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            for lines in request_batches(conn, self._stop, on_recv=self._touch, spin=self._spin):
                conn.sendall(b"".join(self.handle_line(x) if x is not None else _OVERLONG for x in lines))
        except OSError:
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass
            if self._client is conn:
                self._client = None
                self.dap.wire_protocol = None

    def handle_line(self, line: bytes) -> bytes:
        """Answer one request line (also usable without a socket, for tests)."""
        fast = _FAST.match(line)
        if fast is not None:  # lock/unlock/flush: 2/3 of all traffic
            self.requests += 1
            return b'{"id":%s,"status":0}\n' % fast.group(1)
        self.requests += 1
        name = "?"
        rid: Any = -1
        try:
            req = json.loads(line)
            if not isinstance(req, dict) or "id" not in req or "request" not in req:
                raise ProbeRequestError("invalid request format")
            rid = req["id"]
            args = req.get("arguments", [])
            name = req["request"]
            self.by_request[name] = self.by_request.get(name, 0) + 1
            handler = self._handlers.get(req["request"])
            if handler is None:
                raise ProbeRequestError(f"unknown request type {req['request']!r}")
            fn, nargs = handler
            if not isinstance(args, list) or len(args) != nargs:
                raise ProbeRequestError("malformed request; invalid number of arguments")
            result = fn(*args)
            resp: dict[str, Any] = {"id": rid, "status": 0}
            if result is not None:
                resp["result"] = result
        except ProbeRequestError as e:
            resp = {"id": rid, "status": e.status, "error": str(e)}
        except (ValueError, TypeError, KeyError, OverflowError, RecursionError) as e:
            resp = {"id": rid, "status": STATUS_GENERAL, "error": f"bad request: {str(e)[:200]}"}
        except Exception as e:  # never let a request kill the session
            resp = {"id": rid, "status": STATUS_GENERAL, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        try:
            return json.dumps(resp, separators=(",", ":")).encode() + b"\n"
        except (ValueError, TypeError, RecursionError):
            resp["id"] = -1
            return json.dumps(resp, separators=(",", ":"), default=str).encode() + b"\n"


_OVERLONG = (
    json.dumps(
        {"id": -1, "status": STATUS_GENERAL, "error": f"request line longer than {MAX_LINE} bytes (dropped)"}
    ).encode()
    + b"\n"
)


def _xfer(size: Any) -> int:
    """Bytes of a read_mem/write_mem transfer size (8, 16 or 32 bits)."""
    if type(size) is not int or size not in (8, 16, 32):
        raise ProbeRequestError(f"transfer size must be 8, 16 or 32, not {str(size)[:20]}")
    return size // 8


def _count(n: Any) -> int:
    if type(n) is not int or not 0 <= n <= MAX_BLOCK_ITEMS:
        raise ProbeRequestError(f"count must be 0..{MAX_BLOCK_ITEMS}")
    return n


def _u32(what: str, v: Any) -> int:
    if type(v) is not int or not 0 <= v <= 0xFFFFFFFF:
        raise ProbeRequestError(f"{what} must be a 32-bit unsigned integer")
    return v


_FAST = re.compile(rb'^\{"id": (\d+), "request": "(?:lock|unlock|flush)"\}\s*$')


def _noop() -> None:
    return None
