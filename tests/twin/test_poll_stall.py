"""The in-slice poll stall (twin/clock.py ``Clock.poll_wait(until=...)``).

A read that polls a flag only one scheduled event can change (FLASH_SR.BSY, USART ISR
TXE/TC) moves virtual time to that event inside the slice and runs it there, when it is
the next event and nothing else is due within one slice budget after it; otherwise the
slice stops for "poll" and the runner jumps to the next event. Both paths must keep
virtual time (no cycle lost) and fire events in time order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.clock import Clock
from twin.device import Device
from twin.host_gate import HostGate
from twin.loader import Chunk
from twin.slice import Slice

pytestmark = pytest.mark.timeout(60)

CORE_HZ = 16_000_000
FLASH_BSY = 1 << 16  # RM0410 3.7.4 FLASH_SR.BSY
FLASH_SR_ERRORS = 0xF2  # RM0410 3.7.4 OPERR, WRPERR, PGAERR, PGPERR, ERSERR
#: RM0410/DS11532 32-bit word program time (datasheet typ. 16 us), written out here, so a
#: model that gets faster fails; compared with the model's own table below too
WORD_PROGRAM_US = 16
N_WORDS = 64
DEST = 0x08040000  # sector 5 (erased)
SEED = 0x5A5A0000
TICKER = 0x40007C00  # an unused APB1 slot for the test's event device


_PROGRAM_WORDS = f"""
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0x40023C00         @ FLASH
    ldr r1, =0x45670123         @ KEY1
    str r1, [r0, #4]
    ldr r1, =0xCDEF89AB         @ KEY2
    str r1, [r0, #4]
    ldr r1, =0x201              @ PSIZE x32 | PG
    str r1, [r0, #0x10]
    ldr r2, ={DEST:#x}
    ldr r3, ={SEED:#x}
    ldr r6, ={TICKER:#x}
    movs r5, #{N_WORDS}
    ldr r7, ={{tick}}            @ != 0: ask the ticker for an event this many cycles on
1:  str r3, [r2], #4
    cbz r7, 2f
    str r7, [r6]
2:  ldr r4, [r0, #0xC]          @ wait while BSY
    lsrs r4, r4, #17
    bcs 2b
    adds r3, r3, #1
    subs r5, r5, #1
    bne 1b
    ldr r8, [r0, #0xC]          @ final SR
    bkpt #0
"""


def _program_words(tick: int = 0) -> str:
    """Program N_WORDS words (SEED, SEED+1, ...) at DEST polling BSY after each; with
    ``tick`` the firmware also asks the ticker for an event ``tick`` cycles after each
    store."""
    return _PROGRAM_WORDS.replace("{tick}", str(tick))


class Ticker(Device):
    """Writing N schedules a callback N cycles from now; every firing is recorded."""

    name, base, size = "ticker", TICKER, 0x400

    def __init__(self, log: list[tuple[str, int, int]]) -> None:
        super().__init__()
        self.log = log

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        svc = self.services
        due = svc.now_cycles() + value
        svc.schedule(value, lambda: self.log.append(("tick", due, svc.now_cycles())))


def _board(tmp_path: Path, source: str, timing: str = "fast", ticker: Device | None = None) -> Board:
    _, binf = build(tmp_path, source)
    board = Board(BoardOptions(pty=False, timing=timing))
    if ticker is not None:
        board.machine.add_device(ticker, first=True)
    board.power_on([Chunk(0x08000000, binf.read_bytes(), "prog")])
    board.machine.debug.ctrl = 1  # C_DEBUGEN: BKPT halts
    return board


def _run(board: Board, max_slices: int = 50_000) -> dict[str, int]:
    """Step slices by hand until BKPT; count slices, slices stopped for "poll" and the
    cycles spent stalled inside slices."""
    m = board.machine
    stats = {"slices": 0, "poll_stops": 0, "stalled": 0}
    for _ in range(max_slices):
        if m.halted or m.is_locked_up():
            break
        m.step_slice()
        stats["slices"] += 1
        stats["stalled"] += m.slice.stalled
        if any(reason == "poll" for reason, _ in m.slice.reasons):
            stats["poll_stops"] += 1
    assert m.halted and not m.is_locked_up(), m.lockup_reason
    return stats


def _words(board: Board, n: int) -> list[int]:
    raw = board.machine.bus_read(DEST, 4 * n)
    return [int.from_bytes(raw[i : i + 4], "little") for i in range(0, len(raw), 4)]


def test_flash_program_loop_stalls_in_slice_without_losing_time(tmp_path: Path) -> None:
    from twin.flash import PROGRAM_US

    assert PROGRAM_US[4] >= WORD_PROGRAM_US
    board = _board(tmp_path, _program_words(), timing="datasheet")
    try:
        m = board.machine
        t0 = m.now_cycles()
        stats = _run(board)
        assert _words(board, N_WORDS) == [SEED + i for i in range(N_WORDS)]
        assert m.reg("r8") & (FLASH_BSY | FLASH_SR_ERRORS) == 0
        elapsed = m.now_cycles() - t0
        program_cycles = WORD_PROGRAM_US * CORE_HZ // 1_000_000
        assert elapsed >= N_WORDS * program_cycles, stats  # the stall kept every word's time
        assert elapsed < N_WORDS * program_cycles + 100_000, stats  # and added no big jump
        # the BSY waits were stalls inside the slices, not slice stops and jumps
        assert stats["poll_stops"] <= N_WORDS // 8, stats
        assert stats["stalled"] >= (N_WORDS - N_WORDS // 8) * (program_cycles - 50), stats
    finally:
        board.close()


@pytest.mark.parametrize(
    ("tick", "stall"),
    [
        (300, False),  # due 44 cycles after the flash event: within any slice budget
        (4_000_000, True),  # due 250 ms later: beyond the budget, the stall is still taken
    ],
)
def test_another_event_due_soon_falls_back_to_a_slice_stop(tmp_path: Path, tick: int, stall: bool) -> None:
    log: list[tuple[str, int, int]] = []
    board = _board(tmp_path, _program_words(tick), timing="datasheet", ticker=Ticker(log))
    try:
        m = board.machine
        fc = board.flash
        done = fc._done

        def flash_done() -> None:  # record when each program operation completes
            log.append(("flash", fc._busy_until, m.now_cycles()))
            done()

        fc._done = flash_done  # type: ignore[method-assign]
        t0 = m.now_cycles()
        stats = _run(board)
        assert _words(board, N_WORDS) == [SEED + i for i in range(N_WORDS)]
        assert m.reg("r8") & (FLASH_BSY | FLASH_SR_ERRORS) == 0
        program_cycles = WORD_PROGRAM_US * CORE_HZ // 1_000_000
        assert m.now_cycles() - t0 >= N_WORDS * program_cycles, stats
        flashes = [e for e in log if e[0] == "flash"]
        ticks = [e for e in log if e[0] == "tick"]
        assert len(flashes) == N_WORDS
        # every callback ran exactly on its due cycle, and in time order
        assert all(fired == due for _, due, fired in log), log
        assert [fired for _, _, fired in log] == sorted(fired for _, _, fired in log), log
        if stall:
            assert stats["poll_stops"] <= N_WORDS // 8, stats
            assert stats["stalled"] > 0, stats
            assert ticks == []  # all still due long after the program loop
        else:
            # each BSY wait ended the slice; nothing was stalled past the ticker's event
            assert stats["poll_stops"] >= N_WORDS, stats
            assert stats["stalled"] == 0, stats
            assert len(ticks) >= N_WORDS - 1
            # each word's flash completion came before the tick asked right after its store
            order = [kind for kind, _, _ in log]
            assert order[:4] == ["flash", "tick", "flash", "tick"], order
    finally:
        board.close()


# ---------------------------------------------------------------------- Clock unit
class _FakeUc:
    def __init__(self) -> None:
        self.stops = 0

    def emu_stop(self) -> None:
        self.stops += 1


def _clock_in_slice(budget: int = 2_000) -> tuple[Clock, Slice, _FakeUc]:
    """A clock at cycle 1000 inside an active slice of ``budget`` that made 5 accesses."""
    uc = _FakeUc()
    s = Slice(uc)
    clock = Clock(s, HostGate(), CORE_HZ, idle="skip")
    clock.advance(1_000)
    s.begin(clock.cycles + budget, budget)
    s.active = True
    s.ticks = 5
    return clock, s, uc


def _fell_back(clock: Clock, s: Slice, uc: _FakeUc) -> bool:
    return clock.wait_mode == "poll" and s.reasons == [("poll", None)] and uc.stops == 1 and s.stalled == 0


def test_clock_poll_wait_falls_back_when_the_event_is_not_next() -> None:
    clock, s, uc = _clock_in_slice()
    fired: list[str] = []
    ev = clock.schedule(100, lambda: fired.append("ev"))
    clock.schedule(50, lambda: fired.append("earlier"))
    clock.poll_wait(until=ev)
    assert _fell_back(clock, s, uc)
    assert fired == [] and clock.now_cycles() == 1_005


def test_clock_poll_wait_falls_back_for_a_cancelled_handle() -> None:
    clock, s, uc = _clock_in_slice()
    fired: list[str] = []
    ev = clock.schedule(100, lambda: fired.append("ev"))
    clock.cancel(ev)
    clock.poll_wait(until=ev)
    assert _fell_back(clock, s, uc)
    assert fired == [] and clock.now_cycles() == 1_005
    # also with a live event behind the cancelled one
    clock, s, uc = _clock_in_slice()
    ev = clock.schedule(100, lambda: fired.append("ev"))
    clock.schedule(10_000, lambda: fired.append("later"))
    clock.cancel(ev)
    clock.poll_wait(until=ev)
    assert _fell_back(clock, s, uc)
    assert fired == [] and clock.next_event() == 11_005


@pytest.mark.parametrize("until", [None, "not-a-handle"])
def test_clock_poll_wait_without_a_handle_falls_back(until: object) -> None:
    clock, s, uc = _clock_in_slice()
    clock.schedule(100, lambda: None)
    clock.poll_wait(until=until)
    assert _fell_back(clock, s, uc)


def test_clock_poll_wait_stalls_to_the_only_event() -> None:
    clock, s, uc = _clock_in_slice(budget=2_000)
    fired: list[int] = []
    ev = clock.schedule(100, lambda: fired.append(clock.now_cycles()))
    end0 = s.end
    clock.poll_wait(until=ev)
    assert fired == [ev.when] == [1_105]  # the callback ran at once, at its own cycle
    assert clock.now_cycles() == ev.when
    assert clock.wait_mode is None
    assert s.reasons == [] and uc.stops == 0  # the slice goes on
    assert s.stalled == 100 and s.ticks == 105 and s.end == end0 + 100
    assert clock.next_event() is None
    assert clock.cycles == 1_000  # slice-start time moves only when the runner advances


@pytest.mark.parametrize(("other", "stalls"), [(1_500, False), (2_099, False), (2_100, True), (50_000, True)])
def test_clock_poll_wait_stalls_only_with_a_budget_clear_after_the_event(other: int, stalls: bool) -> None:
    """Event at +100 (cycle 1105), budget 2000: another event due before 1105 + 2000
    forbids the stall."""
    clock, s, uc = _clock_in_slice(budget=2_000)
    fired: list[str] = []
    ev = clock.schedule(100, lambda: fired.append("ev"))
    clock.schedule(other, lambda: fired.append("other"))
    clock.schedule(other + 1, lambda: fired.append("third"))
    clock.poll_wait(until=ev)
    if stalls:
        assert fired == ["ev"] and clock.now_cycles() == 1_105 and clock.wait_mode is None
        assert s.reasons == [] and s.stalled == 100
        assert clock.next_event() == 1_005 + other  # the others still wait
    else:
        assert _fell_back(clock, s, uc)
        assert fired == [] and clock.now_cycles() == 1_005


# ---------------------------------------------------------------------- USART TXE
MESSAGE = b"stall to the end of frame\r\n"
BAUD = 115_200

_PRINT = f"""
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0x40023840         @ RCC_APB1ENR.USART3EN: the USART's clock, as firmware must
    ldr r1, [r0]
    orr r1, r1, #0x40000
    str r1, [r0]
    ldr r0, =0x40004800         @ USART3
    ldr r1, ={CORE_HZ // BAUD + 1}  @ BRR: 115200 baud at 16 MHz (rounded so not faster)
    str r1, [r0, #0x0C]
    movs r1, #0x0D              @ UE | RE | TE
    str r1, [r0]
    ldr r2, =message
2:  ldrb r1, [r2], #1
    cbz r1, 1f
3:  ldr r3, [r0, #0x1C]
    tst r3, #0x80               @ TXE
    beq 3b
    str r1, [r0, #0x28]
    b 2b
1:  ldr r3, [r0, #0x1C]
    tst r3, #0x40               @ TC: the last frame is out
    beq 1b
    bkpt #0
message:
    .asciz "{MESSAGE.decode().encode("unicode_escape").decode()}"
"""


def test_usart_txe_polling_prints_everything_at_the_baud_rate(tmp_path: Path) -> None:
    board = _board(tmp_path, _PRINT)
    try:
        m = board.machine
        ns0 = m.now_ns()
        stats = _run(board)
        assert bytes(board.usart.tx_log) == MESSAGE
        frame_ns = 10 * 1_000_000_000 // BAUD  # start + 8 data + stop bits
        assert m.now_ns() - ns0 >= len(MESSAGE) * frame_ns, stats
        assert m.now_ns() - ns0 < len(MESSAGE) * frame_ns * 11 // 10, stats
        # the TXE/TC waits stalled inside slices instead of stopping one per character
        assert stats["stalled"] > 0, stats
        assert stats["poll_stops"] <= len(MESSAGE) // 4, stats
    finally:
        board.close()


_TC_INTERRUPT = """
    .section .vectors,"a"
    .rept 39
    .word fault + 1
    .endr
    .word usart_isr + 1         @ IRQ 39: USART3
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0xE000ED08         @ SCB_VTOR
    ldr r1, =0x08000000
    str r1, [r0]
    ldr r0, =0xE000E104         @ NVIC_ISER1
    movs r1, #0x80              @ IRQ 39
    str r1, [r0]
    ldr r4, =0x20000200         @ ISR run count
    movs r1, #0
    str r1, [r4]
    ldr r0, =0x40023840         @ RCC_APB1ENR.USART3EN: the USART's clock, as firmware must
    ldr r1, [r0]
    orr r1, r1, #0x40000
    str r1, [r0]
    ldr r0, =0x40004800         @ USART3
    ldr r1, =139                @ 115200 baud at 16 MHz
    str r1, [r0, #0x0C]
    movs r1, #0x0D              @ UE | RE | TE
    str r1, [r0]
    movs r1, #'A'
    str r1, [r0, #0x28]         @ TDR: TC clears while the frame shifts out
    movs r1, #0x4D              @ + TCIE
    str r1, [r0]
1:  ldr r3, [r0, #0x1C]
    tst r3, #0x40               @ TC
    beq 1b
    ldr r5, [r4]                @ ISR runs seen right after the wait
    ldr r7, =100000             @ a long stretch without MMIO
2:  subs r7, r7, #1
    bne 2b
    ldr r6, [r4]
    bkpt #0
    .thumb_func
usart_isr:
    ldr r0, =0x40004800
    movs r1, #0x0D              @ TCIE off (TC stays set for the main loop)
    str r1, [r0]
    ldr r1, =0x20000200
    ldr r2, [r1]
    adds r2, r2, #1
    str r2, [r1]
    bx lr
"""


def test_interrupt_raised_by_the_stalled_event_is_taken_at_once(tmp_path: Path) -> None:
    """The TC interrupt that the end-of-frame event raises is taken before the instruction
    after the TC wait, as with the slice-stop path (not only when the slice ends, after
    200 000 more instructions)."""
    board = _board(tmp_path, _TC_INTERRUPT)
    try:
        m = board.machine
        ns0 = m.now_ns()
        stats = _run(board)
        assert bytes(board.usart.tx_log) == b"A"
        assert stats["stalled"] > 0, stats  # the TC wait stalled to the end of the frame
        assert m.reg("r5") == 1, stats  # the ISR already ran when the wait ended
        assert m.reg("r6") == 1  # once
        assert m.now_ns() - ns0 >= 10 * 1_000_000_000 // BAUD
    finally:
        board.close()
