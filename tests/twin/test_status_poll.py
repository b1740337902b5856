"""HAL-style waits on status registers (twin/status_poll.py): a loop polling a bit with a
``HAL_GetTick`` timeout ends by its timeout, and its spins cost the host little.

Before: an RCC ready flag that never came took 2.6 s of wall time for a 1 s timeout at
16 MHz (36 s at 216 MHz), and a HAL_ETH_Init-style wait for DMABMR.SR in MII mode never ended
at all (the pending MAC reset jumped time at every read, so the loop never reached its
timeout check).
"""

from __future__ import annotations

import pytest
from periph_exc_harness import assemble

from twin.board import Board, BoardOptions
from twin.loader import Chunk
from twin.status_poll import StatusPoll

pytestmark = pytest.mark.timeout(120)

RAM = 0x20000000  # +0 uwTick, +4 done, +8 tickstart, +12 tick at the end


def _program(setup: str, reg: int, bit: int, wait_while_set: bool, timeout_ms: int, counted: int = 0) -> str:
    """The HAL loop; with ``counted`` no SysTick, and the timeout is that many spins."""
    vectors = "\n".join(
        [".word 0x20010000", ".word reset"]
        + [".word systick" if n == 15 else ".word hang" for n in range(2, 16 + 110)]
    )
    timeout_check = (
        "    subs r9, r9, #1\n    bne 1b"
        if counted
        else f"    ldr r5, [r0]\n    subs r5, r5, r4\n    ldr r7, ={timeout_ms}\n    cmp r5, r7\n    bls 1b"
    )
    return f"""
.text
.global _start
_start:
{vectors}
.thumb_func
hang: b hang
.thumb_func
systick:                         @ HAL_IncTick
    ldr r0, ={RAM:#x}
    ldr r1, [r0]
    adds r1, #1
    str r1, [r0]
    bx lr
.thumb_func
reset:
    ldr r0, =0xE000E010          @ SysTick 1 kHz at 16 MHz
    ldr r1, =15999
    str r1, [r0, #4]
    movs r1, #0
    str r1, [r0, #8]
    movs r1, #{0 if counted else 7}
    str r1, [r0]
{setup}
    ldr r0, ={RAM:#x}
    ldr r4, [r0]                 @ tickstart = HAL_GetTick()
    str r4, [r0, #8]
    ldr r9, ={counted}
    ldr r2, ={reg:#x}
    ldr r6, ={bit:#x}
1:  ldr r3, [r2]
    tst r3, r6
    {"beq" if wait_while_set else "bne"} 9f
{timeout_check}
9:  ldr r5, [r0]
    str r5, [r0, #12]
    movs r1, #1
    str r1, [r0, #4]
8:  wfi
    b 8b
.ltorg
"""


def _wait(source: str, max_slices: int = 200_000) -> tuple[int, int]:
    """Run the program slice by slice until its wait ends: (board ms, instructions)."""
    board = Board(BoardOptions(pty=False))
    m = board.machine
    try:
        board.power_on([Chunk(0x08000000, assemble(source), "wait")])
        word = lambda a: int.from_bytes(m.bus_read(a, 4), "little")  # noqa: E731
        i0 = m.instructions
        for _ in range(max_slices):
            if word(RAM + 4):
                return word(RAM + 12) - word(RAM + 8), m.instructions - i0
            assert not m.is_locked_up(), m.lockup_reason
            m.step_slice()
        raise AssertionError(f"the wait did not end: {word(RAM)} ms of board time, pc 0x{m.reg('pc'):08X}")
    finally:
        board.close()


def test_a_mac_reset_that_never_ends_times_out_like_hal() -> None:
    """MII mode: the NUCLEO's PHY drives RMII only, so DMABMR.SR stays set; ST's
    HAL_ETH_Init gives up after its timeout (HAL_TIMEOUT) and so must the loop here."""
    setup = """
    ldr r0, =0x40023830          @ RCC_AHB1ENR: ETHMAC, ETHMACTX, ETHMACRX
    ldr r1, [r0]
    orr r1, r1, #0x0E000000
    str r1, [r0]
    ldr r0, =0x40029000          @ ETH_DMABMR.SR
    movs r1, #1
    str r1, [r0]
"""
    board_ms, _ = _wait(_program(setup, 0x40029000, 1, True, 50))
    assert 51 <= board_ms <= 53


