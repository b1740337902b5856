"""HAL-style waits on the twin: a status bit polled with a ``HAL_GetTick`` timeout. Prints figures only.

Issue 18: "HAL-style polling of peripheral status bits with HAL_GetTick timeouts never
slower than real time". A small Thumb-2 program (assembled here with arm-none-eabi-as/ld)
runs SysTick at 1 kHz (its handler increments ``uwTick`` in SRAM, as ST's HAL does), then
polls one status bit the way ST's HAL does it::

    tickstart = uwTick;
    while (!(REG & BIT)) { if (uwTick - tickstart > TIMEOUT) break; }

and records ``uwTick`` when the loop ends. The host measures the wall time of the loop
(from the program's "started" mark in SRAM to its "done" mark) and prints the board's time
(HAL ticks) per wall second beside the goal (>= 1: the wait is never slower than on a board).
Each case at the reset clock (HSI 16 MHz) and at 216 MHz (HSE bypass + PLL, as
SystemClock_Config):

- PLLI2SRDY that never comes (PLLI2S off): the timeout is the whole wait;
- USART3 RXNE with nothing sent (HAL_UART_Receive timing out): a wait for the host;
- FLASH_SR.BSY during a sector 5 erase (256 KiB, datasheet timing: ~1 s);
- ETH DMABMR.SR in MII mode, which never clears on the NUCLEO (RMII only): HAL's 500 ms.

Run: ``.venv/bin/python benchmarks/bench_hal_wait.py``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_periph import CLOCK_216, assemble, vector_table  # the same folder: clock, assembler, vectors

from twin.board import Board, BoardOptions
from twin.loader import Chunk

#: the goal: board time per wall second while the firmware waits (issue 18); the wall time
#: is measured by polling SRAM every 0.5 ms, so a wait paced on wall time reads 0.99-1.00
GOAL, TOLERANCE = 1.0, 0.01
#: a wait still going after this many wall seconds is reported as never ending
WALL_LIMIT_S = 60
RAM = 0x20000000  # +0 uwTick, +4 done, +8 start tick, +12 end tick, +16 started

#: name -> (set-up code, status register, bit, wait while the bit is (1) set / (0) clear, timeout ms)
CASES = {
    "PLLI2SRDY never set (PLLI2S off)": ("", 0x40023800, 1 << 27, 0, 1000),
    "USART3 RXNE, nothing sent": (
        """
    ldr r0, =0x40023840          @ RCC_APB1ENR.USART3EN
    ldr r1, [r0]
    orr r1, r1, #0x40000
    str r1, [r0]
    ldr r0, =0x40004800          @ USART3: BRR, then RE | UE
    ldr r1, =139
    str r1, [r0, #0x0C]
    movs r1, #5
    str r1, [r0]
""",
        0x4000481C,
        1 << 5,
        0,
        1000,
    ),
    "FLASH BSY, sector 5 erase": (
        """
    ldr r0, =0x40023C00          @ FLASH: unlock, SER | SNB=5 | PSIZE x32, STRT
    ldr r1, =0x45670123
    str r1, [r0, #4]
    ldr r1, =0xCDEF89AB
    str r1, [r0, #4]
    ldr r1, =0x22A
    str r1, [r0, #0x10]
    ldr r1, =0x1022A
    str r1, [r0, #0x10]
""",
        0x40023C0C,
        1 << 16,
        1,
        5000,
    ),
    "ETH DMABMR.SR, MII mode": (
        """
    ldr r0, =0x40023830          @ RCC_AHB1ENR: ETHMAC, TX, RX
    ldr r1, [r0]
    orr r1, r1, #0x0E000000
    str r1, [r0]
    ldr r0, =0x40029000          @ ETH_DMABMR.SR
    movs r1, #1
    str r1, [r0]
""",
        0x40029000,
        1,
        1,
        500,
    ),
}

PROGRAM = """
.thumb_func
reset:
{clock}
    ldr r0, =0xE000E010          @ SysTick 1 kHz
    ldr r1, ={reload}
    str r1, [r0, #4]
    movs r1, #0
    str r1, [r0, #8]
    movs r1, #7
    str r1, [r0]
{setup}
    ldr r0, =0x20000000
    ldr r4, [r0]                 @ tickstart
    str r4, [r0, #8]
    movs r1, #1
    str r1, [r0, #16]            @ started
    ldr r2, ={reg}
    ldr r6, ={bit}
1:  ldr r3, [r2]                 @ the status bit
    tst r3, r6
    {leave} 9f
    ldr r5, [r0]                 @ HAL_GetTick() - tickstart > timeout
    subs r5, r5, r4
    ldr r7, ={timeout}
    cmp r5, r7
    bls 1b
9:  ldr r5, [r0]
    str r5, [r0, #12]
    movs r1, #1
    str r1, [r0, #4]             @ done
8:  wfi
    b 8b
.ltorg
"""


def _word(m, address: int) -> int:
    with m.host():
        return int.from_bytes(m.bus_read(address, 4), "little")


def run_case(name: str, fast_clock: bool) -> tuple[float, float]:
    """Board milliseconds (HAL ticks) and wall milliseconds of the wait."""
    setup, reg, bit, wait_while_set, timeout = CASES[name]
    image = assemble(
        vector_table()
        + PROGRAM.format(
            clock=CLOCK_216 if fast_clock else "",
            reload=215_999 if fast_clock else 15_999,
            setup=setup,
            reg=reg,
            bit=bit,
            leave="beq" if wait_while_set else "bne",
            timeout=timeout,
        )
    )
    board = Board(BoardOptions(pty=False, timing="datasheet"))
    m = board.machine
    try:
        board.power_on([Chunk(0x08000000, image, "bench_hal_wait")])
        m.start()
        deadline = time.monotonic() + WALL_LIMIT_S
        while not _word(m, RAM + 16):
            if time.monotonic() > deadline or m.is_locked_up():
                raise RuntimeError(f"{name}: the program did not start its wait ({m.lockup_reason})")
            time.sleep(0.0005)
        w0 = time.perf_counter()
        while not _word(m, RAM + 4):
            if time.monotonic() > deadline or m.is_locked_up():
                return float(_word(m, RAM) - _word(m, RAM + 8)), float("inf")  # never ended
            time.sleep(0.0005)
        wall_ms = (time.perf_counter() - w0) * 1e3
        board_ms = _word(m, RAM + 12) - _word(m, RAM + 8)
        return float(board_ms), wall_ms
    finally:
        board.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.parse_args(argv)
    print(
        f"HAL-style waits (status bit + HAL_GetTick timeout); goal: board time / wall time >= {GOAL:.2f} "
        f"(issue 18: never slower than real time; {TOLERANCE:.0%} for measuring)"
    )
    print(f"{'case':32s}{'clock':>8s}{'board ms':>10s}{'wall ms':>10s}{'ratio':>8s}  goal")
    for name in CASES:
        for fast in (False, True):
            board_ms, wall_ms = run_case(name, fast)
            ratio = board_ms / wall_ms if wall_ms else float("inf")
            verdict = "met" if ratio >= GOAL - TOLERANCE else "NOT met"
            if wall_ms == float("inf"):
                verdict = f"NOT met: still waiting after {WALL_LIMIT_S} s ({board_ms:.0f} ms of board time)"
            print(
                f"{name:32s}{'216 MHz' if fast else '16 MHz':>8s}{board_ms:10.0f}{wall_ms:10.0f}{ratio:8.2f}  {verdict}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
