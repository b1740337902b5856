"""twin/cpu_errors.py: the CPU exceptions unicorn reports through its interrupt hook map
to the faults a Cortex-M7 takes (an execute-never fetch, an alignment fault, INVSTATE)."""

from __future__ import annotations

import pytest

from twin.cpu_errors import fault_for_intr


@pytest.mark.parametrize(
    ("intno", "pc", "fault"),
    [
        (3, 0x40000000, ("memmanage", "iaccviol")),  # prefetch abort in an execute-never region
        (3, 0x60000000, ("bus", (0x60000000, "instr"))),  # elsewhere: an instruction bus error
        (4, 0x08000100, ("usage", "unaligned")),
        (18, 0x08000100, ("usage", "invstate")),
        (1, 0x08000100, ("usage", "undefinstr")),
        (99, 0x08000100, ("usage", "undefinstr")),
    ],
)
def test_cpu_exceptions_unicorn_reports_map_to_the_core_faults(intno: int, pc: int, fault: tuple) -> None:
    assert fault_for_intr(intno, pc)[:2] == fault
