"""The debug-probe layer: one stock pyOCD session on one STM32F767 board.

The same code drives an ST-LINK chosen by its unique ID and the twin's ``remote:`` probe;
nothing here knows which one it talks to. Safety rules a lab expects are built in:
an exact target name is always passed (the board file's ``pyocd_target``, ``stm32f767zi``:
the NUCLEO's board id maps to a pack target pyOCD does not ship), ``auto_unlock`` is off
(pyOCD would otherwise mass-erase a read-protected chip), erases are per sector and
unwritten parts of an erased sector are kept, and a read-protected chip is refused instead
of touched.
"""

from __future__ import annotations

import logging
import shlex
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from rig.errors import ProbeError

LOG = logging.getLogger(__name__)

#: the pyOCD target when the board file names none
TARGET = "stm32f767zi"

DBGMCU_APB1_FZ = 0xE0042008
DBG_WWDG_STOP = 1 << 11
DBG_IWDG_STOP = 1 << 12
FLASH_OPTCR = 0x40023C14
FLASH_OPTCR1 = 0x40023C18
OPTCR_NDBANK = 1 << 29

#: the longest :meth:`Probe.close` waits for pyOCD to close its session, in seconds
CLOSE_TIMEOUT = 15.0

#: Progress callback: (done_bytes, total_bytes, what)
Progress = Callable[[int, int, str], None]


def pyocd_command(*args: str) -> str:
    """The pyOCD command line of this environment (``python -m pyocd``), for messages: a
    ``pyocd`` found on PATH may belong to another installation, or not exist."""
    return shlex.join([sys.executable, "-m", "pyocd", *args])


@dataclass(frozen=True)
class OptionBytes:
    """The option bytes that decide how a bootloader test must treat the chip."""

    optcr: int
    optcr1: int

    @property
    def dual_bank(self) -> bool:
        return not (self.optcr & OPTCR_NDBANK)

    @property
    def boot_add0(self) -> int:
        """BOOT_ADD0 field (address >> 14)."""
        return self.optcr1 & 0xFFFF

    @property
    def boot_address0(self) -> int:
        return self.boot_add0 << 14

    @property
    def rdp(self) -> int:
        return (self.optcr >> 8) & 0xFF

    @property
    def rdp_level(self) -> int:
        if self.rdp == 0xAA:
            return 0
        if self.rdp == 0xCC:
            return 2
        return 1

    def to_dict(self) -> dict[str, object]:
        return {
            "optcr": f"0x{self.optcr:08X}",
            "optcr1": f"0x{self.optcr1:08X}",
            "dual_bank": self.dual_bank,
            "boot_add0": f"0x{self.boot_add0:04X}",
            "rdp_level": self.rdp_level,
        }


@dataclass(frozen=True)
class ProbeInfo:
    uid: str
    description: str


def list_probes() -> list[ProbeInfo]:
    """Every debug probe pyOCD sees on this host (USB; remote probes are never listed)."""
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    return [ProbeInfo(p.unique_id, p.description) for p in probes]


def _listing(probes: Sequence[ProbeInfo]) -> str:
    return ", ".join(f"{p.uid} ({p.description})" if p.description else p.uid for p in probes)


