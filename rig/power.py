"""Power switches: how the rig cuts a board's power for the destructive scenarios.

A :class:`PowerSwitch` is what a target provides (``Target.power``): the twin's own power
(its control interface), or, for a real board, the board file's ``power:`` section:

- ``uhubctl: {location, port}`` — per-port USB power of a hub uhubctl supports, the way labs
  cut an ST-LINK-powered NUCLEO (the ST-LINK goes down with the board: the probe and the
  virtual COM port come back when the power does). uhubctl is run from where Debian's
  ``uhubctl`` package installs it (``/usr/sbin/uhubctl``), else from an absolute path found
  on PATH, never by bare name; missing, the error names the package.
- ``command: {off, on}`` — the user's relay script: two command lines (split like a shell
  would, run without one; a relative path is taken from the board file's folder), with
  ``OTA_RIG_POWER`` (``off``/``on``) and ``OTA_RIG_PROBE_UID`` in their environment.

:meth:`PowerSwitch.cycle` cuts the power, waits ``off_time`` s and restores it. Only the
twin can also cut power at one chosen flash operation (``flash.cut``); a switch cuts at a
moment, so the scenarios that use one pick the moment from the update's progress.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from rig.board import PowerSpec
from rig.errors import ConfigError, TargetError

#: where Debian's uhubctl package installs the program
UHUBCTL_DEBIAN = "/usr/sbin/uhubctl"
#: searched after PATH (a non-root PATH often lacks the sbin directories)
UHUBCTL_DIRS = "/usr/sbin:/sbin:/usr/local/sbin"
#: seconds one switching command may take
COMMAND_TIMEOUT = 30.0


class PowerSwitch:
    """Cuts and restores a board's power."""

    #: how the switch is described in reports ("uhubctl 1-1.4 port 2", "the twin's power")
    name = "power switch"
    #: seconds without power in :meth:`cycle`
    off_time = 0.0
    #: the longest the probe and the console may take to come back after power returns
    settle = 0.0
    #: whether the probe and the console go down with the board (an ST-LINK on the same USB
    #: power): then they are reopened after :meth:`cycle`
    takes_probe_down = False

    def off(self) -> None:
        raise NotImplementedError

    def on(self) -> None:
        raise NotImplementedError

    def cycle(self) -> None:
        """Power off, ``off_time`` s, power on."""
        self.off()
        time.sleep(self.off_time)
        self.on()


class TwinPower(PowerSwitch):
    """The twin's power (its control interface): a cut is a power-on reset, at once (SRAM
    lost, flash kept), like a relay pulse; the probe and the PTY stay."""

    name = "the twin's power"
    settle = 5.0

    def __init__(self, target: Any) -> None:
        self.target = target

    def off(self) -> None:
        self.target.control("power.cut", after_ms=0)

    def on(self) -> None:
        """Power returns by itself (a pulse)."""

    def cycle(self) -> None:
        self.off()


def uhubctl_path() -> str:
    """The uhubctl program: Debian's ``/usr/sbin/uhubctl``, else an absolute path from PATH
    (``/usr/sbin`` searched too: a non-root PATH often lacks it); never a bare name."""
    if os.access(UHUBCTL_DEBIAN, os.X_OK):
        return UHUBCTL_DEBIAN
    path = os.environ.get("PATH", "") + os.pathsep + UHUBCTL_DIRS
    found = shutil.which("uhubctl", path=path)
    if found:
        return os.path.abspath(found)
    raise TargetError(
        "power.uhubctl: uhubctl is not installed (no /usr/sbin/uhubctl, none on PATH)",
        hint="install the Debian package uhubctl: sudo apt-get install uhubctl "
        "(and let the runner's user switch the hub's ports: see uhubctl's udev rules)",
    )


def _run(argv: list[str], what: str, env: dict[str, str] | None = None) -> None:
    try:
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, env=env, check=False
        )
    except FileNotFoundError:
        raise TargetError(f"{what}: {argv[0]} does not exist", hint="fix the power: section") from None
    except PermissionError:
        raise TargetError(f"{what}: {argv[0]} is not executable", hint="chmod +x it") from None
    except subprocess.TimeoutExpired:
        raise TargetError(f"{what}: {shlex.join(argv)} did not finish within {COMMAND_TIMEOUT:g} s") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()[-800:]
        raise TargetError(
            f"{what}: {shlex.join(argv)} exited with {proc.returncode}" + (f": {said}" if said else ""),
            hint="run it by hand; check the hub location/port (uhubctl lists them) or the relay script",
        )


class UhubctlPower(PowerSwitch):
    """One port of a USB hub, switched by uhubctl (``-l LOCATION -p PORT -a off|on``)."""

    takes_probe_down = True

    def __init__(self, location: str, port: int, *, off_time: float = 2.0, settle: float = 5.0) -> None:
        self.location, self.port = location, port
        self.off_time, self.settle = off_time, settle
        self.program = uhubctl_path()
        self.name = f"uhubctl hub {location} port {port}"

    def argv(self, action: str) -> list[str]:
        return [self.program, "-l", self.location, "-p", str(self.port), "-a", action]

    def off(self) -> None:
        _run(self.argv("off"), f"power off ({self.name})")

    def on(self) -> None:
        _run(self.argv("on"), f"power on ({self.name})")


class CommandPower(PowerSwitch):
    """The user's relay script: one command line for off, one for on."""

    takes_probe_down = True

    def __init__(
        self,
        off: str,
        on: str,
        *,
        base_dir: str | None = None,
        probe_uid: str | None = None,
        off_time: float = 2.0,
        settle: float = 5.0,
    ) -> None:
        self.commands = {"off": self._argv(off, base_dir), "on": self._argv(on, base_dir)}
        self.probe_uid = probe_uid
        self.off_time, self.settle = off_time, settle
        self.name = f"command {shlex.join(self.commands['off'])} / {shlex.join(self.commands['on'])}"

    @staticmethod
    def _argv(line: str, base_dir: str | None) -> list[str]:
        try:
            argv = shlex.split(line)
        except ValueError as exc:
            raise ConfigError(f"power.command: {line!r}: {exc}") from None
        if not argv:
            raise ConfigError("power.command: an empty command line")
        first = Path(argv[0]).expanduser()
        if "/" in argv[0] and not first.is_absolute() and base_dir:
            argv[0] = str((Path(base_dir) / first).resolve())
        return argv

    def _do(self, action: str) -> None:
        env = dict(os.environ, OTA_RIG_POWER=action)
        if self.probe_uid:
            env["OTA_RIG_PROBE_UID"] = self.probe_uid
        _run(self.commands[action], f"power {action} ({self.name})", env)

    def off(self) -> None:
        self._do("off")

    def on(self) -> None:
        self._do("on")


def switch_for(spec: PowerSpec | None, *, probe_uid: str | None = None) -> PowerSwitch | None:
    """The switch a board file's ``power:`` describes (None: no switch)."""
    if spec is None:
        return None
    if spec.uhubctl is not None:
        location, port = spec.uhubctl
        return UhubctlPower(location, port, off_time=spec.off_time, settle=spec.settle)
    assert spec.command is not None
    off, on = spec.command
    return CommandPower(
        off, on, base_dir=spec.base_dir, probe_uid=probe_uid, off_time=spec.off_time, settle=spec.settle
    )
