"""Why nothing the rig waits for came on the console, as far as the registers tell, on a
NUCLEO as on the twin: read-only probe reads of RCC_APB1ENR/APB2ENR and each U(S)ART's CR1
and BRR, held against the board file's ``console:`` (USART3 without one). One probable
cause is named: another U(S)ART is set up to transmit while the console's is not (the
firmware logs on another instance than the board file says), or the console's own is not
set up to transmit (its clock, CR1.UE or CR1.TE, whichever is missing), or it is but its
TX pin is not routed to it (USART3's PD8 in AF7 on a NUCLEO, USART6's PG14 in AF8). Only what the
registers show at that moment: firmware that has not reached its console set-up shows
the second.

Owns: the wording of those sentences. Must not touch: the board (no writes, no halt).
Probe errors (:class:`rig.errors.ProbeError`) are the caller's to catch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rig import gpio_regs as gpio
from rig.board_wiring import uart_name
from rig.clock_hint import NUCLEO_HSE_HZ, uart_clock

RCC_APB1ENR = 0x40023840
RCC_APB2ENR = 0x40023844
#: CR1 is at offset 0, BRR at 0x0C (RM0410 §34.8)
BRR = 0x0C
UE, TE = 1 << 0, 1 << 3
#: n → (base, RCC enable register, its bit) (RM0410 memory map and RCC_APBxENR)
UARTS = {
    1: (0x40011000, RCC_APB2ENR, 4),
    2: (0x40004400, RCC_APB1ENR, 17),
    3: (0x40004800, RCC_APB1ENR, 18),
    4: (0x40004C00, RCC_APB1ENR, 19),
    5: (0x40005000, RCC_APB1ENR, 20),
    6: (0x40011400, RCC_APB2ENR, 5),
    7: (0x40007800, RCC_APB1ENR, 30),
    8: (0x40007C00, RCC_APB1ENR, 31),
}


@dataclass(frozen=True)
class UartState:
    """One U(S)ART as the registers show it (CR1 and BRR read only with its clock on)."""

    n: int
    clock: bool
    cr1: int = 0
    brr: int = 0

    @property
    def transmits(self) -> bool:
        """Set up to transmit: clock on, CR1.UE and CR1.TE set."""
        return self.clock and self.cr1 & (UE | TE) == UE | TE

    def missing(self) -> str:
        """What keeps it from transmitting, e.g. ``its clock is off (RCC_APB1ENR.USART3EN = 0)``."""
        _, enr, bit = UARTS[self.n]
        if not self.clock:
            reg = "RCC_APB1ENR" if enr == RCC_APB1ENR else "RCC_APB2ENR"
            return f"its clock is off ({reg}.{uart_name(self.n)}EN, bit {bit}, is 0)"
        clear = [name for name, mask in (("UE", UE), ("TE", TE)) if not self.cr1 & mask]
        return f"CR1.{' and '.join(clear)} {'is' if len(clear) == 1 else 'are'} clear (CR1 0x{self.cr1:X})"


def uart_states(read32: Callable[[int], int]) -> dict[int, UartState]:
    """Every U(S)ART's state, by number."""
    enr = {reg: read32(reg) for reg in (RCC_APB1ENR, RCC_APB2ENR)}
    states = {}
    for n, (base, reg, bit) in UARTS.items():
        if enr[reg] >> bit & 1:
            states[n] = UartState(n, True, read32(base), read32(base + BRR))
        else:
            states[n] = UartState(n, False)
    return states


#: the console's TX pin on a NUCLEO-F767ZI and its alternate function, by U(S)ART: USART3's
#: PD8 (the ST-LINK's virtual COM port, UM1974), USART6's PG14 (Arduino D1); the same table
#: as the twin's (twin/uarts.py: the rig never imports the twin)
TX_PINS = {3: ("D", 8, 7), 6: ("G", 14, 8)}


