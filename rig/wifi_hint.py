"""Why a WiFi board never reached the OTA server, as far as its registers tell, on a NUCLEO
as on the twin: read-only probe reads of the RCC, the six SPIs and the GPIO ports, held
against the board file's ``winc:`` wiring (the thread's shield without one). One probable
cause is named: another SPI runs as master while the wired one does not; or the wired one
runs but the module's CS is not an output, or RESET_N/CHIP_EN are driven low. Only what the
registers show at that moment: a bootloader that closes its SPI between retries shows
nothing, and the hint is then silent.

Owns: nothing (pure reads). Must not touch: the board (no writes, no halt).
"""

from __future__ import annotations

from collections.abc import Callable

from rig import gpio_regs as gpio
from rig.board_spec import WincSpec

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
SPE, MSTR = 1 << 6, 1 << 2


def wiring_mismatch(read32: Callable[[int], int], winc: WincSpec | None) -> str | None:
    """A sentence naming what disagrees with the wiring, or None when the registers do not
    show it (see the module doc)."""
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
