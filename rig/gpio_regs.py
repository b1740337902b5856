"""A GPIO pin's state read through the probe (read-only): its port's clock, its mode and its
alternate function, for the hints that check pins (rig/wifi_hint.py: the WiFi module's CS,
RESET_N, CHIP_EN; rig/console_hint.py: the console's TX pin). RM0410's GPIO register map.

Owns: the addresses and the decoding. Must not touch: the board (no writes).
"""

from __future__ import annotations

from collections.abc import Callable

RCC_AHB1ENR = 0x40023830
MODER, ODR, AFRL = 0x00, 0x14, 0x20
#: MODER's two bits, by value
MODES = ("input", "output", "alternate function", "analog")


def parse(name: str) -> tuple[int, int]:
    """``PD14`` → (3, 14): the port's index (A = 0) and the pin."""
    return ord(name[1].upper()) - ord("A"), int(name[2:])


def base(port: int) -> int:
    """The registers of port ``port`` (A = 0)."""
    return 0x40020000 + 0x400 * port


def clocked(read32: Callable[[int], int], port: int) -> bool:
    """RCC_AHB1ENR.GPIOxEN: the port's registers read 0 without it."""
    return bool(read32(RCC_AHB1ENR) >> port & 1)


def mode(read32: Callable[[int], int], port: int, pin: int) -> int:
    """MODER's two bits of the pin (MODES names them)."""
    return read32(base(port) + MODER) >> (2 * pin) & 3


def alternate(read32: Callable[[int], int], port: int, pin: int) -> int:
    """The pin's alternate function number (AFRL/AFRH)."""
    return read32(base(port) + AFRL + 4 * (pin // 8)) >> (4 * (pin % 8)) & 0xF


def output_high(read32: Callable[[int], int], port: int, pin: int) -> bool:
    """ODR's bit of the pin."""
    return bool(read32(base(port) + ODR) >> pin & 1)
