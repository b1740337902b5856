"""Start a virtual NUCLEO-F767ZI (``python -m twin``) and describe it as a Target.

This is the only place the rig knows it talks to a twin: it starts the process, reads the
one JSON line the twin prints when ready, and from then on uses the probe address, the PTY
and TCP exactly as it would with hardware. Lab-equipment actions (power, faults) go over
the twin's control socket, the way a lab would use a relay or a button pusher.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from rig.board_spec import NUCLEO_HSE_HZ
from rig.errors import TargetError
from rig.targets.base import Target

if TYPE_CHECKING:
    from rig.board_spec import BoardSpec

START_TIMEOUT = 30.0


def twin_home() -> Path:
    """The directory holding the ``twin`` package this interpreter imports: the checkout in a
    development install, site-packages in a normal one (``pip install ota-rig``).

    ``python -m twin`` runs there, so it starts exactly that package (never a ``twin/`` folder
    that happens to be in the user's working directory). Found without importing the package.
    """
    spec = importlib.util.find_spec("twin")
    if spec is not None and spec.origin is None:
        # a folder named twin/ without __init__.py on sys.path (pytest puts tests/ there, and
        # tests/twin/ is one) is a namespace package to the path finder, found before the
        # finder of an editable install is asked: ask each finder for a regular package
        spec = next(
            (
                s
                for finder in sys.meta_path
                if (s := getattr(finder, "find_spec", lambda *_: None)("twin", None)) is not None
                and s.origin is not None
            ),
            None,
        )
    if spec is None or spec.origin is None:
        raise TargetError(
            f"the twin (package 'twin') is not installed for {sys.executable}",
            hint="install ota-rig into this environment (pip install ota-rig, or scripts/setup in a checkout)",
        )
    return Path(spec.origin).resolve().parent.parent


#: where Linux lists the ports it hands to outgoing connections
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


#: one lock file per port handed out (flock): twins started at once by other processes
#: (pytest-xdist workers, HIL runs in subprocesses) never get the same port, which a free
#: port alone does not ensure (the server listens on it only while a test runs: two twins
#: picked 30956 at once in a CI run)
PORT_LOCKS = Path(tempfile.gettempdir()) / "ota-rig-ports"
_LEASES: dict[int, int] = {}  # port -> the fd holding its lock, while this process uses it


def free_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A TCP port that is free right now on ``host``, below the kernel's ephemeral range
    where that range is known (a port the kernel may hand to any outgoing connection was
    taken once between two tests: EADDRINUSE in a CI run), and leased to this process
    (:data:`PORT_LOCKS`) until :func:`release_port` or its exit. Falls back to a
    kernel-chosen port."""
    rng = rng or random.SystemRandom()
    try:
        low = int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for _ in range(50 if low > 11000 else 0):
        port = rng.randrange(10000, low)
        if port in _LEASES or not _lease(port):
            continue
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                release_port(port)
                continue
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _lease(port: int) -> bool:
    """Take the port's lock file; False if another process (or file) holds it."""
    try:
        PORT_LOCKS.mkdir(parents=True, exist_ok=True)
        fd = os.open(PORT_LOCKS / str(port), os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        return True  # no lock directory: the bind check alone, as before
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _LEASES[port] = fd
    return True


def release_port(port: int) -> None:
    """Give back a port :func:`free_port` leased (a stopped twin's)."""
    fd = _LEASES.pop(port, None)
    if fd is not None:
        os.close(fd)


class ControlClient:
    """JSON-lines client for the twin's control interface."""

    def __init__(self, address: str, timeout: float = 30.0) -> None:
        host, _, port = address.rpartition(":")
        self._addr = (host, int(port))
        self._timeout = timeout
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None

    def _connect(self) -> None:
        self._sock = socket.create_connection(self._addr, timeout=self._timeout)
        self._rfile = self._sock.makefile("rb")

    def call(self, cmd: str, **args: object) -> dict[str, object]:
        with self._lock:
            if self._sock is None:
                self._connect()
            assert self._sock is not None and self._rfile is not None
            self._sock.sendall((json.dumps({"cmd": cmd, **args}) + "\n").encode())
            line = self._rfile.readline()
            if not line:
                self.close()
                raise TargetError(f"the twin's control interface closed while answering {cmd!r}")
            reply = json.loads(line)
            if not reply.get("ok", False):
                raise TargetError(f"twin control {cmd!r} failed: {reply.get('error', reply)}")
            return reply

    def close(self) -> None:
        if self._rfile is not None:
            self._rfile.close()
            self._rfile = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class TwinTarget(Target):
    """A running twin process."""

    def __init__(
        self,
        *,
        proc: subprocess.Popen,
        announce: dict,
        ota_bind: tuple[str, int],
        log_path: Path | None,
        ota_dial: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(
            kind="twin",
            probe_uid=str(announce["probe"]),
            serial_port=str(announce["serial"]),
            ota_bind=ota_bind,
            info={"pid": proc.pid, **announce, "log": str(log_path) if log_path else None},
            ota_dial=ota_dial,
        )
        self.proc = proc
        self.log_path = log_path
        self.leased_ports: list[int] = []  #: given back by stop() (free_port)
        ctl = announce.get("control")
        self._control = ControlClient(str(ctl)) if ctl else None

    @property
    def has_control(self) -> bool:
        return self._control is not None

    def control(self, cmd: str, **args: object) -> dict[str, object]:
        if self._control is None:
            raise TargetError("this twin announced no control interface")
        return self._control.call(cmd, **args)

    def power_cycle(self) -> None:
        self.control("power_cycle")

    def frame_capture(self, path: Path | None) -> bool:
        """The twin's cable records frames (``frames.pcap``); False if this twin has no cable."""
        if self._control is None:
            return False
        try:
            if path is None:
                self.control("frames.pcap", stop=True)
            else:
                self.control("frames.pcap", path=str(path))
        except TargetError:
            return False
        return True

    def power_switch(self):  # -> rig.power.TwinPower
        from rig.power import TwinPower

        return TwinPower(self) if self.has_control else None

    def log_tail(self, lines: int = 30) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
        proc = self.proc
        if proc.poll() is None:
            try:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()
        for port in self.leased_ports:
            release_port(port)
        self.leased_ports = []


def board_args(spec: BoardSpec) -> list[str]:
    """The twin's options a board file asks for (a :class:`rig.board_spec.BoardSpec`): the
    dual-bank flash layout, the WiFi module's wiring (``winc:``), the Ethernet PHY's
    (``eth:``), the console's U(S)ART (``console:``) and the HSE's frequency (``hse_hz:``,
    when not the NUCLEO's 8 MHz)."""
    args = ["--dual-bank"] if spec.dual_bank else []
    if spec.winc is not None:
        args += ["--winc-wiring", spec.winc.twin_arg()]
    if spec.eth is not None:
        args += ["--eth-wiring", spec.eth.twin_arg()]
    if spec.console.given:
        args += ["--console-uart", spec.console.twin_arg()]
    pins = spec.console.twin_pins_arg()
    if pins is not None:
        args += ["--console-pins", pins]
    if spec.hse_hz != NUCLEO_HSE_HZ:
        args += ["--hse-hz", str(spec.hse_hz)]
    return args


def _forwards(
    ota_lan: tuple[str, int] | None, forward: Sequence[tuple[str, int]]
) -> tuple[list[str], list[int]]:
    """The twin's ``--forward`` arguments and the loopback ports leased for them: the OTA
    server's first (leased even without ``ota_lan``), then one per ``forward``."""
    leased = [free_port()]
    args: list[str] = []
    if ota_lan is not None:
        args += ["--forward", f"{ota_lan[0]}:{ota_lan[1]}=127.0.0.1:{leased[0]}"]
    for lan_host, lan_port in forward:
        leased.append(free_port())
        args += ["--forward", f"{lan_host}:{lan_port}=127.0.0.1:{leased[-1]}"]
    return args, leased


def start_twin(
    *,
    forward: Sequence[tuple[str, int]] = (),
    ota_lan: tuple[str, int] | None = None,
    extra_args: Sequence[str] = (),
    log_path: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> TwinTarget:
    """Start one twin. ``ota_lan`` is the address the firmware dials (board file, e.g.
    192.168.1.10:5000); a free loopback port is chosen for the host OTA server and the twin
    forwards ``ota_lan`` to it. File paths in ``extra_args`` must be absolute (the twin runs
    in :func:`twin_home`)."""
    cwd = twin_home()
    fwd_args, leased = _forwards(ota_lan, forward)
    ota_port = leased[0]
    args = [sys.executable, "-m", "twin", *fwd_args, *extra_args]
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115
    # the twin stops when this process is gone, even if that happens before it got going
    env = dict(os.environ, PYTHONUNBUFFERED="1", TWIN_PARENT_PID=str(os.getpid()))
    try:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log if log is not None else subprocess.DEVNULL,
            env=env,
            cwd=str(cwd),
            # its own session: Ctrl-C in the user's terminal goes to the foreground process
            # group, and must not stop the twin before the rig has let go of it (the probe
            # and console teardowns talk to it); the rig stops it in teardown, and the twin
            # stops by itself when this process is gone (TWIN_PARENT_PID)
            start_new_session=True,
        )
    finally:
        if log is not None:
            log.close()
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                line += chunk
            elif proc.poll() is not None:
                break
    except BaseException:
        # Ctrl-C (or any error) while the twin starts: nobody else holds its handle yet
        proc.kill()
        proc.wait(timeout=5)
        raise
    if not line.endswith(b"\n"):
        code = proc.poll()
        if code is None:
            proc.kill()
            proc.wait(timeout=5)
        tail = log_path.read_text(errors="replace")[-2000:] if log_path and log_path.exists() else ""
        raise TargetError(
            f"the twin did not announce itself within {timeout:.0f} s "
            f"(exit code {code}); command: {' '.join(args)}\n{tail}",
            hint="run the command by hand to see its error",
        )
    try:
        announce = json.loads(line.decode().splitlines()[0])
    except (ValueError, IndexError) as exc:
        proc.kill()
        proc.wait(timeout=5)
        raise TargetError(f"the twin printed an unreadable start-up line: {line[:200]!r}") from exc
    bind = ("127.0.0.1", ota_port)  # the firmware dials ota_lan; the twin carries it here
    target = TwinTarget(proc=proc, announce=announce, ota_bind=bind, log_path=log_path, ota_dial=ota_lan)
    target.leased_ports = leased
    return target