def select_probe(uid: str | None, probes: Sequence[ProbeInfo], *, source: str = "--probe-uid") -> ProbeInfo:
    """The probe to drive: the one whose unique ID is ``uid`` (exact, case-insensitive: a
    prefix never matches), or, with no ``uid``, the only probe connected.

    ``source`` says where ``uid`` came from (``--probe-uid``, ``OTA_RIG_PROBE_UID``, the
    board file) so the error names what to change. Raises a ProbeError that lists the
    connected probes (or says none is) when there is no single answer.
    """
    if not probes:
        asked = f" (wanted {uid}, from {source})" if uid else ""
        raise ProbeError(
            f"no debug probe is connected to this host{asked}",
            hint=f"plug in the NUCLEO's ST-LINK USB and check that `{pyocd_command('list')}` shows it "
            "(udev rules in docs/lab.md), or run on the twin with --board twin",
        )
    if uid is None:
        if len(probes) > 1:
            raise ProbeError(
                f"{len(probes)} probes are connected ({_listing(probes)}) and none was chosen",
                hint="pass --probe-uid (or set OTA_RIG_PROBE_UID or targets.nucleo.probe_uid) to "
                "the exact unique ID of the board under test",
            )
        return probes[0]
    exact = [p for p in probes if p.uid.lower() == uid.lower()]
    if not exact:
        raise ProbeError(
            f"the probe {uid!r} (from {source}) is not connected; connected: {_listing(probes)}",
            hint=f"copy the exact ID from `{pyocd_command('list')}` into {source}",
        )
    return exact[0]


def _find_probe(uid: str | None):  # -> pyocd DebugProbe
    """Resolve ``uid`` to exactly one probe, or raise a ProbeError that says what to pass."""
    from pyocd.probe.aggregator import DebugProbeAggregator

    if uid and uid.startswith("remote:"):
        from rig.probe_remote import bound_remote_probe

        probe = DebugProbeAggregator.get_probe_with_id(uid)
        if probe is None:
            raise ProbeError(f"pyOCD cannot create a remote probe for {uid!r}", hint="use remote:HOST:PORT")
        return bound_remote_probe(probe)  # no request waits for ever on a server that is gone
    from pyocd.core.helpers import ConnectHelper

    probes = ConnectHelper.get_all_connected_probes(blocking=False, print_wait_message=False)
    chosen = select_probe(uid, [ProbeInfo(p.unique_id, p.description) for p in probes])
    return next(p for p in probes if p.unique_id == chosen.uid)


