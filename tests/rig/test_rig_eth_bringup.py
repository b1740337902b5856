"""rig/eth_bringup.py read through a stock pyOCD probe from the twin's Ethernet MAC, RCC,
SYSCFG and GPIO models (written independently from RM0410): an Ethernet bring-up done step by
step through the probe, as a bootloader would, gets at each step the sentence for what is
still missing, and none once the MAC runs."""

from __future__ import annotations

from rig.eth_bringup import bringup_mismatch
from rig.probe import Probe
from rig.targets.twin import TwinTarget

RCC_AHB1ENR, RCC_APB2ENR = 0x40023830, 0x40023844
SYSCFG_PMC = 0x40013804
MACCR, DMABMR, DMATDLAR, DMARDLAR, DMAOMR = 0x40028000, 0x40029000, 0x40029010, 0x4002900C, 0x40029018
#: the NUCLEO-F767ZI's RMII pins (port index, pins), all AF11
NUCLEO_RMII = {0: (1, 2, 7), 1: (13,), 2: (1, 4, 5), 6: (11, 13)}
DESCRIPTORS = 0x20010000  # zeroed: the DMA finds no descriptor it owns and suspends


def _af11(p: Probe, port: int, pins: tuple[int, ...]) -> None:
    base = 0x40020000 + 0x400 * port
    moder = p.read32(base)
    for pin in pins:
        moder = moder & ~(3 << 2 * pin) | 2 << 2 * pin
        reg = base + 0x20 + 4 * (pin // 8)
        p.write32(reg, p.read32(reg) & ~(0xF << 4 * (pin % 8)) | 11 << 4 * (pin % 8))
    p.write32(base, moder)


def test_each_missing_step_is_named_until_the_mac_runs(twin: TwinTarget) -> None:
    with Probe(twin.probe_uid) as p:
        p.halt()
        assert bringup_mismatch(p.read32) is None  # the MAC never clocked: nothing to say
        p.write32(RCC_AHB1ENR, p.read32(RCC_AHB1ENR) | 1 << 25 | 0x4F)  # ETHMACEN, GPIOA..D, G
        said = bringup_mismatch(p.read32)
        assert said is not None and "not its ETHMACTXEN and ETHMACRXEN" in said, said
        p.write32(RCC_AHB1ENR, p.read32(RCC_AHB1ENR) | 3 << 26)
        p.write32(SYSCFG_PMC, 1 << 23)  # lost: SYSCFG's clock is off
        said = bringup_mismatch(p.read32)
        assert said is not None and "SYSCFG's clock is off" in said, said
        p.write32(RCC_APB2ENR, p.read32(RCC_APB2ENR) | 1 << 14)
        said = bringup_mismatch(p.read32)
        assert said is not None and "MII_RMII_SEL is MII" in said, said
        p.write32(SYSCFG_PMC, 1 << 23)
        said = bringup_mismatch(p.read32)
        assert said is not None and "REF_CLK (PA1 is an input)" in said and "TXD1 (" in said, said
        for port, pins in NUCLEO_RMII.items():
            _af11(p, port, pins)
        p.write32(DMABMR, 1)  # the MAC's software reset: done now that REF_CLK reaches it
        assert p.read32(DMABMR) & 1 == 0
        p.write32(DMATDLAR, DESCRIPTORS)
        p.write32(DMARDLAR, DESCRIPTORS + 0x100)
        said = bringup_mismatch(p.read32)
        assert said is not None and "not running now (MACCR.TE, MACCR.RE" in said, said
        p.write32(MACCR, p.read32(MACCR) | 3 << 2)
        p.write32(DMAOMR, 1 << 13 | 1 << 1)
        assert bringup_mismatch(p.read32) is None, bringup_mismatch(p.read32)
