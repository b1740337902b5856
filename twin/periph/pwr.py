"""PWR (0x4000_7000): voltage scaling, over-drive handshake, backup-domain access (DBP).

Owns: PWR's registers. Must not touch: backup SRAM (it tells the machine the DBP gate
through ``set_backup_write_access``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.periph.base import RegDevice

CR1, CSR1, CR2, CSR2 = 0x00, 0x04, 0x08, 0x0C
DBP = 1 << 8
ODEN, ODSWEN = 1 << 16, 1 << 17
VOSRDY, ODRDY, ODSWRDY = 1 << 14, 1 << 16, 1 << 17


class Pwr(RegDevice):
    """Power controller: ODRDY follows ODEN, ODSWRDY follows ODSWEN (needs ODRDY)."""

    name, base, size = "pwr", 0x40007000, 0x400
    RESET: ClassVar[dict[int, int]] = {CR1: 0x0000C000, CSR1: VOSRDY, CR2: 0, CSR2: 0}
    WRITABLE: ClassVar[dict[int, int]] = {
        CR1: 0x000FEFFB,
        CSR1: 0x00000300,
        CR2: 0x00003F3F,
        CSR2: 0x00003F00,
    }
    CLOCK = (0x40, 28)  # RCC_APB1ENR.PWREN
    #: VOSRDY, ODRDY, ODSWRDY, the wake-up flags: HAL polls them with timeouts
    POLLED: ClassVar[frozenset[int]] = frozenset({CSR1, CSR2})

    def __init__(self) -> None:
        super().__init__()
        #: told "write" after CR1 changed (VOS, over-drive: twin/clock_limits.py)
        self.config_listeners: list[Callable[[str], None]] = []

    @property
    def dbp(self) -> bool:
        """Backup-domain write access enabled (CR1.DBP)."""
        return bool(self.regs[CR1] & DBP)

    @property
    def vos(self) -> int:
        """CR1.VOS: 3 = voltage scale 1, 2 = scale 2, 1 = scale 3 (0 is reserved)."""
        return self.regs[CR1] >> 14 & 3

    @property
    def overdrive(self) -> bool:
        """Over-drive switched in (ODSWRDY)."""
        return bool(self.regs[CSR1] & ODSWRDY)

    def reset(self, kind: str) -> None:
        super().reset(kind)
        self._backup_access()

    def _backup_access(self) -> None:
        """Tell the machine whether backup SRAM takes CPU stores (DBP)."""
        fn = getattr(self.services, "set_backup_write_access", None)
        if fn is not None:
            fn(self.dbp)

    def on_write(self, offset: int, old: int, value: int) -> None:
        if offset == CR1:
            if (old ^ self.regs[CR1]) & DBP:
                self._backup_access()
            cr1 = self.regs[CR1]
            if cr1 & ODSWEN and not cr1 & ODEN:
                cr1 &= ~ODSWEN  # ODSWEN needs ODEN
            self.regs[CR1] = cr1 & ~(1 << 3)  # CSBF reads 0
            csr = self.regs[CSR1] & ~(ODRDY | ODSWRDY)
            if cr1 & ODEN:
                csr |= ODRDY
                if cr1 & ODSWEN:
                    csr |= ODSWRDY
            self.regs[CSR1] = csr | VOSRDY
            for listener in self.config_listeners:
                listener("write")
        elif offset == CR2:
            # CWUPFx (bits 5:0) clear the wake-up flags in CSR2 and read 0.
            self.regs[CSR2] &= ~(self.regs[CR2] & 0x3F)
            self.regs[CR2] &= ~0x3F
