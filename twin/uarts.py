"""The F767's eight U(S)ARTs and which one is the console.

RM0410's memory map, interrupt table, RCC enable bits and DMA request mapping for USART1,
USART2, USART3, UART4, UART5, USART6, UART7 and UART8; every one is a :class:`twin.usart.Usart`.
The board's console (a PTY the host opens with pyserial: on a NUCLEO-F767ZI the ST-LINK's
virtual COM port, wired to USART3 on PD8/PD9) is the instance ``python -m twin
--console-uart N`` names (3 by default: the board file's ``console: {uart: N}``); the others
transmit at their baud rate into their ``tx_log`` with nothing on their pins, and the first
line one of them sends is logged once with the fix, so a firmware whose console is on
USART6 is told, not left waiting for a banner that went to the wrong pins.

Owns: the instance table and the quiet-line notice. Must not touch: a USART's registers
(twin/usart.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from twin.periph.gpio import parse_pin, pin_function, pin_name
from twin.usart import Usart

#: RCC's APB1ENR and APB2ENR offsets
APB1ENR, APB2ENR = 0x40, 0x44
#: bytes a U(S)ART with nothing on its pins sends (or one line) before the twin says so
NOTICE_BYTES = 32


@dataclass(frozen=True)
class UartInstance:
    """One U(S)ART of RM0410: ``number`` 1..8, register ``base``, NVIC ``irq``, RCC enable
    (``enr`` offset, ``bit``; the reset bit is the same one in APBxRSTR), APB bus (its
    PCLK clocks the USART unless RCC_DCKCFGR2 selects another clock) and DMA controller."""

    number: int
    base: int
    irq: int
    enr: int
    bit: int
    dma: str

    @property
    def name(self) -> str:
        """``USART6``, ``UART4``: the reference manual's name."""
        kind = "UART" if self.number in (4, 5, 7, 8) else "USART"
        return f"{kind}{self.number}"

    @property
    def apb(self) -> int:
        """1 or 2: the bus (and PCLK) it sits on."""
        return 2 if self.enr == APB2ENR else 1


INSTANCES: dict[int, UartInstance] = {
    i.number: i
    for i in (
        UartInstance(1, 0x40011000, 37, APB2ENR, 4, "dma2"),
        UartInstance(2, 0x40004400, 38, APB1ENR, 17, "dma1"),
        UartInstance(3, 0x40004800, 39, APB1ENR, 18, "dma1"),
        UartInstance(4, 0x40004C00, 52, APB1ENR, 19, "dma1"),
        UartInstance(5, 0x40005000, 53, APB1ENR, 20, "dma1"),
        UartInstance(6, 0x40011400, 71, APB2ENR, 5, "dma2"),
        UartInstance(7, 0x40007800, 82, APB1ENR, 30, "dma1"),
        UartInstance(8, 0x40007C00, 83, APB1ENR, 31, "dma1"),
    )
}
CONSOLE_DEFAULT = 3
#: where the host's serial line meets the console: (TX pin, RX pin, alternate function).
#: USART3: PD8/PD9, AF7, the ST-LINK's virtual COM port on the NUCLEO-F767ZI (UM1974);
#: USART6: PG14/PG9, AF8, the NUCLEO-144's Arduino D1/D0 (a USB-serial adapter there). The
#: other instances have no pins of their own on the NUCLEO: checked only where
#: ``--console-pins`` (the board file's ``console: {tx, rx, af}``) gives them.
CONSOLE_PINS: dict[int, tuple[tuple[str, int], tuple[str, int], int]] = {
    3: (("gpiod", 8), ("gpiod", 9), 7),
    6: (("gpiog", 14), ("gpiog", 9), 8),
}


def parse_console(value: str) -> int:
    """``--console-uart``: 1..8, or a name (``USART6``, ``uart4``)."""
    text = value.strip().upper()
    for inst in INSTANCES.values():
        if text in (str(inst.number), inst.name):
            return inst.number
    names = ", ".join(f"{i.number} ({i.name})" for i in INSTANCES.values())
    raise ValueError(f"--console-uart {value!r}: one of {names}")


Pins = tuple[tuple[str, int], tuple[str, int], int]


def parse_pins(value: str) -> Pins:
    """``--console-pins tx=PC6,rx=PC7,af=8``: the console's TX and RX pins and their
    alternate function (the board file's ``console: {tx, rx, af}``)."""
    fields = dict(part.split("=", 1) for part in value.replace(" ", "").split(",") if "=" in part)
    af = fields.get("af", "")
    try:
        if set(fields) != {"tx", "rx", "af"} or not (af.isdigit() and int(af) <= 15):
            raise ValueError
        return parse_pin(fields["tx"]), parse_pin(fields["rx"]), int(af)
    except ValueError:
        raise ValueError(f"--console-pins {value!r}: tx=PIN,rx=PIN,af=N, e.g. tx=PC6,rx=PC7,af=8") from None


