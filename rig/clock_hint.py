"""The clock tree read through the probe, on a NUCLEO as on the twin: RCC_PLLCFGR and RCC_CFGR
give HCLK and the APB clocks (an SPI's, rig/wifi_hint.py), RCC_DCKCFGR2 each U(S)ART's kernel
clock, FLASH_ACR the wait states. Two findings come of it here:

* too few flash wait states: at 2.7-3.6 V flash needs one per 30 MHz of HCLK (RM0410 §3.3.2:
  7 at 216 MHz); with fewer the core reads wrong instructions and data from flash, which
  crashes a bootloader right after its clock set-up, or now and then;
* a U(S)ART's real baud rate (kernel clock / BRR), which rig/console_hint.py holds against
  the host's.

SYSCLK is the HSI (16 MHz), the HSE, or the PLL's P output from either. The HSE is the
board's: a NUCLEO-F767ZI's is the ST-LINK's 8 MHz (MCO), the default here; a board with
another crystal passes its frequency. A clock over the F767's 216 MHz from those registers
means the HSE is not the one assumed: nothing is said then.

Owns: the arithmetic and the sentence. Must not touch: the board (reads only). Probe errors
(:class:`rig.errors.ProbeError`) are the caller's to catch.
"""

from __future__ import annotations

from collections.abc import Callable

from rig.board_spec import NUCLEO_HSE_HZ

RCC_PLLCFGR, RCC_CFGR, FLASH_ACR = 0x40023804, 0x40023808, 0x40023C00
RCC_DCKCFGR2 = 0x40023890
#: RCC_CFGR.PPRE1/PPRE2 → APB divider (RM0410)
APB_DIV = {4: 2, 5: 4, 6: 8, 7: 16}
LSE_HZ = 32_768
HSI_HZ = 16_000_000
HZ_PER_WAIT_STATE = 30_000_000  # at 2.7-3.6 V (RM0410 §3.3.2)
F767_MAX_HZ = 216_000_000
#: RCC_CFGR.HPRE → AHB divider (RM0410)
AHB_DIV = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}


def hclk(pllcfgr: int, cfgr: int, hse_hz: int = NUCLEO_HSE_HZ) -> tuple[int, str]:
    """HCLK (Hz) from RCC_PLLCFGR and RCC_CFGR (SWS reads the PLL only once it is locked), and
    how it comes about (for the sentence)."""
    sws = (cfgr >> 2) & 3
    div = AHB_DIV.get((cfgr >> 4) & 0xF, 1)
    if sws == 2:
        m, n, p = pllcfgr & 0x3F, (pllcfgr >> 6) & 0x1FF, ((pllcfgr >> 16 & 3) + 1) * 2
        hse = bool(pllcfgr & (1 << 22))
        src = hse_hz if hse else HSI_HZ
        sysclk = src // m * n // p if m >= 2 and n >= 2 else 0
        what = f"HSE ({_mhz(src)} {_assumed(hse_hz)}" if hse else f"HSI ({_mhz(src)}"
        how = f"the PLL from the {what} / M {m} x N {n} / P {p})"
    elif sws == 1:
        sysclk, how = hse_hz, f"the HSE ({_mhz(hse_hz)} {_assumed(hse_hz)})"
    else:
        sysclk, how = HSI_HZ, "the HSI (16 MHz)"
    return sysclk // div, how + (f", AHB / {div}" if div > 1 else "")


def pclk(read32: Callable[[int], int], apb: int, hse_hz: int = NUCLEO_HSE_HZ) -> tuple[int, str]:
    """PCLK1 or PCLK2 (``apb`` 1 or 2; Hz: HCLK / RCC_CFGR.PPRE1 or PPRE2) and what it is,
    e.g. ``PCLK2 108 MHz (HCLK from the PLL ..., APB2 / 2)``."""
    cfgr = read32(RCC_CFGR)
    hz, how = hclk(read32(RCC_PLLCFGR), cfgr, hse_hz)
    div = APB_DIV.get(cfgr >> (10 if apb == 1 else 13) & 7, 1)
    return (
        hz // div,
        f"PCLK{apb} {_mhz(hz // div)} (HCLK from {how}{f', APB{apb} / {div}' if div > 1 else ''})",
    )


def uart_clock(read32: Callable[[int], int], n: int, hse_hz: int = NUCLEO_HSE_HZ) -> tuple[int, str]:
    """U(S)ART ``n``'s kernel clock (Hz) and what it is: RCC_DCKCFGR2's two bits for it
    select its APB's PCLK (USART1/6 on APB2, the others on APB1), SYSCLK, the HSI or the LSE."""
    sel = read32(RCC_DCKCFGR2) >> (2 * (n - 1)) & 3
    if sel == 2:
        return HSI_HZ, "the HSI (16 MHz)"
    if sel == 3:
        return LSE_HZ, "the LSE (32.768 kHz)"
    if sel == 1:
        cfgr = read32(RCC_CFGR)
        hz, how = hclk(read32(RCC_PLLCFGR), cfgr, hse_hz)
        div = AHB_DIV.get(cfgr >> 4 & 0xF, 1)
        return hz * div, f"SYSCLK {_mhz(hz * div)} ({how})"
    return pclk(read32, 2 if n in (1, 6) else 1, hse_hz)


def wait_states_needed(hclk_hz: int) -> int:
    """The fewest FLASH_ACR.LATENCY wait states for ``hclk_hz`` at 2.7-3.6 V."""
    return max(0, (hclk_hz - 1) // HZ_PER_WAIT_STATE)


def too_few_wait_states(read32: Callable[[int], int], hse_hz: int = NUCLEO_HSE_HZ) -> str | None:
    """A sentence if FLASH_ACR.LATENCY is below what HCLK needs, else None."""
    hz, how = hclk(read32(RCC_PLLCFGR), read32(RCC_CFGR), hse_hz)
    latency, need = read32(FLASH_ACR) & 0xF, wait_states_needed(hz)
    if latency >= need or hz > F767_MAX_HZ:
        return None  # (over 216 MHz: the board's HSE is not the one assumed, nothing to say)
    return (
        f"FLASH_ACR.LATENCY is {latency} wait state(s) at HCLK {_mhz(hz)} ({how}): flash needs {need} "
        "at 2.7-3.6 V (one per 30 MHz, RM0410 §3.3.2), so the core read wrong instructions or data "
        f"from flash; set LATENCY before raising the clock (HAL_RCC_ClockConfig(&clk, "
        f"FLASH_LATENCY_{need}), or FLASH->ACR and read it back)"
    )


def _assumed(hse_hz: int) -> str:
    return "as on a NUCLEO" if hse_hz == NUCLEO_HSE_HZ else "given"


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:g} MHz"
