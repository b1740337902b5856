"""An RFC 2217 server in front of a serial device, as a board host runs one (ser2net, or
pyserial's own example server, which this follows): ``python rfc2217_server.py DEVICE PORT``.

It serves one client at a time on 127.0.0.1:PORT, prints ``ready`` when it listens, and
serves until killed. A twin's console is a PTY, which has no modem lines: setting DTR/RTS or
reading CTS/DSR there is ignored instead of ending the session (a USB VCP has them).
"""

from __future__ import annotations

import socket
import sys
import threading

import serial
import serial.rfc2217


class PtySerial(serial.Serial):
    """A serial port whose modem-line calls never fail (a PTY answers them with ENOTTY)."""

    def _update_dtr_state(self) -> None:
        try:
            super()._update_dtr_state()
        except OSError:
            pass

    def _update_rts_state(self) -> None:
        try:
            super()._update_rts_state()
        except OSError:
            pass

    @property
    def cts(self) -> bool:
        return False

    @property
    def dsr(self) -> bool:
        return False

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return False


def _serve(ser: serial.Serial, conn: socket.socket) -> None:
    """Bytes both ways through pyserial's RFC 2217 port manager until the client leaves."""
    manager = serial.rfc2217.PortManager(ser, conn)  # the connection is its "write" target
    alive = True

    def from_board() -> None:
        while alive:
            try:
                data = ser.read(ser.in_waiting or 1)
                if data:
                    conn.sendall(b"".join(manager.escape(data)))
            except (OSError, serial.SerialException):
                return

    reader = threading.Thread(target=from_board, daemon=True)
    reader.start()
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            ser.write(b"".join(manager.filter(data)))
    except OSError:
        pass
    finally:
        alive = False
        reader.join(2)


class _Conn:
    """What PortManager writes to: the client socket's sendall, as ``write``."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv(self, n: int) -> bytes:
        return self.sock.recv(n)

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)


def main(device: str, port: int) -> None:
    ser = PtySerial()
    ser.port, ser.baudrate, ser.timeout = device, 115200, 0.2
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    print("ready", flush=True)
    while True:
        sock, _ = srv.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ser.open()
        try:
            _serve(ser, _Conn(sock))  # type: ignore[arg-type]
        finally:
            ser.close()
            sock.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
