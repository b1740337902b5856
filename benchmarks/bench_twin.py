"""Twin speed figures (issues 3 and 18): connect time, `pyocd flash` 512 KiB, 2 MiB readback
through stock pyOCD and through the rig's Probe.read, and instructions per second of a busy
loop with no debugger attached.

Run: .venv/bin/python benchmarks/bench_twin.py [--runs N]. Prints one line per figure with the goal.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

LOOP = bytes.fromhex("0000022009000008") + bytes(8) + bytes.fromhex("0130fde7")  # adds r0,#1; b


class Twin:
    """A ``python -m twin`` subprocess."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "twin", *args],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        r, _, _ = select.select([self.proc.stdout], [], [], 30)
        if not r:
            self.close()
            raise RuntimeError("twin did not start")
        self.info = json.loads(self.proc.stdout.readline())

    def control(self, cmd: str, **kw) -> dict:
        import socket

        host, port = self.info["control"].split(":")
        with socket.create_connection((host, int(port)), timeout=10) as s:
            s.sendall(json.dumps({"cmd": cmd, **kw}).encode() + b"\n")
            return json.loads(s.makefile("rb").readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if self.proc.stdout:
            self.proc.stdout.close()


def bench_pyocd(runs: int) -> None:
    from pyocd.core.helpers import ConnectHelper
    from pyocd.flash.file_programmer import FileProgrammer

    image = os.urandom(512 * 1024)
    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "img.bin"
        img.write_bytes(image)
        twin = Twin()
        try:
            uid = twin.info["probe"]
            connects, flashes, reads, reads32, cli = [], [], [], [], []
            for i in range(runs):
                t0 = time.perf_counter()
                session = ConnectHelper.session_with_chosen_probe(
                    unique_id=uid, target_override="stm32f767zi", options={"frequency": 0}
                )
                session.open()
                connects.append(time.perf_counter() - t0)
                try:
                    t0 = time.perf_counter()
                    FileProgrammer(session, chip_erase="sector", smart_flash=False).program(
                        str(img), base_address=0x08000000 + 0x40000 * (i % 2)
                    )
                    flashes.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    data = bytes(session.target.read_memory_block8(0x08000000, 2 * 1024 * 1024))
                    reads.append(time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    words = session.target.read_memory_block32(0x08000000, 512 * 1024)
                    reads32.append(time.perf_counter() - t0)
                    assert b"".join(w.to_bytes(4, "little") for w in words) == data
                    base = 0x40000 * (i % 2)
                    assert data[base : base + len(image)] == image, "readback mismatch"
                finally:
                    session.close()
            t0 = time.perf_counter()
            # the stock CLI of this interpreter's environment, not whatever `pyocd` is on PATH
            flash = [sys.executable, "-m", "pyocd", "flash", "-u", uid, "-t", "stm32f767zi"]
            res = subprocess.run(
                [*flash, "--base-address", "0x08100000", str(img)],
                check=False,
                capture_output=True,
                text=True,
                timeout=300,
            )
            cli.append(time.perf_counter() - t0)
            assert res.returncode == 0, res.stderr
        finally:
            twin.close()
    print(
        f"connect (pyOCD session open, halt mode): best {min(connects):.3f} s "
        f"(runs: {', '.join(f'{x:.3f}' for x in connects)})"
    )
    print(
        f"flash 512 KiB (pyOCD API, sector erase, real algo on the core): best "
        f"{min(flashes):.2f} s = {512 / min(flashes):.0f} KiB/s   [goal < 3 s (issue 3), <= 2 s (issue 18)]"
    )
    print(f"pyocd flash CLI 512 KiB at 0x08100000, wall incl. Python start: {cli[0]:.2f} s")
    mib_s = 2 / min(reads)
    print(
        f"readback 2 MiB (read_memory_block8): best {min(reads):.2f} s = {mib_s:.1f} MiB/s "
        f"(most of it pyOCD's client-side breakpoint filter)"
    )
    print(
        f"readback 2 MiB (read_memory_block32): best {min(reads32):.2f} s = "
        f"{2 / min(reads32):.1f} MiB/s   [goal >= 4 MiB/s; one 2 MiB request, pyOCD's filter per word]"
    )


def bench_mips(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as d:
        img = Path(d) / "loop.bin"
        img.write_bytes(LOOP)
        twin = Twin("--load", f"{img}@0x08000000")
        try:
            time.sleep(0.5)
            a = twin.control("status")
            t0 = time.perf_counter()
            time.sleep(seconds)
            b = twin.control("status")
            dt = time.perf_counter() - t0
        finally:
            twin.close()
    mips = (b["instructions"] - a["instructions"]) / dt / 1e6
    print(f"busy loop, no debugger: {mips:.0f} million instructions/s   [goal >= 50]")


def bench_rig_readback(runs: int) -> None:
    """The rig's own readback (rig.probe.Probe.read: 64 KiB requests through the core's
    memory AP) of 2 MiB, as every flash check of the HIL suite reads."""
    sys.path.insert(0, str(REPO))
    from rig.probe import Probe

    twin = Twin()
    try:
        with Probe(twin.info["probe"]) as probe:
            probe.read(0x08000000, 64 * 1024)  # the session's first request out of the figure
            times = []
            for _ in range(max(3, runs)):
                t0 = time.perf_counter()
                data = probe.read(0x08000000, 2 * 1024 * 1024)
                times.append(time.perf_counter() - t0)
                assert len(data) == 2 * 1024 * 1024
    finally:
        twin.close()
    med = sorted(times)[len(times) // 2]
    print(
        f"rig readback 2 MiB (Probe.read): median {med:.3f} s = {2 / med:.1f} MiB/s "
        f"(runs: {', '.join(f'{t:.3f}' for t in times)})   [goal >= 10 MiB/s, issue 18]"
    )


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--mips-seconds", type=float, default=3.0)
    args = p.parse_args()
    bench_mips(args.mips_seconds)
    bench_pyocd(args.runs)
    bench_rig_readback(max(5, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
