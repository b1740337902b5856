"""How the rig asks a bootloader for an update: the board file's ``update:`` section at work.

One :class:`UpdateTrigger` per ``update.method`` (docs/board-file.md):

* ``config_record`` — the reference bootloader's record (:mod:`rig.bootcfg`) written into
  ``regions.config`` through the probe: UPDATE_REQUESTED, the transport, the server. The
  only method that writes flash, and only because that bootloader reads it.
* ``always`` — the bootloader asks at every boot (the forum thread's): nothing to do.
* ``backup_register`` — a word in RTC_BKPxR, written through the probe the way firmware
  writes it (RCC_APB1ENR.PWREN, then PWR_CR1.DBP, then the register): a debugger's bus
  access meets the same backup-domain write protection as the CPU's, on the chip and on
  the twin. It survives the system reset that starts the bootloader, not a power cut.
* ``ram_magic`` — a word at a RAM address the bootloader keeps over a system reset.
* ``button`` — a GPIO held at its active level through the reset and ``hold_ms`` after it
  (released earlier once the bootloader has asked: a session on the bench's OTA server):
  the twin's control interface drives the pin; a lab board runs ``press``/``release``
  (a relay on the button).
* ``console`` — a line sent on the board's console after the reset (after ``after`` was
  printed, if given).
* ``command`` — the user's script (``run``; ``withdraw`` to take the request back).

Every trigger has three moments: :meth:`~UpdateTrigger.request` (before the reset that
starts the boot), :meth:`~UpdateTrigger.after_reset` (right after it) and
:meth:`~UpdateTrigger.withdraw` (the next boot must not ask: after an install through the
probe, before checking that an old app still boots). The rig never asks again behind the
bootloader's back: after a power cut nothing is requested anew (:mod:`rig.hil_power`).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rig.board_update import UpdateSpec
from rig.errors import ConsoleError, PhaseFailure

if TYPE_CHECKING:
    from rig.hil import Bench
    from rig.image import Image

#: RCC_APB1ENR and its PWREN (bit 28) and RTCAPBEN (bit 10, the RTC's register clock on
#: the F76x/F77x; set at reset, set again in case firmware cleared it) bits (RM0410 5.3.13)
RCC_APB1ENR, PWREN, RTCAPBEN = 0x40023840, 1 << 28, 1 << 10
#: PWR_CR1 and its DBP bit: backup-domain write access (RM0410 4.4.1)
PWR_CR1, DBP = 0x40007000, 1 << 8
#: RTC_BKP0R; BKPxR is at + 4x (RM0410 32.6.20)
RTC_BKP0R = 0x40002850


class UpdateTrigger:
    """Asks the bootloader for an update one way (subclasses: one per ``update.method``)."""

    method = "?"

    def __init__(self, spec: UpdateSpec) -> None:
        self.spec = spec

    @property
    def install(self) -> str:
        """``probe`` or ``ota``: how a previous image is put on the board."""
        return self.spec.install

    @property
    def writes_config(self) -> bool:
        """Whether this trigger writes the reference config record (config_record only)."""
        return False

    def describe(self) -> str:
        return self.method

    def request(self, bench: Bench, transport: str) -> None:
        """Make the next boot ask for an update over ``transport`` (before the reset)."""

    def after_reset(self, bench: Bench) -> None:
        """Right after the reset that starts the boot (release a button, send a line)."""

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        """Make the next boot not ask (``app``: what the app slot now holds, for a record)."""

    def _fail(self, bench: Bench, message: str, hint: str | None = None) -> PhaseFailure:
        return boot_failure(bench, f"update.method {self.method}: {message}", hint)


def boot_failure(bench: Bench, message: str, hint: str | None = None) -> PhaseFailure:
    """A ``boot`` failure (the board could not be asked) with the running test's evidence."""
    if bench.evidence is not None:
        return bench._fail(bench.evidence, "boot", message, hint=hint)
    return PhaseFailure("boot", message, hint=hint)


class ConfigRecord(UpdateTrigger):
    """The reference bootloader's config record in ``regions.config``."""

    method = "config_record"

    @property
    def writes_config(self) -> bool:
        return True

    def request(self, bench: Bench, transport: str) -> None:
        bench.write_config(bench.boot_config(transport, update=True, app=bench.installed))

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        bench.write_config(bench.boot_config(transport, update=False, app=app))


class Always(UpdateTrigger):
    """The bootloader asks at every boot: nothing to write, nothing to take back."""

    method = "always"


