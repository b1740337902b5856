"""Print OTA server throughput per link policy over loopback (a minimal board client).

Usage: .venv/bin/python benchmarks/bench_ota.py [--size 262144] [--policies natural,per-message,...] [--capture]
Figures only; nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
import zlib

from rig.ota import OtaServer

DEFAULT = "natural,per-message,glued,split-tokens,random:seed=7,tiny:size=64,per-message+pause:ms=1"


def board(address: tuple[str, int]) -> str:
    """Minimal correct board: REQ_FW, read header, OTA_READY, read n bytes + OTA_DONE, ACK."""
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"REQ_FW\n")
        buf = b""
        while b"OTA_UPDATE\n" not in buf:
            buf += s.recv(4096)
        head, _, rest = buf.partition(b"OTA_UPDATE\n")
        n = int(head.split(b"FILE_SIZE:")[1].split(b"\n")[0])
        crc = int(head.split(b"FILE_CRC:")[1].split(b"\n")[0], 16)
        s.sendall(b"OTA_READY\n")
        data = bytearray(rest)
        while len(data) < n + 9:
            chunk = s.recv(65536)
            if not chunk:
                return "closed"
            data += chunk
        ok = zlib.crc32(bytes(data[:n])) == crc and data[n:] == b"OTA_DONE\n"
        s.sendall(b"ACK\n" if ok else b"NACK:crc\n")
        return "ack" if ok else "nack"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256 * 1024)
    ap.add_argument("--policies", default=DEFAULT)
    ap.add_argument("--capture", action="store_true", help="also capture and count segments")
    args = ap.parse_args()
    image = os.urandom(args.size)
    print(f"image {args.size} bytes over loopback")
    print(f"{'policy':32} {'outcome':8} {'seconds':>8} {'KiB/s':>10} {'writes':>7} {'segments':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.policies.split(","):
            with OtaServer(image, policy=spec, capture=tmp if args.capture else None) as srv:
                t = threading.Thread(target=board, args=(srv.address,), daemon=True)
                t0 = time.perf_counter()
                t.start()
                res = srv.wait_session(30)
                t.join(30)
                segs = "-"
                if res.pcap:
                    from rig.capture import analyze_pcap

                    segs = str(len(analyze_pcap(res.pcap, srv.address[1]).sizes("down")))
            print(
                f"{spec:32} {res.outcome:8} {res.duration:8.3f} {res.throughput / 1024:10.1f} "
                f"{res.transcript.data_writes:7d} {segs:>9}   (wall {time.perf_counter() - t0:.3f} s)"
            )


if __name__ == "__main__":
    main()
