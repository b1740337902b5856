"""What lies between the SPI and the WiFi module on the board: the SPI's own pins and its
clock rate.

* **Pins.** SCK, MISO and MOSI reach the module only through GPIO pins in the alternate
  function that routes them to the SPI (RM0410 §6.3.2; the datasheet's alternate function
  table: SPI1 on PA5/PA6/PB5 is AF5, the thread's shield). A pin left an input, an output or
  another alternate function (AF6 is SPI3's: a driver moved from SPI3 to SPI1 keeps
  GPIO_AF6_SPI3) cuts that signal, as on the board: without SCK or MOSI the module sees
  nothing, without MISO nothing it answers reaches the SPI (DR reads 0xFF, the level of a
  line nobody drives here; the board's level is not documented). Said once per pin in the
  twin's log with the fix. Pins are checked for the wiring's SPI where they are known: the
  shield's on SPI1, or the board file's ``winc: {sck, miso, mosi, af}``
  (``--winc-wiring ...,sck=PC10,miso=PC11,mosi=PC12,af=6``); another SPI without them is not
  checked.
* **Rate.** SCK = PCLK / 2^(CR1.BR + 1) (PCLK2 for SPI1/4/5/6, PCLK1 for SPI2/3). The
  ATWINC3400's SPI is specified to 48 MHz (its datasheet's SPI slave timing, fSCK): a master
  enabled above that is said once per boot (the board may still work, or corrupt bytes; the
  twin does not guess which and exchanges them as they are).

No cost per byte while the pins are routed: the module itself is then the SPI's slave
(:meth:`~twin.net.spi.Stm32Spi.set_slave`); :class:`SpiPins` stands in for it only while a
pin is not, and is told of every change by the GPIO ports' ``config_listeners``.

Owns: the routing state and the rate check. Must not touch: the SPI's registers (it reads
CR1), the module's protocol (it forwards bytes as the wires would).
"""

from __future__ import annotations

from typing import Any

from twin.device import peer
from twin.net.spi import CR1_MSTR, CR1_SPE, Stm32Spi
from twin.periph.gpio import pin_function, pin_name

#: the ATWINC3400's maximum SPI clock (datasheet, "SPI Slave Timing Parameters", fSCK)
WINC_SCK_MAX_HZ = 48_000_000
#: the thread's shield: SPI1 SCK PA5, MISO PA6, MOSI PB5, all AF5 (UM1974's Arduino D13/D12/D11)
SHIELD_PINS = {"sck": ("gpioa", 5), "miso": ("gpioa", 6), "mosi": ("gpiob", 5)}
SHIELD_AF = 5
#: SPIs clocked from APB2 (the others, SPI2 and SPI3, from APB1)
APB2_SPIS = (1, 4, 5, 6)
_EFFECT = {
    "sck": "the WINC3400 sees no clock",
    "mosi": "the WINC3400 receives nothing",
    "miso": "nothing the WINC3400 answers reaches the SPI (DR reads 0xFF)",
}


