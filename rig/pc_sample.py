"""Where the running core is, without halting it: the DWT's PC sample register (DWT_PCSR,
0xE000101C; ARMv7-M ARM C1.8.7, present on the Cortex-M7), read through the probe.

:class:`EnteredElsewhere` tells the wait for the app's entry breakpoint that it will never
come: once the bootloader has been seen running outside the app slot, a run of samples inside
the slot means the app's code runs although its reset handler never did (an interrupt or a
fault taken through the app's vector table, a jump to the wrong address). A bootloader that
does that right after the ACK is never seen outside; then the core must stand on one address
of the slot for :data:`SPIN` samples in a row (a branch to itself, or a WFI: a sleeping
core's sample is its WFI), with no watchdog that could reset it (RCC_CSR.LSIRDY clear: the
IWDG forces the LSI on; RM0410 and rig/app_settle.py), and a moment's halt must find it in
an exception handler (IPSR != 0): a handler that never returns, before the app ever started.
(An old app still running when the wait starts, in a design that downloads in the app, is
in thread mode when it idles; it is resumed and the count starts again.) Either way the rig stops
waiting out ``install_timeout`` (20 s and more). A core that reads no sample (halted, in
reset, locked up: 0xFFFFFFFF), or a probe that cannot read the register, changes nothing:
the wait goes on to its time-out as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from rig.app_settle import CSR_LSIRDY, RCC_CSR
from rig.errors import ProbeError

DWT_PCSR = 0xE000101C
NO_SAMPLE = 0xFFFFFFFF
#: samples in a row inside the app slot (one per poll of the wait, ~20 ms apart) that decide
RUN = 3
#: samples in a row on one address of the slot that decide when the bootloader was never seen
SPIN = 25


class _Probe(Protocol):
    def read32(self, address: int) -> int: ...
    def halt(self) -> None: ...
    def resume(self) -> None: ...
    def registers(self, names: Sequence[str]) -> dict[str, int]: ...


class EnteredElsewhere:
    """A check for :func:`rig.ota.reconnect_watch.wait_entry`: True once the core has been
    seen outside the app slot ``[base, end)`` and then :data:`RUN` samples in a row inside it,
    or never seen outside and :data:`SPIN` samples on one address, no watchdog, in a handler.

    Only meaningful while a breakpoint on the app's entry is set: the core would have stopped
    there before running any other instruction of the app."""

    def __init__(self, probe: _Probe, base: int, end: int) -> None:
        self.probe, self.base, self.end = probe, base, end
        self.outside = False
        self.inside = 0  #: samples in a row inside the slot
        self.same = 0  #: of those, in a row on the last one's address
        self.last: int | None = None  #: the last sample, for the evidence
        self.decided = False

    def __call__(self) -> bool:
        try:
            pc = self.probe.read32(DWT_PCSR)
            if pc == NO_SAMPLE or not self.base <= pc < self.end:
                self.outside |= pc != NO_SAMPLE
                self.inside = self.same = 0
                return False
            self.same = self.same + 1 if pc == self.last else 1
            self.last, self.inside = pc, self.inside + 1
            if self.outside:
                self.decided = self.inside >= RUN
            elif self.same >= SPIN and not self.probe.read32(RCC_CSR) & CSR_LSIRDY:
                self.decided = self._in_a_handler()
        except ProbeError:
            return False
        return self.decided

    def _in_a_handler(self) -> bool:
        """Halt the core a moment: True (left halted) if it is in an exception handler
        (IPSR != 0), else resume it and start counting again."""
        self.probe.halt()
        if self.probe.registers(["xpsr"])["xpsr"] & 0x1FF:
            return True
        self.probe.resume()
        self.same = 0
        return False
