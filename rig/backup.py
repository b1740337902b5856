"""Never lose the user's flash: a backup before the rig's first write, put back on request.

Before a real-board run writes anything, :func:`take_backup` reads the whole flash twice
(the two SHA-256 must agree, else the readback is not trusted and the run stops) and the
option bytes, and writes them with the chip's identity (96-bit unique ID, probe UID, DEV_ID /
REV_ID) into ``<report dir>/backups/<UID>-<date>/``: ``flash.bin`` and ``backup.json``.
:func:`restore_backup` (``rig restore DIR``, ``--restore-after``) puts the option bytes back
(never RDP: a read-protected chip is refused), then the flash (pyOCD's sector erase with
smart flash: sectors that already match are skipped), and verifies the whole flash against
the backup's SHA-256. :func:`boot_check` resets the board and waits for it to print its
banner: after a run, the board must still boot (style-and-reliability §2.9); if it prints
nothing, the registers say which U(S)ART its firmware drives (rig/console_hint.py).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rig.board import BoardSpec
from rig.board_wiring import DEFAULT_CONSOLE_UART
from rig.errors import ConfigError, ConsoleError, ProbeError, RigError
from rig.probe import FLASH_OPTCR, FLASH_OPTCR1, OptionBytes, Probe, Progress

FORMAT = "ota-rig flash backup 1"
UNIQUE_ID = 0x1FF0F420
FLASH_OPTKEYR = 0x40023C08
FLASH_SR = 0x40023C0C
SR_BSY = 1 << 16
OPTKEY1, OPTKEY2 = 0x08192A3B, 0x4C5D6E7F
OPTCR_OPTLOCK, OPTCR_OPTSTRT = 1 << 0, 1 << 1
OPTCR_RDP = 0xFF << 8
#: seconds programming the option bytes may take (RM0410: well under a second; the twin: at once)
OPTION_BYTES_TIMEOUT = 5.0


@dataclass(frozen=True)
class Backup:
    """A backup folder: ``flash.bin`` and ``backup.json``."""

    directory: Path
    meta: dict[str, Any]

    @property
    def flash_path(self) -> Path:
        return self.directory / "flash.bin"

    @property
    def base(self) -> int:
        return int(self.meta["flash_base"], 16)

    @property
    def size(self) -> int:
        return int(self.meta["flash_size"])

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])

    @property
    def option_bytes(self) -> OptionBytes:
        return OptionBytes(int(self.meta["optcr"], 16), int(self.meta["optcr1"], 16))

    @property
    def unique_id(self) -> str:
        return str(self.meta["unique_id"])

    def data(self) -> bytes:
        """The flash image, checked against the SHA-256 it was saved with."""
        data = self.flash_path.read_bytes()
        if len(data) != self.size or hashlib.sha256(data).hexdigest() != self.sha256:
            raise ConfigError(
                f"{self.flash_path}: {len(data)} bytes with SHA-256 {hashlib.sha256(data).hexdigest()[:16]}…, "
                f"but the backup recorded {self.size} bytes with {self.sha256[:16]}…: the file was changed",
                hint="use an intact backup",
            )
        return data

    @classmethod
    def load(cls, path: str | Path) -> Backup:
        """A backup from its folder, its ``flash.bin`` or its ``backup.json``."""
        path = Path(path)
        directory = path if path.is_dir() else path.parent
        meta_path = directory / "backup.json"
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"{path}: no backup.json beside it", hint="give the backup folder the rig wrote"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{meta_path}: not a readable backup ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ConfigError(f"{meta_path}: not an ota-rig flash backup (format {FORMAT!r} expected)")
        return cls(directory, meta)


def read_unique_id(probe: Probe) -> str:
    """The chip's 96-bit unique ID (RM0410 §45.1) as 24 hex digits."""
    return "".join(f"{probe.read32(UNIQUE_ID + 4 * i):08X}" for i in range(3))


def _read_twice(probe: Probe, base: int, size: int, progress: Progress | None) -> bytes:
    first = probe.read(base, size, progress=progress)
    second = probe.read(base, size, progress=progress)
    a, b = hashlib.sha256(first).hexdigest(), hashlib.sha256(second).hexdigest()
    if a != b:
        differ = sum(x != y for x, y in zip(first, second, strict=True))
        raise ProbeError(
            f"two readbacks of the flash 0x{base:08X}+{size} differ ({differ} bytes, SHA-256 "
            f"{a[:16]}… and {b[:16]}…): the readback cannot be trusted, so nothing was written",
            hint="check the probe cable and the SWD clock (targets.nucleo.swd_frequency), then retry",
        )
    return first


