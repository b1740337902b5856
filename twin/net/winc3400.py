"""A WINC3400 WiFi module on SPI1 that speaks Microchip's own SPI and host-interface protocol.

The module as Microchip's host driver v1.1.0 sees it (docs/twin-network.md), the twin's
only WiFi module: the project's older framing (twin/net/winc.py, winc_wire.py) was removed
once the reference firmware's driver spoke this protocol.

Layers, each in its own module:

* twin/net/winc_bus.py — the SPI slave: commands, responses, data packets, CRC7/CRC16;
* twin/net/winc_chip.py — registers, memory, boot handshakes, HIF transport, IRQN request;
* twin/net/winc_hif.py — the firmware: WiFi group (connect, state change, DHCP);
* twin/net/winc_sockets.py — the socket group, TCP carried by the NAT host (twin/net/nat.py).

This module is the part on the board: the shield wiring (SPI1 SCK PA5 / MISO PA6 / MOSI
PB5, CS PD14, IRQN PB1 -> EXTI1, RESET_N PF12, CHIP_EN PF13), power (RESET_N and CHIP_EN
high = powered; the SPI slave answers at once, the chip then boots as the driver drives it),
the IRQN line with its seeded faults (lost / late interrupts) and the fault plan
(twin/net/faults.py). Chip select only gates the bytes: it does not reset the protocol.

Owns: the pins, the power state, the IRQN level and the fault plan of the module. Must not
touch: the machine beyond the SPI device's Services, the protocol layers' state (it calls
their APIs), host sockets.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twin.net.faults import WincFaults
from twin.net.winc_bus import SpiSlave
from twin.net.winc_chip import WincChip
from twin.net.winc_hif import WincFirmware

if TYPE_CHECKING:
    from twin.net.stack import NetStack

PINS = {"cs": ("gpiod", 14), "reset_n": ("gpiof", 12), "chip_en": ("gpiof", 13), "irqn": ("gpiob", 1)}
PIN_POLL_NS = 500_000  # RESET_N / CHIP_EN sampling period when the ports have no listeners


class Winc3400:
    """The module behind SPI1 (an :class:`~twin.net.spi.SpiSlave`)."""

    def __init__(
        self,
        stack: NetStack,
        seed: int = 0,
        split_prob: float = 0.25,
        pins: dict[str, tuple[str, int]] | None = None,
        ap: tuple[str, str | None] | None = None,
    ) -> None:
        self.stack = stack
        self.services: Any = None
        self.pins = dict(pins or PINS)
        self.faults = WincFaults()
        self.seed = seed
        self.split_prob = split_prob
        self.rng = random.Random(seed)
        self.chip = WincChip(self)
        self.bus = SpiSlave(self.chip, self.faults, self.log)
        self.firmware = WincFirmware(
            self.chip, stack, self.schedule_ns, self.cancel, self.log, self.rng, split_prob, ap
        )
        self.chip.firmware = self.firmware
        self.power = "off"
        self.irqn_low = False
        self._irq_want = False
        self._poll_handle: object | None = None
        self._gpio_cache: dict[str, Any] = {}
        self._missing: set[str] = set()
        self._hooked = False
        self._cs_high = True
        self._unseen = 0  # bytes clocked while the module was not selected or held in reset

    # ---------------------------------------------------------------- services for the layers
    def schedule_ns(self, ns: int, fn: Callable[[], None]) -> object:
        """Run ``fn`` after ``ns`` of virtual time (CPU thread)."""
        cycles = max(1, ns * self.services.core_hz // 1_000_000_000)
        return self.services.schedule(cycles, fn)

    def cancel(self, handle: object) -> None:
        """Cancel a :meth:`schedule_ns` callback."""
        if self.services is not None:
            self.services.cancel(handle)

    def log(self, message: str) -> None:
        """A line in the twin's network log."""
        self.stack.log(f"winc: {message}")

    # ---------------------------------------------------------------- wiring
    def attach(self, services: Any) -> None:
        """Called by the SPI device when the machine attaches it."""
        self.services = services
        self.stack.attach(services)

    def mcu_reset(self, kind: str) -> None:
        """The MCU was reset: the module is a separate chip; only its pin watching restarts."""
        if not self._hooked:
            self._hooked = self._hook_pins()
            self._route()
        self._drive_irqn(self.irqn_low, force=True)  # released = high (the shield's pull-up)
        if self._hooked:
            self.sample_pins()
        else:
            self._start_poll()

    def _hook_pins(self) -> bool:
        """Follow RESET_N / CHIP_EN / CS through GPIO listeners when the ports offer them
        (CS is then a cached level instead of a port lookup per SPI byte)."""
        if self.services is None:
            return False
        watched: dict[str, dict[int, str]] = {}
        for which in ("reset_n", "chip_en", "cs"):
            g = self._gpio(which)
            if g is None or not hasattr(g[0], "add_listener"):
                return False
            watched.setdefault(self.pins[which][0], {})[self.pins[which][1]] = which
        for port, pins in watched.items():
            self._gpio_cache[port].add_listener(lambda pin, level, p=pins: self._pin_changed(p.get(pin)))
        irq = self._gpio("irqn")
        if irq is not None and hasattr(irq[0], "add_read_hook"):
            irq[0].add_read_hook(self._irqn_polled)
        self._cs_high = self._pin_out("cs", False)
        return True

    def _pin_changed(self, which: str | None) -> None:
        if which == "cs":
            self._cs_high = self._pin_out("cs", False)
            self._route()
        elif which is not None:
            self.sample_pins()

    def _start_poll(self) -> None:
        if self.services is None:
            return
        if self._poll_handle is not None:
            self.services.cancel(self._poll_handle)
        self._poll_handle = self.schedule_ns(PIN_POLL_NS, self._poll)

    def _poll(self) -> None:
        self._poll_handle = None
        self.sample_pins()
        self._start_poll()

    def _gpio(self, which: str) -> tuple[Any, int] | None:
        port, pin = self.pins[which]
        dev = self._gpio_cache.get(port)
        if dev is None and port not in self._missing:
            try:
                dev = self.services.device(port)
                self._gpio_cache[port] = dev
            except (KeyError, AttributeError):
                self._missing.add(port)
                self.log(
                    f"no device {port!r}: {which} treated as always {'low' if which == 'cs' else 'high'}"
                )
        return (dev, pin) if dev is not None else None

    def _pin_out(self, which: str, default: bool) -> bool:
        g = self._gpio(which)
        return default if g is None else bool(g[0].output_level(g[1]))

    def _irqn_polled(self) -> None:
        """The firmware reads the IRQN port: with nothing for it and a socket waiting for the
        host (connect, armed receive), it only polls for us; idle at wall pace until the host
        posts (firmware timeouts then match wall time). With a message due in the gap
        between two (20 µs), only that event changes the line: a poll wait (the read stalls
        to it, or the slice jumps there)."""
        if self.irqn_low or self.services is None or self.chip.presented:
            return
        due = self.chip.next_message()
        if due is not None:
            poll_wait = getattr(self.services, "poll_wait", None)
            if poll_wait is not None:
                poll_wait(due)
            return
        if self.chip.queue:
            return
        if self.firmware.sockets.waiting_for_host():
            idle = getattr(self.services, "idle_wait", None)
            if idle is not None:
                idle()

    # ---------------------------------------------------------------- power
    def sample_pins(self) -> None:
        """Follow RESET_N and CHIP_EN: both high = powered."""
        enabled = self._pin_out("reset_n", True) and self._pin_out("chip_en", True)
        if not enabled and self.power != "off":
            self._power_off("RESET_N/CHIP_EN low")
        elif enabled and self.power == "off":
            self._power_on()

    def _power_on(self) -> None:
        self.power = "on"
        self._route()
        self.log("module out of reset")
        self.bus.power_on()
        self.chip.power_on()

    def _power_off(self, why: str) -> None:
        self.log(f"module held in reset ({why})")
        self.power = "off"
        self._route()
        self.chip.power_off()
        self.bus.power_on()  # protocol state and config back to reset values

    def fault_reset(self) -> None:
        """Fault: the module resets by itself (brown-out, watchdog). It comes back as at
        power-up: sockets reset, SPI CRC on again, CPU held until the host boots it."""
        self.faults.counters["module_resets"] += 1
        self.log("fault: module reset")
        if self.power == "on":
            self._power_off("fault")
            self._power_on()

    # ---------------------------------------------------------------- SPI and IRQN
    def exchange(self, mosi: int) -> int:
        """SpiSlave: one byte while SPI1 clocks (the module sees it only while selected)."""
        cs_high = self._cs_high if self._hooked else self._pin_out("cs", False)
        if cs_high or self.power != "on":
            self._not_seen(1, cs_high)
            return 0xFF  # MISO not driven: pulled high
        return self.bus.exchange(mosi)

    def _not_seen(self, n: int, cs_high: bool) -> None:
        """Bytes clocked past the module (CS high, or held in reset): after 64 the twin says
        which pins it watches, once (a firmware wired otherwise never reaches it)."""
        before, self._unseen = self._unseen, self._unseen + n
        if before < 64 <= self._unseen:
            pin = {k: f"P{port[-1].upper()}{num}" for k, (port, num) in self.pins.items()}
            if cs_high:
                why = (
                    f"while its CS {pin['cs']} is high: is chip select another pin? python -m twin "
                    f"--winc-wiring cs=... (board file: winc.cs)"
                )
            else:
                why = (
                    f"while it is held in reset (RESET_N {pin['reset_n']} and CHIP_EN {pin['chip_en']} must be "
                    "high): are those other pins? --winc-wiring reset_n=...,chip_en=... (board file: winc.reset_n, "
                    "winc.chip_en)"
                )
            self.log(f"{self._unseen} bytes clocked past the module {why}")

    def _route(self) -> None:
        """While the module is selected and powered (and CS is followed by a listener), the
        SPI's per-byte ``exchange`` goes straight to the protocol engine (an instance
        attribute over the method below); otherwise through :meth:`exchange`'s checks."""
        if self._hooked and not self._cs_high and self.power == "on":
            self.exchange = self.bus.exchange  # type: ignore[method-assign]
            self.exchange2 = self.bus.exchange2  # type: ignore[method-assign]
        else:
            self.__dict__.pop("exchange", None)
            self.__dict__.pop("exchange2", None)

    def exchange2(self, first: int, second: int) -> int:
        """SpiSlave: two bytes (a 16-bit DR access), MISO ``first | second << 8``."""
        return self.exchange(first) | (self.exchange(second) << 8)

    def exchange_block(self, mosi: bytes) -> bytes:
        """SpiSlave: :meth:`exchange` for each byte of ``mosi`` (SPI1 driven by DMA)."""
        cs_high = self._cs_high if self._hooked else self._pin_out("cs", False)
        if cs_high or self.power != "on":
            self._not_seen(len(mosi), cs_high)
            return b"\xff" * len(mosi)
        return self.bus.exchange_block(mosi)

    def set_irq(self, active: bool) -> None:
        """The chip wants IRQN low (``active``) or released; faults may lose or delay a fall."""
        if active == self._irq_want:
            return
        self._irq_want = active
        if not active:
            self._drive_irqn(False)
            return
        mode, delay_us = self.faults.irq_fault()
        if mode == "lost":
            self.log("fault: interrupt lost")
        elif mode == "delay":
            self.log(f"fault: interrupt delayed {delay_us} us")
            self.schedule_ns(delay_us * 1000, lambda: self._drive_irqn(self._irq_want))
        else:
            self._drive_irqn(True)

    def _drive_irqn(self, active: bool, force: bool = False) -> None:
        if active == self.irqn_low and not force:
            return
        self.irqn_low = active
        g = self._gpio("irqn") if self.services is not None else None
        if g is not None and hasattr(g[0], "drive_input"):
            g[0].drive_input(g[1], not active)  # IRQN is active low

    # ---------------------------------------------------------------- control
    @property
    def stats(self) -> dict[str, int]:
        """Counters of all layers (for net.status)."""
        return {**self.bus.stats, **self.chip.stats, **self.firmware.stats, **self.firmware.sockets.stats}

    def snapshot(self) -> dict[str, Any]:
        """Module state, counters and fault plan (``net.status`` -> ``wifi``)."""
        fw = self.firmware.snapshot()
        return {
            "protocol": "microchip",
            "power": self.power,
            "irqn_low": self.irqn_low,
            "spi": self.bus.snapshot(),
            "chip": self.chip.snapshot(),
            "firmware": {k: v for k, v in fw.items() if k not in ("sockets", "recv_sizes")},
            "sockets": fw["sockets"],
            "recv_sizes": fw["recv_sizes"],
            "stats": self.stats,
            "faults": self.faults.snapshot(),
        }
