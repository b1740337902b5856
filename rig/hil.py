"""HIL scenarios as steps with phases: the logic behind the pytest fixtures.

A :class:`Bench` is one board (a :class:`rig.targets.Target`) with its open probe and
console. Its steps — flash the bootloader, install an app the way a lived-in board has it,
run an OTA update through the host server, stop at the application's reset handler, read
flash back — each fill an :class:`rig.evidence.Evidence` and raise
:class:`rig.errors.PhaseFailure` naming the first broken phase of the pipeline
(flash → boot → transfer → write → copy → jump → app) with the diagnosis, never just a
timeout. Nothing here knows whether the board is the twin or a NUCLEO.
"""

from __future__ import annotations

import logging
import re
import struct
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rig import hil_capture
from rig.app_settle import watch_restart
from rig.board import BoardSpec, FlashLayout
from rig.bootcfg import BootConfig
from rig.console import Console
from rig.crash_hint import CrashWatch
from rig.diff import analyze
from rig.errors import ConsoleError, PhaseFailure, RigError
from rig.evidence import Evidence, FaultInfo, RegionCheck
from rig.fault_info import read_fault_info
from rig.flash_guard import (
    GuardedRange,
    PreservedRange,
    expected_after,
    preserved_changed,
    snapshot,
    snapshot_preserved,
)
from rig.hil_evidence import config_record_note, crc_sentences, left_over_state
from rig.hil_phases import with_phases
from rig.image import Image
from rig.jump import JumpState, check_jump
from rig.ota.protocol import Protocol, load_protocol
from rig.ota.reconnect_watch import ReconnectWatch, wait_entry
from rig.ota.server import OtaServer
from rig.ota.transcript import SessionResult
from rig.pc_sample import EnteredElsewhere
from rig.probe import Probe
from rig.progress import Bars
from rig.silicon import Silicon
from rig.targets.base import Target
from rig.update import UpdateTrigger, install_via_ota, make_trigger

LOG = logging.getLogger(__name__)

#: Seconds per KiB the board may need to receive and install an image (on top of fixed time).
SECONDS_PER_KIB = 0.25


@dataclass
class UpdateResult:
    session: SessionResult
    reached_app: bool
    jump_ok: bool | None


def transfer_timeout(nbytes: int) -> float:
    """A generous upper bound for one OTA session of ``nbytes`` (twin or board)."""
    return 60.0 + SECONDS_PER_KIB * nbytes / 1024


#: at most this many seconds of board time the app must keep running after its banner (the
#: IWDG variant resets it after 1 s; rig.app_settle derives the window from the IWDG's settings)
APP_SETTLE = 2.5


def install_timeout(nbytes: int) -> float:
    """Upper bound for erase + copy + verify + reset + jump after the ACK."""
    return 20.0 + 0.05 * nbytes / 1024