def _is_connection_error(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, (ConnectionError, socket.timeout)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


class Probe:
    """An open pyOCD session on one board.

    Use as a context manager; :meth:`close` is idempotent and never raises.
    """

    def __init__(
        self,
        uid: str | None,
        *,
        target: str = TARGET,
        connect_mode: str = "halt",
        frequency: int | None = None,
        connect_timeout: float = 10.0,
        freeze_watchdogs: bool = True,
    ) -> None:
        self.uid = uid
        #: pyOCD target name (board file ``targets.<kind>.pyocd_target``)
        self.target_name = target
        self.freeze_watchdogs = freeze_watchdogs
        self.connect_mode = connect_mode
        #: SWD clock in Hz (board file ``targets.nucleo.swd_frequency``; None: pyOCD's default)
        self.frequency = frequency
        self.connect_timeout = connect_timeout
        self._session = None

    # -- lifecycle -----------------------------------------------------------------------
    def open(self) -> Probe:
        from pyocd.core.session import Session

        if self._session is not None:
            return self
        probe = _find_probe(self.uid)
        options: dict[str, object] = {
            "target_override": self.target_name,
            "connect_mode": self.connect_mode,
            "auto_unlock": False,
            "chip_erase": "sector",
            "keep_unwritten": True,
            "smart_flash": True,
            "hide_programming_progress": True,
            "resume_on_disconnect": True,
            "no_config": True,
        }
        if self.frequency:
            options["frequency"] = self.frequency
        from pyocd.core.exceptions import TargetSupportError

        try:
            session = Session(probe, options=options)
        except TargetSupportError as exc:  # raised while the session builds its board
            raise ProbeError(
                f"pyOCD has no target {self.target_name!r}: {exc}",
                hint="set pyocd_target in the board file's targets section to a name from "
                f"`{pyocd_command('list', '--targets')}` (stm32f767zi for the NUCLEO-F767ZI)",
            ) from exc
        try:
            session.open()
        except Exception as exc:  # pyOCD raises many types; name the fix
            try:
                session.close()
            except Exception:
                pass
            if self.uid and self.uid.startswith("remote:") and _is_connection_error(exc):
                raise ProbeError(
                    f"cannot reach the remote probe {self.uid}: {exc}",
                    hint="is the board (twin or pyOCD's probe server) running? take the address "
                    "from its start-up line",
                ) from exc
            raise ProbeError(
                f"pyOCD could not connect to {self.uid or probe.unique_id} as {self.target_name}: {exc}",
                hint="check the probe cable and board power; a read-protected chip "
                "must be unlocked by hand, the rig never does it",
            ) from exc
        self._session = session
        if self.freeze_watchdogs:
            self._freeze_watchdogs()
        return self

    def _freeze_watchdogs(self) -> None:
        """Stop the IWDG and WWDG while the core is halted (DBGMCU_APB1_FZ; reset only by
        power-on, so this is redone on every connect, e.g. after a power cut)."""
        try:
            fz = self.target.read32(DBGMCU_APB1_FZ)
            self.target.write32(DBGMCU_APB1_FZ, fz | DBG_IWDG_STOP | DBG_WWDG_STOP)
        except Exception as exc:
            LOG.warning("could not set DBGMCU_APB1_FZ (watchdogs keep counting while halted): %s", exc)

    def watchdogs_frozen(self) -> bool:
        """True if both watchdogs stop while the core is halted (DBGMCU_APB1_FZ)."""
        fz = self.read32(DBGMCU_APB1_FZ)
        return fz & (DBG_IWDG_STOP | DBG_WWDG_STOP) == DBG_IWDG_STOP | DBG_WWDG_STOP

    def close(self) -> None:
        """Close the session in bounded time (:data:`CLOSE_TIMEOUT`), whatever died first
        (the board, the probe server, the USB link): pyOCD's close talks to the probe, and
        a teardown must never wait for ever on it. Never raises."""
        session, self._session = self._session, None
        if session is None:
            return

        def close_session() -> None:
            try:
                session.close()
            except Exception as exc:
                LOG.warning("closing the pyOCD session failed: %s", exc)

        closer = threading.Thread(target=close_session, name="probe-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT)
        if closer.is_alive():
            LOG.warning(
                "closing the pyOCD session of %s did not finish within %g s; left to finish on its own",
                self.uid,
                CLOSE_TIMEOUT,
            )

    def reconnect(self) -> Probe:
        """Close and re-open the session — after the target lost power, pyOCD's cached view
        of the core (breakpoints, FPB enable, vector catch) is stale, as on a real board."""
        self.close()
        return self.open()

    def __enter__(self) -> Probe:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def session(self):
        if self._session is None:
            raise ProbeError("the probe is not open", hint="call Probe.open() or use it in a with block")
        return self._session

    @property
    def target(self):
        return self.session.board.target

    # -- chip state ----------------------------------------------------------------------
    def option_bytes(self) -> OptionBytes:
        return OptionBytes(self.read32(FLASH_OPTCR), self.read32(FLASH_OPTCR1))

    def check_option_bytes(self, *, dual_bank: bool, boot_address0: int) -> OptionBytes:
        """Fail fast when the chip is not configured as the board file says."""
        ob = self.option_bytes()
        if ob.rdp_level != 0:
            raise ProbeError(
                f"the chip is read-protected (RDP level {ob.rdp_level}, OPTCR=0x{ob.optcr:08X}); "
                "reading or writing flash would fail and unlocking erases everything",
                hint="unlock it yourself with STM32CubeProgrammer if this board may be wiped; "
                "the rig never changes RDP",
            )
        problems = []
        if ob.dual_bank != dual_bank:
            problems.append(
                f"nDBANK says {'dual' if ob.dual_bank else 'single'}-bank but the board file "
                f"expects {'dual' if dual_bank else 'single'}-bank"
            )
        if ob.boot_address0 != boot_address0:
            problems.append(
                f"BOOT_ADD0 boots from 0x{ob.boot_address0:08X} but the board file expects "
                f"0x{boot_address0:08X}"
            )
        if problems:
            raise ProbeError(
                "option bytes do not match the board file: " + "; ".join(problems),
                hint="fix the option bytes with STM32CubeProgrammer or the board file "
                "(option_bytes: section)",
            )
        return ob

    # -- memory --------------------------------------------------------------------------
    def read32(self, address: int) -> int:
        return self.target.read32(address)

    def write32(self, address: int, value: int) -> None:
        self.target.write32(address, value)

    def read_words(self, addresses: Iterable[int]) -> dict[int, int]:
        return {a: self.target.read32(a) for a in addresses}

    def read(
        self, address: int, length: int, *, progress: Progress | None = None, chunk: int = 64 * 1024
    ) -> bytes:
        """Read ``length`` bytes from ``address`` (flash, RAM or registers)."""
        out = bytearray()
        done = 0
        while done < length:
            n = min(chunk, length - done)
            addr = address + done
            if addr % 4 == 0 and n % 4 == 0:
                words = self.target.read_memory_block32(addr, n // 4)
                out += b"".join(w.to_bytes(4, "little") for w in words)
            else:
                out += bytes(self.target.read_memory_block8(addr, n))
            done += n
            if progress:
                progress(done, length, f"read 0x{address:08X}")
        return bytes(out)

    def write_ram(self, address: int, data: bytes) -> None:
        self.target.write_memory_block8(address, list(data))

    def flash(self, address: int, data: bytes, *, progress: Progress | None = None) -> None:
        """Program ``data`` at ``address`` with pyOCD's flash algorithm (sector erase,
        unwritten parts of erased sectors kept)."""
        from pyocd.flash.loader import MemoryLoader

        total = len(data)

        def _cb(fraction: float) -> None:
            if progress:
                progress(int(fraction * total), total, f"flash 0x{address:08X}")

        loader = MemoryLoader(
            self.session, progress=_cb, chip_erase="sector", smart_flash=True, keep_unwritten=True
        )
        loader.add_data(address, bytes(data))
        try:
            loader.commit()
        except Exception as exc:
            raise ProbeError(
                f"programming {total} bytes at 0x{address:08X} failed: {exc}",
                hint="see the pyOCD log above; check the address is inside flash "
                "and the sector is not write-protected",
            ) from exc

    # -- core control --------------------------------------------------------------------
    def halt(self) -> None:
        self.target.halt()

    def resume(self) -> None:
        self.target.resume()

    def is_halted(self) -> bool:
        from pyocd.core.target import Target

        return self.target.get_state() == Target.State.HALTED

    def state(self) -> str:
        return self.target.get_state().name.lower()

    def reset(self, *, halt: bool = False) -> None:
        """System reset (SYSRESETREQ); with ``halt`` the core stops at the reset vector."""
        if halt:
            self.target.reset_and_halt()
        else:
            self.target.reset()

    def registers(self, names: Sequence[str]) -> dict[str, int]:
        values = self.target.read_core_registers_raw(list(names))
        return dict(zip(names, values, strict=True))

    def set_breakpoint(self, address: int) -> None:
        from pyocd.core.target import Target

        if not self.target.set_breakpoint(address, Target.BreakpointType.HW):
            raise ProbeError(
                f"no free hardware breakpoint for 0x{address:08X}",
                hint="remove other breakpoints; the FPB has 8 comparators",
            )
        # pyOCD writes breakpoints lazily (on resume/step); a reset must already see it.
        self.target.selected_core.bp_manager.flush()

    def remove_breakpoint(self, address: int) -> None:
        self.target.remove_breakpoint(address)
        self.target.selected_core.bp_manager.flush()

    def wait_halted(self, timeout: float, *, poll: float = 0.02) -> bool:
        """Wait until the core halts (breakpoint, fault with vector catch...). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_halted():
                return True
            time.sleep(poll)
        return self.is_halted()
