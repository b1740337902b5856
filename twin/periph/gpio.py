"""GPIO ports A..K (0x4002_0000 + 0x400·n): modes, ODR/BSRR, IDR from outside, edges to EXTI.

Owns: the ports' registers and pin levels. Must not touch: what is wired to a pin
(board-side parts drive inputs and read outputs) or the machine beyond Services.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from twin.periph.base import RegDevice

MODER, OTYPER, OSPEEDR, PUPDR, IDR, ODR, BSRR, LCKR, AFRL, AFRH = (
    0x00,
    0x04,
    0x08,
    0x0C,
    0x10,
    0x14,
    0x18,
    0x1C,
    0x20,
    0x24,
)
PORTS = "abcdefghijk"
# Reset values differing from 0: the debug pins on A and B (RM0410; UNVERIFIED).
SPECIAL_RESET = {
    "a": {MODER: 0xA8000000, OSPEEDR: 0x0C000000, PUPDR: 0x64000000},
    "b": {MODER: 0x00000280, OSPEEDR: 0x000000C0, PUPDR: 0x00000100},
}
# Board-level pull resistors: PC13 (user button B1) has an external pull-down.
BOARD_PULLS: dict[str, dict[int, bool]] = {"c": {13: False}}


_PIN = re.compile(r"P([A-K])(\d{1,2})$", re.IGNORECASE)


def parse_pin(text: str) -> tuple[str, int]:
    """``PD14`` → ("gpiod", 14); ValueError naming the form otherwise."""
    m = _PIN.match(text.strip())
    if not m or int(m.group(2)) > 15:
        raise ValueError(f"{text!r} is not a pin: write PA0..PK15")
    return f"gpio{m.group(1).lower()}", int(m.group(2))


def pin_name(port: str, pin: int) -> str:
    """("gpiod", 14) → ``PD14``."""
    return f"P{port[-1].upper()}{pin}"


def pin_function(regs: dict[int, int], pin: int) -> tuple[int, int]:
    """(MODER's two bits, the AFRL/AFRH nibble) of ``pin`` in a port's registers: mode 2
    with the AF number is a pin routed to a peripheral."""
    mode = regs.get(MODER, 0) >> (2 * pin) & 3
    af = regs.get(AFRL + 4 * (pin // 8), 0) >> (4 * (pin % 8)) & 0xF
    return mode, af


class Gpio(RegDevice):
    """One GPIO port. ``drive_input``/``output_level`` are the board-side API."""

    size = 0x400

    def __init__(self, port: str) -> None:
        self.port = port
        self.index = PORTS.index(port)
        self.name = f"gpio{port}"
        self.base = 0x40020000 + 0x400 * self.index
        self.RESET = {
            MODER: 0,
            OTYPER: 0,
            OSPEEDR: 0,
            PUPDR: 0,
            IDR: 0,
            ODR: 0,
            BSRR: 0,
            LCKR: 0,
            AFRL: 0,
            AFRH: 0,
            **SPECIAL_RESET.get(port, {}),
        }
        self.WRITABLE = {OTYPER: 0xFFFF, ODR: 0xFFFF, IDR: 0, LCKR: 0x1FFFF}
        self.CLOCK = (0x30, self.index)  # RCC_AHB1ENR.GPIOxEN
        super().__init__()
        self.external: dict[int, bool] = {}  # pins driven from outside the chip
        self._ext_gen = 0  # bumped whenever ``external`` changes (the IDR memo's key)
        self._idr_memo: dict[tuple[int, ...], int] = {}
        self.listeners: list[Callable[[int, bool], None]] = []
        #: called after MODER or AFRL/AFRH is written or reset (a pin's function may have
        #: changed: twin/net/spi_pins.py)
        self.config_listeners: list[Callable[[], None]] = []
        self.read_hooks: list[Callable[[], None]] = []
        self._lock_seq = 0
        self._idr = self._compute_idr()

    # -------------------------------------------------------------- board side
    def drive_input(self, pin: int, level: bool | None) -> None:
        """Drive ``pin`` from outside (True/False), or release it with None."""
        if level is None:
            self.external.pop(pin, None)
        else:
            self.external[pin] = bool(level)
        self._ext_gen += 1
        self._refresh()

    def output_level(self, pin: int) -> bool:
        """Level the chip drives on ``pin`` (False when the pin is not an output)."""
        mode = self.regs[MODER] >> (2 * pin) & 3
        if mode != 1:
            return False
        return bool(self.regs[ODR] >> pin & 1)

    def input_level(self, pin: int) -> bool:
        """What IDR shows for ``pin``."""
        return bool(self._idr >> pin & 1)

    def add_listener(self, fn: Callable[[int, bool], None]) -> None:
        """Call ``fn(pin, level)`` whenever a pin's level (IDR) changes."""
        self.listeners.append(fn)

    # -------------------------------------------------------------- model
    def _pin_level(self, pin: int) -> bool:
        mode = self.regs[MODER] >> (2 * pin) & 3
        if mode == 1:  # output (open-drain 1 floats: pulls/external)
            odr = self.regs[ODR] >> pin & 1
            if not (self.regs[OTYPER] >> pin & 1) or not odr:
                return bool(odr)
        if pin in self.external:
            return self.external[pin]
        pupd = self.regs[PUPDR] >> (2 * pin) & 3
        if pupd == 1:
            return True
        if pupd == 2:
            return False
        return BOARD_PULLS.get(self.port, {}).get(pin, False)

    def _compute_idr(self) -> int:
        # remembered per (MODER, OTYPER, ODR, PUPDR, external drive): a chip select toggled
        # around every SPI transfer flips between two states thousands of times a second
        r = self.regs
        key = (r[MODER], r[OTYPER], r[ODR], r[PUPDR], self._ext_gen)
        idr = self._idr_memo.get(key)
        if idr is None:
            idr = sum(1 << p for p in range(16) if self._pin_level(p))
            if len(self._idr_memo) >= 64:
                self._idr_memo.clear()
            self._idr_memo[key] = idr
        return idr

    def _refresh(self) -> None:
        new = self._compute_idr()
        changed, self._idr = new ^ self._idr, new
        self.regs[IDR] = new
        if not changed:
            return
        exti = None
        if self.services is not None:
            try:
                exti = self.services.device("exti")
            except KeyError:
                exti = None
        for pin in range(16):
            if changed >> pin & 1:
                level = bool(new >> pin & 1)
                if exti is not None:
                    exti.gpio_edge(self.index, pin, level)  # type: ignore[attr-defined]
                for fn in list(self.listeners):
                    fn(pin, level)

    def reset(self, kind: str) -> None:
        super().reset(kind)
        self._lock_seq = 0
        self._refresh()
        self._config_changed()

    def _config_changed(self) -> None:
        for fn in list(self.config_listeners):
            fn()

    def add_read_hook(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on every IDR read (a board-side part may tell the machine that the
        firmware is only polling for it, e.g. the WINC3400's IRQN line)."""
        self.read_hooks.append(fn)

    def on_read(self, offset: int) -> int:
        if offset == IDR:
            for fn in self.read_hooks:
                fn()
            return self._idr
        if offset == BSRR:
            return 0
        return self.regs[offset]

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if self.gate is not None and not self.gate.enabled():
            return
        if aligned == BSRR:  # write-only; any width sets/resets lanes
            value = (value << (8 * (offset & 3))) & 0xFFFFFFFF
            odr = self.regs[ODR]
            odr &= ~(value >> 16)
            odr |= value & 0xFFFF  # set wins
            self.regs[ODR] = odr & 0xFFFF
            self._refresh()
            return
        if self.regs[LCKR] & (1 << 16) and aligned in (MODER, OTYPER, OSPEEDR, PUPDR, AFRL, AFRH):
            locked = self.regs[LCKR] & 0xFFFF
            old = self.regs[aligned]
            super().write(offset, size, value)
            self.regs[aligned] = self._keep_locked(aligned, old, self.regs[aligned], locked)
            self._refresh()
        else:
            super().write(offset, size, value)
        if aligned in (MODER, AFRL, AFRH) and self.config_listeners:
            self._config_changed()

    @staticmethod
    def _keep_locked(offset: int, old: int, new: int, locked: int) -> int:
        if offset == OTYPER:
            return (new & ~locked) | (old & locked)
        mask = 0
        pins = range(8) if offset == AFRL else range(8, 16) if offset == AFRH else range(16)
        for pin in pins:
            if locked >> pin & 1:
                if offset in (AFRL, AFRH):
                    mask |= 0xF << (4 * (pin % 8))
                else:
                    mask |= 3 << (2 * pin)
        return (new & ~mask) | (old & mask)

    def on_write(self, offset: int, old: int, value: int) -> None:
        if offset == LCKR:
            self._lckr(old, value)
            return
        self._refresh()

    def _lckr(self, old: int, value: int) -> None:
        """LCKK sequence: write 1, write 0, write 1 (same LCKx), read → locked until reset."""
        self.regs[LCKR] = old
        if old & (1 << 16):
            return
        lckk = value >> 16 & 1
        expected = (1, 0, 1)[self._lock_seq] if self._lock_seq < 3 else None
        if expected is not None and lckk == expected:
            self._lock_seq += 1
            self._pending_lock = value & 0xFFFF
            if self._lock_seq == 3:
                self.regs[LCKR] = (1 << 16) | self._pending_lock
        else:
            self._lock_seq = 1 if lckk else 0
            self._pending_lock = value & 0xFFFF

    def snapshot(self) -> dict[str, object]:
        return {
            "moder": self.regs[MODER],
            "odr": self.regs[ODR],
            "idr": self._idr,
            "external": {str(k): v for k, v in self.external.items()},
        }


def all_ports() -> list[Gpio]:
    """Fresh GPIO A..K."""
    return [Gpio(p) for p in PORTS]
