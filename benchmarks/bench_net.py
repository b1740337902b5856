"""Throughput of a 512 KiB transfer host -> firmware memory over each twin network path.

Builds firmware/progs/nettest into a temporary directory, starts ``python -m twin`` once
per path (eth, wifi) with the firmware's server address forwarded to a loopback server,
sends 512 KiB with the ``SINK`` command and prints wall time, throughput, the firmware's
CRC check and the receive-chunk statistics. Figures only; nothing is asserted.

    .venv/bin/python benchmarks/bench_net.py [--size KIB] [--repeat N] [--paths eth,wifi]
        [--wifi-build polled|dma]   (firmware `make WIFI=...`: SPI1 polled, or on DMA2 with the D-cache on)
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: issue 16 (Ethernet: MAC + lwIP) and issue 17 (WiFi: WINC3400 on SPI), medians of the runs
GOALS_KIB_S = {"eth": 4096.0, "wifi": 400.0}
GOAL_TEXT = {"eth": "4 MiB/s, issue 16", "wifi": "issue 17"}
sys.path.insert(0, str(ROOT))

from rig.bootcfg import BootConfig  # noqa: E402
from rig.targets.twin import start_twin  # noqa: E402


def build(out: Path, wifi_build: str = "polled") -> Path:
    """Build nettest.elf into ``out`` with the project Makefile (``WIFI=wifi_build``)."""
    subprocess.run(
        ["make", "-s", "-C", str(ROOT / "firmware"), f"B={out}", f"WIFI={wifi_build}", f"{out}/nettest.elf"],
        check=True,
        timeout=300,
    )
    return out / "nettest.elf"


def run_path(elf: Path, tmp: Path, path: str, size: int, repeat: int) -> list[dict[str, float]]:
    """Start a twin on ``path`` and time ``repeat`` SINK transfers of ``size`` bytes."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(60)
    cfg = tmp / f"cfg-{path}.bin"
    cfg.write_bytes(BootConfig(transport=path).pack())
    t_start = time.perf_counter()
    twin = start_twin(
        extra_args=[
            "--load",
            str(elf),
            "--load",
            f"{cfg}@0x08020000",
            "--forward",
            f"192.168.1.10:5000=127.0.0.1:{srv.getsockname()[1]}",
        ],
        log_path=tmp / f"twin-{path}.log",
    )
    results = []
    try:
        conn, _ = srv.accept()
        t_conn = time.perf_counter() - t_start
        conn.settimeout(120)
        rf = conn.makefile("rb")
        rf.readline()  # HELLO
        for _ in range(repeat):
            data = os.urandom(size)
            conn.sendall(b"SINK %d 1460\n" % size)
            rf.readline()  # READY
            t0 = time.perf_counter()
            conn.sendall(data)
            reply = rf.readline().decode().strip()
            dt = time.perf_counter() - t0
            m = re.search(r"crc=([0-9a-f]{8}) chunks=(\d+) min=(\d+) max=(\d+)", reply)
            ok = bool(m) and int(m[1], 16) == zlib.crc32(data)
            results.append(
                {
                    "seconds": dt,
                    "kib_s": size / 1024 / dt,
                    "ok": ok,
                    "chunks": int(m[2]) if m else 0,
                    "min": int(m[3]) if m else 0,
                    "max": int(m[4]) if m else 0,
                    "connect_s": t_conn,
                }
            )
        conn.sendall(b"QUIT\n")
        rf.close()
        conn.close()
    finally:
        twin.stop()
        srv.close()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="KiB per transfer (default 512)")
    ap.add_argument("--repeat", type=int, default=3, help="transfers per path (default 3)")
    ap.add_argument("--paths", default="eth,wifi")
    ap.add_argument("--wifi-build", choices=("polled", "dma"), default="polled", help="WINC SPI build")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-net-") as d:
        tmp = Path(d)
        elf = build(tmp, args.wifi_build)
        print(
            f"{'path':5} {'run':>3} {'bytes':>8} {'seconds':>8} {'KiB/s':>9} {'chunks':>7} "
            f"{'min':>5} {'max':>5} crc"
        )
        medians = {}
        for path in args.paths.split(","):
            runs = run_path(elf, tmp, path, args.size * 1024, args.repeat)
            for i, r in enumerate(runs):
                print(
                    f"{path:5} {i + 1:>3} {args.size * 1024:>8} {r['seconds']:8.3f} "
                    f"{r['kib_s']:9.1f} {r['chunks']:>7} {r['min']:>5} {r['max']:>5} "
                    f"{'ok' if r['ok'] else 'MISMATCH'}"
                )
            medians[path] = (statistics.median(r["kib_s"] for r in runs), all(r["ok"] for r in runs))
        print()
        for path, (kib_s, ok) in medians.items():
            goal = GOALS_KIB_S.get(path)
            if path == "wifi" and args.wifi_build != "polled":  # the goal is the polled build's
                print(f"{path:5} median {kib_s:9.1f} KiB/s   (WIFI={args.wifi_build})")
                continue
            verdict = "" if goal is None else ("met" if kib_s >= goal and ok else "NOT met")
            goal_txt = "" if goal is None else f"goal >= {goal:.0f} KiB/s ({GOAL_TEXT[path]}): {verdict}"
            print(f"{path:5} median {kib_s:9.1f} KiB/s   {goal_txt}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
