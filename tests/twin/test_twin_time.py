"""Virtual time: host waits at wall pace (idle_wait), poll_wait skips, monotonic ns."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.device import Device
from twin.loader import Chunk

pytestmark = pytest.mark.timeout(120)

POLL_HOST = """
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0x40007C00          @ the test's mailbox device (an unused APB1 slot)
1:  ldr r1, [r0]
    cmp r1, #0
    beq 1b
    ldr r2, =0x20000100
    str r1, [r2]
    bkpt #0
"""


class Mailbox(Device):
    """A register the host fills later; firmware polls it (like socket data arriving)."""

    name, base, size = "mailbox", 0x40007C00, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    def read(self, offset: int, size: int) -> int:
        if self.value == 0:
            self.services.idle_wait()  # only the host can change this
        return self.value

    def write(self, offset: int, size: int, value: int) -> None:
        pass


def test_idle_wait_follows_wall_time_until_host_posts(tmp_path: Path) -> None:
    _, binf = build(tmp_path, POLL_HOST)
    board = Board(BoardOptions(pty=False, idle="realtime"))
    box = Mailbox()
    board.machine.add_device(box, first=True)
    try:
        board.power_on([Chunk(0x08000000, binf.read_bytes(), "poll")])
        m = board.machine
        m.debug.ctrl = 1
        m.start()
        time.sleep(0.4)

        def deliver() -> None:
            box.value = 42

        t_post = time.monotonic()
        m.post(deliver)
        deadline = time.monotonic() + 10
        while not m.halted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert m.halted
        assert time.monotonic() - t_post < 2.0  # the post ended the wait promptly
        with m.host():
            assert m.bus_read(0x20000100, 4) == (42).to_bytes(4, "little")
            virtual_s = m.now_ns() / 1e9
            executed = m.instructions
        assert 0.25 <= virtual_s <= 5.0  # virtual time followed the wall
        assert executed < 2_000_000  # it idled instead of spinning
    finally:
        board.close()


def test_now_ns_is_monotonic_across_clock_changes() -> None:
    board = Board(BoardOptions(pty=False))
    try:
        m = board.machine
        m.clock.advance(16_000_000)  # 1 s at 16 MHz
        t1 = m.now_ns()
        m.set_core_hz(216_000_000)
        assert m.now_ns() == t1
        m.clock.advance(m.now_cycles() + 216_000_000)  # +1 s at 216 MHz
        assert abs(m.now_ns() - (t1 + 1_000_000_000)) < 10
        m.set_core_hz(16_000_000)
        assert m.now_ns() >= t1 + 1_000_000_000 - 10
    finally:
        board.close()


def test_post_from_many_threads_runs_everything_on_the_cpu_thread() -> None:
    board = Board(BoardOptions(pty=False))
    seen: list[int] = []
    try:
        m = board.machine
        board.power_on()
        m.start()
        ids = set()

        def work(i: int) -> None:
            ids.add(threading.get_ident())
            seen.append(i)

        threads = [
            threading.Thread(
                target=lambda k=k: [m.post(lambda j=j: work(j)) for j in range(k * 100, k * 100 + 100)]
            )
            for k in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 10
        while len(seen) < 400 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sorted(seen) == list(range(400))
        assert ids == {m.gate.cpu_thread_id}
    finally:
        board.close()


TICKING_WAIT = """
    .text
    .thumb_func
    .global reset
reset:
    ldr r0, =0x2000003C          @ a RAM vector table with SysTick at entry 15
    ldr r1, =tick + 1
    str r1, [r0]
    ldr r0, =0xE000ED08          @ VTOR
    ldr r1, =0x20000000
    str r1, [r0]
    ldr r0, =0xE000E014          @ SysTick LOAD: 1 kHz at 16 MHz
    ldr r1, =15999
    str r1, [r0]
    ldr r0, =0xE000E010
    movs r1, #7
    str r1, [r0]
    ldr r0, =0x40007C00
1:  ldr r1, [r0]                 @ wait for the host, forever
    b 1b
    .thumb_func
tick:
    ldr r2, =0x20000100
    ldr r3, [r2]
    adds r3, #1
    str r3, [r2]
    bx lr
"""


def test_waits_catch_up_wall_time_lost_while_the_cpu_thread_was_starved(tmp_path: Path) -> None:
    """A loaded host stops the CPU thread for a while; a firmware that only waits for the host
    (with SysTick waking it every 1 ms) must see that time pass, as a board would: virtual
    time catches up instead of staying behind by the stall (a 1 s IWDG then fires within
    ~1 s of wall time, whatever the load)."""
    _, binf = build(tmp_path, TICKING_WAIT)
    board = Board(BoardOptions(pty=False, idle="realtime"))
    board.machine.add_device(Mailbox(), first=True)
    try:
        board.power_on([Chunk(0x08000000, binf.read_bytes(), "wait")])
        m = board.machine
        m.start()
        t0 = time.monotonic()
        time.sleep(0.3)
        with m.host():  # the CPU thread gets no CPU
            time.sleep(0.6)
        time.sleep(0.5)
        seen: list[tuple[float, float]] = []
        deadline = time.monotonic() + 5  # a loaded host may take a while to catch up
        while time.monotonic() < deadline:
            with m.host():
                wall = time.monotonic() - t0
                virtual = m.now_ns() / 1e9
                ticks = int.from_bytes(m.bus_read(0x20000100, 4), "little")
            seen.append((round(wall, 3), round(virtual, 3)))
            assert virtual <= wall + 0.05, seen  # never ahead of the wall
            assert abs(ticks - virtual * 1000) <= 5  # every millisecond was ticked
            if virtual >= wall - 0.25:
                break  # caught up: a 0.6 s stall left behind would stay 0.6 s behind
            time.sleep(0.1)
        assert seen[-1][1] >= seen[-1][0] - 0.25, seen
    finally:
        board.close()
