"""RCC (0x4002_3800): oscillator ready flags, clock switch, PLL → core clock, reset flags.

Owns: the clock tree's registers and the reset flags. Must not touch: the clock itself (it
tells the machine the new SYSCLK through ``set_core_hz``) or backup SRAM
(``set_backup_clock``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.device import peer
from twin.periph.base import RegDevice

HSI_HZ, HSE_HZ = 16_000_000, 8_000_000  # NUCLEO: HSE = 8 MHz MCO from the ST-LINK (the default)
CR, PLLCFGR, CFGR, CIR = 0x00, 0x04, 0x08, 0x0C
AHB1RSTR, AHB2RSTR, AHB3RSTR, APB1RSTR, APB2RSTR = 0x10, 0x14, 0x18, 0x20, 0x24
AHB1ENR, AHB2ENR, AHB3ENR, APB1ENR, APB2ENR = 0x30, 0x34, 0x38, 0x40, 0x44
BKPSRAMEN = 1 << 18
BDCR, CSR, SSCGR, PLLI2SCFGR, PLLSAICFGR, DCKCFGR1, DCKCFGR2 = 0x70, 0x74, 0x80, 0x84, 0x88, 0x8C, 0x90
HSICAL = 0x7C  # factory calibration byte (any plausible value)
CR_RESET = (HSICAL << 8) | (0x10 << 3) | 0x3  # HSION, HSIRDY, HSITRIM=16

CSR_FLAGS = {
    "bor": 1 << 25,
    "pin": 1 << 26,
    "power": 1 << 27,
    "software": 1 << 28,
    "iwdg": 1 << 29,
    "wwdg": 1 << 30,
    "lowpower": 1 << 31,
}
AHB_DIV = {8: 2, 9: 4, 10: 8, 11: 16, 12: 64, 13: 128, 14: 256, 15: 512}
APB_DIV = {4: 2, 5: 4, 6: 8, 7: 16}

# Peripheral reset bits → device names (devices missing from the board are skipped).
RESET_BITS = {
    AHB1RSTR: {**{i: f"gpio{chr(ord('a') + i)}" for i in range(11)}, 12: "crc", 25: "ethmac"},
    AHB2RSTR: {6: "rng"},
    APB1RSTR: {
        **dict(enumerate(("tim2", "tim3", "tim4", "tim5", "tim6", "tim7", "tim12", "tim13", "tim14"))),
        11: "wwdg",
        17: "usart2",
        18: "usart3",
        19: "uart4",
        20: "uart5",
        28: "pwr",
        30: "uart7",
        31: "uart8",
    },
    APB2RSTR: {
        0: "tim1",
        1: "tim8",
        4: "usart1",
        5: "usart6",
        14: "syscfg",
        16: "tim9",
        17: "tim10",
        18: "tim11",
    },
}


class Rcc(RegDevice):
    """Reset and clock control. Ready flags follow enables at once; SYSCLK drives virtual time."""

    name, base, size = "rcc", 0x40023800, 0x400
    RESET: ClassVar[dict[int, int]] = {
        CR: CR_RESET,
        PLLCFGR: 0x24003010,
        CFGR: 0,
        CIR: 0,
        AHB1RSTR: 0,
        AHB2RSTR: 0,
        AHB3RSTR: 0,
        APB1RSTR: 0,
        APB2RSTR: 0,
        AHB1ENR: 0x00100000,
        AHB2ENR: 0,
        AHB3ENR: 0,
        APB1ENR: 0,
        APB2ENR: 0,
        0x50: 0x7EEF7EFF,
        0x54: 0x000000F1,
        0x58: 0x00000003,
        0x60: 0xFFFFCBFF,
        0x64: 0x04F77F33,
        BDCR: 0,
        CSR: 0x0E000000,
        SSCGR: 0,
        PLLI2SCFGR: 0x24003000,
        PLLSAICFGR: 0x24003000,
        DCKCFGR1: 0,
        DCKCFGR2: 0,
    }
    WRITABLE: ClassVar[dict[int, int]] = {CR: 0x150D00F9, CFGR: 0xFFFFFFF3, CSR: 0x01000001, BDCR: 0x0001831D}
    #: the ready flags and the clock switch status HAL polls (RDY bits, CFGR.SWS)
    POLLED: ClassVar[frozenset[int]] = frozenset({CR, CFGR, BDCR, CSR})

    def __init__(self, hse_hz: int = HSE_HZ) -> None:
        super().__init__()
        self.hse_hz = hse_hz  #: the board's HSE (python -m twin --hse-hz)
        self.reset_history: list[dict[str, object]] = []
        self.clock_listeners: list[Callable[[int], None]] = []
        #: told "write" after CR, PLLCFGR or CFGR changed, "reset" after a reset (twin/clock_limits.py)
        self.config_listeners: list[Callable[[str], None]] = []
        self._hclk = HSI_HZ

    # -------------------------------------------------------------- resets
    #: a started IWDG forces the LSI on (RM0410 "Independent watchdog": "the LSI oscillator
    #: is forced ON and cannot be disabled"): RCC_CSR.LSIRDY reads 1 until the next reset
    lsi_forced = 0

    def force_lsi(self) -> None:
        """The IWDG was started: the LSI runs, whatever LSION says."""
        self.lsi_forced = 1
        self.regs[CSR] = self.regs.get(CSR, 0) | 0x2
        self._rtc_clock_changed()

    def reset(self, kind: str) -> None:
        """Power: everything; system: all but CSR flags and the backup domain (BDCR)."""
        self.lsi_forced = 0
        csr, bdcr = self.regs.get(CSR, 0), self.regs.get(BDCR, 0)
        super().reset(kind)
        if kind != "power":
            self.regs[CSR] = csr & 0xFF000000  # flags survive; LSI off; set by reset_cause
            self.regs[BDCR] = bdcr
        self._update_clock()
        self._rtc_clock_changed()
        self._backup_clock()
        for listener in self.config_listeners:
            listener("reset")

    def reset_cause(self, kind: str, cause: str) -> None:
        """Record why the chip reset (called by the machine after resetting devices)."""
        if kind == "core":
            return
        flags = 0
        if cause == "power":
            flags = CSR_FLAGS["power"] | CSR_FLAGS["bor"] | CSR_FLAGS["pin"]
        else:
            flags = CSR_FLAGS["pin"] | CSR_FLAGS.get(cause, 0)  # internal resets pulse NRST
        if kind == "power":
            self.regs[CSR] = flags
        else:
            self.regs[CSR] |= flags
        now = self.services.now_ns() if self.services else 0
        self.reset_history.append({"ns": now, "kind": kind, "cause": cause, "csr": self.regs[CSR]})
        del self.reset_history[:-64]

    def last_reset_cause(self) -> str | None:
        """The cause of the most recent reset, or None before any was recorded."""
        return str(self.reset_history[-1]["cause"]) if self.reset_history else None

    # -------------------------------------------------------------- registers
    def on_write(self, offset: int, old: int, value: int) -> None:
        if offset == CR:
            self._update_ready()
        elif offset == CFGR:
            self._switch()
        elif offset == CSR:
            csr = self.regs[CSR]
            if value & (1 << 24):  # RMVF clears the reset flags
                csr &= 0x00FFFFFF
            # LSIRDY follows LSION, or stays set while a started IWDG forces the LSI on
            csr = (csr & ~0x2) | ((csr & 1) << 1) | (self.lsi_forced << 1)
            self.regs[CSR] = csr & ~(1 << 24)
        elif offset == BDCR:
            self._bdcr(old, value)
        elif offset == CIR:
            self.regs[CIR] &= 0x00003F00  # enables kept; flags/clear bits never set
        elif offset in RESET_BITS:
            self._peripheral_reset(offset, old, value)
        if offset in (CR, CFGR, PLLCFGR):
            self._update_clock()
            for listener in self.config_listeners:
                listener("write")
        if offset in (CR, CFGR, CSR, BDCR):
            self._rtc_clock_changed()
        if offset == AHB1ENR and (old ^ self.regs[AHB1ENR]) & BKPSRAMEN:
            self._backup_clock()

    def stop_exit(self) -> None:
        """Leaving Stop mode (RM0410): the clock configuration is the reset one, SYSCLK on the
        HSI with the HSE and the PLLs off (the prescalers and the enables stay)."""
        off = (1 << 16) | (1 << 24) | (1 << 26) | (1 << 28)  # HSEON, PLLON, PLLI2SON, PLLSAION
        self.regs[CR] = (self.regs[CR] | 1) & ~off
        self.regs[CFGR] &= ~0xF  # SW, SWS: HSI
        self._update_ready()
        self._update_clock()
        self._rtc_clock_changed()

    def _backup_clock(self) -> None:
        """Tell the machine whether the backup SRAM interface is clocked (BKPSRAMEN)."""
        fn = getattr(self.services, "set_backup_clock", None) if self.services else None
        if fn is not None:
            fn(bool(self.regs.get(AHB1ENR, 0) & BKPSRAMEN))

    def _rtc_clock_changed(self) -> None:
        """RTCEN, RTCSEL, RTCPRE or an oscillator may have changed: the RTC re-times."""
        rtc = self._device("rtc")
        if rtc is not None and hasattr(rtc, "clock_changed"):
            rtc.clock_changed()

    def _update_ready(self) -> None:
        cr = self.regs[CR]
        for on, rdy in ((0, 1), (16, 17), (26, 27), (28, 29)):
            cr = cr | (1 << rdy) if cr >> on & 1 else cr & ~(1 << rdy)
        pll_src_ready = cr >> 17 & 1 if self.regs[PLLCFGR] >> 22 & 1 else cr >> 1 & 1
        cr = cr | (1 << 25) if (cr >> 24 & 1 and pll_src_ready) else cr & ~(1 << 25)
        # The oscillator feeding SYSCLK cannot be switched off.
        sws = self.regs[CFGR] >> 2 & 3
        if sws == 0:
            cr |= 0x3
        elif sws == 1:
            cr |= 3 << 16
        elif sws == 2:
            cr |= 3 << 24
        self.regs[CR] = cr
        if sws == 2 and not self.regs[CR] >> 25 & 1:
            self._switch()

    def _switch(self) -> None:
        cfgr, cr = self.regs[CFGR], self.regs[CR]
        sw = cfgr & 3
        ready = {0: cr >> 1 & 1, 1: cr >> 17 & 1, 2: cr >> 25 & 1}.get(sw, 0)
        if ready:
            self.regs[CFGR] = (cfgr & ~0xC) | (sw << 2)

    def _bdcr(self, old: int, value: int) -> None:
        pwr = self._device("pwr")
        if pwr is not None and not getattr(pwr, "dbp", True):
            self.regs[BDCR] = old  # backup domain write-protected
            return
        bdcr = self.regs[BDCR]
        bdcr = bdcr | 2 if bdcr & 1 else bdcr & ~2  # LSERDY follows LSEON
        if bdcr & (1 << 16):  # BDRST
            bdcr = 1 << 16
            rtc = self._device("rtc")
            if rtc is not None and not old & (1 << 16):
                rtc.backup_domain_reset()  # type: ignore[attr-defined]
        self.regs[BDCR] = bdcr

    def _peripheral_reset(self, offset: int, old: int, value: int) -> None:
        rising = value & ~old
        for bit, name in RESET_BITS[offset].items():
            if rising >> bit & 1:
                dev = self._device(name)
                if dev is not None:
                    dev.reset("system")

    def _device(self, name: str):
        return peer(self.services, name)

    # -------------------------------------------------------------- clocks
    def sysclk_hz(self) -> int:
        """SYSCLK from SWS and the PLL configuration."""
        sws = self.regs[CFGR] >> 2 & 3
        if sws == 1:
            return self.hse_hz
        if sws == 2:
            return self.pll_hz()
        return HSI_HZ

    def pll_source_hz(self) -> int:
        """The main PLL's (and PLLSAI's) input before PLLM: the HSE or the HSI (PLLSRC)."""
        return self.hse_hz if self.regs[PLLCFGR] >> 22 & 1 else HSI_HZ

    def pll_hz(self) -> int:
        """PLL 'P' output for the current PLLCFGR (0 if M or N is invalid)."""
        cfg = self.regs[PLLCFGR]
        m, n, p = cfg & 0x3F, (cfg >> 6) & 0x1FF, ((cfg >> 16 & 3) + 1) * 2
        src = self.pll_source_hz()
        if m < 2 or n < 2:
            return 0
        return src // m * n // p

    def pll48_from_pllsai(self) -> bool:
        """RCC_DCKCFGR2.CK48MSEL: the 48 MHz domain runs on PLLSAI's P output, not PLLQ."""
        return bool(self.regs[DCKCFGR2] >> 27 & 1)

    def pll48_hz(self) -> int:
        """The 48 MHz domain's clock (RNG, USB, SDMMC): the main PLL's Q output, or PLLSAI's
        P output with DCKCFGR2.CK48MSEL set; 0 while that PLL is not locked (RM0410)."""
        cfg, cr = self.regs[PLLCFGR], self.regs[CR]
        if self.pll48_from_pllsai():
            sai = self.regs[PLLSAICFGR]
            n, div, locked = sai >> 6 & 0x1FF, ((sai >> 16 & 3) + 1) * 2, cr >> 29 & 1
        else:
            n, div, locked = cfg >> 6 & 0x1FF, cfg >> 24 & 0xF, cr >> 25 & 1
        m = cfg & 0x3F
        if not locked or m < 2 or n < 2 or div < 2:
            return 0
        return self.pll_source_hz() // m * n // div

    def hclk_hz(self) -> int:
        """AHB clock (the core clock)."""
        return self.sysclk_hz() // AHB_DIV.get(self.regs[CFGR] >> 4 & 0xF, 1)

    def pclk1_hz(self) -> int:
        """APB1 clock."""
        return self.hclk_hz() // APB_DIV.get(self.regs[CFGR] >> 10 & 7, 1)

    def pclk2_hz(self) -> int:
        """APB2 clock."""
        return self.hclk_hz() // APB_DIV.get(self.regs[CFGR] >> 13 & 7, 1)

    def _update_clock(self) -> None:
        hz = self.hclk_hz() or HSI_HZ
        if hz != self._hclk:
            self._hclk = hz
            if self.services is not None:
                self.services.set_core_hz(hz)
            for listener in list(self.clock_listeners):
                listener(hz)
        elif self.services is not None and self.services.core_hz != hz:
            self.services.set_core_hz(hz)

    def snapshot(self) -> dict[str, object]:
        return {
            "sysclk_hz": self.sysclk_hz(),
            "hclk_hz": self.hclk_hz(),
            "pclk1_hz": self.pclk1_hz(),
            "pclk2_hz": self.pclk2_hz(),
            "hse_hz": self.hse_hz,
            "csr": self.regs[CSR],
            "reset_history": list(self.reset_history),
        }
