"""rig/eth_hint.py: the D-cache named as the probable cause of an Ethernet board that never
connected, from register values (a register file stands in for the probe's reads)."""

from __future__ import annotations

import pytest

from rig.eth_hint import CCR_DC, ETHMACEN, cached_descriptors

CCR, MPU, AHB1ENR, RDLAR, TDLAR = 0xE000ED14, 0xE000ED94, 0x40023830, 0x4002900C, 0x40029010


def regs(ccr=CCR_DC, mpu=0, ahb1enr=ETHMACEN, rdlar=0x2002D880, tdlar=0x2002D800):
    values = {CCR: ccr, MPU: mpu, AHB1ENR: ahb1enr, RDLAR: rdlar, TDLAR: tdlar}
    return lambda address: values[address]


def test_cache_on_and_both_lists_in_sram1_names_the_cache_and_the_fix() -> None:
    hint = cached_descriptors(regs())
    assert hint is not None
    assert "descriptor lists TX (DMATDLAR) at 0x2002D800 and RX (DMARDLAR) at 0x2002D880 are in" in hint
    assert "the MPU is off" in hint and "SCB_CleanDCache_by_Addr" in hint and "DTCM" in hint


def test_one_list_in_sram2_and_the_mpu_on() -> None:
    hint = cached_descriptors(regs(rdlar=0x20001000, tdlar=0x2007C000, mpu=5))
    assert hint is not None
    assert "list TX (DMATDLAR) at 0x2007C000 is in" in hint and "RX" not in hint
    assert "unless one of its regions makes them non-cacheable" in hint


@pytest.mark.parametrize(
    "kw",
    [
        {"ccr": 0},  # D-cache off
        {"ahb1enr": 0},  # the MAC was never clocked: the bootloader never started Ethernet
        {"rdlar": 0x20000100, "tdlar": 0x20000000},  # DTCM: never cached
        {"rdlar": 0x24000000, "tdlar": 0x08000000},  # not SRAM1/SRAM2
    ],
    ids=["cache-off", "mac-off", "dtcm", "elsewhere"],
)
def test_no_hint_when_the_registers_do_not_point_at_the_cache(kw) -> None:
    assert cached_descriptors(regs(**kw)) is None
