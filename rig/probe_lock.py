"""One job per board: a lock per probe UID, held for the whole run.

The lock is an ``flock(2)`` on ``<lock dir>/<uid>.lock`` (``$OTA_RIG_LOCK_DIR``, default
``/tmp/ota-rig-locks``). The kernel releases it when the holder's file descriptor closes,
which happens on every way a process ends: a normal exit, Ctrl-C, an exception, SIGKILL, a
crash. So a lock can never stay held by a dead job; the file itself stays (it is never
unlinked: unlinking a lock file races with a job that opened it to wait), and records the
holder (pid, host, command, start time) for whoever waits. A record left by a job that died
without cleaning up is reported as recovered when the next job takes the lock.

A waiting job says who holds the board and since when, repeats it every
:data:`PROGRESS_EVERY` seconds, and gives up after the timeout (``$OTA_RIG_LOCK_TIMEOUT``,
default :data:`DEFAULT_TIMEOUT`) with a :class:`BoardBusy` naming the holder.

Locks are re-entrant within one process (the pytest fixture holds it for the session while
``rig`` code inside opens and reconnects the probe): a count per UID, the file closed when
the last holder releases.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rig.errors import ProbeError

DEFAULT_DIR = "/tmp/ota-rig-locks"
DEFAULT_TIMEOUT = 600.0
PROGRESS_EVERY = 30.0
POLL = 0.2

Say = Callable[[str], None]


class BoardBusy(ProbeError):
    """Another job held the board for longer than this one would wait."""

    def __init__(self, message: str, *, holder: Holder | None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.holder = holder


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) a board's lock, as its lock file records it."""

    pid: int
    host: str
    command: str
    since: float
    uid: str = ""

    def alive(self) -> bool:
        """Whether the recorded process still exists (on this host; another host's pid: True)."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # another user's process
        return True

    def describe(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        when = dt.datetime.fromtimestamp(self.since).strftime("%Y-%m-%d %H:%M:%S")
        return f"pid {self.pid} on {self.host} (`{self.command}`) since {when}, {_ago(now - self.since)} ago"

    def to_dict(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "host": self.host,
            "command": self.command,
            "since": self.since,
            "uid": self.uid,
        }


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def lock_dir() -> Path:
    return Path(os.environ.get("OTA_RIG_LOCK_DIR") or DEFAULT_DIR)


def default_timeout() -> float:
    """``$OTA_RIG_LOCK_TIMEOUT`` in seconds, else :data:`DEFAULT_TIMEOUT`."""
    text = os.environ.get("OTA_RIG_LOCK_TIMEOUT")
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        raise ProbeError(
            f"OTA_RIG_LOCK_TIMEOUT={text!r} is not a number of seconds", hint="e.g. OTA_RIG_LOCK_TIMEOUT=600"
        ) from None
    if value < 0:
        raise ProbeError(f"OTA_RIG_LOCK_TIMEOUT={text!r} is negative", hint="give seconds, 0 = do not wait")
    return value


def lock_path(uid: str, directory: Path | None = None) -> Path:
    """The lock file of ``uid`` (case-insensitive, as probe UIDs are matched)."""
    key = uid.casefold()
    safe = re.sub(r"[^a-z0-9._-]", "_", key)
    if safe != key:  # remote:host:port and the like: keep the name readable and unique
        safe += "-" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return (directory or lock_dir()) / f"{safe}.lock"


def read_holder(path: Path) -> Holder | None:
    """The holder a lock file records (None: empty, unreadable or being written)."""
    try:
        doc = json.loads(path.read_text())
        return Holder(
            int(doc["pid"]),
            str(doc["host"]),
            str(doc["command"]),
            float(doc["since"]),
            str(doc.get("uid", "")),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _command() -> str:
    words = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    text = " ".join(words)
    return text if len(text) <= 200 else text[:197] + "..."


def _stderr(text: str) -> None:
    stream = sys.__stderr__ or sys.stderr
    print(text, file=stream, flush=True)


@dataclass
class _Held:
    fd: int
    path: Path
    count: int


_HELD: dict[str, _Held] = {}
_GUARD = threading.Lock()


def _open(path: Path) -> int:
    try:
        if not path.parent.is_dir():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.parent.chmod(0o1777)  # every user of the runner locks boards here
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ProbeError(
            f"cannot open the board lock {path}: {exc}",
            hint="make the lock directory writable for every job's user (chmod 1777), "
            "or point OTA_RIG_LOCK_DIR at one that is",
        ) from None
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o666)
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _record(fd: int, uid: str) -> Holder:
    me = Holder(os.getpid(), socket.gethostname(), _command(), time.time(), uid)
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(me.to_dict()).encode() + b"\n", 0)
    os.fsync(fd)
    return me


def _wait(fd: int, uid: str, path: Path, timeout: float, say: Say) -> None:
    """Wait for the lock on ``fd``, saying who holds it; BoardBusy after ``timeout``."""
    start = time.monotonic()
    told = -PROGRESS_EVERY
    while not _try_lock(fd):
        waited = time.monotonic() - start
        holder = read_holder(path)
        who = holder.describe() if holder else "a job whose record is not written yet"
        if waited >= timeout:
            raise BoardBusy(
                f"the board {uid} is in use by {who}; gave up after waiting {timeout:g} s",
                holder=holder,
                hint=f"wait for that job to end{f' or stop it (kill {holder.pid})' if holder else ''}; "
                f"wait longer with OTA_RIG_LOCK_TIMEOUT (or --lock-timeout); lock file {path}",
            )
        if waited - told >= PROGRESS_EVERY:
            told = waited
            left = max(0.0, timeout - waited)
            say(f"ota-rig: the board {uid} is in use by {who}; waiting (up to {left:.0f} s more)")
        time.sleep(min(POLL, max(0.01, timeout - waited)))


def acquire(uid: str, *, timeout: float | None = None, say: Say | None = None) -> Path:
    """Take the lock of the board whose probe is ``uid`` (waiting up to ``timeout`` s,
    default :func:`default_timeout`); returns the lock file. Re-entrant in one process."""
    key = uid.casefold()
    say = say or _stderr
    with _GUARD:
        held = _HELD.get(key)
        if held is not None:
            held.count += 1
            return held.path
    path = lock_path(uid)
    fd = _open(path)
    try:  # whatever stops us here (the timeout, Ctrl-C, a full disk) closes fd: no lock kept
        _wait(fd, uid, path, default_timeout() if timeout is None else timeout, say)
        stale = read_holder(path)
        if stale is not None and stale.pid != os.getpid():
            state = "alive, no longer holding it" if stale.alive() else "gone"
            say(f"ota-rig: recovered the lock of board {uid}: its record names {stale.describe()} ({state})")
        _record(fd, uid)
    except BaseException:
        os.close(fd)
        raise
    with _GUARD:
        _HELD[key] = _Held(fd, path, 1)
    return path


def release(uid: str) -> None:
    """Give back one hold of ``uid``'s lock; the last one clears the record and unlocks."""
    key = uid.casefold()
    with _GUARD:
        held = _HELD.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count > 0:
            return
        del _HELD[key]
    with contextlib.suppress(OSError):
        os.ftruncate(held.fd, 0)  # a clean release leaves no record to recover
    os.close(held.fd)  # closing the descriptor releases the flock


