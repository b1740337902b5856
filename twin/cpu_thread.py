"""Who runs the core: the free-running CPU thread, the debugger's bursts and single steps.

The CPU thread loops: take the machine lock, run posted host work, do a requested reset,
then either wait (core stopped: the watchdogs' wall-time checks; WFI or a wait: the
clock's pacing) or run one slice; release the lock and step aside for a waiting host.
A debugger resume runs a short burst of slices on the host thread itself
(:meth:`CpuThread.run_burst`), and a debugger step runs one instruction
(:meth:`CpuThread.step_instruction`).

Owns: the thread object and its quit flag. Must not touch: anything but the public
methods of the runner, the reset unit, the clock and the host gate.
"""

from __future__ import annotations

import threading
import time

from twin.clock import Clock
from twin.host_gate import HostGate
from twin.reset import Resets
from twin.runner import CoreRunner


class CpuThread:
    """The CPU thread and the host-thread ways of running the core."""

    def __init__(self, gate: HostGate, runner: CoreRunner, resets: Resets, clock: Clock) -> None:
        self._gate = gate
        self._runner = runner
        self._resets = resets
        self._clock = clock
        self.thread: threading.Thread | None = None
        self._quit = False

    def start(self) -> None:
        """Start the CPU thread (free-running)."""
        if self.thread is None:
            self._quit = False
            self.thread = threading.Thread(target=self._run, name="twin-cpu", daemon=True)
            self.thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the CPU thread and wait for it."""
        self._quit = True
        self._gate.release_waiters()
        if self.thread is not None:
            self.thread.join(timeout)
            self.thread = None

    def _run(self) -> None:
        gate = self._gate
        gate.cpu_thread_id = threading.get_ident()
        while not self._quit:
            with gate.lock:
                wait = self._iteration()
            if wait:
                gate.wait(wait)
            if gate.host_waiting:
                gate.step_aside(lambda: self._quit)

    def _iteration(self) -> float | None:
        """One pass of the loop (lock held): returns wall seconds to wait, or None."""
        runner, resets, gate = self._runner, self._resets, self._gate
        if gate.posted:
            gate.drain(self._clock.guard)
        if resets.pending is not None:
            resets.reset_pending()
        runner.sync_stopped()  # catches lockups entered inside the exception unit
        if not runner.runnable():
            wait = runner.stopped_wait()
            if resets.pending is not None:
                wait = 0.0
            return wait
        if runner.sleeping or self._clock.wait_mode:
            return runner.idle()
        runner.step_slice()
        return None

    def run_burst(self, seconds: float = 0.004) -> None:
        """Run the core on the calling (host) thread for up to ``seconds`` of wall time,
        lock held, stopping early when it halts, sleeps, polls or wants a reset. Used right
        after a debugger resume so a short flash-algorithm call is usually finished before
        the debugger's first status poll (saves many protocol round trips)."""
        runner, resets, clock, gate = self._runner, self._resets, self._clock, self._gate
        deadline = time.perf_counter() + seconds
        while (
            runner.runnable()
            and not runner.sleeping
            and not clock.wait_mode
            and resets.pending is None
            and not gate.posted
            and time.perf_counter() < deadline
        ):
            runner.step_slice()
        resets.reset_pending()

    def step_instruction(self) -> None:
        """Debugger single step (lock held, core halted): one instruction, then halted."""
        runner = self._runner
        runner.halted = False
        runner.sleeping = False
        try:
            if runner.wants_entry():
                self._clock.guard(runner.exc.enter)
            else:
                runner.execute(1)
        finally:
            self._resets.reset_pending()
            if not runner.halted:
                runner.halt("step")
            runner.sync_stopped()
