"""RTC (0x4000_2800): the 32 backup registers, write protection, the INIT handshake.

What a bootloader uses the RTC block for is the backup registers: "update requested" or
"boot count" flags that survive a software reset (``HAL_PWR_EnableBkUpAccess`` then
``HAL_RTCEx_BKUPWrite(&hrtc, RTC_BKP_DR0, MAGIC)`` then ``NVIC_SystemReset``). Modelled:

* BKP0R..BKP31R (+0x50..+0xCC): written only while PWR_CR1.DBP = 1 (else ignored, logged
  once with the fix); kept across system resets (NRST, SYSRESETREQ, watchdogs); cleared by a
  backup-domain reset (RCC_BDCR.BDRST) and by a power cut — the NUCLEO-F767ZI powers VBAT
  from VDD (chosen, UM1974 jumper default; a coin cell would keep them).
* The other RTC registers are in the backup domain too: writes need DBP, and all but ISR's
  flag bits and the backup registers need the write-protection unlock (WPR 0xCA then 0x53;
  any other value locks again). TR, DR and PRER take writes only in initialisation mode
  (ISR.INIT set → INITF reads 1 at once). RSF, cleared by software, reads 1 again at once
  (the shadow registers are always in sync). The calendar does not advance: TR/DR keep the
  value written (logged once when read), alarms, wake-up timer and tamper never fire.
"""
from __future__ import annotations

from twin.device import Device, merge_word, sub_word

TR, DR, CR, ISR, PRER, WUTR, ALRMAR, ALRMBR, WPR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14, 0x1C, 0x20, 0x24
BKP0R, BKP_COUNT = 0x50, 32
RESET = {TR: 0, DR: 0x00002101, CR: 0, ISR: 0x00000007, PRER: 0x007F00FF, WUTR: 0x0000FFFF,
         ALRMAR: 0, ALRMBR: 0, 0x28: 0, 0x2C: 0, 0x30: 0, 0x34: 0, 0x38: 0, 0x3C: 0, 0x40: 0,
         0x44: 0, 0x48: 0, 0x4C: 0}
ISR_INIT, ISR_INITF, ISR_RSF, ISR_INITS = 1 << 7, 1 << 6, 1 << 5, 1 << 4
ISR_WRITABLE = ISR_INIT | ISR_RSF | 0x0001FF00  # INIT, RSF and the clear-by-0 event flags
NEEDS_INIT = (TR, DR, PRER)


class Rtc(Device):
    """Backup registers plus enough of the RTC for HAL_RTC_Init/HAL_RTCEx_BKUPWrite."""

    name, base, size = "rtc", 0x40002800, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.bkp = [0] * BKP_COUNT
        self.regs: dict[int, int] = dict(RESET)
        self._unlock = 0                       # 0 locked, 1 after 0xCA, 2 unlocked
        self.ignored_writes = 0
        self._told: set[str] = set()

    # -------------------------------------------------------------- resets
    def reset(self, kind: str) -> None:
        """Only power-on clears the backup domain; a system reset keeps it."""
        if kind == "power":
            self.backup_domain_reset()
        self._unlock = 0

    def backup_domain_reset(self) -> None:
        """RCC_BDCR.BDRST (or power-on): backup registers and RTC to reset values."""
        self.bkp = [0] * BKP_COUNT
        self.regs = dict(RESET)
        self._unlock = 0

    # -------------------------------------------------------------- access rules
    def _dbp(self) -> bool:
        if self.services is None:
            return True
        try:
            pwr = self.services.device("pwr")
        except KeyError:
            return True
        return bool(getattr(pwr, "dbp", True))

    def _tell(self, key: str, message: str) -> None:
        if key not in self._told and self.services is not None:
            self._told.add(key)
            self.services.log(message)

    def _ignored(self, offset: int, why: str, fix: str) -> None:
        self.ignored_writes += 1
        self._tell(why, f"write to RTC +0x{offset:02X} ignored: {why}; {fix}")

    # -------------------------------------------------------------- registers
    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if BKP0R <= aligned < BKP0R + 4 * BKP_COUNT:
            value = self.bkp[(aligned - BKP0R) // 4]
        elif aligned == WPR:
            value = 0                                      # write-only
        elif aligned in self.regs:
            value = self.regs[aligned]
            if aligned == ISR:
                value |= ISR_RSF
                if value & ISR_INIT:
                    value |= ISR_INITF
                if self.regs[DR] & 0x00FF0000:
                    value |= ISR_INITS
            elif aligned in (TR, DR):
                self._tell("calendar", "calendar read: the twin's RTC does not advance "
                                       "(TR/DR hold the value last written)")
        else:
            self.unmodelled(aligned, "read")
            return 0
        return sub_word(value, offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        in_bkp = BKP0R <= aligned < BKP0R + 4 * BKP_COUNT
        if not in_bkp and aligned != WPR and aligned not in self.regs:
            self.unmodelled(aligned, "write")
            return
        if not self._dbp():
            self._ignored(aligned, "the backup domain is write-protected (PWR_CR1.DBP = 0)",
                          "set PWR_CR1.DBP first (HAL_PWR_EnableBkUpAccess)")
            return
        if in_bkp:
            i = (aligned - BKP0R) // 4
            self.bkp[i] = merge_word(self.bkp[i], offset, size, value) if size != 4 \
                else value & 0xFFFFFFFF
            return
        if aligned == WPR:
            key = value & 0xFF
            self._unlock = 1 if key == 0xCA else 2 if key == 0x53 and self._unlock == 1 else 0
            return
        old = self.regs[aligned]
        value = merge_word(old, offset, size, value) if size != 4 else value & 0xFFFFFFFF
        if aligned == ISR:
            # event flags are cleared by writing 0; INIT needs the unlock
            flags = old & 0x0001FF00 & value
            init = old & ISR_INIT
            if self._unlock == 2:
                init = value & ISR_INIT
            elif (value ^ old) & ISR_INIT:
                self._ignored(ISR, "RTC registers are write-protected (RTC_WPR)",
                              "write 0xCA then 0x53 to RTC_WPR first")
            self.regs[ISR] = (old & ~ISR_WRITABLE) | flags | init
            return
        if self._unlock != 2:
            self._ignored(aligned, "RTC registers are write-protected (RTC_WPR)",
                          "write 0xCA then 0x53 to RTC_WPR first")
            return
        if aligned in NEEDS_INIT and not self.regs[ISR] & ISR_INIT:
            self._ignored(aligned, "TR/DR/PRER change only in initialisation mode",
                          "set RTC_ISR.INIT and wait for INITF first")
            return
        self.regs[aligned] = value

    def snapshot(self) -> dict[str, object]:
        return {"bkp": [f"0x{v:08X}" for v in self.bkp], "ignored_writes": self.ignored_writes,
                "unlocked": self._unlock == 2, "init": bool(self.regs[ISR] & ISR_INIT)}