def test_a_ready_flag_that_never_comes_costs_few_instructions() -> None:
    """PLLI2SRDY with the PLLI2S off: 200 ms of board time, the loop jumped through it
    (at 16 MHz spinning would execute ~3.2 M instructions)."""
    board_ms, instructions = _wait(_program("", 0x40023800, 1 << 27, False, 200))
    assert 201 <= board_ms <= 203
    assert instructions < 200_000, instructions


def test_a_ready_flag_that_comes_ends_the_wait_at_once() -> None:
    """HSION is on from reset: HSIRDY is already set, nothing is jumped."""
    board_ms, _ = _wait(_program("", 0x40023800, 1 << 1, False, 200))
    assert board_ms <= 1


class _Services:
    core_hz = 16_000_000

    def __init__(self, tick_in: int | None = 10_000) -> None:
        self.cycles = 0
        self.waits = 0
        self.looks = 0
        self.tick_in = tick_in

    def busy_cycles(self) -> int:
        return self.cycles

    def time_looks(self) -> int:
        return self.looks

    def next_event_in(self) -> int | None:
        return self.tick_in

    def poll_wait(self) -> None:
        self.waits += 1


def _reads(
    poll: StatusPoll, sv: _Services, values: list[tuple[int, int]], step: int = 10, look: bool = False
) -> list[int]:
    """The read numbers (1-based) at which the poll asked for a jump."""
    jumped = []
    for n, (offset, value) in enumerate(values, 1):
        before = sv.waits
        poll.read(sv, offset, value)
        sv.cycles += step
        sv.looks += look  # the loop reads CYCCNT between two status reads
        if sv.waits > before:
            jumped.append(n)
    return jumped


def test_the_read_run_again_after_a_jump_goes_through() -> None:
    poll, sv = StatusPoll(reads=8), _Services()
    # the 8th read jumps; the 9th (the same load run again) goes through; then every 2nd
    assert _reads(poll, sv, [(0, 5)] * 14) == [8, 10, 12, 14]
    poll, sv = StatusPoll(reads=1, tick=False), _Services(tick_in=None)
    assert _reads(poll, sv, [(0, 1)] * 5) == [1, 3, 5]


def test_a_changed_value_another_register_or_a_long_gap_starts_again() -> None:
    poll, sv = StatusPoll(reads=8), _Services()
    assert _reads(poll, sv, [(0, 5)] * 7 + [(0, 6)] * 7) == []  # the value changed
    assert _reads(poll, sv, [(0, 5), (4, 5)] * 7) == []  # two registers in turn
    assert _reads(poll, sv, [(0, 5)] * 14, step=5000) == []  # a loop doing other work


def test_a_loop_that_times_itself_or_has_no_tick_near_is_not_jumped() -> None:
    poll, sv = StatusPoll(reads=8), _Services()
    assert _reads(poll, sv, [(0, 5)] * 14, look=True) == []  # CYCCNT between the reads
    poll, sv = StatusPoll(reads=8), _Services(tick_in=None)
    assert _reads(poll, sv, [(0, 5)] * 14) == []  # no event at all: a counted timeout?
    poll, sv = StatusPoll(reads=8), _Services(tick_in=5 * 16_000)
    assert _reads(poll, sv, [(0, 5)] * 14) == []  # the next event 5 ms away: no HAL tick


def test_without_a_tick_the_firmware_spins_as_on_the_board() -> None:
    """No SysTick: the loop counts its own timeout (100 000 spins), nothing is jumped, and
    the board time is what the spins take (5 instructions each at 16 MHz: ~30 ms)."""
    source = _program("", 0x40023800, 1 << 27, False, 0, counted=100_000)
    board = Board(BoardOptions(pty=False))
    m = board.machine
    try:
        board.power_on([Chunk(0x08000000, assemble(source), "counted")])
        for _ in range(100_000):
            if int.from_bytes(m.bus_read(RAM + 4, 4), "little"):
                break
            m.step_slice()
        assert int.from_bytes(m.bus_read(RAM + 4, 4), "little"), "the counted loop did not end"
        ms = m.now_ns() / 1e6
        assert 20 <= ms <= 60, ms  # not stretched by jumps (to the PHY's link-up at 200 ms)
    finally:
        board.close()
