"""Does the board dial the OTA server again after it acknowledged an image?

After a session that ended in ACK the board installs the image and starts it. A bootloader
whose install failed (its copy did not verify, a flash error) goes back to asking for the
update: it connects to the OTA server again. The rig used to wait for the app's entry until
the install timeout (35 s for 300 KiB) while such a board retried a closed port.
:class:`ReconnectWatch` listens where the OTA server listened (same address, same allow
list) while the rig waits for the app, and says when the board connected again; it
answers nothing and closes the connection (the board sees the server go away, as before).

Owns: one listening socket and a thread accepting on it. Must not touch: the protocol (the
server's job) or the probe.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Sequence

POLL = 0.05


class ReconnectWatch:
    """A listener on ``(host, port)`` counting the connections from ``allow`` (any if None)."""

    def __init__(self, host: str, port: int, allow: Sequence[str] | None = None) -> None:
        self.host, self.port = host, port
        self.allow = set(allow) if allow is not None else None
        self.connections: list[tuple[float, str]] = []  #: (monotonic time, peer address)
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ReconnectWatch:
        """Listen (an address another process holds leaves the watch inactive: never fatal)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
            sock.listen(4)
        except OSError:
            sock.close()
            return self
        sock.settimeout(POLL)
        self._sock = sock
        self._thread = threading.Thread(target=self._accept, name=f"ota-watch-{self.port}", daemon=True)
        self._thread.start()
        return self

    @property
    def active(self) -> bool:
        """True while listening."""
        return self._sock is not None

    def asked_again(self) -> bool:
        """The board connected since :meth:`start`."""
        return bool(self.connections)

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with contextlib.closing(conn):
                if self.allow is None or peer[0] in self.allow:
                    self.connections.append((time.monotonic(), f"{peer[0]}:{peer[1]}"))

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2 * POLL + 1)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> ReconnectWatch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_entry(
    is_halted: Callable[[], bool],
    timeout: float,
    watch: ReconnectWatch | None,
    poll: float = 0.02,
    astray: Callable[[], bool] | None = None,
) -> tuple[bool, str | None]:
    """Wait up to ``timeout`` s until ``is_halted()`` (the app's entry breakpoint); stop early
    when ``watch`` saw the board connect again (its install failed), or when ``astray()``
    says the entry will never come (:class:`rig.pc_sample.EnteredElsewhere`). Closes
    ``watch``. Returns (halted, a note for the evidence if the board dialled again)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if is_halted():
                return True, None
            if watch is not None and watch.asked_again():
                break
            if astray is not None and astray():
                break
            time.sleep(poll)
        halted = bool(is_halted())
    finally:
        if watch is not None:
            watch.close()
    if watch is not None and watch.asked_again():
        return halted, (
            f"the board dialled the OTA server again ({watch.connections[0][1]}) after its ACK: "
            "its install did not take (the rig stopped waiting for the app's entry)"
        )
    return halted, None
