"""What the D-cache model costs a program that keeps its stack in cached SRAM. Prints figures only.

ST's STM32CubeF7 examples (and bootloaders built from them) turn the D-cache on at the top of
`main()` and keep the stack at the top of RAM (0x20080000, in SRAM2, cacheable): with the
cache on, every push, pop and load of a global goes through the model's memory hooks
(twin/dcache.py). The program here (assembled with arm-none-eabi-as/ld) runs a loop of 12
instructions, 8 of them stack accesses and 4 loads/stores of SRAM1, 300 000 times, with the
D-cache off, on with the model's C hooks (the default), and on with its Python hooks (used
where no C compiler works; ``OTA_TWIN_DCACHE=python``). Interleaved rounds; medians of the
wall time from start to the program's done mark. Goal (set with the C hooks, not in an issue):
the cache on costs at most 5 times the time with it off.

Run: ``.venv/bin/python benchmarks/bench_dcache.py [--rounds N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from bench_periph import assemble

from twin.board import Board, BoardOptions
from twin.loader import Chunk

DONE = 0x20001010
ITERATIONS = 300_000
GOAL_RATIO = 5.0

PROGRAM = """
    .syntax unified
    .cpu cortex-m7
    .thumb
    .word 0x20080000
    .word reset
    .thumb_func
reset:
{enable}
    ldr sp, =0x20080000
    ldr r5, =0x20030000
    ldr r6, ={iterations}
loop:
    push {{r4, r5, r6, lr}}
    ldr r1, [r5]
    adds r1, r1, #1
    str r1, [r5]
    ldr r2, [r5, #4]
    adds r2, r2, r1
    str r2, [r5, #4]
    pop {{r4, r5, r6, lr}}
    adds r3, r3, #1
    eors r3, r3, r1
    subs r6, r6, #1
    bne loop
    ldr r0, ={done}
    ldr r1, =0xD0DE
    str r1, [r0]
hang:
    b hang
"""
ENABLE = """
    ldr r0, =0xE000EF60       @ DCISW (SCB_EnableDCache invalidates first)
    movs r1, #0
    str r1, [r0]
    dsb
    ldr r0, =0xE000ED14       @ CCR.DC
    ldr r1, [r0]
    orr r1, r1, #0x10000
    str r1, [r0]
    dsb
    isb
"""


def run(image: bytes, hooks: str, timeout: float = 120.0) -> float:
    """Wall seconds from the core's start to the program's done mark."""
    old = os.environ.get("OTA_TWIN_DCACHE")
    os.environ["OTA_TWIN_DCACHE"] = hooks
    try:
        board = Board(BoardOptions(pty=False))
    finally:
        if old is None:
            os.environ.pop("OTA_TWIN_DCACHE")
        else:
            os.environ["OTA_TWIN_DCACHE"] = old
    try:
        board.power_on([Chunk(0x08000000, image, "bench")])
        t0 = time.perf_counter()
        board.machine.start()
        while True:
            with board.machine.host() as m:
                if int.from_bytes(m.bus_read(DONE, 4), "little") == 0xD0DE:
                    return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"the program did not finish in {timeout:.0f} s")
            time.sleep(0.002)
    finally:
        board.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are printed)")
    args = ap.parse_args()
    images = {
        cache_on: assemble(
            PROGRAM.format(enable=ENABLE if cache_on else "", iterations=ITERATIONS, done=DONE)
        )
        for cache_on in (False, True)
    }
    cases = {"D-cache off": (False, "c"), "on, C hooks": (True, "c"), "on, Python hooks": (True, "python")}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (cache_on, hooks) in cases.items():
            times[name].append(run(images[cache_on], hooks))
    accesses = ITERATIONS * 12
    off = statistics.median(times["D-cache off"])
    print(f"bench_dcache: {ITERATIONS} iterations, {accesses} data accesses, medians of {args.rounds} rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        line = f"{name:<18} {med:7.3f} s  ({med / off:5.1f} x off)"
        if name == "on, C hooks":
            line += f"   [goal <= {GOAL_RATIO:.0f} x off: {'met' if med / off <= GOAL_RATIO else 'NOT met'}]"
        print(line)


if __name__ == "__main__":
    main()
