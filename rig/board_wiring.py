"""How the board's peripherals are wired, as the board file says: the WINC3400 (``winc:``),
the console's U(S)ART (``console:``) and the Ethernet PHY (``eth:``). Frozen dataclasses of
:class:`rig.board_spec.BoardSpec` (which re-exports them), the names RM0410 gives the STM32F7's
eight U(S)ARTs and the F767's RMII pins that have no alternative.

Owns: nothing (values). Must not touch: the board, the twin.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the U(S)ARTs with a synchronous mode (USARTn); the others are UARTn (RM0410)
USARTS = (1, 2, 3, 6)
#: the NUCLEO-F767ZI's console: USART3 on PD8/PD9, the ST-LINK's virtual COM port
DEFAULT_CONSOLE_UART = 3


def uart_name(n: int) -> str:
    """``6`` → ``"USART6"``, ``4`` → ``"UART4"``."""
    return f"{'USART' if n in USARTS else 'UART'}{n}"


#: the thread's shield on a NUCLEO-F767ZI: SPI1's SCK, MISO, MOSI and their alternate function
SHIELD_SPI_PINS: tuple[str, str, str, int] = ("PA5", "PA6", "PB5", 5)


@dataclass(frozen=True)
class WincSpec:
    """How the WINC3400 is wired (``winc:``; the thread's shield by default): the SPI
    (1..6) and the GPIO pins, written ``PD14``."""

    spi: int = 1
    cs: str = "PD14"
    irqn: str = "PB1"
    reset_n: str = "PF12"
    chip_en: str = "PF13"
    #: the board file's ``sck``, ``miso``, ``mosi`` (``PA5``) and ``af``; None: the shield's
    #: (SPI1) or unchecked
    pins: tuple[str, str, str, int] | None = None

    @property
    def spi_pins(self) -> tuple[str, str, str, int] | None:
        """(SCK, MISO, MOSI, alternate function) to check: the board file's, else on SPI1 the
        shield's (PA5, PA6, PB5, AF5), else None (another SPI's pins are not checked)."""
        if self.pins is not None:
            return self.pins
        return SHIELD_SPI_PINS if self.spi == 1 else None

    def twin_arg(self) -> str:
        """The twin's ``--winc-wiring`` value (the twin wired the same way; ``sck``, ``miso``,
        ``mosi`` and ``af`` only when the board file gives them)."""
        arg = f"spi={self.spi},cs={self.cs},irqn={self.irqn},reset_n={self.reset_n},chip_en={self.chip_en}"
        if self.pins is not None:
            sck, miso, mosi, af = self.pins
            arg += f",sck={sck},miso={miso},mosi={mosi},af={af}"
        return arg


@dataclass(frozen=True)
class ConsoleSpec:
    """The U(S)ART the board's console is on (``console: {uart: N}``, 1..8; USART3 when the
    key is absent): on the twin, the one its PTY carries; on a real board, the one the rig's
    hints expect the firmware to transmit on. ``given``: the board file has ``console:`` (the
    twin is then told; otherwise it keeps its own default, USART3)."""

    uart: int = DEFAULT_CONSOLE_UART
    given: bool = False
    #: the board file's ``tx``, ``rx`` (``PC6``) and ``af``; None: the NUCLEO's (USART3,
    #: USART6) or unchecked
    pins: tuple[str, str, int] | None = None

    @property
    def tx_pin(self) -> tuple[str, int, int] | None:
        """(port letter, pin, alternate function) of the TX pin the board file gives, or None."""
        if self.pins is None:
            return None
        tx, _, af = self.pins
        return tx[1], int(tx[2:]), af

    def twin_pins_arg(self) -> str | None:
        """The twin's ``--console-pins`` value (``tx=PC6,rx=PC7,af=8``), or None."""
        if self.pins is None:
            return None
        tx, rx, af = self.pins
        return f"tx={tx},rx={rx},af={af}"

    @property
    def name(self) -> str:
        """``USART3``, ``UART4``..."""
        return uart_name(self.uart)

    def twin_arg(self) -> str:
        """The twin's ``--console-uart`` value."""
        return str(self.uart)


#: the RMII signals with one pin on the F767 (its datasheet's alternate function table, AF11)
RMII_FIXED_PINS = {
    "REF_CLK": "PA1",
    "MDIO": "PA2",
    "MDC": "PC1",
    "CRS_DV": "PA7",
    "RXD0": "PC4",
    "RXD1": "PC5",
}


#: the RMII transmit signals and the F767 pins each can be on (AF11); a board wires one of each
RMII_TX_CHOICES = {"TX_EN": ("PB11", "PG11"), "TXD0": ("PB12", "PG13"), "TXD1": ("PB13", "PG14")}


@dataclass(frozen=True)
class EthSpec:
    """How the Ethernet PHY is wired (``eth:``; the NUCLEO-F767ZI's LAN8742A by default): the
    three RMII transmit pins, written ``PG11`` (TX_EN PB11 or PG11, TXD0 PB12 or PG13, TXD1
    PB13 or PG14 on the F767), and the PHY's MDIO address (0..31)."""

    tx_en: str = "PG11"
    txd0: str = "PG13"
    txd1: str = "PB13"
    phy_address: int = 0

    @property
    def rmii_pins(self) -> dict[str, str]:
        """The nine RMII signals and the pin each is wired to (``{"TX_EN": "PG11", ...}``):
        the six the F767 has one pin for, then the three transmit pins."""
        return {**RMII_FIXED_PINS, "TX_EN": self.tx_en, "TXD0": self.txd0, "TXD1": self.txd1}

    def twin_arg(self) -> str:
        """The twin's ``--eth-wiring`` value (the twin wired the same way)."""
        return f"tx_en={self.tx_en},txd0={self.txd0},txd1={self.txd1},phy={self.phy_address}"
