"""Helpers for the TWIN-CORE tests: build tiny Thumb programs, run twins as subprocesses."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]

#: the stock pyocd CLI of the environment running the tests (never a `pyocd` found on PATH)
PYOCD = [sys.executable, "-m", "pyocd"]

VECTORS = """
    .syntax unified
    .thumb
    .section .vectors,"a"
    .word 0x20010000
    .word reset + 1
    .rept 14
    .word fault + 1
    .endr
    .text
    .thumb_func
fault:
    b fault
"""


def build(
    tmp: Path, body: str, name: str = "prog", base: int = 0x08000000, c_source: str | None = None
) -> tuple[Path, Path]:
    """Assemble (or compile, for ``c_source``) a program at ``base``; returns (elf, bin).

    ``body`` is Thumb assembly after the vector table; it must define ``reset``.
    """
    tmp.mkdir(parents=True, exist_ok=True)
    elf, binf = tmp / f"{name}.elf", tmp / f"{name}.bin"
    ld = tmp / f"{name}.ld"
    ld.write_text(f"""
MEMORY {{ FLASH (rx) : ORIGIN = 0x{base:08X}, LENGTH = 2M
         RAM (rwx) : ORIGIN = 0x20000000, LENGTH = 512K }}
SECTIONS {{
  .text : {{ KEEP(*(.vectors)) *(.text*) *(.rodata*) }} > FLASH
  .data : {{ *(.data*) }} > RAM AT > FLASH
  .bss : {{ *(.bss*) *(COMMON) }} > RAM
}}
""")
    srcs = []
    asm = tmp / f"{name}.s"
    asm.write_text(VECTORS + body + "\n")
    srcs.append(str(asm))
    if c_source is not None:
        c = tmp / f"{name}_main.c"
        c.write_text(c_source)
        srcs.append(str(c))
    subprocess.run(
        [
            "arm-none-eabi-gcc",
            "-mcpu=cortex-m7",
            "-mthumb",
            "-g",
            "-O0",
            "-nostdlib",
            "-ffreestanding",
            "-T",
            str(ld),
            "-o",
            str(elf),
            *srcs,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    subprocess.run(
        ["arm-none-eabi-objcopy", "-O", "binary", str(elf), str(binf)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return elf, binf


class TwinProcess:
    """``python -m twin ARGS`` as a subprocess; always killed on exit from the context."""

    def __init__(self, *args: str, timeout: float = 30.0) -> None:
        self.args = [sys.executable, "-m", "twin", *args]
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        self.stderr_path: Path | None = None

    def __enter__(self) -> TwinProcess:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="twin-stderr-", suffix=".log")
        self.stderr_path = Path(name)
        self.proc = subprocess.Popen(
            self.args, cwd=REPO, stdout=subprocess.PIPE, stderr=fd, start_new_session=True
        )
        os.close(fd)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        line = b""
        while time.monotonic() < deadline and not line.endswith(b"\n"):
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 4096)
                if not ch:
                    break
                line += ch
        if not line.endswith(b"\n"):
            self.kill()
            raise RuntimeError(f"twin did not start: {self.stderr()}")
        self.info = json.loads(line)
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        if self.stderr_path is not None:
            self.stderr_path.unlink(missing_ok=True)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path else ""

    @property
    def probe(self) -> str:
        return self.info["probe"]

    def terminate(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        if p.stdout is not None:
            p.stdout.close()

    def control(self, cmd: str, **kw: Any) -> dict[str, Any]:
        """One control request."""
        host, port = self.info["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(json.dumps({"cmd": cmd, **kw}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)


def pyocd(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the stock pyocd CLI."""
    return subprocess.run([*PYOCD, *args], check=False, capture_output=True, text=True, timeout=timeout)