class SpiPins:
    """The SPI's pins and rate toward ``module`` (an SpiSlave with ``attach`` and
    ``mcu_reset``). ``pins``: signal ("sck", "miso", "mosi") → (port device, pin), with their
    alternate function ``af``; None: not checked (only the rate is)."""

    def __init__(
        self, spi: Stm32Spi, module: Any, pins: dict[str, tuple[str, int]] | None, af: int = SHIELD_AF
    ) -> None:
        self.spi, self.module, self.pins, self.af = spi, module, pins, af
        self.services: Any = None
        self.unrouted: list[str] = []  # signals cut now, in SPI order (sck, mosi, miso)
        self._said: set[str] = set()
        self._rate_said = False
        spi.cr1_listener = self.check_rate
        spi.set_slave(self)  # until attached: the SPI attaches (and resets) its slave

    # ---------------------------------------------------------------- the SPI's slave
    def attach(self, services: Any) -> None:
        """The SPI was attached (it calls its slave's ``attach``, the module's or this)."""
        self.services = services
        if hasattr(self.module, "attach"):
            self.module.attach(services)
        for port in {p for p, _ in (self.pins or {}).values()}:
            gpio = self._device(port)
            if gpio is not None and hasattr(gpio, "config_listeners"):
                gpio.config_listeners.append(self.update)
        rcc = self._device("rcc")
        if rcc is not None and hasattr(rcc, "config_listeners"):
            rcc.config_listeners.append(self._clock_changed)
        self.update()

    def mcu_reset(self, kind: str) -> None:
        if hasattr(self.module, "mcu_reset"):
            self.module.mcu_reset(kind)

    def exchange(self, mosi: int) -> int:
        """One frame with a pin cut: the module sees it only if SCK and MOSI are routed; the
        SPI gets 0xFF."""
        self._say()
        if "sck" not in self.unrouted and "mosi" not in self.unrouted:
            self.module.exchange(mosi)
        return 0xFF

    def exchange2(self, first: int, second: int) -> int:
        return self.exchange(first) | (self.exchange(second) << 8)

    def exchange_block(self, mosi: bytes) -> bytes:
        self._say()
        if "sck" not in self.unrouted and "mosi" not in self.unrouted:
            self.module.exchange_block(mosi)
        return b"\xff" * len(mosi)

    # ---------------------------------------------------------------- routing
    def _device(self, name: str) -> Any:
        return peer(self.services, name)

    def update(self) -> None:
        """A pin's function may have changed: the module on the bus, or this in its place."""
        cut = []
        for signal in ("sck", "mosi", "miso"):
            if self.pins is None or signal not in self.pins:
                continue
            port, pin = self.pins[signal]
            regs = getattr(self._device(port), "regs", None)
            if regs is not None and pin_function(regs, pin) != (2, self.af):
                cut.append(signal)
        self.unrouted = cut
        self.spi.set_slave(self if cut else self.module)

    def _say(self) -> None:
        """Each cut pin said once (at the first frame clocked while it is cut)."""
        for signal in self.unrouted:
            if signal in self._said or self.pins is None:
                continue
            self._said.add(signal)
            port, pin = self.pins[signal]
            name = pin_name(port, pin)
            regs = getattr(self._device(port), "regs", None) or {}
            mode, af = pin_function(regs, pin)
            now = ("an input", "an output", f"alternate function {af}", "analog")[mode]
            n, want = self.spi.number, self.af
            self._log(
                f"SPI{n} {signal.upper()} is {name}, which is {now}, not alternate function {want}: "
                f"{_EFFECT[signal]}, as on the board (set {name} to AF{want}, GPIO_AF{want}_SPI{n}) "
                f"(board file: winc.{signal} and winc.af, if yours is on another pin)"
            )

    # ---------------------------------------------------------------- rate
    def _clock_changed(self, why: str) -> None:
        if why == "reset":
            self._rate_said = False
        else:
            self.check_rate()

    def sck_hz(self) -> tuple[int, int, str] | None:
        """(SCK, PCLK, its name) while the SPI runs as master, else None (or no RCC)."""
        cr1 = self.spi.cr1
        rcc = self._device("rcc")
        if cr1 & (CR1_SPE | CR1_MSTR) != CR1_SPE | CR1_MSTR or rcc is None:
            return None
        apb2 = self.spi.number in APB2_SPIS
        pclk = rcc.pclk2_hz() if apb2 else rcc.pclk1_hz()
        return pclk >> (((cr1 >> 3) & 7) + 1), pclk, "PCLK2" if apb2 else "PCLK1"

    def check_rate(self) -> None:
        """An SCK over the module's maximum, said once per boot."""
        if self._rate_said:
            return
        rate = self.sck_hz()
        if rate is None or rate[0] <= WINC_SCK_MAX_HZ:
            return
        self._rate_said = True
        sck, pclk, name = rate
        br = (self.spi.cr1 >> 3) & 7
        self._log(
            f"SPI{self.spi.number} clocks the WINC3400 at {sck / 1e6:g} MHz ({name} {pclk / 1e6:g} MHz / "
            f"{2 << br}, CR1.BR {br}): the module's SPI is specified to {WINC_SCK_MAX_HZ / 1e6:g} MHz "
            "(ATWINC3400 datasheet, SPI slave timing); on a board its bytes may be corrupted: raise BR"
        )

    def _log(self, message: str) -> None:
        if self.services is not None:
            self.services.log(message)  # the SPI's services: the log names the SPI device