@atexit.register
def _release_all() -> None:
    """At interpreter exit: clear the records of the locks still held (the kernel would
    release the flocks anyway, but leave the records to be reported as recovered)."""
    for key in list(_HELD):
        held = _HELD.get(key)
        if held is not None:
            held.count = 1
            release(key)


def holds(uid: str) -> bool:
    """Whether this process holds ``uid``'s lock."""
    return uid.casefold() in _HELD


def current_holder(uid: str) -> Holder | None:
    """Who holds ``uid``'s board right now (None: free, or held by this process)."""
    if holds(uid):
        return None
    path = lock_path(uid)
    if not path.exists():
        return None
    fd = _open(path)
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return read_holder(path) or Holder(-1, "?", "?", time.time(), uid)
    finally:
        os.close(fd)


@contextlib.contextmanager
def board_lock(
    uid: str | None, *, timeout: float | None = None, say: Say | None = None
) -> Iterator[Path | None]:
    """Hold ``uid``'s lock for the ``with`` block (no UID: nothing to lock)."""
    if not uid:
        yield None
        return
    path = acquire(uid, timeout=timeout, say=say)
    try:
        yield path
    finally:
        release(uid)


def resolved_uid(uid: str | None) -> str:
    """``uid``, or the UID of the only probe connected (what :class:`rig.probe.Probe` would
    open without one): the lock must name the board, not "whichever"."""
    if uid:
        return uid
    from rig.probe_discovery import list_probes, select_probe

    return select_probe(None, list_probes()).uid