def tx_pin_unrouted(
    read32: Callable[[int], int], console_uart: int, tx_pin: tuple[str, int, int] | None = None
) -> str | None:
    """A sentence if the console's TX pin (``tx_pin``: the board file's (port, pin, AF);
    else TX_PINS) is not in its alternate function, else None (also for an instance
    without a known pin)."""
    if tx_pin is None and console_uart not in TX_PINS:
        return None
    port, pin, af = tx_pin or TX_PINS[console_uart]
    name = f"P{port}{pin}"
    index, _ = gpio.parse(name)
    if not gpio.clocked(read32, index):
        now = f"not clocked (RCC_AHB1ENR.GPIO{port}EN is 0)"
    else:
        mode, got = gpio.mode(read32, index, pin), gpio.alternate(read32, index, pin)
        if mode == 2 and got == af:
            return None
        now = ("an input", "an output", f"in alternate function {got}", "analog")[mode]
    uart = uart_name(console_uart)
    return (
        f"{uart} is set up to transmit but its TX pin {name} is {now}, not alternate function "
        f"{af}: nothing it sends reaches the serial line (set {name} to AF{af}, GPIO_AF{af}_{uart})"
    )


def console_mismatch(
    read32: Callable[[int], int], console_uart: int, tx_pin: tuple[str, int, int] | None = None
) -> str | None:
    """A sentence naming why the console (U(S)ART ``console_uart``, its TX pin ``tx_pin``
    if the board file gives it) stays silent, or None when its U(S)ART is set up to
    transmit on its pin (see the module doc)."""
    states = uart_states(read32)
    console = states[console_uart]
    if console.transmits:
        return tx_pin_unrouted(read32, console_uart, tx_pin)
    others = [s for s in states.values() if s.transmits and s.n != console_uart]
    if not others:
        return (
            f"the board file's console {uart_name(console_uart)} is not set up to transmit (and no "
            f"other U(S)ART is): {console.missing()}"
        )
    names = " and ".join(uart_name(s.n) for s in others)
    setup = ", ".join(f"BRR 0x{s.brr:X}" for s in others)
    guess = " or ".join(uart_name(s.n) for s in others)
    keys = " or ".join(f"console: {{uart: {s.n}}}" for s in others)
    return (
        f"{names} {'is' if len(others) == 1 else 'are'} set up to transmit (clock on, CR1.UE and TE, "
        f"{setup}) but the board file's console is {uart_name(console_uart)}: is the firmware's "
        f"console on {guess}? (board file: {keys})"
    )


#: how far the board's and the host's baud rates may differ before bytes change (a UART
#: receiver's tolerance, RM0410: 3.75 % for 8 bits at 16x oversampling, less the bridge's)
BAUD_TOLERANCE = 0.03
OVER8 = 1 << 15


def baud_mismatch(
    read32: Callable[[int], int], console_uart: int, host_baud: int, hse_hz: int = NUCLEO_HSE_HZ
) -> str | None:
    """A sentence if the console's U(S)ART, set up to transmit, runs at a baud rate more than
    BAUD_TOLERANCE from ``host_baud`` (the board file's; ``hse_hz`` its HSE), else None."""
    state = uart_states(read32)[console_uart]
    if not state.transmits or not state.brr:
        return None
    clock, how = uart_clock(read32, console_uart, hse_hz)
    brr = state.brr & 0xFFFF
    # with OVER8: USARTDIV = BRR[15:4] << 4 | BRR[2:0] << 1, baud = 2 x clock / USARTDIV
    over8 = bool(state.cr1 & OVER8)
    baud = 2 * clock // max(1, (brr & 0xFFF0) | (brr & 7) << 1) if over8 else clock // brr
    if abs(baud - host_baud) <= BAUD_TOLERANCE * host_baud:
        return None
    return (
        f"{uart_name(console_uart)} sends at {baud} baud ({how} / BRR {brr}) and the host's line is "
        f"{host_baud} (the board file's baudrate): each side reads the other's bytes as garbage. "
        "The firmware computed BRR for another clock: an app that assumes the reset clock (16 MHz "
        "HSI) after its bootloader left the PLL running (HAL_RCC_DeInit before the jump), or a "
        "wrong HSE_VALUE"
    )