class Bench:
    """One board ready for scenarios: target + probe + console + board description.

    ``protocol`` (default: the board file's ``ota.protocol``) is what every OTA server of
    this bench speaks; ``trigger`` (default: from the board file's ``update:``) is how the
    bootloader is asked for an update (:mod:`rig.update`)."""

    def __init__(
        self,
        spec: BoardSpec,
        target: Target,
        probe: Probe,
        console: Console,
        artifacts: Path,
        *,
        layout: FlashLayout | None = None,
        protocol: Protocol | None = None,
        trigger: UpdateTrigger | None = None,
    ) -> None:
        self.spec = spec
        self.target = target
        self.probe = probe
        self.console = console
        self.artifacts = artifacts
        self.layout = layout or spec.active_layout
        self.bootloader: Image | None = None
        self._breakpoint: int | None = None  #: the app-entry breakpoint currently set
        self._reconnects: ReconnectWatch | None = None  #: after an ACK: does the board dial again?
        self._crash_watch: CrashWatch | None = None  #: the last update's (did the rig end it?)
        self.last_server: OtaServer | None = None  #: the newest ota_server() (a button's release)
        self.sessions_at_reset = 0  #: its sessions_started when reset_board() began
        self.installed: Image | None = None  #: what the rig believes the app slot holds
        self.staged: Image | None = None  #: what the rig believes the staging region holds
        self._guard: list[GuardedRange] | None = None  #: flash outside the OTA regions, before
        self.update_mark = 0  #: console position when the last update started
        #: the interface packet capture sniffs (``--capture-iface``; None: the one owning the bind address)
        self.capture_iface: str | None = None
        #: the running test's evidence (set by the ``evidence`` fixture), for failures of steps
        #: that take none
        self.evidence: Evidence | None = None
        #: the chip's DEV_ID/REV_ID (rig.silicon), recorded in every test's report
        self.silicon: Silicon | None = None
        #: progress bars on the terminal (rig.progress), None when nobody watches
        self.progress: Bars | None = None
        #: the OTA protocol every server of this bench speaks (board file ``ota.protocol``)
        self.protocol = protocol or load_protocol(spec.ota.protocol, spec.ota.protocol_options)
        #: how the bootloader is asked for an update (board file ``update:``)
        self.trigger = trigger or make_trigger(spec.update)
        self._preserved: list[PreservedRange] | None = None  #: preserved regions, before

    # -- small helpers --------------------------------------------------------------------------
    def _timed(self, ev: Evidence, phase: str, start: float) -> None:
        ev.timings[phase] = round(ev.timings.get(phase, 0.0) + time.monotonic() - start, 3)

    def _fail(self, ev: Evidence, phase: str, message: str, hint: str | None = None) -> PhaseFailure:
        ev.phase, ev.message = phase, message
        ev.uart = self.console.text()[-20000:]
        return PhaseFailure(phase, message, evidence=ev, hint=hint)

    def ota_server(self, image: bytes, **kwargs: Any) -> OtaServer:
        """The host OTA server for this board: listening where the board dials
        (``Target.ota_bind``), accepting only the board's own address (``Target.ota_allow``),
        capturing on ``capture_iface``; ``kwargs`` go to :class:`OtaServer`."""
        if self._reconnects is not None:  # it listens where the server will
            self._reconnects.close()
            self._reconnects = None
        host, port = self.target.ota_bind
        kwargs.setdefault("allow", self.target.ota_allow)
        if self.progress is not None:
            kwargs.setdefault("on_progress", self.progress.ota_callback(f"OTA transfer to {host}:{port}"))
        kwargs.setdefault("protocol", self.protocol)
        if kwargs.get("capture") is not None:
            kwargs.setdefault("capture_iface", self.capture_iface)
        self.last_server = OtaServer(image, bind=host, port=port, **kwargs)
        return self.last_server

    def readback(self, base: int, length: int) -> bytes:
        return self.probe.read(base, length)

    def write_flash(self, name: str, base: int, data: bytes) -> None:
        """Hold the core at the reset vector and make flash at ``base`` hold ``data`` by the
        rig's own routines: only sectors that differ are written, the rest of each sector
        kept. A write that does not take fails phase ``flash``
        (:func:`rig.hil_flash.write_checked`; ``name`` says what it is)."""
        from rig.hil_flash import write_checked

        self.probe.reset(halt=True)
        write_checked(self, name, base, data)

    def check_region(
        self,
        ev: Evidence,
        name: str,
        expected: bytes,
        *,
        base: int | None = None,
        previous: bytes | None = None,
        phase: str = "copy",
        actual: bytes | None = None,
    ) -> RegionCheck:
        """Read ``len(expected)`` bytes of region ``name`` (from ``base``) back (unless the caller
        has them: ``actual``) and analyse them."""
        base = self.spec.region(name).base if base is None else base
        actual = self.readback(base, len(expected)) if actual is None else actual
        received = phase == "write"  # the staging area: written straight from the receive buffer
        writable = self.spec.ota_writable()
        analysis = analyze(
            expected, actual, base, self.layout, previous, writable=writable, received=received
        )
        check = RegionCheck(
            name=name,
            base=base,
            expected=expected,
            actual=actual,
            analysis=analysis,
            previous=previous,
            phase=phase,
        )
        ev.regions.append(check)
        if not analysis.ok:
            path = self.artifacts / f"readback-{name}-0x{base:08X}.bin"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(actual)
            ev.artifacts[f"readback {name}"] = path
        return check

    def clear_breakpoint(self) -> None:
        if self._breakpoint is not None:
            self.probe.remove_breakpoint(self._breakpoint)
            self._breakpoint = None

    # -- steps ----------------------------------------------------------------------------------
    def flash_bootloader(self, image: Image, ev: Evidence) -> None:
        """Program the bootloader region and verify it (phase ``flash``): sectors that hold it
        already are skipped, the rest checked by CRC on the target (:mod:`rig.hil_flash`)."""
        from rig.hil_flash import flash_bootloader

        flash_bootloader(self, image, ev)

    def write_config(self, cfg: BootConfig) -> None:
        """Program the reference config record as the log's only record (slot 0; the
        slots the bootloader appended since are erased again). Only the ``config_record``
        update method calls this: nothing else writes the user's config region. Skipped when
        flash holds it already (:func:`rig.hil_flash.write_config`)."""
        from rig.hil_flash import write_config

        write_config(self, cfg)

    def boot_config(self, transport: str, *, update: bool, app: Image | None) -> BootConfig:
        server_ip, server_port = self.target.dial  # where this board dials (rig.lab)
        return BootConfig(
            transport=transport,
            server_ip=server_ip,
            server_port=server_port,
            update_requested=update,
            app_size=app.size if app else 0,
            app_crc=zlib.crc32(app.data) if app else 0,
        )

    def install_app_direct(self, image: Image, transport: str = "eth", *, staged: bool = False) -> None:
        """Put ``image`` into the app slot through the probe, as a board that has lived has it
        (with ``staged``, also into the staging region, as after the OTA that brought it),
        and withdraw any update request (``config_record``: the record says the image is
        installed). With ``update.install: ota`` the image is installed by a real update
        instead, so the bootloader records it its own way (:func:`rig.update.install_via_ota`).

        The core is held at the reset vector (reset and halt) so nothing the firmware does —
        e.g. a self-reset in the middle — races with the flash algorithm."""
        if self.trigger.install == "ota":
            install_via_ota(self, image, transport)
            return
        from rig.hil_flash import install_app_direct  # skips what is there (rig.flash_verify)

        install_app_direct(self, image, transport, staged=staged)

    def guard_flash(self) -> None:
        """Read back the flash outside the OTA-writable regions and the preserved regions,
        to compare after the update (or the power cut)."""
        self._guard = snapshot(self.readback, self.spec)
        self._preserved = snapshot_preserved(self.readback, self.spec)

    def check_guarded(self, ev: Evidence, phase: str = "write") -> None:
        """Compare the flash outside the OTA-writable regions with :meth:`guard_flash`'s
        readback (or, without one, the bootloader image); a change fails ``phase``."""
        parts = [(g.name, g.base, g.before) for g in self._guard or []]
        if self._guard is None and self.bootloader is not None:
            parts = [("bootloader", self.bootloader.base, self.bootloader.data)]
        for name, base, before in parts:
            check = self.check_region(ev, name, before, base=base, phase=phase)
            if not check.analysis.ok:
                raise self._fail(
                    ev,
                    phase,
                    f"flash outside the OTA-writable regions changed ({name}, "
                    f"0x{base:08X}+{len(before)}): " + check.analysis.summary(),
                )
        for kept in self._preserved or []:
            now = self.readback(kept.base, len(kept.before))
            check = self.check_region(ev, kept.name, expected_after(kept, now), base=kept.base, phase=phase)
            if not check.analysis.ok:
                raise self._fail(
                    ev,
                    phase,
                    preserved_changed(kept, now, check.analysis.summary())
                    + (
                        f"; {config_record_note(self)}"
                        if self.trigger.writes_config and kept.name == "config"
                        else ""
                    ),
                    hint="a bootloader must never erase or rewrite the settings it documents as kept",
                )

    def request_update(self, transport: str) -> None:
        """Ask the bootloader for an update the board file's way (``update.method``)."""
        self.trigger.request(self, transport)

    def park(self) -> None:
        """Between tests: hold the core at its reset vector, so nothing the last test left
        running goes on (a bootloader dialling a server that is gone, an app's console loop,
        a watchdog: a reset stops the IWDG) and a twin costs the host no CPU until the next
        test resets the board. A probe that cannot do it is logged, not raised: the next
        test reports the board's state itself."""
        try:
            self.clear_breakpoint()
            self.probe.reset(halt=True)
        except RigError as exc:
            LOG.info("could not park the board between tests: %s", exc)

    def reset_board(self) -> None:
        """Reset so the bootloader runs, then whatever the update method does after a reset
        (release a held button, send a console line)."""
        server = self.last_server
        self.sessions_at_reset = server.sessions_started if server is not None else 0
        self.probe.reset()
        self.trigger.after_reset(self)

    def run_update(
        self,
        image: Image,
        ev: Evidence,
        *,
        transport: str,
        policy: str = "natural",
        expect: str = "ack",
        timeout: float | None = None,
        capture: bool = False,
        server_max_size: int | str | None = "board",
    ) -> SessionResult:
        """Request an update, reset the board and serve ``image``; returns the session result.

        With ``expect="ack"`` a session that does not end in ACK fails phase ``transfer``.
        """
        ev.scenario.setdefault("transport", transport)
        ev.scenario.setdefault("image_size", image.size)
        ev.scenario.setdefault("policy", policy)
        ev.layout = self.layout
        self.request_update(transport)
        self.guard_flash()
        app_base = self.spec.region(self.spec.ota.app_region).base
        self.clear_breakpoint()
        if image.size >= 8:  # an image without a vector table has no entry to stop at
            self.probe.set_breakpoint(image.reset_handler & ~1)
            self._breakpoint = image.reset_handler & ~1
        self.update_mark = self.console.mark()
        timeout = transfer_timeout(image.size) if timeout is None else timeout
        port = self.target.ota_bind[1]
        t0 = time.monotonic()
        cap_dir = self.artifacts if capture else None
        max_size = self.spec.max_image_size if server_max_size == "board" else server_max_size
        frames = hil_capture.start(self, transport)  # the board's own frames, where a recorder exists
        with self.ota_server(image.data, policy=policy, max_size=max_size, capture=cap_dir) as server:
            self.reset_board()
            # a board that crashed ends the session, or the wait for one, now (rig/crash_hint.py),
            # not at the ACK or connect timeout
            watch = self._crash_watch = CrashWatch(self.probe.read32)
            result = server.wait_session(timeout=timeout, abandon_if=watch, give_up_if=watch.before_connect)
        if result.ok:  # a board whose install fails dials again: await_app_entry stops waiting
            self._reconnects = ReconnectWatch(*self.target.ota_bind, allow=self.target.ota_allow).start()
        hil_capture.finish(self, ev, frames, analyse=capture)
        self._timed(ev, "transfer", t0)
        ev.transcript = result.to_dict()
        if result.pcap:
            ev.artifacts["pcap"] = Path(result.pcap)
            ev.capture = self._analyse_capture(result.pcap, result.peer, port)
        elif capture and server.capture_error:
            ev.notes.append(f"no packet capture: {server.capture_error}")
        tpath = self.artifacts / "ota-transcript.txt"
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tpath.write_text(result.to_text())
        ev.artifacts["OTA transcript"] = tpath
        LOG.info("OTA session to 0x%08X ended: %s (%s)", app_base, result.outcome, result.reason)
        staged_before, self.staged = self.staged, image if result.ok else None
        if not result.ok:
            self.clear_breakpoint()
        if expect == "ack" and not result.ok:
            raise self.session_failure(image, ev, result, staged_before)
        return result

    def session_failure(
        self, image: Image, ev: Evidence, result: SessionResult, staged_before: Image | None = None
    ) -> PhaseFailure:
        """The failure of a session that did not end in ACK (rig/hil_failure.py)."""
        from rig.hil_failure import session_failure

        watch, self._crash_watch = self._crash_watch, None
        return session_failure(self, image, ev, result, staged_before, rig_ended=bool(watch and watch.fired))

    def no_connection_hint(self, transport: str) -> str:
        """Why a board never connected over ``transport`` (rig/hil_failure.py)."""
        from rig.hil_failure import no_connection_hint

        return no_connection_hint(
            self.probe, transport, self.target, self.spec.winc, self.spec.hse_hz, self.spec.eth
        )

    def console_silence_hint(self, since: int | None = None) -> str:
        """Why the console showed nothing since ``since`` (a mark) while the rig waited
        (rig/hil_failure.py); "" if it showed something."""
        from rig.hil_failure import console_silence_hint

        heard = self.console.text(since) if since is not None else ""
        console = self.spec.console
        baud = getattr(self.console, "baudrate", 115200)
        return console_silence_hint(
            self.probe, self.target, console.uart, heard, console.tx_pin, baud, self.spec.hse_hz
        )

    def _wait_for_entry(self, entry: int, timeout: float, ev: Evidence) -> bool:
        """Wait until the core stops at ``entry`` (True) or that will not happen: the board
        dialled again, or the app's code runs without its entry (:mod:`rig.pc_sample`);
        the core is halted either way."""
        slot = self.spec.region(self.spec.ota.app_region)
        astray = EnteredElsewhere(self.probe, slot.base, slot.base + slot.size)
        watched = astray if self._breakpoint == entry else None
        reached, again = wait_entry(self.probe.is_halted, timeout, self._reconnects, astray=watched)
        self._reconnects = None
        ev.notes += [again] if again else []
        if not reached:
            self.probe.halt()
        if astray.decided:
            ev.notes.append(
                f"the core ran in the app slot (PC sample 0x{astray.last:08X}) without stopping at its "
                "entry: the rig stopped waiting for the entry"
            )
        return reached

    def await_app_entry(
        self, image: Image, ev: Evidence, *, timeout: float | None = None, previous: Image | None = None
    ) -> JumpState | None:
        """Wait for the core to stop at the app's reset handler, then check flash and the jump.

        Raises PhaseFailure for the earliest broken phase: ``write``/``copy`` (flash content),
        ``jump`` (never reached the app, or the contract does not hold).
        """
        t0 = time.monotonic()
        if timeout is None:
            timeout = install_timeout(image.size)
        entry = image.reset_handler & ~1
        reached = self._wait_for_entry(entry, timeout, ev)
        regs = self.probe.registers(["pc", "msp", "lr", "xpsr"])
        at_entry = reached and regs["pc"] == entry
        self.clear_breakpoint()
        self._timed(ev, "jump", t0)

        state: JumpState | None = None
        if at_entry:
            state = JumpState.collect(lambda n: self.probe.registers([n])[n], self.probe.read32)
            ev.jump_state = state
            ev.jump = check_jump(
                state,
                image,
                self.spec.contract,
                self.spec.region(self.spec.ota.app_region).base,
                board=self.spec,
            )

        # Flash first: a wrong app slot explains a bad jump, not the other way round.
        app = self.check_region(
            ev,
            self.spec.ota.app_region,
            image.data,
            previous=previous.data[: image.size].ljust(image.size, b"\xff") if previous else None,
            phase="copy",
        )
        self.check_guarded(ev)
        if not app.analysis.ok:
            staged = self.check_region(ev, self.spec.ota.staging_region, image.data, phase="write")
            if not staged.analysis.ok:
                raise self._fail(
                    ev,
                    "write",
                    "the image was stored wrong already in the scratch area "
                    "(so the copy only carried it on): " + staged.analysis.summary(),
                )
            raise self._fail(
                ev,
                "copy",
                "the app slot differs from the image although the scratch copy is "
                "right: " + app.analysis.summary(),
            )
        if not at_entry:
            ev.fault = self._fault_info(regs["pc"])
            where = self.spec.layout().locate(regs["pc"]).region if self._in_flash(regs["pc"]) else None
            crcs = crc_sentences(self, image, ev, None, {app.name: (app.base, app.actual)})
            raise self._fail(
                ev,
                "jump",
                f"the core never reached the app's reset handler 0x{entry:08X}; "
                f"it is at PC=0x{regs['pc']:08X}"
                + (f" (in {where})" if where else "")
                + f", state {ev.fault.state}"
                + "".join(f"; {s}" for s in [*left_over_state(self, image), *crcs]),
            )
        assert ev.jump is not None
        if not ev.jump.ok:
            raise self._fail(
                ev,
                "jump",
                "the jump contract does not hold at the app's first instruction: " + ev.jump.summary(),
            )
        self.installed = self.staged = image
        return state

    def update_through_power_cut(
        self, image: Image, ev: Evidence, *, transport: str, cut: dict, previous: Image | None = None
    ) -> None:
        """Cut power at a flash operation during an update and require recovery without
        asking again (:func:`rig.hil_power.update_through_power_cut`)."""
        from rig.hil_power import update_through_power_cut

        update_through_power_cut(self, image, ev, transport=transport, cut=cut, previous=previous)

    def reset_and_refuse(
        self,
        ev: Evidence,
        *,
        wait: float,
        reset: bool = True,
        give_up_if: Callable[[], str | None] | None = None,
    ) -> SessionResult:
        """Reset the board (unless ``reset`` is false) with the OTA server listening and wait
        up to ``wait`` s for it to ask for an update. Whatever it asks for is refused: the
        server announces an image larger than the whole flash, which a bootloader refuses
        before erasing anything (docs/protocol.md), so nothing is installed. The session's phase says how far the
        board got: ``connect`` (it never connected), ``request`` (no ``REQ_FW``), later
        (it asked for an update). ``give_up_if`` (see :meth:`OtaServer.wait_session`) ends the
        wait early when the board cannot ask any more."""
        refuse = f"wrong-size:size={self.spec.flash.size + 1}"
        t0 = time.monotonic()
        with self.ota_server(b"\xff" * 8, policy=refuse) as server:
            if reset:
                self.reset_board()
            result = server.wait_session(timeout=wait, give_up_if=give_up_if)
        self._timed(ev, "boot", t0)
        ev.transcript = result.to_dict()
        return result

    def boot_damaged_app(
        self, image: Image, ev: Evidence, *, offset: int, transport: str = "eth", wait: float = 8.0
    ) -> SessionResult:
        """Damage one byte of the installed app and reset: the bootloader must fall back to
        asking for an update (:func:`rig.hil_damaged.boot_damaged_app`). Returns that session."""
        from rig.hil_damaged import boot_damaged_app

        return boot_damaged_app(self, image, ev, offset=offset, transport=transport, wait=wait)

    def expect_refused(self, result: SessionResult, ev: Evidence, fault: str) -> None:
        """A faulty transfer must not be acknowledged (phase ``transfer``)."""
        if result.ok:
            raise self._fail(
                ev,
                "transfer",
                f"the board acknowledged a faulty transfer ({fault}); it must "
                "refuse it (NACK) and keep the old application",
            )

    def old_app_survives(self, old: Image, ev: Evidence, *, transport: str) -> None:
        """After a failed update: the old app is intact in its slot and still boots once the
        update request is withdrawn (phase ``copy`` / ``app``)."""
        check = self.check_region(ev, self.spec.ota.app_region, old.data, phase="copy")
        if not check.analysis.ok:
            raise self._fail(
                ev, "copy", "a failed update damaged the old application: " + check.analysis.summary()
            )
        self.trigger.withdraw(self, transport, old)
        hdr = app_header(old)
        self.clear_breakpoint()
        mark = self.console.mark()
        self.reset_board()
        if hdr is not None:
            self.expect_app(ev, hdr.banner, since=mark)

    def expect_app(
        self,
        ev: Evidence,
        pattern: str,
        *,
        timeout: float = 20.0,
        since: int | None = None,
        settle: float = 0.0,
    ) -> str:
        """Resume the core and wait for the app's banner on the console (phase ``app``).

        With ``settle`` > 0 the app must then keep running without a reset or its banner
        again — a watchdog the bootloader left running resets it (the thread's "Is in your code
        used IWDG or WWDG?") — for the board time the IWDG's settings need, at most ``settle``
        board seconds (:mod:`rig.app_settle`).
        """
        mark = self.console.mark() if since is None else since
        self.probe.resume()
        try:
            m = self.console.expect(pattern, timeout=timeout, since=mark, what="the application's banner")
            if settle > 0:
                after = mark + len(self.console.text(mark)[: m.end()].encode("utf-8", errors="replace"))
                w = watch_restart(self.probe, self.console, pattern, after, settle, self.spec.hse_hz)
                ev.notes.append(
                    f"app watched {w.board_seconds:.2f} s of {w.clock} time ({w.wall_seconds:.2f} s wall)"
                )
                if w.restarted:
                    raise self._fail(
                        ev,
                        "app",
                        f"the application restarted within {w.board_seconds:.2f} s of {w.clock} "
                        f"time after its banner ({w.restarted}): something resets it (a watchdog "
                        "left running by the bootloader? an early fault?)",
                    )
        except ConsoleError as exc:
            raise self._fail(ev, "app", str(exc) + self.console_silence_hint(mark)) from exc
        finally:
            ev.uart = self.console.text()[-20000:]
        return m.group(0)

    def update(
        self,
        image: Image,
        ev: Evidence,
        *,
        transport: str,
        policy: str = "natural",
        previous: Image | None = None,
        banner: str | None = None,
        capture: bool = False,
    ) -> None:
        """The whole happy path: (pre-install ``previous``), OTA ``image``, stop at its reset
        handler, check flash and the jump contract, resume and wait for its banner."""
        if previous is not None:
            t0 = time.monotonic()
            self.install_app_direct(previous, transport)
            self._timed(ev, "prepare", t0)
        prior = self.installed
        ev.scenario.setdefault("image_version", getattr(app_header(image), "version", None))
        mark = self.console.mark()
        self.run_update(image, ev, transport=transport, policy=policy, capture=capture)
        self.await_app_entry(image, ev, previous=prior)
        hdr = app_header(image)
        pattern = banner or (hdr.banner if hdr else None)
        if pattern:
            t0 = time.monotonic()
            self.expect_app(ev, pattern, since=mark, settle=APP_SETTLE)
            self._timed(ev, "app", t0)
        else:
            self.probe.resume()

    def _analyse_capture(self, pcap: str, peer: str | None, port: int) -> dict:
        """What the pcap of a session with ``peer`` shows about its TCP segments (for the
        report and tests)."""
        from rig.capture import analyze_pcap

        client = int(peer.rsplit(":", 1)[1]) if peer else None
        try:
            analysis = analyze_pcap(pcap, port, client_port=client)
        except Exception as exc:
            return {"pcap": pcap, "error": f"cannot analyse the capture: {exc}"}
        return {"pcap": pcap, "summary": analysis.summary(), "analysis": analysis.to_dict()}

    # -- internals -------------------------------------------------------------------------------
    def _in_flash(self, address: int) -> bool:
        flash = self.spec.flash
        return flash.base <= address < flash.base + flash.size

    def _fault_info(self, pc: int) -> FaultInfo:
        return read_fault_info(self.probe, pc)


