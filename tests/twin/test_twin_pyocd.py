"""Issue 3 acceptance with stock tools only: pyocd commander, pyocd flash + savemem, pyocd
gdbserver + gdb-multiarch, all against ``python -m twin``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from twin_core_util import PYOCD, TwinProcess, build, pyocd

pytestmark = pytest.mark.timeout(300)

LOOP = """
    .text
    .thumb_func
    .global reset
reset:
    movs r0, #0
1:  adds r0, #1
    b 1b
"""


def test_commander_reads_flash_size_halts_and_shows_registers(tmp_path: Path) -> None:
    _, binf = build(tmp_path, LOOP)
    with TwinProcess("--load", f"{binf}@0x08000000") as twin:
        res = pyocd(
            "commander",
            "-u",
            twin.probe,
            "-t",
            "stm32f767zi",
            "-c",
            "read16 0x1FF0F442",
            "-c",
            "halt",
            "-c",
            "reg",
        )
        assert res.returncode == 0, res.stderr
        assert "1ff0f442:  0800" in res.stdout.lower()
        assert "halted" in res.stdout.lower()
        pc_line = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("pc:"))
        pc = int(pc_line.split()[1], 16)
        assert 0x08000000 <= pc < 0x08000100  # inside the loop that really ran
        r0 = next(ln for ln in res.stdout.splitlines() if ln.strip().startswith("r0:"))
        assert int(r0.split()[1], 16) > 0  # the counter advanced
        assert "sp: 0x20010000" in res.stdout  # MSP from the vector table


def test_flash_300k_image_and_savemem_roundtrip(tmp_path: Path) -> None:
    image = os.urandom(300 * 1024)
    img = tmp_path / "image.bin"
    img.write_bytes(image)
    back = tmp_path / "back.bin"
    with TwinProcess() as twin:
        res = pyocd("flash", "-u", twin.probe, "-t", "stm32f767zi", "--base-address", "0x08040000", str(img))
        assert res.returncode == 0, res.stdout + res.stderr
        res = pyocd(
            "commander",
            "-u",
            twin.probe,
            "-t",
            "stm32f767zi",
            "-c",
            f"savemem 0x08040000 {len(image)} {back}",
        )
        assert res.returncode == 0, res.stdout + res.stderr
        assert back.read_bytes() == image
        # the bytes really went through the flash controller: two 256 KiB sectors erased
        flash = twin.control("flash")
        assert flash["ok"] and flash["ops"] >= 2 + len(image) // 4
        # ...and the rest of the sector after the image is erased NOR flash
        res = pyocd(
            "commander",
            "-u",
            twin.probe,
            "-t",
            "stm32f767zi",
            "-c",
            f"savemem {0x08040000 + len(image)} 1024 {back}",
        )
        assert back.read_bytes() == b"\xff" * 1024


MAIN_C = """
volatile unsigned counter;
int add(int a, int b) { return a + b; }
int main(void) {
    int x = 1;
    x = add(x, 2);
    while (1) { counter += x; }
}
"""

CALL_MAIN = """
    .text
    .thumb_func
    .global reset
reset:
    bl main
    b .
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gdbserver_gdb_load_break_step_registers(tmp_path: Path) -> None:
    elf, _ = build(tmp_path, CALL_MAIN, c_source=MAIN_C)
    port = _free_port()
    with TwinProcess() as twin:
        gs = subprocess.Popen(
            [*PYOCD, "gdbserver", "-u", twin.probe, "-t", "stm32f767zi", "--port", str(port), "--persist"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        try:
            _wait_port(port, gs)
            res = subprocess.run(
                [
                    "gdb-multiarch",
                    "-nx",
                    "-batch",
                    str(elf),
                    "-ex",
                    f"target extended-remote 127.0.0.1:{port}",
                    "-ex",
                    "load",
                    "-ex",
                    "monitor reset halt",
                    "-ex",
                    "break main",
                    "-ex",
                    "continue",
                    "-ex",
                    "next",
                    "-ex",
                    "next",
                    "-ex",
                    "info registers",
                    "-ex",
                    "print x",
                    "-ex",
                    "detach",
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=180,
            )
            out = res.stdout + res.stderr
            assert "Breakpoint 1, main" in out, out
            assert "Transfer rate" in out or "Start address" in out, out
            regs = {
                ln.split()[0]: ln.split()[1]
                for ln in res.stdout.splitlines()
                if len(ln.split()) >= 2 and ln.split()[0] in ("pc", "sp", "r0")
            }
            assert "pc" in regs and "sp" in regs, out
            assert 0x08000000 <= int(regs["pc"], 16) < 0x08001000
            assert int(regs["sp"], 16) < 0x20010000  # inside main's frame
            assert "$1 = 3" in out, out  # x = add(1, 2) was executed
        finally:
            _stop(gs)


def _stop(proc: subprocess.Popen[str]) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
        except subprocess.TimeoutExpired:
            continue
    if proc.stdout is not None:
        proc.stdout.close()


def _wait_port(port: int, proc: subprocess.Popen[str], timeout: float = 60.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gdbserver exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"gdbserver did not listen on {port}")


def test_back_to_back_sessions_are_served(tmp_path: Path) -> None:
    """A session closed and a new one opened at once (the rig does this) is not 'busy'."""
    from pyocd.core.helpers import ConnectHelper

    _, binf = build(tmp_path, LOOP)
    with TwinProcess("--load", f"{binf}@0x08000000") as twin:
        for _ in range(3):
            session = ConnectHelper.session_with_chosen_probe(
                unique_id=twin.probe, target_override="stm32f767zi"
            )
            session.open()
            try:
                assert session.target.read16(0x1FF0F442) == 0x0800
            finally:
                session.close()


def test_flash_a_board_whose_flash_holds_garbage(tmp_path: Path) -> None:
    """Random bytes at 0x08000000 (reset vector without Thumb bit, random SP): the core
    faults/locks up on its own, yet pyOCD's reset+vector catch+algorithm must still work,
    twice in a row (the second session starts from the first one's leftovers)."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(64 * 1024))
    img = tmp_path / "img.bin"
    image = os.urandom(8 * 1024)
    img.write_bytes(image)
    with TwinProcess("--load", f"{junk}@0x08000000") as twin:
        for base in (0x08000000, 0x08008000):
            res = pyocd("flash", "-u", twin.probe, "-t", "stm32f767zi", "--base-address", hex(base), str(img))
            assert res.returncode == 0, res.stdout + res.stderr
            got = twin.control("read", address=base, length=len(image))
            assert bytes.fromhex(got["hex"]) == image
