"""SysTick (0xE000E010): the core's 24-bit down-counter, counting cycles of virtual time.

The counter is not ticked: its value is computed from the clock (``services.now_cycles``)
and one event is scheduled at each wrap, which pends the SysTick exception (TICKINT).
A loop polling CTRL.COUNTFLAG lets the machine jump to the wrap (``poll_wait``).

Owns: CTRL/LOAD/VAL/COUNTFLAG and its scheduled wrap. Must not touch: other exception
state than pending SysTick (through the model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.device import Services
from twin.nvic import SYSTICK
from twin.scb_regs import ScsBlock

if TYPE_CHECKING:
    from twin.exception_model import ExceptionModel


class SysTick(ScsBlock):
    """SysTick timer (0xE000E010) counting core cycles of virtual time."""

    name, base, size = "systick", 0xE000E010, 0x10
    CALIB = 0x40000000 | (270000 - 1)  # SKEW=1, TENMS = 10 ms of HCLK/8 at 216 MHz (UNVERIFIED)

    def __init__(self, model: ExceptionModel) -> None:
        super().__init__(model)
        self.handle: object | None = None
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self.ctrl = 0
        self.load = 0
        self.countflag = False
        self.next_wrap: int | None = None  # cycle at which VAL reaches 0
        self.val_stopped = 0
        self._last_poll_pc = -1

    def _services(self) -> Services:
        return self.m.services

    def _cancel(self) -> None:
        if self.handle is not None:
            self.m.services.cancel(self.handle)
            self.handle = None

    def _div(self) -> int:
        return 1 if self.ctrl & 4 else 8

    def _arm(self, delay_ticks: int) -> None:
        self._cancel()
        now = self._services().now_cycles()
        self.next_wrap = now + delay_ticks * self._div()
        self.handle = self._services().schedule(self.next_wrap - now, self._wrap)

    def _wrap(self) -> None:
        self.handle = None
        self.countflag = True
        if self.ctrl & 2:
            self.m.pend(SYSTICK)
        if self.ctrl & 1:
            if self.load == 0:
                self.next_wrap = None  # LOAD=0: counter stops at 0
            else:
                self._arm(self.load + 1)

    def current(self) -> int:
        """Current counter value."""
        if not self.ctrl & 1 or self.next_wrap is None:
            return self.val_stopped
        left = self.next_wrap - self._services().now_cycles()
        ticks = -(-left // self._div())
        return 0 if ticks > self.load else max(ticks, 0)

    def next_event_cycles(self) -> int | None:
        """Cycles until the next wrap or None."""
        if self.next_wrap is None or not self.ctrl & 1:
            return None
        return max(self.next_wrap - self._services().now_cycles(), 0)

    def ctrl_value(self, peek: bool = False) -> int:
        """CTRL value; a real read clears COUNTFLAG."""
        val = self.ctrl | (0x10000 if self.countflag else 0)
        if not peek:
            self.countflag = False
        return val

    def _poll_check(self) -> None:
        """A loop polling COUNTFLAG (same PC twice, flag clear): let the machine skip ahead."""
        pc = self.m.cpu.reg("pc")
        if pc == self._last_poll_pc and self.ctrl & 1 and not self.countflag:
            wait = getattr(self.m.services, "poll_wait", None)
            if wait is not None:
                wait()
        self._last_poll_pc = pc

    def read_word(self, offset: int) -> int:
        if offset == 0x0:
            self._poll_check()
            return self.ctrl_value()
        if offset == 0x4:
            return self.load
        if offset == 0x8:
            return self.current()
        return self.CALIB

    def write_word(self, offset: int, value: int, size: int) -> None:
        if offset == 0x0:
            was = self.ctrl & 1
            if was:
                self.val_stopped = self.current()
            self.ctrl = value & 0x7
            if self.ctrl & 1 and not was:
                # Counting resumes from the current VAL (0 → reload on the next tick).
                if self.val_stopped:
                    self._arm(self.val_stopped)
                elif self.load:
                    self._arm(self.load + 1)
            elif not self.ctrl & 1:
                self._cancel()
                self.next_wrap = None
        elif offset == 0x4:
            self.load = value & 0xFFFFFF
        elif offset == 0x8:
            self.countflag = False
            self.val_stopped = 0
            if self.ctrl & 1:
                if self.load:
                    self._arm(self.load + 1)
                else:
                    self._cancel()
                    self.next_wrap = None