with_phases(Bench)  # a probe error in a step fails its phase (rig/hil_phases.STEP_PHASES)


APP_HEADER_OFFSET = 0x200
APP_HEADER_MAGIC = 0x4841544F


@dataclass(frozen=True)
class AppHeader:
    """The reference apps' header at image offset 0x200 (firmware/include/app_header.h)."""

    version: int
    image_size: int
    link_address: int
    build_id: str

    @property
    def banner(self) -> str:
        """Regex of the line the app prints first."""
        return rf"APP v{self.version} build {re.escape(self.build_id)}"


def app_header(image: Image) -> AppHeader | None:
    """Parse the reference app header; None for images without one (e.g. a user's own app)."""
    off = APP_HEADER_OFFSET
    if image.size < off + 32:
        return None
    magic, hver, version, size, link = struct.unpack_from("<5I", image.data, off)
    if magic != APP_HEADER_MAGIC or hver != 1:
        return None
    build = image.data[off + 20 : off + 32].split(b"\0")[0].decode("ascii", errors="replace")
    return AppHeader(version=version, image_size=size, link_address=link, build_id=build)


def previous_for(images: Sequence[Image], new: Image) -> Image:
    """A different image to pre-install before updating to ``new`` (the largest that differs)."""
    others = [i for i in images if i.data != new.data]
    return max(others, key=lambda i: i.size)
