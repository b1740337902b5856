"""A delay loop on DWT_CYCCNT (``while (CYCCNT - start < n) {}``) waits for time only:
the twin lets time jump (idle="skip") or follow wall time with the CPU asleep
(idle="realtime") instead of executing it read by read; a loop that does other device
accesses between its CYCCNT reads, or computes between sparse reads, runs as before.

The program counts delay_cycles(N) calls in RAM, 16 MHz core (HSI): 1 ms = 16 000 cycles.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.loader import Chunk

COUNT = 0x20000100

#: enable CYCCNT, then loop: delay {cycles} cycles by polling CYCCNT {extra}, count++
PROGRAM = """
    .thumb_func
    .global reset
reset:
    ldr r0, =0xE0001000         @ DWT_CTRL.CYCCNTENA
    ldr r1, [r0]
    orr r1, r1, #1
    str r1, [r0]
    ldr r5, =0x20000100
    movs r6, #0
    ldr r7, =0x40023800         @ RCC_CR: another device read, for the "busy" variant
again:
    ldr r2, [r0, #4]            @ start = CYCCNT
wait:
{extra}
    ldr r3, [r0, #4]
    subs r3, r3, r2
    ldr r4, ={cycles}
    cmp r3, r4
    blo wait
    adds r6, #1
    str r6, [r5]
    b again
"""


def _board(tmp: Path, idle: str, extra: str = "", cycles: int = 16_000) -> Board:
    b = Board(BoardOptions(pty=False, idle=idle))
    _, binf = build(tmp, PROGRAM.format(extra=extra, cycles=cycles))
    b.power_on([Chunk(0x08000000, binf.read_bytes(), str(binf))])
    return b


def _run_until(board: Board, count: int, timeout: float) -> tuple[float, int, int]:
    """Free-run until the counter reaches ``count``; (wall s, virtual cycles, instructions)."""
    m = board.machine
    c0, i0, t0 = m.now_cycles(), m.instructions, time.monotonic()
    m.start()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        with m.host():
            done = int.from_bytes(m.bus_read(COUNT, 4), "little")
        if done >= count:
            break
        time.sleep(0.002)
    with m.host():
        m.halt()
        return time.monotonic() - t0, m.now_cycles() - c0, m.instructions - i0


@pytest.fixture
def boards() -> Iterator[list[Board]]:
    made: list[Board] = []
    yield made
    for b in made:
        b.close()


def test_skip_mode_jumps_a_delay_loop_in_small_steps(tmp_path: Path, boards: list[Board]) -> None:
    boards.append(b := _board(tmp_path, "skip"))
    wall, cycles, instructions = _run_until(b, 200, timeout=20)  # 200 x 1 ms
    assert int.from_bytes(b.machine.bus_read(COUNT, 4), "little") >= 200
    assert cycles >= 200 * 16_000  # every delay lasted its full time...
    assert cycles < 200 * 16_000 * 1.3  # ...overshooting by at most a step (0.25 ms)
    assert instructions < cycles / 5  # not executed cycle by cycle
    # after each step the same loop steps again after a few reads, not 40: ~270 instructions
    # a delay (retired, counted exactly), ~800 if every 0.25 ms step took 40 reads of 5
    assert instructions < 100_000, instructions
    assert wall < 5


def test_realtime_mode_follows_wall_time_asleep(tmp_path: Path, boards: list[Board]) -> None:
    boards.append(b := _board(tmp_path, "realtime", cycles=160_000))  # 10 ms per delay
    wall, cycles, instructions = _run_until(b, 20, timeout=20)  # 200 ms virtual
    assert cycles >= 20 * 160_000
    assert wall >= 0.15  # not ahead of wall time
    assert instructions < cycles / 5


def test_loop_with_other_device_reads_is_not_a_delay(tmp_path: Path, boards: list[Board]) -> None:
    boards.append(b := _board(tmp_path, "skip", extra="    ldr r1, [r7]"))
    _wall, cycles, instructions = _run_until(b, 20, timeout=60)
    assert cycles >= 20 * 16_000
    assert instructions >= cycles * 0.9  # every cycle executed


def test_sparse_reads_in_a_computation_are_not_a_delay(tmp_path: Path, boards: list[Board]) -> None:
    work = "\n".join(["    eor r1, r1, r1, lsl #3"] * 60)  # 60 instructions between reads
    boards.append(b := _board(tmp_path, "skip", extra=work))
    _wall, cycles, instructions = _run_until(b, 20, timeout=60)
    assert cycles >= 20 * 16_000
    assert instructions >= cycles * 0.9
