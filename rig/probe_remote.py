"""pyOCD's remote probe (``remote:HOST:PORT``, the twin's and pyOCD's probe server) with every
wait bounded.

Stock pyOCD's client reads each answer with a ``readline()`` that retries for ever: on a
server that is gone it spins on the closed socket (``recv`` returns ``b""`` again and again),
on a server that stopped answering it waits for ever. Closing the probe after the twin died
(Ctrl-C in a terminal reaches both) then hung the whole pytest run. Here the probe's socket is
replaced by :class:`BoundedClientSocket`: end of stream, a socket error or no answer within
:data:`REQUEST_TIMEOUT` raise pyOCD's own ``ProbeDisconnected`` (which pyOCD's session
handles while it closes) and close the socket, so every later request fails at once.

The replacement uses two attributes of pyOCD's ``TCPClientProbe`` / ``ClientSocket``
(``_socket``, ``_address``); :func:`bound_remote_probe` checks they are there and says so
if a pyOCD upgrade renamed them (tests/rig/test_rig_teardown.py runs it against a twin).
"""

from __future__ import annotations

import socket
import time
from typing import Any

from pyocd.core.exceptions import ProbeDisconnected
from pyocd.utility.sockets import ClientSocket

#: the longest one request to the probe server may go unanswered, in seconds (a request is
#: one memory or register transfer; the slowest seen on a loaded twin take well under 1 s)
REQUEST_TIMEOUT = 30.0


class BoundedClientSocket(ClientSocket):
    """pyOCD's ``ClientSocket`` whose reads end: at the end of stream, on an error, or after
    ``request_timeout`` seconds without a complete answer."""

    #: the connection (pyOCD's ``ClientSocket`` sets it: None until ``connect()``); declared
    #: here because the base class comes from an untyped package
    _socket: socket.socket | None

    def __init__(self, host: str, port: int, request_timeout: float = REQUEST_TIMEOUT) -> None:
        super().__init__(host, port)
        self.request_timeout = request_timeout
        #: why the connection is gone (then every call raises at once)
        self.gone: str | None = None

    def _lost(self, why: str) -> ProbeDisconnected:
        self.gone = why
        self.close()
        return ProbeDisconnected(f"remote probe {self._address[0]}:{self._address[1]}: {why}")

    def connect(self) -> None:
        self.gone = None
        super().connect()

    def close(self) -> None:
        sock, self._socket = self._socket, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already reset by the peer
        sock.close()

    def write(self, data: bytes) -> Any:
        if self.gone is not None or self._socket is None:
            raise self._lost(self.gone or "the connection is closed")
        try:
            return self._socket.sendall(data)
        except OSError as exc:
            raise self._lost(f"sending failed: {exc}") from None

    def readline(self) -> bytes:
        deadline = time.monotonic() + self.request_timeout
        while True:
            nl = self._buffer.find(b"\n")
            if nl != -1:
                line = bytes(self._buffer[: nl + 1])
                del self._buffer[: nl + 1]
                return line
            if self.gone is not None or self._socket is None:
                raise self._lost(self.gone or "the connection is closed")
            try:
                data = self._socket.recv(self._packet_size)
            except TimeoutError:  # the socket's own short timeout (pyOCD sets 0.1 s)
                if time.monotonic() > deadline:
                    raise self._lost(f"no answer within {self.request_timeout:g} s") from None
                continue
            except ConnectionResetError as exc:  # the server died with a request in flight
                raise self._lost(
                    f"the probe server closed the connection ({exc.strerror or exc}; is the board still running?)"
                ) from None
            except OSError as exc:
                raise self._lost(f"receiving failed: {exc}") from None
            if not data:
                raise self._lost("the probe server closed the connection (is the board still running?)")
            self._buffer += data


def bound_remote_probe(probe: Any, request_timeout: float = REQUEST_TIMEOUT) -> Any:
    """Give a not yet opened pyOCD ``TCPClientProbe`` a :class:`BoundedClientSocket`."""
    from pyocd.probe.tcp_client_probe import TCPClientProbe

    if not isinstance(probe, TCPClientProbe):
        return probe
    stock = getattr(probe, "_socket", None)
    address = getattr(stock, "_address", None)
    if not isinstance(stock, ClientSocket) or address is None:
        raise RuntimeError(
            "pyOCD's TCPClientProbe has no _socket/_address any more: update rig/probe_remote.py "
            "for this pyOCD version"
        )
    sock = probe._socket = BoundedClientSocket(address[0], address[1], request_timeout)
    _keep_the_cause(probe, sock)
    return probe


def _keep_the_cause(probe: Any, sock: BoundedClientSocket) -> None:
    """pyOCD's locking wrapper calls ``unlock()`` in a ``finally`` even when ``lock()`` failed:
    with the server gone the lock count is still 0 and its ``assert`` replaced the real error
    (ProbeDisconnected, naming the server) by a bare AssertionError. Then the unlock that has
    nothing to undo does nothing, and the disconnection goes on up."""
    stock_unlock = probe.unlock

    def unlock() -> None:
        if sock.gone is not None and getattr(probe, "_lock_count", 1) == 0:
            return
        stock_unlock()

    probe.unlock = unlock
