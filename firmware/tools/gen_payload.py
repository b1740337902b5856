#!/usr/bin/env python3
"""Deterministic filler for the sized test applications.

``gen_payload.py --seed N --size BYTES -o FILE`` writes BYTES pseudo-random bytes from a
xorshift32 generator seeded with N (the app version), so every build of app-vN-Kk.bin is
byte-identical. ``--build-id`` prints the 8-hex-digit build id of (seed, size) instead.
"""

from __future__ import annotations

import argparse
import sys
import zlib


def payload(seed: int, size: int) -> bytes:
    """Return ``size`` bytes of xorshift32 output seeded from ``seed``.

    Args:
        seed: any integer (the application version).
        size: number of bytes, >= 0.
    """
    state = (zlib.crc32(f"ota-rig payload {seed}".encode()) or 1) & 0xFFFFFFFF
    out = bytearray()
    while len(out) < size:
        state ^= (state << 13) & 0xFFFFFFFF
        state ^= state >> 17
        state ^= (state << 5) & 0xFFFFFFFF
        out += state.to_bytes(4, "little")
    return bytes(out[:size])


def build_id(seed: int, size: int) -> str:
    """Return the build id printed by the app banner: CRC-32 of the (seed, size) pair."""
    return f"{zlib.crc32(f'app-v{seed}-{size}'.encode()):08x}"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("-o", "--output")
    ap.add_argument("--build-id", action="store_true")
    args = ap.parse_args(argv)
    if args.build_id:
        print(build_id(args.seed, args.size))
        return 0
    if args.size < 0:
        print(
            f"gen_payload: the code alone is {-args.size} bytes larger than the requested "
            "image size; ask for a bigger SIZE",
            file=sys.stderr,
        )
        return 1
    if not args.output:
        print("gen_payload: -o FILE is required", file=sys.stderr)
        return 2
    with open(args.output, "wb") as f:
        f.write(payload(args.seed, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
