"""Boot firmware/build images on the virtual board for the firmware tests.

Real parts only: ``python -m twin`` (unicorn running the Thumb-2 images), the PTY console
(rig.console), and the host OTA server (rig.ota.OtaServer) on real loopback TCP that the
twin's NAT forwards the firmware's 192.168.1.10:5000 to.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from fw_build import BUILD

from rig.bootcfg import BootConfig
from rig.console import Console
from rig.errors import OtaError
from rig.ota import OtaServer
from rig.targets.twin import TwinTarget, free_port, start_twin

APP_BASE = 0x0804_0000
SCRATCH_BASE = 0x0818_0000
CONFIG_BASE = 0x0802_0000


def image(name: str) -> Path:
    """Path of a built image (``bootloader``, ``bootloader-no-vtor``, ``app-v1-16k``...)."""
    path = BUILD / f"{name}.bin"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `make -C firmware` first")
    return path


def config_for_app(
    app: bytes, *, version: int = 0, update: bool = False, transport: str = "eth", crc: int | None = None
) -> bytes:
    """A config record describing ``app`` as installed (or requesting an update)."""
    return BootConfig(
        transport=transport,
        update_requested=update,
        app_size=len(app),
        app_crc=zlib.crc32(app) if crc is None else crc,
        app_version=version,
    ).pack()


@dataclass
class Board:
    """A running twin with its console and (optionally) an OTA server."""

    target: TwinTarget
    console: Console
    server: OtaServer | None


@contextlib.contextmanager
def board(
    bootloader: str = "bootloader",
    *,
    loads: Sequence[tuple[bytes | Path, int]] = (),
    ota_image: bytes | Path | None = None,
    policy: str | None = None,
    protocol: object | None = None,
    extra_args: Sequence[str] = (),
    log_dir: Path | None = None,
) -> Iterator[Board]:
    """Start a twin with ``bootloader`` at 0x08000000 plus ``loads`` (data, address).

    Everything is stopped on exit (twin process, console thread, server socket).
    """
    tmp_files: list[Path] = []
    # NRST held until _start's pin reset: nothing boots (and prints) before the console is open
    args: list[str] = ["--idle", "skip", "--hold-reset", "--load", f"{image(bootloader)}@0x08000000"]
    out_dir = log_dir or BUILD / "twin-tests"
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (data, addr) in enumerate(loads):
        if isinstance(data, bytes):
            fd, name = tempfile.mkstemp(prefix=f"load{i}-", suffix=".bin", dir=out_dir)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            p = Path(name)
            tmp_files.append(p)
            data = p
        args += ["--load", f"{data}@{addr:#x}"]
    args += list(extra_args)
    try:
        for attempt in range(3):
            stack = contextlib.ExitStack()
            try:
                target, console, server = _start(stack, args, ota_image, policy, protocol, out_dir)
                break
            except OtaError:
                # The forwarded port was taken between choosing it and listening: start over.
                stack.close()
                if attempt == 2:
                    raise
        with stack:
            yield Board(target, console, server)
    finally:
        for p in tmp_files:
            p.unlink(missing_ok=True)


def _start(
    stack: contextlib.ExitStack,
    args: list[str],
    ota_image: bytes | Path | None,
    policy: str | None,
    protocol: object | None,
    out_dir: Path,
) -> tuple[TwinTarget, Console, OtaServer | None]:
    """Start the twin, attach the console, pin-reset, then start the OTA server."""
    port = free_port()
    if ota_image is not None:
        args = [*args, "--forward", f"192.168.1.10:5000=127.0.0.1:{port}"]
    target = start_twin(extra_args=args, log_path=out_dir / "twin.log")
    stack.callback(target.stop)
    # The twin starts with NRST held (--hold-reset), and opening a serial port discards what
    # was buffered: attach the console, release the board (pin reset), and only then start
    # the OTA server, so the whole boot log is seen, nothing of a boot before it (a quick
    # first boot used to print its APP READY before the pulse), and no session is cut.
    console = stack.enter_context(Console(target.serial_port))
    target.control("reset")
    server = None
    if ota_image is not None:
        server = stack.enter_context(
            OtaServer(ota_image, bind="127.0.0.1", port=port, policy=policy, protocol=protocol)
        )
    return target, console, server