def take_backup(
    probe: Probe,
    spec: BoardSpec,
    root: Path,
    *,
    probe_uid: str,
    progress: Progress | None = None,
    extra: dict[str, Any] | None = None,
) -> Backup:
    """Read the whole flash (twice, the SHA-256 must agree) and the option bytes into a new
    folder under ``root``. Refuses a read-protected chip (RDP level ≥ 1) like the probe
    fixture does; raises ProbeError if the readback cannot be trusted."""
    ob = probe.option_bytes()
    if ob.rdp_level != 0:
        raise ProbeError(
            f"the chip is read-protected (RDP level {ob.rdp_level}): its flash cannot be read, "
            "so no backup can be taken and nothing is written",
            hint="the rig never changes RDP; unlock it yourself if the board may be wiped",
        )
    flash = spec.flash
    data = _read_twice(probe, flash.base, flash.size, progress)
    if probe.option_bytes() != ob:
        raise ProbeError("the option bytes changed between two reads: the backup cannot be trusted")
    uid = read_unique_id(probe)
    stamp = datetime.datetime.now(datetime.UTC)
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", probe_uid or "probe")[:60]
    directory = root / f"{safe}-{stamp.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while directory.exists():
        n += 1
        directory = root / f"{safe}-{stamp.strftime('%Y%m%d-%H%M%S')}-{n}"
    directory.mkdir(parents=True)
    meta: dict[str, Any] = {
        "format": FORMAT,
        "date": stamp.isoformat(timespec="seconds"),
        "probe_uid": probe_uid,
        "pyocd_target": probe.target_name,
        "board": spec.name,
        "board_file": spec.source,
        "unique_id": uid,
        "flash_base": f"0x{flash.base:08X}",
        "flash_size": flash.size,
        "sha256": hashlib.sha256(data).hexdigest(),
        "optcr": f"0x{ob.optcr:08X}",
        "optcr1": f"0x{ob.optcr1:08X}",
        "option_bytes": ob.to_dict(),
        **(extra or {}),
    }
    (directory / "flash.bin").write_bytes(data)
    (directory / "backup.json").write_text(json.dumps(meta, indent=2) + "\n")
    return Backup(directory, meta)


class RestoreMismatch(ProbeError):
    """The flash read back after a restore is not the backup."""


@dataclass
class RestoreResult:
    """What :func:`restore_backup` did."""

    backup: Path
    option_bytes_written: bool = False
    seconds: float = 0.0
    sha256: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        ob = "option bytes written back, " if self.option_bytes_written else "option bytes unchanged, "
        return f"restored {self.backup}: {ob}flash verified (SHA-256 {self.sha256[:16]}…) in {self.seconds:.1f} s"


def _program_option_bytes(probe: Probe, wanted: OptionBytes, current: OptionBytes) -> None:
    """Write OPTCR1 and OPTCR (RDP kept as it is: never changed) and start the programming
    (FLASH_OPTKEYR unlock, OPTSTRT, wait for BSY, lock again)."""
    optcr = (wanted.optcr & ~(OPTCR_OPTLOCK | OPTCR_OPTSTRT | OPTCR_RDP)) | (current.optcr & OPTCR_RDP)
    probe.write32(FLASH_OPTKEYR, OPTKEY1)
    probe.write32(FLASH_OPTKEYR, OPTKEY2)
    if probe.read32(FLASH_OPTCR) & OPTCR_OPTLOCK:
        raise ProbeError(
            "FLASH_OPTCR stayed locked after the OPTKEYR sequence: the option bytes were not written"
        )
    probe.write32(FLASH_OPTCR1, wanted.optcr1)
    probe.write32(FLASH_OPTCR, optcr)
    probe.write32(FLASH_OPTCR, optcr | OPTCR_OPTSTRT)
    deadline = time.monotonic() + OPTION_BYTES_TIMEOUT
    while probe.read32(FLASH_SR) & SR_BSY:
        if time.monotonic() > deadline:
            raise ProbeError(f"programming the option bytes did not finish within {OPTION_BYTES_TIMEOUT:g} s")
        time.sleep(0.01)
    probe.write32(FLASH_OPTCR, optcr | OPTCR_OPTLOCK)