class BackupRegister(UpdateTrigger):
    """A word in RTC_BKPxR, written through the probe behind PWR_CR1.DBP."""

    method = "backup_register"

    @property
    def address(self) -> int:
        assert self.spec.register is not None
        return RTC_BKP0R + 4 * self.spec.register

    def describe(self) -> str:
        return f"backup_register RTC_BKP{self.spec.register}R"

    def request(self, bench: Bench, transport: str) -> None:
        self._write(bench, self.spec.value_for(transport))

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        self._write(bench, self.spec.idle)

    def _write(self, bench: Bench, value: int) -> None:
        probe = bench.probe
        probe.reset(halt=True)
        probe.write32(RCC_APB1ENR, probe.read32(RCC_APB1ENR) | PWREN | RTCAPBEN)
        probe.write32(PWR_CR1, probe.read32(PWR_CR1) | DBP)
        probe.write32(self.address, value)
        got = probe.read32(self.address)
        if got != value:
            raise self._fail(
                bench,
                f"RTC_BKP{self.spec.register}R at 0x{self.address:08X} reads 0x{got:08X} after the "
                f"probe wrote 0x{value:08X} (with PWREN and DBP set)",
                hint="is the backup domain powered and not in reset (RCC_BDCR.BDRST)?",
            )


class RamMagic(UpdateTrigger):
    """A word at a RAM address the bootloader keeps over a system reset."""

    method = "ram_magic"

    def describe(self) -> str:
        return f"ram_magic 0x{self.spec.address:08X}"

    def request(self, bench: Bench, transport: str) -> None:
        self._write(bench, self.spec.value_for(transport))

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        self._write(bench, self.spec.idle)

    def _write(self, bench: Bench, value: int) -> None:
        assert self.spec.address is not None
        bench.probe.reset(halt=True)
        bench.probe.write32(self.spec.address, value)
        got = bench.probe.read32(self.spec.address)
        if got != value:
            raise self._fail(
                bench, f"0x{self.spec.address:08X} reads 0x{got:08X} after the probe wrote 0x{value:08X}"
            )


class Button(UpdateTrigger):
    """A GPIO held at its active level through the reset and ``hold_ms`` after it."""

    method = "button"

    def __init__(self, spec: UpdateSpec) -> None:
        super().__init__(spec)
        self.pressed = False

    def describe(self) -> str:
        return f"button {self.spec.pin} ({self.spec.active}, {self.spec.hold_ms} ms)"

    @property
    def port_pin(self) -> tuple[str, int]:
        assert self.spec.pin is not None
        return self.spec.pin[1].lower(), int(self.spec.pin[2:])

    def request(self, bench: Bench, transport: str) -> None:
        self._set(bench, True)

    def after_reset(self, bench: Bench) -> None:
        """Hold ``hold_ms`` after the reset, or until the bootloader has asked (a session on
        the bench's OTA server began), whichever is first: a bootloader that updates and
        restarts while the button is still held would see it again and ask again (on the
        twin flash operations cost no wall time, so a 16 KiB update fits in the hold)."""
        if not self.pressed:
            return
        server = getattr(bench, "last_server", None)
        started = getattr(bench, "sessions_at_reset", 0)  # a session may begin within the reset
        deadline = time.monotonic() + self.spec.hold_ms / 1000.0
        while time.monotonic() < deadline:
            if server is not None and server.sessions_started > started:
                break
            time.sleep(0.005)
        self._set(bench, False)

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        if self.pressed:
            self._set(bench, False)

    def _set(self, bench: Bench, pressed: bool) -> None:
        target = bench.target
        if target.has_control:
            port, pin = self.port_pin
            level = (self.spec.active == "high") if pressed else None  # released: not driven
            target.control("gpio", port=port, pin=pin, drive=level)
        else:
            command = self.spec.press if pressed else self.spec.release
            key = "press" if pressed else "release"
            if not command:
                raise self._fail(
                    bench,
                    f"{target.kind} has no control interface and update.{key} names no command "
                    f"to {key} {self.spec.pin}",
                    hint=f"set update.{key} to the command that drives your relay",
                )
            run_command(bench, command, self.spec.timeout, what=f"update.{key}")
        self.pressed = pressed


class ConsoleLine(UpdateTrigger):
    """A line sent on the board's console after the reset (after ``after``, if given)."""

    method = "console"

    def __init__(self, spec: UpdateSpec) -> None:
        super().__init__(spec)
        self.pending: str | None = None
        self.mark = 0

    def describe(self) -> str:
        return f"console line {self.spec.line!r}"

    def request(self, bench: Bench, transport: str) -> None:
        assert self.spec.line is not None
        self.pending = self.spec.line.format(transport=transport)
        self.mark = bench.console.mark()

    def after_reset(self, bench: Bench) -> None:
        line, self.pending = self.pending, None
        if line is None:
            return
        if self.spec.after:
            try:
                bench.console.expect(
                    self.spec.after,
                    timeout=self.spec.wait_ms / 1000.0,
                    since=self.mark,
                    what=f"update.after ({self.spec.after!r})",
                )
            except ConsoleError as exc:
                raise self._fail(
                    bench,
                    f"the board never printed what update.after waits for: {exc}"
                    + bench.console_silence_hint(self.mark),
                ) from exc
        bench.console.send(line + "\n")

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        self.pending = None


