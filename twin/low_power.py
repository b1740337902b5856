"""Stop mode (RM0410 "Low-power modes"): a WFI or WFE with SCB_SCR.SLEEPDEEP set and
PWR_CR1.PDDS clear.

On the chip every clock of the 1.2 V domain stops: the core, SysTick, DWT.CYCCNT, the
timers, the USARTs and the MACs stand still, and only an EXTI line (a button on a GPIO
line, the RTC's wake-up timer or alarm, lines 22 and 17) wakes the system; the RTC and
the IWDG (LSE/LSI) count on. The clock configuration after Stop is the reset one: SYSCLK
is the HSI (16 MHz), the PLLs and the HSE are off, so firmware must run its
SystemClock_Config again (ST's PWR_STOP example shows it: LED1 toggles slowly afterwards).
On the twin the core is then stopped as in a debug halt ("stop" for the watchers: virtual
time stands still; the RTC and the IWDG add the wall time, the timers and the WWDG do
not) until an interrupt can be taken, and the RCC returns to HSI (``Rcc.stop_exit``).

DBGMCU_CR.DBG_STOP (pyOCD writes 0x7 at every connect, so a board under the rig's probe has
it) keeps FCLK/HCLK running on the HSI through Stop: the core then only sleeps, on the HSI
from the moment it enters Stop, and SysTick's interrupt wakes it (as on a board with the
debugger attached). The peripherals' clocks are not gated in that case on the twin.

Standby (PDDS set) is not modelled: logged once and treated as Stop.

Owns: the decision at a WFI/WFE whether the core enters Stop, and when Stop ends. Must not
touch: the RCC's registers (its ``stop_exit``), the NVIC (the exception model says whether
an exception can be taken).
"""

from __future__ import annotations

from typing import Any

from twin.device import peer

SLEEPDEEP = 1 << 2
PDDS = 1 << 1  # PWR_CR1
DBG_STOP = 1 << 1  # DBGMCU_CR


class LowPower:
    """Stop mode for one machine (see the module doc)."""

    def __init__(self, machine: Any) -> None:
        self.m = machine
        self.entries = 0  # times the core entered Stop (statistics, tests)
        self._told: set[str] = set()

    def _device(self, name: str) -> Any:
        return peer(self.m, name)

    def _tell(self, key: str, message: str) -> None:
        if key not in self._told:
            self._told.add(key)
            self.m.log(message)

    def on_sleep(self) -> bool:
        """A WFI/WFE just put the core to sleep (lock held): True if it is now in Stop."""
        exc = self.m.exc
        if exc is None or not getattr(exc, "scr", 0) & SLEEPDEEP:
            return False
        if exc.sleeping_can_wake():
            return False  # an interrupt is already pending: the WFI returns at once
        pwr = self._device("pwr")
        if pwr is not None and pwr.regs.get(0, 0) & PDDS:
            self._tell("standby", "Standby mode (PWR_CR1.PDDS) is not modelled: the core enters Stop instead")
        rcc = self._device("rcc")
        dbg = self._device("dbgmcu")
        if dbg is not None and dbg.cr & DBG_STOP:
            # the debugger keeps FCLK/HCLK on the HSI: a sleep at 16 MHz
            self._tell(
                "dbgstop", "Stop with DBGMCU_CR.DBG_STOP (a debugger attached): the core sleeps on the HSI"
            )
            if rcc is not None:
                rcc.stop_exit()
            return False
        self.entries += 1
        return True

    def wake(self) -> bool:
        """While in Stop (lock held): True when it ends (an exception can be taken, e.g. an
        EXTI line the RTC or a button pended); the clocks are then the reset ones."""
        exc = self.m.exc
        if exc is None or not exc.sleeping_can_wake():
            return False
        rcc = self._device("rcc")
        if rcc is not None:
            rcc.stop_exit()
        return True
