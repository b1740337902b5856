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

import contextlib
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from rig.errors import ProbeError
from rig.probe_discovery import ProbeInfo as ProbeInfo
from rig.probe_discovery import _find_probe, _is_connection_error
from rig.probe_discovery import list_probes as list_probes
from rig.probe_discovery import select_probe as select_probe
from rig.probe_errors import DHCSR, ProbeAccessError, describe_dhcsr, is_probe_failure, state_hint
from rig.probe_options import PINNED_OPTIONS, RIG_DEFAULT_OPTIONS, pyocd_command

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

    def write_protected(self, sector_index: int) -> bool:
        """True if nWRP protects the sector (the HAL's index: 0..11 single-bank, 0..23
        dual-bank, where nWRP[i] covers sectors 2i and 2i+1, RM0410 / HAL flash_ex.h)."""
        bit = sector_index // 2 if self.dual_bank else sector_index
        return not (self.optcr >> (16 + bit)) & 1

    def to_dict(self) -> dict[str, object]:
        return {
            "optcr": f"0x{self.optcr:08X}",
            "optcr1": f"0x{self.optcr1:08X}",
            "dual_bank": self.dual_bank,
            "boot_add0": f"0x{self.boot_add0:04X}",
            "rdp_level": self.rdp_level,
        }


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
        options: Mapping[str, object] | None = None,
        config_file: str | None = None,
    ) -> None:
        self.uid = uid
        #: the user's pyOCD session options (board file, then command line; checked with
        #: :func:`check_pyocd_option`), over ``config_file`` and the rig's defaults
        self.options = dict(options or {})
        #: the user's pyocd.yaml (``targets.nucleo.pyocd_config``); None: no config file is read
        self.config_file = config_file
        #: progress of every flash and readback when the caller passes none (rig.progress)
        self.progress: Progress | None = None
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
        # Precedence (docs/board-file.md): pyOCD's defaults < the rig's defaults < the user's
        # pyocd.yaml (its probes: section first) < the board file (pyocd_target, swd_frequency,
        # pyocd_options) < --pyocd-option < the pinned safety options.
        options: dict[str, object] = {"target_override": self.target_name}
        if self.frequency:
            options["frequency"] = self.frequency
        options.update(self.options)
        if self.config_file:
            if not os.path.isfile(self.config_file):
                raise ProbeError(
                    f"the pyOCD config file {self.config_file} does not exist",
                    hint="fix targets.nucleo.pyocd_config in the board file",
                )
            options["config_file"] = self.config_file
        else:
            options["no_config"] = True  # never a stray pyocd.yaml in the working directory
        defaults = {**RIG_DEFAULT_OPTIONS, "connect_mode": self.connect_mode}
        from pyocd.core.exceptions import TargetSupportError

        try:
            # the pinned options as keyword arguments: pyOCD ranks them above everything
            session = Session(probe, options=options, option_defaults=defaults, **PINNED_OPTIONS)
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

    # -- access with context --------------------------------------------------------------
    @contextlib.contextmanager
    def _access(self, what: str, address: int | None = None, length: int | None = None) -> Iterator[None]:
        """Turn any pyOCD or socket error of one access into a :class:`ProbeAccessError` that
        names the access, its address and the core's state (reset, sleep, lockup, halted),
        so the report says what the rig was doing, never a bare pyOCD exception."""
        try:
            yield
        except ProbeError:
            raise
        except Exception as exc:
            if not is_probe_failure(exc):
                raise
            raise ProbeAccessError.of(self, what, exc, address=address, length=length) from exc

    def core_state(self) -> tuple[str, int | None]:
        """(words, DHCSR) of the core's state from DHCSR's sticky status bits: held in reset,
        locked up, sleeping, halted or running; DHCSR None if it cannot be read either."""
        try:
            dhcsr = int(self.target.read32(DHCSR))
        except Exception as exc:
            return f"the core's state cannot be read either (DHCSR 0x{DHCSR:08X}: {exc})", None
        return describe_dhcsr(dhcsr), dhcsr

    # -- memory --------------------------------------------------------------------------
    def read32(self, address: int) -> int:
        with self._access("reading", address, 4):
            return self.target.read32(address)

    def write32(self, address: int, value: int) -> None:
        with self._access(f"writing 0x{value:08X} to", address, 4):
            self.target.write32(address, value)

    def read_words(self, addresses: Iterable[int]) -> dict[int, int]:
        return {a: self.read32(a) for a in addresses}

    def read(
        self, address: int, length: int, *, progress: Progress | None = None, chunk: int = 64 * 1024
    ) -> bytes:
        """Read ``length`` bytes from ``address`` (flash, RAM or registers); ``progress``
        (or :attr:`progress`) hears of every chunk."""
        progress = progress or self.progress
        out = bytearray()
        done = 0
        while done < length:
            n = min(chunk, length - done)
            addr = address + done
            with self._access("reading", addr, n):
                words = self._read_block32(addr, n // 4) if addr % 4 == 0 and n % 4 == 0 else None
                if words is not None:
                    out += struct.pack(f"<{n // 4}I", *words)
                else:
                    out += bytes(self.target.read_memory_block8(addr, n))
            done += n
            if progress:
                progress(done, length, f"read 0x{address:08X}")
        return bytes(out)

    def _read_block32(self, address: int, count: int) -> Sequence[int] | None:
        """``count`` words through the core's memory AP, skipping pyOCD's software-breakpoint
        filter (a Python call per word: half the host time of a readback from the twin).
        None while one of pyOCD's providers holds a software breakpoint: the caller then
        reads bytes, whose filter puts the original instruction back (pyOCD's 32-bit filter
        looks for a breakpoint at ``address + i`` for word ``i``, so it misses them). The
        rig sets hardware breakpoints only; a session it shares may have set others."""
        core = self.target.selected_core
        ap, bpm = getattr(core, "ap", None), getattr(core, "bp_manager", None)
        if ap is None or bpm is None or _software_breakpoints(bpm):
            return None
        return ap.read_memory_block32(address, count)

    def write_ram(self, address: int, data: bytes) -> None:
        with self._access("writing", address, len(data)):
            if address % 4 == 0 and len(data) % 4 == 0:  # a quarter of the items on the wire
                self.target.write_memory_block32(address, list(struct.unpack(f"<{len(data) // 4}I", data)))
            else:
                self.target.write_memory_block8(address, list(data))

    def flash(
        self, address: int, data: bytes, *, progress: Progress | None = None, smart: bool = True
    ) -> None:
        """Program ``data`` at ``address`` with pyOCD's flash algorithm (sector erase,
        unwritten parts of erased sectors kept); ``progress`` (or :attr:`progress`) hears of it.
        ``smart=False``: the caller knows the sectors differ, so pyOCD does not read them first."""
        from pyocd.flash.loader import MemoryLoader

        progress = progress or self.progress
        total = len(data)

        def _cb(fraction: float) -> None:
            if progress:
                progress(int(fraction * total), total, f"flash 0x{address:08X}")

        loader = MemoryLoader(
            self.session, progress=_cb, chip_erase="sector", smart_flash=smart, keep_unwritten=True
        )
        loader.add_data(address, bytes(data))
        try:
            loader.commit()
        except Exception as exc:
            state, _ = self.core_state()
            raise ProbeAccessError(
                f"programming {total} bytes at 0x{address:08X} failed: {exc}; {state}",
                operation="programming",
                address=address,
                length=total,
                state=state,
                hint=state_hint(
                    state,
                    "see the pyOCD log above; check the address is inside flash "
                    "and the sector is not write-protected",
                ),
            ) from exc

    # -- core control --------------------------------------------------------------------
    def halt(self) -> None:
        with self._access("halting the core"):
            self.target.halt()

    def resume(self) -> None:
        with self._access("resuming the core"):
            self.target.resume()

    def is_halted(self) -> bool:
        from pyocd.core.target import Target

        with self._access("reading the core's state (DHCSR)", DHCSR, 4):
            return self.target.get_state() == Target.State.HALTED

    def state(self) -> str:
        with self._access("reading the core's state (DHCSR)", DHCSR, 4):
            return self.target.get_state().name.lower()

    def reset(self, *, halt: bool = False) -> None:
        """System reset (SYSRESETREQ); with ``halt`` the core stops at the reset vector."""
        with self._access("resetting the core" + (" and halting it" if halt else "")):
            if halt:
                self.target.reset_and_halt()
            else:
                self.target.reset()

    def registers(self, names: Sequence[str]) -> dict[str, int]:
        with self._access(f"reading core register(s) {', '.join(names)}"):
            values = self.target.read_core_registers_raw(list(names))
        return dict(zip(names, values, strict=True))

    def write_registers(self, values: Mapping[str, int]) -> None:
        """Write core registers (the core must be halted), in the order given."""
        with self._access(f"writing core register(s) {', '.join(values)}"):
            self.target.write_core_registers_raw(list(values), list(values.values()))

    def set_breakpoint(self, address: int) -> None:
        from pyocd.core.target import Target

        with self._access("setting a breakpoint at", address):
            if not self.target.set_breakpoint(address, Target.BreakpointType.HW):
                raise ProbeError(
                    f"no free hardware breakpoint for 0x{address:08X}",
                    hint="remove other breakpoints; the FPB has 8 comparators",
                )
            # pyOCD writes breakpoints lazily (on resume/step); a reset must already see it.
            self.target.selected_core.bp_manager.flush()

    def remove_breakpoint(self, address: int) -> None:
        with self._access("removing the breakpoint at", address):
            self.target.remove_breakpoint(address)
            self.target.selected_core.bp_manager.flush()

    def set_watchpoint(self, address: int, size: int = 4) -> None:
        """A DWT data watchpoint halting the core after a store to ``[address, address+size)``
        (``size`` 1, 2 or 4, ``address`` aligned to it)."""
        from pyocd.core.target import Target

        with self._access("setting a watchpoint at", address):
            if not self.target.set_watchpoint(address, size, Target.WatchpointType.WRITE):
                raise ProbeError(
                    f"no free DWT comparator for a watchpoint at 0x{address:08X}+{size}",
                    hint="remove other watchpoints; the Cortex-M7 DWT has 4 comparators",
                )

    def remove_watchpoint(self, address: int, size: int = 4) -> None:
        from pyocd.core.target import Target

        with self._access("removing the watchpoint at", address):
            self.target.remove_watchpoint(address, size, Target.WatchpointType.WRITE)

    def wait_halted(self, timeout: float, *, poll: float = 0.02) -> bool:
        """Wait until the core halts (breakpoint, fault with vector catch...). False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.is_halted():
                return True
            time.sleep(poll)
        return self.is_halted()


def _software_breakpoints(bp_manager: object) -> bool:
    """Whether a memory-filtering breakpoint provider of pyOCD's breakpoint manager holds a
    breakpoint (pyOCD has no public call for it; unknown internals count as yes)."""
    providers = getattr(bp_manager, "_providers", None)
    if not isinstance(providers, dict):
        return True
    for provider in providers.values():
        if getattr(provider, "do_filter_memory", True):
            held = getattr(provider, "_breakpoints", None)
            if not isinstance(held, dict) or held:
                return True
    return False
