"""JSON-lines control server of the twin (the board's "lab bench": power, reset pin, status).

Request: one JSON object per line, ``{"cmd": NAME, ...}``. Reply: one line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``. Malformed lines get an error and
the connection stays open; a line over 1 MiB (``twin.lines.MAX_LINE``) gets one error and is
dropped. Several clients may connect at once.

Other parts of the twin add commands with :meth:`ControlServer.register_command`:
``fn(machine, request: dict) -> dict | None``; it runs on the server thread with the machine
lock held (the CPU is parked between slices), so it may touch device state directly.

Owns: the control socket, its built-in commands and the command registry. Must not touch:
device internals beyond a command's own job; it holds the machine through
``machine.host()``.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any

from twin.device import ResetKind
from twin.lines import MAX_LINE, request_batches
from twin.machine import Machine

Command = Callable[[Machine, dict[str, Any]], "dict[str, Any] | None"]


class ControlServer:
    """TCP JSON-lines server on 127.0.0.1."""

    def __init__(self, machine: Machine, port: int = 0) -> None:
        self.m = machine
        self._commands: dict[str, Command] = {}
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", port))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._accept_loop, name="twin-control", daemon=True)
        self.on_power_cycle: list[Callable[[], None]] = []
        for name, fn in (
            ("status", _status),
            ("power_cycle", self._power_cycle),
            ("reset", _reset),
            ("halt", _halt),
            ("resume", _resume),
            ("commands", self._list),
            ("devices", _devices),
            ("uart_log", _uart_log),
            ("read", _read),
        ):
            self.register_command(name, fn)

    def register_command(self, name: str, fn: Command) -> None:
        """Add (or replace) a command."""
        self._commands[name] = fn

    def start(self) -> None:
        self._accept.start()

    def close(self) -> None:
        """Stop serving and close every connection."""
        self._stop.set()
        try:
            self._sock.close()
        except OSError:
            pass
        for c in list(self._clients):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._accept.is_alive():
            self._accept.join(2)
        for t in self._threads:
            t.join(2)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True, name="twin-control-client")
            self._clients.append(conn)
            self._threads = [x for x in self._threads if x.is_alive()] + [t]
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            for lines in request_batches(conn, self._stop):
                for line in lines:
                    conn.sendall(self.handle_line(line) if line is not None else _OVERLONG)
        except OSError:
            pass
        finally:
            if conn in self._clients:
                self._clients.remove(conn)
            try:
                conn.close()
            except OSError:
                pass

    def handle_line(self, line: bytes) -> bytes:
        """Answer one request line."""
        try:
            req = json.loads(line)
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError,
            # integers over sys.get_int_max_str_digits(), nesting too deep
            return _line({"ok": False, "error": f"malformed request (not JSON): {str(e)[:200]}"})
        if not isinstance(req, dict) or not isinstance(req.get("cmd"), str):
            return _line({"ok": False, "error": 'malformed request: expected {"cmd": NAME, ...}'})
        fn = self._commands.get(req["cmd"])
        if fn is None:
            return _line(
                {
                    "ok": False,
                    "error": f"unknown command {req['cmd'][:100]!r}; known: "
                    + ", ".join(sorted(self._commands)),
                }
            )
        try:
            with self.m.host():
                result = fn(self.m, req) or {}
        except Exception as e:
            return _line({"ok": False, "error": f"{req['cmd']}: {type(e).__name__}: {str(e)[:500]}"})
        try:
            return _line({"ok": True, **result})
        except (ValueError, TypeError, RecursionError) as e:
            return _line({"ok": False, "error": f"{req['cmd']}: unanswerable result: {str(e)[:200]}"})

    # -------------------------------------------------------------- built-ins
    def _power_cycle(self, m: Machine, req: dict[str, Any]) -> dict[str, Any]:
        """Power off/on: SRAM lost, flash and option bytes kept."""
        for cb in self.on_power_cycle:
            cb()
        m.reset_held = False
        m.reset(ResetKind.POWER, "power")
        m.wake()
        return _status(m, req)

    def _list(self, m: Machine, req: dict[str, Any]) -> dict[str, Any]:
        return {"commands": sorted(self._commands)}


def _line(obj: dict[str, Any]) -> bytes:
    """One reply line."""
    return json.dumps(obj, default=str).encode() + b"\n"


_OVERLONG = _line({"ok": False, "error": f"malformed request: line longer than {MAX_LINE} bytes (dropped)"})


def _status(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    state = (
        "lockup"
        if m.is_locked_up()
        else "halted"
        if m.halted
        else "reset"
        if m.reset_held
        else "stop"
        if m.runner.deep_stop
        else "sleeping"
        if m.sleeping
        else "running"
    )
    return {
        "state": state,
        "pc": m.reg("pc"),
        "cycles": m.now_cycles(),
        "wait": m.clock.wait_mode,
        "posted": len(m.gate.posted),
        "debug_ctrl": m.debug.ctrl if m.debug is not None else None,
        "time_ns": m.now_ns(),
        "core_hz": m.core_hz,
        "instructions": m.instructions,
        "lockup_reason": m.lockup_reason,
        "resets": list(m.reset_history),
    }


def _reset(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    """Pulse NRST (system reset, cause "pin"), or {"kind": "core"|"system"|"power"}."""
    kind = req.get("kind", ResetKind.SYSTEM)
    if kind not in (ResetKind.CORE, ResetKind.SYSTEM, ResetKind.POWER):
        raise ValueError(f"kind must be core, system or power, not {kind!r}")
    m.reset_held = False
    m.reset(kind, "pin" if kind != ResetKind.POWER else "power")
    m.wake()
    return _status(m, req)


def _halt(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    if m.debug is not None:
        m.debug.halt_for("halt")
    else:
        m.halt("control")
    return _status(m, req)


def _resume(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    if m.debug is not None:
        m.debug.ctrl &= ~0x2
    m.resume()
    return _status(m, req)


def _devices(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, dev in m.devices.items():
        try:
            out[name] = {"base": dev.base, "size": dev.size, **dev.snapshot()}
        except Exception as e:
            out[name] = {"error": str(e)}
    return {"devices": out}


def _uart_log(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    """Everything the console's U(S)ART (or ``device``'s: "usart6") transmitted so far
    (latin-1 text), optionally only the last N bytes."""
    dev = m.devices.get(req.get("device") or getattr(m, "console", "usart3"))
    if dev is None:
        raise KeyError("no such UART")
    data = bytes(getattr(dev, "tx_log", b""))
    n = req.get("last")
    if isinstance(n, int):
        data = data[-n:]
    return {"text": data.decode("latin-1"), "bytes": len(data)}


def _read(m: Machine, req: dict[str, Any]) -> dict[str, Any]:
    """Read memory: {"address": A, "length": N} -> hex string."""
    addr, n = int(req["address"]), int(req.get("length", 4))
    if not 0 < n <= 1 << 20:
        raise ValueError("length must be 1..1 MiB")
    return {"hex": m.bus_read(addr, n).hex()}
