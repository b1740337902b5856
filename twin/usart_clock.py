"""The clock a U(S)ART's baud rate divides: RCC_DCKCFGR2 selects it per instance (two bits,
USART1SEL at 0 .. UART8SEL at 14): 00 its APB's PCLK, 01 SYSCLK, 10 the HSI, 11 the LSE
(RM0410, RCC "Dedicated Clocks Configuration Register 2"). HAL's UART_SetConfig computes
BRR from the same selection, so a firmware that moves its console onto the HSI keeps its
baud rate on the twin when the PLL changes, as on the chip.

Owns: the selection's decoding. Must not touch: the RCC's registers (read only).
"""

from __future__ import annotations

#: RCC_DCKCFGR2's offset, the HSI and the LSE (Hz)
DCKCFGR2, HSI_HZ, LSE_HZ = 0x90, 16_000_000, 32_768


def kernel_hz(services: object, apb: int, select: int) -> int:
    """The kernel clock (Hz) of a U(S)ART on APB ``apb`` whose selection is at bit ``select``
    of RCC_DCKCFGR2; 0 if the board has no RCC model."""
    try:
        rcc = services.device("rcc") if services is not None else None  # type: ignore[attr-defined]
    except KeyError:
        rcc = None
    if rcc is None or not hasattr(rcc, "pclk1_hz"):
        return 0
    sel = getattr(rcc, "regs", {}).get(DCKCFGR2, 0) >> select & 3
    if sel == 1:
        return int(rcc.sysclk_hz())
    if sel == 2:
        return HSI_HZ
    if sel == 3:
        return LSE_HZ
    return int(rcc.pclk2_hz() if apb == 2 else rcc.pclk1_hz())
