"""rig/pc_sample.py: when the wait for the app's entry breakpoint may stop early.

The probe here is a core described by its PC samples, DHCSR-free: a list of what DWT_PCSR
reads one poll after another, the IPSR a halt finds, whether the LSI runs. The twin's side
(DWT_PCSR itself) is tested in tests/twin/test_twin_machine.py, and the whole path by the
broken variants `irq-left-enabled` and `entry-from-stack` in tests/hil (each now fails in
seconds instead of after the 20 s install time-out).
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rig.app_settle import CSR_LSIRDY, RCC_CSR
from rig.errors import ProbeError
from rig.pc_sample import DWT_PCSR, NO_SAMPLE, RUN, SPIN, EnteredElsewhere

BASE, END = 0x08040000, 0x08080000
BOOT = 0x08001234  # somewhere in the bootloader
SPOT = 0x08040704  # a handler of the app, spinning


class Core:
    def __init__(self, samples: Sequence[int], ipsr: int = 3, lsi: bool = False) -> None:
        self.samples, self.ipsr, self.lsi = list(samples), ipsr, lsi
        self.halted = False
        self.resumes = 0

    def read32(self, address: int) -> int:
        if address == DWT_PCSR:
            return NO_SAMPLE if self.halted else self.samples.pop(0)
        if address == RCC_CSR:
            return CSR_LSIRDY if self.lsi else 0
        raise AssertionError(hex(address))

    def halt(self) -> None:
        self.halted = True

    def resume(self) -> None:
        self.halted = False
        self.resumes += 1

    def registers(self, names: Sequence[str]) -> dict[str, int]:
        assert self.halted and list(names) == ["xpsr"]
        return {"xpsr": 0x01000000 | self.ipsr}


def polls(check: EnteredElsewhere, n: int) -> int | None:
    """The poll (1-based) at which ``check`` decides, or None within ``n`` polls."""
    for i in range(1, n + 1):
        if check():
            return i
    return None


def test_seen_in_the_bootloader_then_running_in_the_slot_decides_after_a_run() -> None:
    core = Core([BOOT, BOOT, 0x08040100, 0x08040180, 0x08040100] + [BOOT] * 10)
    assert polls(EnteredElsewhere(core, BASE, END), 10) == 2 + RUN
    assert not core.halted  # decided without halting


def test_a_run_broken_by_a_reset_or_the_bootloader_starts_again() -> None:
    samples = [BOOT, 0x08040100, 0x08040100, NO_SAMPLE, 0x08040100, BOOT, 0x08040100] + [BOOT] * 10
    assert polls(EnteredElsewhere(core := Core(samples), BASE, END), 12) is None
    assert not core.halted


def test_a_handler_spinning_from_the_start_is_found_by_a_moments_halt() -> None:
    core = Core([SPOT] * (SPIN + 5), ipsr=23)
    assert polls(check := EnteredElsewhere(core, BASE, END), SPIN + 5) == SPIN
    assert core.halted and check.last == SPOT


@pytest.mark.parametrize(
    "why, core",
    [
        ("thread mode: an old app idling (a design that downloads in the app)", Core([SPOT] * 80, ipsr=0)),
        ("the LSI runs: a watchdog may reset it", Core([SPOT] * 80, lsi=True)),
        ("not one address", Core([SPOT, SPOT + 2] * 40)),
    ],
)
def test_no_decision_without_all_the_evidence(why: str, core: Core) -> None:
    assert polls(EnteredElsewhere(core, BASE, END), 80) is None, why
    assert not core.halted, why
    assert core.resumes == (80 // SPIN if core.ipsr == 0 else 0), why


def test_a_probe_that_cannot_read_the_sample_changes_nothing() -> None:
    class NoDwt(Core):
        def read32(self, address: int) -> int:
            raise ProbeError("transfer fault")

    assert polls(EnteredElsewhere(NoDwt([]), BASE, END), 50) is None