class Command(UpdateTrigger):
    """The user's script: ``run`` asks, ``withdraw`` (if given) takes it back."""

    method = "command"

    def describe(self) -> str:
        return f"command {self.spec.run!r}"

    def request(self, bench: Bench, transport: str) -> None:
        assert self.spec.run is not None
        run_command(bench, self.spec.run, self.spec.timeout, what="update.run", transport=transport)

    def withdraw(self, bench: Bench, transport: str, app: Image | None) -> None:
        if self.spec.withdraw:
            run_command(
                bench, self.spec.withdraw, self.spec.timeout, what="update.withdraw", transport=transport
            )


TRIGGERS: dict[str, type[UpdateTrigger]] = {
    cls.method: cls for cls in (ConfigRecord, Always, BackupRegister, RamMagic, Button, ConsoleLine, Command)
}


def make_trigger(spec: UpdateSpec) -> UpdateTrigger:
    """The trigger for the board file's ``update:`` section."""
    return TRIGGERS[spec.method](spec)


def command_env(bench: Bench, transport: str | None) -> dict[str, str]:
    """What a script learns about the board: ``OTA_RIG_BOARD`` (twin/nucleo),
    ``OTA_RIG_TRANSPORT``, ``OTA_RIG_SERVER`` (where the board dials), ``OTA_RIG_PROBE``,
    ``OTA_RIG_SERIAL_PORT`` and, on the twin, ``OTA_RIG_TWIN_CONTROL`` (its control
    interface, ``HOST:PORT``: a script can press the twin's button)."""
    target = bench.target
    ip, port = getattr(target, "dial", (bench.spec.ota.server.ip, bench.spec.ota.server.port))
    env = {
        "OTA_RIG_BOARD": target.kind,
        "OTA_RIG_TRANSPORT": transport or "",
        "OTA_RIG_SERVER": f"{ip}:{port}",
        "OTA_RIG_PROBE": str(target.probe_uid),
        "OTA_RIG_SERIAL_PORT": str(target.serial_port),
    }
    control = target.info.get("control") if isinstance(target.info, dict) else None
    if control:
        env["OTA_RIG_TWIN_CONTROL"] = str(control)
    return env


def run_command(
    bench: Bench, command: str, timeout: float, *, what: str, transport: str | None = None
) -> str:
    """Run one of the board file's command lines (split like a shell would, run without a
    shell, from the board file's folder, ``{transport}``/``{server}`` substituted); a
    non-zero exit, a missing program or a timeout is a ``boot`` failure with its output."""
    env_extra = command_env(bench, transport)
    words = shlex.split(command.format(transport=transport or "", server=env_extra["OTA_RIG_SERVER"]))
    cwd = bench.spec.update.base_dir or os.getcwd()
    if words and (Path(cwd) / words[0]).is_file() and not Path(words[0]).is_absolute():
        words[0] = str(Path(cwd) / words[0])
    try:
        proc = subprocess.run(
            words,
            cwd=cwd,
            env={**os.environ, **env_extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise boot_failure(
            bench,
            f"update.method {bench.spec.update.method}: {what}: cannot run {words[0]!r}: {exc.strerror}",
        ) from None
    except subprocess.TimeoutExpired:
        raise boot_failure(
            bench,
            f"update.method {bench.spec.update.method}: {what}: {command!r} did not finish within {timeout:g} s",
        ) from None
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0:
        raise boot_failure(
            bench,
            f"update.method {bench.spec.update.method}: {what}: {command!r} exited with {proc.returncode}: {output[-2000:]}",
        )
    return output


def install_via_ota(bench: Bench, image: Image, transport: str) -> None:
    """Put ``image`` on the board by a real update (``update.install: ota``): the
    bootloader stores and records it its own way, whatever record it keeps. The core is left
    halted at the image's entry. A failure is the running test's, in the phase it broke,
    its message saying it happened while the previous image was installed."""
    from rig.evidence import Evidence

    ev = bench.evidence if bench.evidence is not None else Evidence(test_id="install")
    regions, notes, transcript = len(ev.regions), len(ev.notes), ev.transcript
    scenario, timings = dict(ev.scenario), dict(ev.timings)
    t0 = time.monotonic()
    try:
        bench.run_update(image, ev, transport=transport)
        bench.await_app_entry(image, ev)
    except PhaseFailure as exc:
        message = (
            f"while installing the previous image ({image.size} bytes) through the board's own "
            f"update (update.install: ota): {exc.message.removeprefix(f'[{exc.phase}] ')}"
        )
        raise bench._fail(ev, exc.phase, message, hint=exc.hint) from exc
    finally:
        ev.scenario.clear()
        ev.scenario.update(scenario)
    del ev.regions[regions:], ev.notes[notes:]
    ev.transcript = transcript
    ev.jump = ev.jump_state = None
    ev.timings.clear()
    ev.timings.update(timings)
    ev.timings["prepare"] = round(timings.get("prepare", 0.0) + time.monotonic() - t0, 3)
