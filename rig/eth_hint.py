"""Why an Ethernet board never reached the OTA server, as far as its registers tell.

Read-only probe reads of the Cortex-M7's cache and MPU control and the STM32F767's Ethernet
DMA (RM0410 §42.8.5: DMARDLAR 0x4002900C, DMATDLAR 0x40029010; RCC_AHB1ENR.ETHMACEN bit 25),
after a session in which the board never connected. One probable cause is named: the D-cache
is on and the Ethernet DMA's descriptor lists sit in cacheable SRAM (SRAM1/SRAM2 in the
default memory map; DTCM is never cached), where a driver that does not clean and invalidate
them hands the DMA descriptors it cannot see (the MAC sends nothing) and never sees the DMA's
write-backs (the classic STM32F7 Ethernet hang with the cache on). The wording says
"probably": a driver that does the maintenance right can fail for another reason.

Owns: nothing (pure reads). Must not touch: the board (no writes, no halt).
"""

from __future__ import annotations

from collections.abc import Callable

SCB_CCR, CCR_DC = 0xE000ED14, 1 << 16
MPU_CTRL = 0xE000ED94
RCC_AHB1ENR, ETHMACEN = 0x40023830, 1 << 25
ETH_DMARDLAR, ETH_DMATDLAR = 0x4002900C, 0x40029010
#: cacheable in the default memory map (SRAM1 and SRAM2; DTCM 0x20000000-0x2001FFFF is not)
CACHEABLE_SRAM = (0x20020000, 0x20080000)


def cached_descriptors(read32: Callable[[int], int]) -> str | None:
    """A sentence naming the D-cache as the probable cause, or None when the registers do not
    point there (cache off, ETH MAC never clocked, descriptor lists outside cacheable SRAM)."""
    if not read32(SCB_CCR) & CCR_DC or not read32(RCC_AHB1ENR) & ETHMACEN:
        return None
    lists = {"TX (DMATDLAR)": read32(ETH_DMATDLAR), "RX (DMARDLAR)": read32(ETH_DMARDLAR)}
    lo, hi = CACHEABLE_SRAM
    cached = {name: addr for name, addr in lists.items() if lo <= addr < hi}
    if not cached:
        return None
    where = " and ".join(f"{name} at 0x{addr:08X}" for name, addr in cached.items())
    where = ("lists " if len(cached) > 1 else "list ") + where
    verb = "are" if len(cached) > 1 else "is"
    mpu = (
        "the MPU is on: unless one of its regions makes them non-cacheable"
        if read32(MPU_CTRL) & 1
        else "the MPU is off, so they are cacheable"
    )
    return (
        f"probably the D-cache: it is on (CCR.DC) and the Ethernet DMA's descriptor {where} "
        f"{verb} in SRAM1/SRAM2 ({mpu}); the DMA reads and writes memory, not the CPU's cache: clean "
        "descriptors and frames before setting OWN (SCB_CleanDCache_by_Addr), invalidate them "
        "before reading (SCB_InvalidateDCache_by_Addr), or put them in DTCM or a non-cacheable "
        "MPU region"
    )
