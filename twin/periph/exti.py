"""SYSCFG (0x4001_3800: EXTICR port selection, CMPCR) and EXTI (0x4001_3C00) → NVIC lines.

Owns: EXTI lines, SYSCFG's port selection, the edges they turn into IRQs. Must not touch:
GPIO state (GPIO reports edges) or the machine beyond Services.
"""

from __future__ import annotations

from typing import ClassVar

from twin.periph.base import RegDevice

MEMRMP, PMC, EXTICR1, CMPCR = 0x00, 0x04, 0x08, 0x20
IMR, EMR, RTSR, FTSR, SWIER, PR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
LINES = 24
LINE_MASK = (1 << LINES) - 1

#: NVIC line of each EXTI line (STM32F767 vector table).
IRQ_OF_LINE = {
    0: 6,
    1: 7,
    2: 8,
    3: 9,
    4: 10,
    **{n: 23 for n in range(5, 10)},
    **{n: 40 for n in range(10, 16)},
    16: 1,
    17: 41,
    18: 42,
    19: 62,
    20: 76,
    21: 2,
    22: 3,
    23: 93,
}


class Syscfg(RegDevice):
    """System configuration: EXTI port selection (EXTICR1-4), PMC, CMPCR ready flag."""

    name, base, size = "syscfg", 0x40013800, 0x400
    RESET: ClassVar[dict[int, int]] = {MEMRMP: 0, PMC: 0, EXTICR1: 0, 0x0C: 0, 0x10: 0, 0x14: 0, CMPCR: 0}
    WRITABLE: ClassVar[dict[int, int]] = {
        CMPCR: 0x1,
        EXTICR1: 0xFFFF,
        0x0C: 0xFFFF,
        0x10: 0xFFFF,
        0x14: 0xFFFF,
    }
    CLOCK = (0x44, 14)  # RCC_APB2ENR.SYSCFGEN

    def port_of_line(self, line: int) -> int:
        """Port index (0 = A) routed to EXTI ``line`` (0..15)."""
        reg = EXTICR1 + 4 * (line // 4)
        return self.regs[reg] >> (4 * (line % 4)) & 0xF

    def on_write(self, offset: int, old: int, value: int) -> None:
        if offset == CMPCR:  # compensation cell ready once powered
            self.regs[CMPCR] = (self.regs[CMPCR] & 1) | ((self.regs[CMPCR] & 1) << 8)


class Exti(RegDevice):
    """External interrupt controller; drives NVIC lines at level (PR & IMR)."""

    name, base, size = "exti", 0x40013C00, 0x400
    RESET: ClassVar[dict[int, int]] = {IMR: 0, EMR: 0, RTSR: 0, FTSR: 0, SWIER: 0, PR: 0}
    WRITABLE: ClassVar[dict[int, int]] = {
        IMR: LINE_MASK,
        EMR: LINE_MASK,
        RTSR: LINE_MASK,
        FTSR: LINE_MASK,
        SWIER: LINE_MASK,
        PR: 0,
    }

    def __init__(self) -> None:
        super().__init__()
        self._irq_levels: dict[int, bool] = {}

    def reset(self, kind: str) -> None:
        super().reset(kind)
        self._update_irqs()

    def gpio_edge(self, port: int, pin: int, level: bool) -> None:
        """A GPIO pin changed level (called by the GPIO ports)."""
        try:
            syscfg = self.services.device("syscfg") if self.services else None
        except KeyError:
            syscfg = None
        if syscfg is not None and syscfg.port_of_line(pin) != port:  # type: ignore[attr-defined]
            return
        if syscfg is None and port != 0:
            return
        self.line_edge(pin, level)

    def line_edge(self, line: int, level: bool) -> None:
        """An edge on EXTI ``line`` (GPIO or internal source)."""
        trig = self.regs[RTSR] if level else self.regs[FTSR]
        if trig >> line & 1:
            self.regs[PR] |= 1 << line
            self._update_irqs()

    def on_write(self, offset: int, old: int, value: int) -> None:
        if offset == PR:
            self.regs[PR] = old & ~value & LINE_MASK  # write 1 to clear
        elif offset == SWIER:
            rising = value & ~old & LINE_MASK
            self.regs[PR] |= rising  # 0→1 on SWIER pends the line
            self.regs[SWIER] = value & LINE_MASK
        if offset == PR:
            self.regs[SWIER] &= ~value  # clearing PR clears SWIER too
        self._update_irqs()

    def _update_irqs(self) -> None:
        active = self.regs[PR] & self.regs[IMR]
        levels: dict[int, bool] = {}
        for line, irq in IRQ_OF_LINE.items():
            levels[irq] = levels.get(irq, False) or bool(active >> line & 1)
        if self.services is None:
            self._irq_levels = levels
            return
        for irq, level in levels.items():
            if self._irq_levels.get(irq, False) != level:
                self.services.set_irq(irq, level)
        self._irq_levels = levels