def restore_backup(
    probe: Probe,
    backup: Backup,
    *,
    progress: Progress | None = None,
    force: bool = False,
) -> RestoreResult:
    """Put ``backup`` back on the board ``probe`` is open on and verify it: the option bytes
    (if they differ, then a reset so they take effect), the flash (sector erase, sectors
    that already match skipped), and a readback of the whole flash compared by SHA-256.

    Refuses a read-protected chip and, unless ``force``, a chip whose unique ID is not the
    backup's (the backup of one board is never written onto another)."""
    t0 = time.monotonic()
    result = RestoreResult(backup.directory)
    data = backup.data()
    uid = read_unique_id(probe)
    if uid != backup.unique_id and not force:
        raise ConfigError(
            f"the backup {backup.directory} was taken from the chip {backup.unique_id}; this board's "
            f"chip is {uid}: it is not put onto another board",
            hint="connect the board it came from (or pass --force if this is on purpose)",
        )
    current = probe.option_bytes()
    if current.rdp_level != 0:
        raise ProbeError(
            f"the chip is read-protected (RDP level {current.rdp_level}): the rig neither writes "
            "nor unlocks it",
            hint="the rig never changes RDP",
        )
    wanted = backup.option_bytes
    if (current.optcr & ~0x3, current.optcr1) != (wanted.optcr & ~0x3, wanted.optcr1):
        probe.reset(halt=True)
        _program_option_bytes(probe, wanted, current)
        probe.reset(halt=True)  # the new option bytes take effect at reset
        probe.reconnect()  # and pyOCD sees the bank mode they select
        after = probe.option_bytes()
        if (after.optcr & ~0x3, after.optcr1) != (wanted.optcr & ~0x3, wanted.optcr1):
            raise ProbeError(
                f"the option bytes read OPTCR=0x{after.optcr:08X} OPTCR1=0x{after.optcr1:08X} after "
                f"programming, not the backup's OPTCR=0x{wanted.optcr:08X} OPTCR1=0x{wanted.optcr1:08X}"
            )
        result.option_bytes_written = True
    probe.reset(halt=True)
    probe.flash(backup.base, data, progress=progress)
    readback = probe.read(backup.base, backup.size, progress=progress)
    result.sha256 = hashlib.sha256(readback).hexdigest()
    if result.sha256 != backup.sha256:
        first = next(i for i, (x, y) in enumerate(zip(readback, data, strict=True)) if x != y)
        differ = sum(x != y for x, y in zip(readback, data, strict=True))
        raise RestoreMismatch(
            f"the flash differs from the backup after the restore: {differ} bytes, the first at "
            f"0x{backup.base + first:08X}",
            hint=f"retry `rig restore {backup.directory}`; check the probe and the board's power",
        )
    result.seconds = time.monotonic() - t0
    return result


@dataclass
class BootCheck:
    """The board after the run: did it print its banner after a reset?"""

    ok: bool
    expected: str
    seconds: float
    line: str = ""
    tail: str = ""
    #: "; " and why the console stayed silent, as far as the registers tell (rig/console_hint.py)
    hint: str = ""

    def summary(self) -> str:
        if self.ok:
            return f"the board boots: {self.line!r} {self.seconds:.1f} s after reset"
        tail = self.tail.strip().splitlines()[-3:] if self.tail.strip() else []
        said = f"; it printed: {' | '.join(tail)}" if tail else "; it printed nothing"
        return (
            f"the board does not boot to {self.expected} within {self.seconds:.0f} s after reset{said}"
            + self.hint
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "expected": self.expected,
            "seconds": round(self.seconds, 2),
            "line": self.line,
        }


def boot_check(
    probe: Probe,
    console: Any,
    *,
    banner: str | None,
    timeout: float = 15.0,
    console_uart: int = DEFAULT_CONSOLE_UART,
) -> BootCheck:
    """Reset the board, let it run and wait up to ``timeout`` s for ``banner`` (a regex; None:
    any complete line) on the console; if it does not come, the check's ``hint`` says what the
    registers tell about the console's U(S)ART ``console_uart`` (the board file's ``console:``)."""
    pattern = banner or r"[^\r\n]*\S[^\r\n]*\r?\n"
    expected = f"/{banner}/" if banner else "any line of output"
    mark = console.mark()
    t0 = time.monotonic()
    try:
        probe.reset()
        probe.resume()
        m = console.expect(pattern, timeout=timeout, since=mark, what="the board's banner after the run")
    except (ConsoleError, RigError):
        from rig.hil_failure import console_silence_hint

        seconds, tail = time.monotonic() - t0, console.text(mark)[-2000:]
        return BootCheck(
            False, expected, seconds, tail=tail, hint=console_silence_hint(probe, None, console_uart, tail)
        )
    return BootCheck(True, expected, time.monotonic() - t0, line=m.group(0).strip())
