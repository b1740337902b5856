"""Progress bars (rich) for the slow steps of a HIL run: flashing, reading flash back, the
OTA transfer, the backup and the restore.

Shown only when a person watches: the run has a controlling terminal, it is not CI (``CI``
set to anything but ``false``/``0``), and it is not an xdist worker (several workers drawing
on one terminal would be noise). The bars go to the terminal itself (``/dev/tty``): pytest
captures the test's stdout and stderr, so they neither land in captured output nor in the
report, and they vanish when their step ends (rich's transient progress), leaving pytest's
own lines as they were. Everywhere else :func:`for_run` returns None and nothing is drawn.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import IO, Any

#: Probe progress: (done, total, what)
ProbeProgress = Callable[[int, int, str], None]
#: OTA server progress: (phase, data_sent, data_total)
OtaProgress = Callable[[str, int, int], None]


def wanted(env: dict[str, str] | None = None) -> bool:
    """Whether bars should be drawn: a terminal, not CI, not an xdist worker."""
    env = dict(os.environ) if env is None else env
    if env.get("CI", "").lower() not in ("", "0", "false", "no"):
        return False
    return "PYTEST_XDIST_WORKER" not in env


def open_terminal() -> IO[str] | None:
    """The controlling terminal for writing, or None (no terminal: a CI job, a pipe, a daemon)."""
    try:
        return open("/dev/tty", "w", encoding="utf-8", errors="replace")
    except OSError:
        return None


class Bars:
    """One rich Progress on the terminal, a bar per running step; each step's callback
    starts its bar on the first call and removes it when the step is complete."""

    def __init__(self, stream: IO[str]) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

        self.stream = stream
        self.console = Console(file=stream, force_terminal=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            console=self.console,
            transient=True,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, Any] = {}
        self._running = False

    def update(self, key: str, description: str, done: int, total: int) -> None:
        """Advance (and create) the bar ``key``; at ``done >= total`` it goes away."""
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                if done >= total:
                    return
                if not self._running:
                    self._progress.start()
                    self._running = True
                task = self._tasks[key] = self._progress.add_task(description, total=max(total, 1))
            self._progress.update(task, completed=min(done, total), total=max(total, 1))
            if done >= total:
                self._progress.remove_task(task)
                del self._tasks[key]
                if not self._tasks:
                    self._progress.stop()
                    self._running = False

    def probe_callback(self) -> ProbeProgress:
        """For :attr:`rig.probe.Probe.progress`: ``(done, total, "flash 0x08000000")``."""

        def callback(done: int, total: int, what: str) -> None:
            verb, _, where = what.partition(" ")
            label = {"flash": "flashing", "read": "reading back"}.get(verb, verb)
            self.update(f"probe:{what}", f"{label} {where}".strip(), done, total)

        return callback

    def ota_callback(self, what: str = "OTA transfer") -> OtaProgress:
        """For :class:`rig.ota.server.OtaServer`'s ``on_progress``."""

        def callback(phase: str, sent: int, total: int) -> None:
            self.update("ota", what, total if phase == "end" else sent, total)

        return callback

    def close(self) -> None:
        with self._lock:
            if self._running:
                self._progress.stop()
                self._running = False
            self._tasks.clear()
        try:
            self.stream.close()
        except OSError:
            pass


def for_run(env: dict[str, str] | None = None) -> Bars | None:
    """Bars for this run, or None when nobody watches (see the module docstring)."""
    if not wanted(env):
        return None
    stream = open_terminal()
    return Bars(stream) if stream is not None else None
