"""Where time comes from: virtual time, the event queue, wall-clock pacing and host waits.

Virtual time is the number of executed instructions (1 cycle each) at ``core_hz``; the
runner moves it with :meth:`Clock.advance` after each slice by the instructions it retired,
and inside a slice a device sees the slice's start plus the instructions retired so far
(``Slice.offset``, counted by the twin's C code hook; where no C compiler works, one cycle
per MMIO access stands in). Devices schedule callbacks at a cycle; the runner
cuts slices so a callback runs at exactly that cycle.

Waits: WFI sleeps, ``poll_wait`` (a flag only a scheduled event can change: jump to it)
and ``idle_wait`` (the firmware waits for the host: virtual time follows wall time).
Consecutive waits share one wall-clock anchor (a "run of waits"), so virtual time catches
up with wall time after the emulation fell behind on a loaded host; a halt, lockup, reset
or clock change breaks the run (:meth:`Clock.break_pace`).

Owns: cycles, core_hz, the ns time base, the event heap, the pacing anchors, the wait
mode, and the twin's time-stamped log (so every line carries virtual time). Must not
touch: the core, memory or devices other than by calling the callbacks they scheduled.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import time
import traceback
from collections.abc import Callable

from twin.host_gate import HostGate
from twin.slice import SHORT_SLICE, SHORT_SLICES_AFTER_IO, Slice

#: A host wait (``idle_wait``) lets the firmware run again after 1/IDLE_SLICE_DIV s of
#: idle (2 ms): its polling loop then sees the time that passed and can time out.
IDLE_SLICE_DIV = 500

#: Waits (host waits, WFI in realtime mode) that follow each other with less than
#: 1/PACE_GAP_DIV s (20 ms) of executed time in between share one wall-clock anchor, so
#: virtual time catches up with wall time when the emulation fell behind (a loaded host):
#: without it each SysTick wake-up started a new anchor and the lag only grew.
PACE_GAP_DIV = 50


class _Event:
    __slots__ = ("callback", "cancelled", "seq", "when")

    def __init__(self, when: int, seq: int, callback: Callable[[], None]) -> None:
        self.when, self.seq, self.callback, self.cancelled = when, seq, callback, False

    def __lt__(self, other: _Event) -> bool:
        return self.when < other.when or (self.when == other.when and self.seq < other.seq)


class Clock:
    """Virtual time, scheduled events, wall pacing and the host-wait state.

    Args:
        slice_: the running slice's record (sub-slice time, stopping it for a poll).
        gate: the host gate (a host wait ends when new work was posted).
        core_hz: initial core clock (HSI 16 MHz after reset).
        idle: "realtime" (WFI sleeps take wall time) or "skip" (jump to the next event).
        log_stream: where :meth:`log` writes (stderr when None).
    """

    def __init__(
        self, slice_: Slice, gate: HostGate, core_hz: int, idle: str = "realtime", log_stream=None
    ) -> None:
        if idle not in ("realtime", "skip"):
            raise ValueError(f"idle must be 'realtime' or 'skip', not {idle!r}")
        self._slice = slice_
        self._gate = gate
        self._log_stream = log_stream
        self.idle_mode = idle
        self.reset_core_hz = core_hz
        self.core_hz = core_hz
        self._ns_base = 0
        self._ns_cycles = 0
        self.cycles = 0  # at the last slice boundary (see now_cycles)
        self._events: list[_Event] = []
        self._seq = itertools.count()
        # pacing: the anchor of the current wait and of the run of waits it belongs to
        self.idle_anchor: tuple[float, int] | None = None
        self._pace: tuple[float, int] | None = None
        self._pace_end = 0  # cycles when the last wait of that run ended
        self._wait_start = 0  # cycles when the current wait began
        # host waits
        self.wait_mode: str | None = None  # None, "poll" or "idle"
        self._idle_posts = 0
        self._poll_cap: int | None = None  # a poll wait jumps no further (poll_wait's cap)
        self.waited = 0  # cycles virtual time moved in waits (not by executing): busy_cycles
        self.looks = 0  # reads of the time inside slices (a loop timing itself: StatusPoll)

    # ------------------------------------------------------------------ time
    def now_cycles(self) -> int:
        """Virtual time in cycles (inside a slice: slice start + :meth:`Slice.offset`)."""
        s = self._slice
        if s.active:  # a device looked at the time: short slices follow
            s.short = SHORT_SLICES_AFTER_IO
            self.looks += 1
            return self.cycles + s.offset()
        return self.cycles

    def busy_cycles(self) -> int:
        """Virtual time minus the time spent in waits (poll, host wait, WFI): the cycles the
        core spent executing. A device that detects a polling loop by how densely it reads a
        register measures the gap in these, so a loop that polls on after a wait is still
        the same loop. Unlike :meth:`now_cycles` it does not make the next slices short
        (a loop detector needs no fine time; a status read would otherwise cost them)."""
        return self.peek_cycles() - self.waited

    def peek_cycles(self) -> int:
        """:meth:`now_cycles` for the twin's own bookkeeping: not a look at the time by the
        firmware (no short slices follow, :attr:`looks` unchanged)."""
        s = self._slice
        return self.cycles + s.offset() if s.active else self.cycles

    def now_ns(self) -> int:
        """Virtual time in nanoseconds since power-on (monotonic across clock changes)."""
        return self._ns_base + (self.now_cycles() - self._ns_cycles) * 1_000_000_000 // self.core_hz

    def set_core_hz(self, hz: int) -> None:
        """Change the core clock (RCC)."""
        if hz > 0 and hz != self.core_hz:
            self._ns_base = self.now_ns()
            self._ns_cycles = self.now_cycles()
            self.core_hz = hz
            self.break_pace()  # the run of waits counted cycles at the old clock
            self.log(f"core clock now {hz} Hz")

    def log(self, message: str, who: str = "twin") -> None:
        """One line on stderr with virtual time and origin."""
        t_ms = (self._ns_base + (self.cycles - self._ns_cycles) * 1e9 / self.core_hz) / 1e6
        try:
            print(f"[twin {t_ms:10.3f} ms] {who}: {message}", file=self._log_stream or sys.stderr, flush=True)
        except (ValueError, OSError):
            pass

    def guard(self, fn: Callable[[], object]) -> object:
        """Run device code (a callback, a reset); an exception is logged, never raised.
        Returns what ``fn`` returned (None if it raised)."""
        try:
            return fn()
        except Exception:
            self.log("device callback failed:\n" + traceback.format_exc().rstrip())
            return None

    # ------------------------------------------------------------------ events
    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        """Run ``callback`` on the CPU thread ``delay_cycles`` from now."""
        s = self._slice
        if type(delay_cycles) is not int:
            delay_cycles = int(delay_cycles)
        now = self.cycles + s.offset() if s.active else self.cycles
        when = now + (delay_cycles if delay_cycles > 0 else 0)
        ev = _Event(when, next(self._seq), callback)
        heapq.heappush(self._events, ev)
        if s.active and when < s.end:
            if when - now > SHORT_SLICE:
                # far inside a long slice: the bus ends the slice after the store that
                # scheduled it (the next slice then runs exactly to it), else short slices
                s.early_event = True
            else:  # near: the short slices that follow keep it at most one short slice late
                s.short = SHORT_SLICES_AFTER_IO
        return ev

    def cancel(self, handle: object) -> None:
        """Cancel a scheduled callback (no error if it already ran)."""
        if isinstance(handle, _Event):
            handle.cancelled = True

    def cancel_all(self) -> None:
        """Drop every scheduled callback (a system or power reset)."""
        for ev in self._events:
            ev.cancelled = True

    def next_event(self) -> int | None:
        """The cycle of the next scheduled callback, or None."""
        while self._events and self._events[0].cancelled:
            heapq.heappop(self._events)
        return self._events[0].when if self._events else None

    def advance(self, to: int) -> None:
        """Move virtual time to ``to``, firing every event due on the way."""
        while True:
            nxt = self.next_event()
            if nxt is None or nxt > to:
                break
            ev = heapq.heappop(self._events)
            self.cycles = max(self.cycles, ev.when)
            self.guard(ev.callback)
        self.cycles = max(self.cycles, to)

    # ------------------------------------------------------------------ waits
    def poll_wait(self, until: object = None, cap: int | None = None) -> None:
        """A device says the firmware polls a flag that only a scheduled event can change
        (flash BSY, UART TXE while shifting): end the slice now and jump to the next event.
        The polling load is executed again afterwards, so use it for side-effect-free reads.

        ``cap``: jump at most this many cycles (a delay loop waits for time itself, not
        for an event: twin/scs.py DebugUnit._time_spin).

        ``until``: the handle (from :meth:`schedule`) of the event that changes the flag.
        When it is the next event and nothing else is due within one slice budget after
        it, the read stalls instead: virtual time moves to that event inside the slice and
        its callback runs now, so the read already sees the flag changed (the same outcome
        as the jump, without ending the slice: a flash download polls BSY after every word).
        """
        s = self._slice
        if s.active:
            if until is not None and self._stall_to(until):
                return
            self.wait_mode = "poll"
            self._poll_cap = None if cap is None else self.now_cycles() + cap
            s.stop("poll")

    def _stall_to(self, ev: object) -> bool:
        """Move time inside the running slice to event ``ev`` and run it (see poll_wait)."""
        if not isinstance(ev, _Event) or ev.cancelled or self.next_event() is None:
            return False
        events, s = self._events, self._slice
        if events[0] is not ev:
            return False
        limit = ev.when + s.budget  # what is left of the slice runs after the stall
        n = len(events)
        if (n > 1 and events[1].when < limit) or (n > 2 and events[2].when < limit):
            return False  # another event (a heap child of the head) is due too soon
        delay = ev.when - (self.cycles + s.offset())  # s is active: only poll_wait calls this
        if delay > 0:
            s.ticks += delay
            s.stalled += delay
            s.end += delay
        heapq.heappop(events)
        self.guard(ev.callback)
        if s.kicked:  # the event made an exception takeable (e.g. an IRQ): take it now,
            s.stop("kick")  # not at the slice's end (the polling load runs again after it)
        return True

    def idle_wait(self) -> None:
        """A device says the firmware waits for something only the host can bring (socket
        data): after this (short) slice, idle until the next event or until host work is
        posted, at wall-clock pace in both idle modes. Does not stop the slice at the
        asking read (a read with side effects is not repeated); the slice ends at the next
        read of that same register.
        """
        if self.wait_mode is None:
            self.wait_mode = "idle"
            self._idle_posts = self._gate.posts_done
            # the register whose read asked for the wait: its next read ends the slice
            self._slice.idle_addr = self._slice.last_read if self._slice.active else -1
            self.begin_pace(self.now_cycles())

    def begin_pace(self, now: int) -> None:
        """A wall-paced wait begins at cycle ``now``: pick its wall-clock anchor.

        It continues the previous run of waits (same anchor) when that one ended less than
        1/PACE_GAP_DIV s of execution ago and virtual time is behind that run's wall
        timeline; then the wait catches up the lag. Otherwise (virtual time ahead, e.g.
        after a poll jump or a skipped WFI, or a long computation) it starts a new run here:
        virtual time is never pushed further ahead than wall time by this.
        """
        wall = time.monotonic()
        pace = self._pace
        if (
            pace is not None
            and 0 <= now - self._pace_end <= self.core_hz // PACE_GAP_DIV
            and now <= pace[1] + int((wall - pace[0]) * self.core_hz)
        ):
            self.idle_anchor = pace
        else:
            self.idle_anchor = self._pace = (wall, now)
        self._wait_start = now

    def break_pace(self) -> None:
        """Virtual time must not catch up what passed on the wall clock from here (debug
        halt, lockup, reset, clock change)."""
        self._pace = None

    def end_sleep(self) -> None:
        """A WFI sleep ended: close its wall anchor (a following wait may continue it)."""
        if self.idle_anchor is not None:
            self._pace_end = self.cycles
        self.idle_anchor = None

    def _jump_target(self) -> int | None:
        """Where a wait may jump: the next event, or less for a capped poll wait."""
        nxt = self.next_event()
        cap = self._poll_cap
        if cap is not None and self.wait_mode == "poll":
            return cap if nxt is None else min(nxt, max(cap, self.cycles))
        return nxt

    def end_wait(self) -> None:
        """The current poll or host wait is over."""
        self._poll_cap = None
        if self.wait_mode is not None:
            self.wait_mode = None
            self.end_sleep()

    def sleep_begins(self) -> None:
        """The core entered WFI: pace its sleep on wall time ("realtime") or not ("skip")."""
        if self.idle_mode == "realtime":
            self.begin_pace(self.cycles)
        else:
            self.break_pace()
            self.idle_anchor = (time.monotonic(), self.cycles)

    def _wait_to(self, to: int) -> None:
        """Advance to ``to`` as a wait (counted in :attr:`waited`)."""
        before = self.cycles
        self.advance(to)
        self.waited += self.cycles - before

    def settle_wait(self) -> None:
        """Resolve a pending poll/host wait at once by jumping to the next event (slices
        stepped by hand, e.g. in tests)."""
        if self.wait_mode is not None:
            nxt = self._jump_target()
            if nxt is not None:
                self._wait_to(nxt)
            self.end_wait()

    def idle_step(self, sleeping: bool) -> float:
        """One iteration of a WFI sleep (``sleeping``), a poll or a host wait: move time
        and return the wall seconds to wait before the next iteration (0 = run again).

        * "poll" (``poll_wait``): jumps straight to the next event, then runs again.
        * WFI: with ``idle="skip"`` jump to the next event; with ``idle="realtime"`` let
          virtual time follow wall time until the next event. (Whether an exception ends
          the sleep is the runner's question, asked before this.)
        * "idle" (``idle_wait``, the firmware waits for the host): virtual time follows wall
          time in both modes (jumping would race the host: under load a firmware timeout
          fired before the host's data arrived). It also ends when host work was posted
          (e.g. network data arrived).
        """
        if self.wait_mode == "idle" and self._gate.posts_done != self._idle_posts:
            if self.idle_anchor is not None:
                wall0, cyc0 = self.idle_anchor
                target = cyc0 + int((time.monotonic() - wall0) * self.core_hz)
                nxt = self.next_event()
                self._wait_to(min(target, nxt) if nxt is not None else target)
            self.end_wait()
            return 0.0
        nxt = self._jump_target()
        now = self.cycles
        # "skip" jumps WFI sleeps (and polls always jump); a host wait (idle_wait) follows
        # wall time in both modes: jumping it would race the host that is about to send
        skip = (self.idle_mode == "skip" and self.wait_mode != "idle") or self.wait_mode == "poll"
        if skip or (nxt is not None and nxt <= now):
            if nxt is None:
                if self.wait_mode is not None:  # nothing scheduled: just run again
                    self.end_wait()
                    return 0.0
                return 0.05
            self._wait_to(nxt)
            self.end_wait()
            return 0.0
        wall = time.monotonic()
        if self.idle_anchor is None:
            self.begin_pace(now)
            assert self.idle_anchor is not None
        target = self.idle_anchor[1] + int((wall - self.idle_anchor[0]) * self.core_hz)
        if nxt is not None and nxt <= target:
            self._wait_to(nxt)
            self.end_wait()
            return 0.0
        if target > now:
            self._wait_to(target)
        if (
            self.wait_mode == "idle"
            and not sleeping
            and self.cycles - self._wait_start >= self.core_hz // IDLE_SLICE_DIV
        ):
            # A host wait is not a WFI: the firmware polls with its own timeout, so let it run
            # again every IDLE_SLICE (virtual time has followed wall time meanwhile).
            self.end_wait()
            return 0.0
        if nxt is None:
            return min(0.05, 1.0 / IDLE_SLICE_DIV)
        return min(0.05, 1.0 / IDLE_SLICE_DIV, max((nxt - target) / self.core_hz, 0.0005))