def build(console: int = CONSOLE_DEFAULT, pty: bool = True, pins: Pins | None = None) -> list[Usart]:
    """All eight, the ``console`` one on a PTY (if ``pty``) whose line meets ``pins`` (by
    default CONSOLE_PINS'; none: not checked); the console first."""
    if console not in INSTANCES:
        raise ValueError(f"console U(S)ART {console}: 1..8")
    pins = pins or CONSOLE_PINS.get(console)
    out = []
    for inst in INSTANCES.values():
        dev = Usart(
            inst.name.lower(),
            inst.base,
            inst.irq,
            pty=pty and inst.number == console,
            clock=(inst.enr, inst.bit),
            apb=inst.apb,
            dma=inst.dma,
            kernel_select=2 * (inst.number - 1),
        )
        if inst.number != console:
            dev.on_tx = QuietLine(dev, inst, INSTANCES[console]).sent
        elif pins is not None:
            check = ConsolePins(dev, inst, *pins)
            dev.tx_pin_ok, dev.rx_pin_ok = check.tx_ok, check.rx_ok
        out.append(dev)
    out.sort(key=lambda d: d.name != INSTANCES[console].name.lower())
    return out


class ConsolePins:
    """The console's TX and RX pins must be in the alternate function that routes them to the
    USART, as on the board: otherwise what the USART sends never reaches the host (and what
    the host sends never reaches RDR). Said once each in the twin's log, with the fix."""

    def __init__(
        self, dev: Usart, inst: UartInstance, tx: tuple[str, int], rx: tuple[str, int], af: int
    ) -> None:
        self.dev, self.inst, self.tx, self.rx, self.af = dev, inst, tx, rx, af
        self.said: set[str] = set()

    def tx_ok(self) -> bool:
        """The TX pin routed now (each byte the USART sends asks)."""
        return self._routed("TX", self.tx)

    def rx_ok(self) -> bool:
        """The RX pin routed now (each byte the host sends asks)."""
        return self._routed("RX", self.rx)

    def _routed(self, what: str, pin: tuple[str, int]) -> bool:
        services = self.dev.services
        try:
            gpio = services.device(pin[0]) if services is not None else None
        except KeyError:
            gpio = None
        regs = getattr(gpio, "regs", None)
        if regs is None:  # no GPIO model (unit tests): nothing to check
            return True
        mode, af = pin_function(regs, pin[1])
        if mode == 2 and af == self.af:
            return True
        if what not in self.said and services is not None:
            self.said.add(what)
            name = pin_name(*pin)
            now = ("input", "output", f"alternate function {af}", "analog")[mode]
            services.log(
                f"{self.inst.name} {what} is {name}, which is {now}, not alternate function "
                f"{self.af}: {'nothing it sends reaches' if what == 'TX' else 'nothing reaches it from'} "
                f"the host's serial line, as on the board (set {name} to AF{self.af}, "
                f"GPIO_AF{self.af}_{self.inst.name})"
            )
        return False


class QuietLine:
    """Says once (in the twin's log) that a U(S)ART that is not the console transmits: after
    its first line or NOTICE_BYTES bytes, with what it sent and the board file's fix."""

    def __init__(self, dev: Usart, inst: UartInstance, console: UartInstance) -> None:
        self.dev, self.inst, self.console = dev, inst, console
        self.said = False

    def _has_text(self) -> bool:
        """Whether what was sent holds more than line ends and blanks (a bare "\r\n" first
        is not a line worth quoting)."""
        return bool(bytes(self.dev.tx_log).strip())

    def sent(self, byte: int) -> None:
        """One byte left the transmitter (the device calls this)."""
        if self.said or (len(self.dev.tx_log) < NOTICE_BYTES and (byte != 0x0A or not self._has_text())):
            return
        self.said = True
        services = self.dev.services
        if services is None:
            return
        text = bytes(self.dev.tx_log[-NOTICE_BYTES:]).decode("latin-1").strip()
        text = "".join(c if c.isprintable() else "." for c in text)
        name = self.inst.name
        services.log(  # the device's name prefixes it: "usart6: USART6 transmitted ..."
            f"{name} transmitted {len(self.dev.tx_log)} bytes ({text!r}) with nothing on its pins: "
            f"the console (the PTY) is {self.console.name}; is the firmware's console on {name}? "
            f"(board file: console: {{uart: {self.inst.number}}})"
        )


__all__ = [
    "CONSOLE_DEFAULT",
    "INSTANCES",
    "NOTICE_BYTES",
    "QuietLine",
    "UartInstance",
    "build",
    "parse_console",
]
