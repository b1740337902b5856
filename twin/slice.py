"""The instruction slice in progress: the state the CPU hooks and the core runner share.

A slice is one ``emu_start`` of N instructions (counted by twin/code_hook.py). While it
runs, unicorn calls the twin's hooks (bus MMIO callbacks, the store hook, MPU and debug
hooks); they cannot run the core or do a reset there, so they record what they saw here and stop the slice. The runner
(twin/runner.py) reads the record once ``emu_start`` returns.

Owns: whether a slice runs (``active``), why it must stop (``reasons``, :meth:`Slice.stop`),
the time inside the slice (:meth:`Slice.offset`: the instructions retired so far, or the
MMIO access count where nothing counts them), how many of the next slices are
short, the fault address and MPU refusal a hook saw, the "kicked" and "early_event" flags, the latest MMIO
read address and the register whose next read ends the slice during a host wait. Must not touch: time, memory, devices or the core's registers.
"""

from __future__ import annotations

import ctypes

from twin.device import BusError

#: Instructions per slice when nothing is going on.
LONG_SLICE = 200_000
#: Instructions per slice after a device looked at the time inside a slice (so polled
#: CYCCNT, SysTick VAL advance in fine steps) or scheduled an event near inside it.
SHORT_SLICE = 2_000
#: How many short slices follow such an access.
SHORT_SLICES_AFTER_IO = 8


class Slice:
    """What the hooks of the running slice recorded (one instance per machine).

    Args:
        uc: the unicorn engine (``stop`` calls its ``emu_stop``).
    """

    __slots__ = (
        "_uc",
        "active",
        "base",
        "budget",
        "c_ticks",
        "counter",
        "early_event",
        "end",
        "fault_addr",
        "idle_addr",
        "kicked",
        "last_read",
        "mpu_fault",
        "reasons",
        "short",
        "stalled",
        "ticks",
    )

    def __init__(self, uc) -> None:
        self._uc = uc
        self.active = False  # inside emu_start (hooks may run)
        self.reasons: list[tuple[str, object]] = []  # why the slice stopped early
        self.ticks = 0  # MMIO accesses in this slice, plus stalls (time without a count)
        self.stalled = 0  # cycles of ``ticks`` the core spent stalled (Clock.poll_wait)
        #: bus accesses answered in C (twin/flash_fast.c) in this slice: not in ``ticks``
        self.c_ticks = ctypes.c_uint64(0)
        #: the C code hook's count of the instructions begun in the running slice
        #: (twin/code_hook.py: a view of its struct's field), or None where nothing counts
        #: them (no C compiler): then MMIO accesses stand in
        self.counter: ctypes.c_uint64 | None = None
        self.base = 0  # instructions retired by this slice's earlier emu_starts (a replay)
        self.budget = 0  # instructions this slice may run
        self.short = 0  # the next ``short`` slices are SHORT_SLICE long
        self.end = 0  # virtual cycle at which the slice ends if nothing stops it
        self.fault_addr: int | None = None  # address a failing access hook saw
        self.mpu_fault: tuple[str, int] | None = None  # ("daccviol"/"iaccviol", address)
        self.kicked = False  # an exception became takeable inside a register write
        self.early_event = False  # an event far inside this slice was scheduled (Clock.schedule)
        self.last_read = -1  # address of the latest MMIO read in this slice
        self.idle_addr = -1  # a read here ends the slice: a host wait is under way

    def begin(self, end: int, budget: int = 0) -> None:
        """A new slice of ``budget`` instructions starts; it would end at virtual cycle
        ``end``."""
        self.reasons = []
        self.fault_addr = None
        self.mpu_fault = None
        self.kicked = False
        self.early_event = False
        self.ticks = 0
        self.c_ticks.value = 0
        self.stalled = 0
        self.base = 0
        self.budget = budget
        self.end = end

    def accesses(self) -> int:
        """MMIO accesses in this slice so far (plus stalls, as ``ticks``), those answered in
        C included."""
        return self.ticks + self.c_ticks.value

    def offset(self) -> int:
        """Cycles since the running slice began: the instructions retired before the one
        whose hook asks, plus stalls; without a count, one per MMIO access plus stalls."""
        counter = self.counter
        if counter is None:
            return self.ticks
        n = counter.value  # the current instruction's hook has counted it: not retired yet
        return self.base + (n - 1 if n else 0) + self.stalled

    def stop(self, reason: str, detail: object = None) -> None:
        """End the running slice as soon as unicorn allows, recording why."""
        self.reasons.append((reason, detail))
        self._uc.emu_stop()

    def bus_fault(self, address: int, kind: str, what: str) -> None:
        """An access got a bus error: inside a slice the CPU faults (``kind`` "precise" or
        "instr") when the slice ends; outside one (a debugger access) :class:`BusError`."""
        if self.active:
            self.stop("fault", ("bus", (address, kind), f"{what} of 0x{address:08X}"))
        else:
            raise BusError(f"bus error: {what} of unmapped address 0x{address:08X}")
