"""The serial console: pyserial on the board's virtual COM port, with expect-style waits.

A reader thread collects everything the board prints into one log (kept whole for the
report and, optionally, mirrored to a file). :meth:`Console.expect` waits for a pattern
*after a mark* with a timeout and, when it fails, says what arrived instead.

The port is a device (``/dev/ttyACM0``, a twin's PTY) or a pyserial URL: a board on another
host is reached through RFC 2217 (``rfc2217://HOST:PORT``: ser2net, pyserial's own server, a
labgrid exporter's NetworkSerialPort). A console that goes away while the rig waits on it (a
USB cable pulled, the board host's server gone) ends the wait at once, naming what happened.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from re import Pattern
from typing import TYPE_CHECKING, BinaryIO

from rig.errors import ConsoleError

if TYPE_CHECKING:
    import serial


class Console:
    """One open serial port. Use as a context manager; :meth:`close` is idempotent."""

    #: how long one read of the reader thread blocks (it also bounds how long close() waits)
    read_timeout = 0.05

    def __init__(self, port: str, *, baudrate: int = 115200, log_path: Path | None = None) -> None:
        self.port = port
        self.baudrate = baudrate
        self.log_path = log_path
        self._buf = bytearray()
        self._cond = threading.Condition()
        self._serial: serial.Serial | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._logfile: BinaryIO | None = None
        #: why the reader stopped on its own (the port went away), else None
        self.lost: str | None = None

    @property
    def is_url(self) -> bool:
        """Whether the port is a pyserial URL (``rfc2217://``, ``socket://``), not a device."""
        return "://" in self.port

    def _open_port(self) -> serial.Serial:
        import serial

        if self.is_url:  # a board on another host: RFC 2217 (no exclusive lock over the network)
            import warnings

            with warnings.catch_warnings():  # pyserial 3.5's rfc2217 reader calls setDaemon()
                warnings.simplefilter("ignore", DeprecationWarning)
                return serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=self.read_timeout)
        return serial.Serial(self.port, self.baudrate, timeout=self.read_timeout, exclusive=True)

    def open(self) -> Console:
        import serial

        if self._serial is not None:
            return self
        try:
            self._serial = self._open_port()
        except (serial.SerialException, ValueError, OSError) as exc:
            text = str(exc)
            if self.is_url:
                hint = (
                    "the board host's RFC 2217 server (ser2net, pyserial's rfc2217 server, a labgrid "
                    "exporter) does not answer there: check it runs and the host and port"
                )
            elif "lock" in text.lower() or "busy" in text.lower():
                hint = (
                    f"another program holds {self.port} (screen, minicom, a second rig run?); "
                    "close it and retry"
                )
            elif "No such file" in text or "could not open" in text:
                hint = (
                    "check the board is plugged in and pass the right --serial-port, or set "
                    "usb_serial in the board file so the rig finds the ST-LINK VCP itself"
                )
            else:
                hint = "check permissions (group dialout) and the port name"
            raise ConsoleError(f"cannot open serial port {self.port}: {exc}", hint=hint) from exc
        self.lost = None
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._logfile = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self._stop.clear()
        self._thread = threading.Thread(target=self._reader, name=f"console:{self.port}", daemon=True)
        self._thread.start()
        return self

    def _reader(self) -> None:
        ser = self._serial
        while not self._stop.is_set() and ser is not None:
            try:
                # pyserial's read(n) returns only when n bytes came or the timeout ran out:
                # wait for the first byte, then take what is already there (a line reaches
                # expect() when it arrives, not up to 50 ms later)
                data = ser.read(1)
                if data:
                    waiting = ser.in_waiting
                    if waiting:
                        data += ser.read(min(waiting, 65536))
            except Exception as exc:
                if not self._stop.is_set():  # not our own close: the port went away
                    with self._cond:
                        self.lost = f"{type(exc).__name__}: {exc}"
                        self._cond.notify_all()
                break
            if data:
                with self._cond:
                    self._buf += data
                    if self._logfile:
                        self._logfile.write(data)
                        self._logfile.flush()
                    self._cond.notify_all()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass
        if self._logfile is not None:
            self._logfile.close()
            self._logfile = None

    def reopen(self, port: str | Callable[[], str] | None = None, *, timeout: float = 10.0) -> Console:
        """Close and open again (on ``port`` if given: a device, or a function that finds it,
        asked at every try), retrying until ``timeout``: after a power cut the ST-LINK's
        virtual COM port disappears and comes back (perhaps as another device). The log is
        kept: marks taken before stay valid."""
        self.close()
        deadline = time.monotonic() + timeout
        while True:
            if port is not None:
                self.port = port() if callable(port) else port
            try:
                return self.open()
            except ConsoleError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.25)

    def recover(self, timeout: float = 15.0) -> None:
        """If the port went away (a USB cable, a board host's RFC 2217 server restarted), open it
        again, keeping the log; a port that does not come back within ``timeout`` s is a
        ConsoleError naming what was lost. Nothing to do while it is open."""
        lost = self.lost
        if lost is None:
            return
        try:
            self.reopen(timeout=timeout)
        except ConsoleError as exc:
            raise ConsoleError(
                f"the console {self.port} went away earlier ({lost}) and did not come back: {exc}",
                hint=exc.hint,
            ) from None

    def __enter__(self) -> Console:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- data ------------------------------------------------------------------------------
    def mark(self) -> int:
        """A position in the log; pass it to :meth:`expect` to only look at newer output."""
        with self._cond:
            return len(self._buf)

    def text(self, since: int = 0) -> str:
        with self._cond:
            return self._buf[since:].decode("utf-8", errors="replace")

    def tail(self, lines: int = 20, since: int = 0) -> str:
        return "\n".join(self.text(since).splitlines()[-lines:])

    def wait_quiet(self, quiet: float = 0.3, limit: float = 2.0) -> None:
        """Wait until nothing has arrived for ``quiet`` s, at most ``limit`` s in all (e.g. for
        the lines a board prints just before an answer that already reached the host)."""
        deadline = time.monotonic() + limit
        with self._cond:
            while True:
                size, now = len(self._buf), time.monotonic()
                if now >= deadline:
                    return
                self._cond.wait(min(quiet, deadline - now))
                if len(self._buf) == size and time.monotonic() - now >= quiet:
                    return

    def send(self, text: str | bytes) -> None:
        if self._serial is None:
            raise ConsoleError(f"serial port {self.port} is not open")
        self._serial.write(text.encode() if isinstance(text, str) else text)
        self._serial.flush()

    def expect(
        self,
        pattern: str | Pattern[str],
        *,
        timeout: float,
        since: int | None = None,
        what: str | None = None,
    ) -> re.Match[str]:
        """Wait until ``pattern`` (regex) appears in the output after ``since``.

        Raises ConsoleError with the tail of what arrived when the timeout expires.
        """
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        start = 0 if since is None else since
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                text = self._buf[start:].decode("utf-8", errors="replace")
                m = rx.search(text)
                if m:
                    return m
                left = deadline - time.monotonic()
                if left <= 0 or self.lost is not None:
                    break
                self._cond.wait(min(left, 0.2))
        tail = self.tail(15, start) or "(nothing)"
        if self.lost is not None:
            raise ConsoleError(
                f"the console {self.port} went away while waiting for {what or 'output'} "
                f"(/{rx.pattern}/): {self.lost}; last lines:\n{tail}",
                hint="the board's USB cable or power, or the board host's RFC 2217 server",
            )
        raise ConsoleError(
            f"{what or 'expected output'} did not appear on {self.port} within "
            f"{timeout:.0f} s (waiting for /{rx.pattern}/); last lines:\n{tail}"
        )
