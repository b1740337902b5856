"""STM32F767 peripheral models of the twin (everything but flash, USART3, debug and network).

``all_devices()`` returns fresh instances for one board; the machine attaches and maps
them. Board-side helpers: ``gpiob.output_level(0)`` (LD1), ``gpioc.drive_input(13, True)``
(press B1), ``rcc.reset_history``.

Owns: the list of peripheral models of one board. Must not touch: the machine (the board
adds the devices).
"""

from __future__ import annotations

from twin.device import Device
from twin.periph.commands import commands
from twin.periph.crc import Crc
from twin.periph.dma import Dma1, Dma2
from twin.periph.exti import Exti, Syscfg
from twin.periph.gpio import Gpio, all_ports
from twin.periph.iwdg import Iwdg
from twin.periph.pwr import Pwr
from twin.periph.rcc import Rcc
from twin.periph.rng import Rng
from twin.periph.rtc import Rtc
from twin.periph.timers import BasicTimer, all_timers
from twin.periph.wwdg import Wwdg

#: Board LEDs (port, pin) and the user button, as on the NUCLEO-F767ZI.
LEDS = {"ld1": ("gpiob", 0), "ld2": ("gpiob", 7), "ld3": ("gpiob", 14)}
BUTTON = ("gpioc", 13)

__all__ = [
    "BUTTON",
    "LEDS",
    "BasicTimer",
    "Crc",
    "Dma1",
    "Dma2",
    "Exti",
    "Gpio",
    "Iwdg",
    "Pwr",
    "Rcc",
    "Rng",
    "Rtc",
    "Syscfg",
    "Wwdg",
    "all_devices",
    "all_timers",
    "commands",
    "led_states",
    "press_button",
]


def all_devices(hse_hz: int = 8_000_000) -> list[Device]:
    """Fresh peripheral instances for one board (``hse_hz``: its HSE's frequency)."""
    rcc = Rcc(hse_hz)
    iwdg = Iwdg()
    rcc.clock_listeners.append(iwdg.clock_changed)
    return [
        rcc,
        Pwr(),
        *all_ports(),
        Syscfg(),
        Exti(),
        Crc(),
        iwdg,
        Wwdg(),
        Rng(),
        Rtc(),
        *all_timers(),
        Dma1(),
        Dma2(),
    ]


def led_states(find) -> dict[str, bool]:
    """LED levels given a device lookup (e.g. ``services.device``)."""
    return {led: find(port).output_level(pin) for led, (port, pin) in LEDS.items()}


def press_button(find, pressed: bool) -> None:
    """Press (True) or release the user button B1 (PC13, active high)."""
    port, pin = BUTTON
    find(port).drive_input(pin, pressed)
