"""Why a WiFi board never reached the OTA server, as far as its registers tell, on a NUCLEO
as on the twin: read-only probe reads of the RCC, the six SPIs and the GPIO ports, held
against the board file's ``winc:`` wiring (the thread's shield without one). One probable
cause is named: another SPI runs as master while the wired one does not; or the wired one
runs but one of its SCK/MOSI/MISO pins is not in the SPI's alternate function (the board
file's ``sck``, ``miso``, ``mosi``, ``af``; without them SPI1's PA5/PA6/PB5 in AF5, other
SPIs' pins unchecked), or it clocks the module faster than its 48 MHz, or the module's CS is
not an output, or RESET_N/CHIP_EN are driven low. Only what the registers show at that
moment: a bootloader that closes its SPI between retries shows nothing, and the hint is
then silent.

Owns: nothing (pure reads). Must not touch: the board (no writes, no halt).
"""

from __future__ import annotations

from collections.abc import Callable

from rig import gpio_regs as gpio
from rig.board_spec import NUCLEO_HSE_HZ, WincSpec
from rig.clock_hint import F767_MAX_HZ, pclk

RCC = 0x40023800
#: SPIn → (CR1 address, RCC enable register offset, bit) (RM0410 memory map and RCC)
SPIS = {
    1: (0x40013000, 0x44, 12),
    2: (0x40003800, 0x40, 14),
    3: (0x40003C00, 0x40, 15),
    4: (0x40013400, 0x44, 13),
    5: (0x40015000, 0x44, 20),
    6: (0x40015400, 0x44, 21),
}
RCC_APB2ENR_OFFSET = 0x44  # SPIs enabled there run on PCLK2, the others (0x40) on PCLK1
SPE, MSTR = 1 << 6, 1 << 2
#: the ATWINC3400's fastest SPI clock (fSCK, its datasheet's "SPI Slave Timing Parameters")
WINC_MAX_SCK_HZ = 48_000_000
#: what the module misses when the SPI's pin is not routed to it, by signal
NOT_ROUTED = {
    "SCK": "the module sees no clock",
    "MOSI": "the module receives nothing",
    "MISO": "nothing the module answers reaches the SPI",
}


def wiring_mismatch(
    read32: Callable[[int], int], winc: WincSpec | None, hse_hz: int = NUCLEO_HSE_HZ
) -> str | None:
    """A sentence naming what disagrees with the wiring, or None when the registers do not
    show it (see the module doc; ``hse_hz``: the board's HSE, for the SPI's clock)."""
    w = winc or WincSpec()
    key = "winc.spi" if winc else "winc.spi (the board file has no winc: and means the thread's shield, SPI1)"
    running = [
        n
        for n, (cr1, reg, bit) in SPIS.items()
        if read32(RCC + reg) >> bit & 1 and read32(cr1) & (SPE | MSTR) == SPE | MSTR
    ]
    if running and w.spi not in running:
        names = ", ".join(f"SPI{n}" for n in running)
        return (
            f"the firmware runs {names} as SPI master but the board file wires the WINC3400 to SPI{w.spi}: "
            f"set {key} to {running[0]} if the module is there"
        )
    if w.spi not in running:
        return None
    said = spi_pin_unrouted(read32, w) or sck_too_fast(read32, w.spi, hse_hz)
    if said:
        return said
    port, pin = gpio.parse(w.cs)
    if gpio.clocked(read32, port):
        mode = gpio.mode(read32, port, pin)
        if mode != 1:
            return (
                f"SPI{w.spi} runs but the module's CS {w.cs} is not an output (GPIO{w.cs[1]}_MODER: {gpio.MODES[mode]}): "
                "set winc.cs to the pin your firmware drives as chip select"
            )
    for name, field in (("RESET_N", w.reset_n), ("CHIP_EN", w.chip_en)):
        port, pin = gpio.parse(field)
        if (
            gpio.clocked(read32, port)
            and gpio.mode(read32, port, pin) == 1
            and not gpio.output_high(read32, port, pin)
        ):
            return (
                f"SPI{w.spi} runs but {name} {field} is driven low: the module is held in reset (or "
                f"winc.{name.lower()} names another pin than yours)"
            )
    return None


def spi_pin_unrouted(read32: Callable[[int], int], w: WincSpec) -> str | None:
    """A sentence if SCK, MOSI or MISO (:attr:`WincSpec.spi_pins`), its port clocked, is not
    in the SPI's alternate function, else None (also for an SPI whose pins are not known)."""
    if w.spi_pins is None:
        return None
    sck, miso, mosi, af = w.spi_pins
    for signal, name in (("SCK", sck), ("MOSI", mosi), ("MISO", miso)):
        port, pin = gpio.parse(name)
        if not gpio.clocked(read32, port):
            return (
                f"SPI{w.spi} runs but GPIO{name[1]}'s clock is off (RCC_AHB1ENR.GPIO{name[1]}EN): its {signal} "
                f"{name} was never set to alternate function {af}, so {NOT_ROUTED[signal]} "
                f"(__HAL_RCC_GPIO{name[1]}_CLK_ENABLE() before configuring it, or winc.{signal.lower()} "
                "and winc.af to the pins your firmware uses)"
            )
        mode, got = gpio.mode(read32, port, pin), gpio.alternate(read32, port, pin)
        if mode == 2 and got == af:
            continue
        now = ("an input", "an output", f"in alternate function {got}", "analog")[mode]
        return (
            f"SPI{w.spi} runs but its {signal} {name} is {now}, not alternate function {af}: "
            f"{NOT_ROUTED[signal]} (set {name} to AF{af}, GPIO_AF{af}_SPI{w.spi}, or "
            f"winc.{signal.lower()} and winc.af to the pins your firmware uses)"
        )
    return None


def sck_too_fast(read32: Callable[[int], int], spi: int, hse_hz: int = NUCLEO_HSE_HZ) -> str | None:
    """A sentence if SPI ``spi``'s SCK, PCLK / 2**(CR1.BR + 1) (PCLK2 for SPI1/4/5/6, PCLK1
    for SPI2/3), is over the module's 48 MHz, else None."""
    cr1, enr, _ = SPIS[spi]
    apb = 2 if enr == RCC_APB2ENR_OFFSET else 1
    br = read32(cr1) >> 3 & 7
    pclk_hz, _ = pclk(read32, apb, hse_hz)
    sck_hz = pclk_hz >> (br + 1)
    if sck_hz <= WINC_MAX_SCK_HZ or pclk_hz > F767_MAX_HZ:
        return None  # (a PCLK over 216 MHz: the board's HSE is not the one assumed)
    return (
        f"SPI{spi} clocks the WINC3400 at {_mhz(sck_hz)} (PCLK{apb} {_mhz(pclk_hz)} / {2 << br}, "
        f"CR1.BR {br}): the module's SPI is specified to {_mhz(WINC_MAX_SCK_HZ)}; set BR so SCK "
        "stays at or below it"
    )


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:g} MHz"
