"""A firmware spinning on a status register, recognised so the machine can jump its wait.

A HAL loop ``while (!(REG & BIT)) { if (HAL_GetTick() - t0 > TIMEOUT) break; }`` reads the
same register again and again, each read a few instructions after the previous one, with
the same value. When only a store (the firmware's own) or a scheduled event can change that
register, the machine may jump to its next event at such a read (``services.poll_wait``:
the slice ends, time moves on, the read is executed again afterwards). On a board the loop
would spin through that time; on the twin each spin is a Python call (a 1 s timeout polling
an RCC flag took 2.6 s at 16 MHz and 36 s at 216 MHz).

Only when that is faithful: the loop must not time itself by reading a device's time
(CYCCNT, SysTick VAL: ``services.time_looks`` moved between two reads), and an event must
be due within a millisecond (the HAL tick, SysTick or a timer at 1 kHz, whose interrupt
moves ``uwTick``): a loop counting its iterations as a timeout, with no tick near, would
otherwise be stretched. The read executed again after a jump is let through (it does not
jump again), so the loop goes on to its HAL_GetTick check and a timeout ends the wait; the
read after that jumps again. Jumping at every read would execute the same load for ever.

Owns: the count of one register's reads. Must not touch: the machine (a device's Services).
"""

from __future__ import annotations

from typing import Any


class StatusPoll:
    """Per device: ``read(services, offset, value)`` at every read of a polled register.

    Args:
        reads: reads in a row (each within ``gap`` executed cycles of the last, same offset,
            same value, no look at the time between) before the first jump.
        gap: executed cycles (``services.busy_cycles``) between two reads of one loop.
        tick: jump only to an event due within a millisecond (a HAL tick); False for a
            register the device knows only time changes (a pending MAC reset, a busy MDIO:
            the event that ends it is the one to jump to).
    """

    def __init__(self, reads: int = 8, gap: int = 2000, tick: bool = True) -> None:
        self.reads, self.gap, self.tick = reads, gap, tick
        self.offset = -1
        self.value = -1
        self.count = 0
        self.last = 0
        self.looks = -1

    def read(self, services: Any, offset: int, value: int) -> None:
        busy = getattr(services, "busy_cycles", None)
        now = busy() if busy is not None else services.now_cycles()
        looks_fn = getattr(services, "time_looks", None)
        looks = looks_fn() if looks_fn is not None else 0
        if (
            offset == self.offset
            and value == self.value
            and now - self.last <= self.gap
            and looks == self.looks
        ):
            self.count += 1
        else:
            self.offset, self.value, self.count = offset, value, 1
        self.last, self.looks = now, looks
        if self.count < self.reads:
            return
        if self.tick:
            due = getattr(services, "next_event_in", lambda: None)()
            if due is None or due > services.core_hz // 1000:
                return  # no tick near: the loop may count its own timeout
        self.count = self.reads - 2  # the read run again after the jump goes through
        poll_wait = getattr(services, "poll_wait", None)
        if poll_wait is not None:
            poll_wait()
