"""A word-register device base for the STM32 peripheral models."""
from __future__ import annotations

from twin.device import Device, merge_word, sub_word


class RegDevice(Device):
    """Device whose registers are 32-bit words; sub-word accesses are merged.

    Subclasses list ``RESET`` (offset → reset value) and ``WRITABLE`` (offset → mask of
    bits software may write); registers outside ``RESET`` are unmodelled (read 0, logged
    once). Override :meth:`on_write` / :meth:`on_read` for side effects.
    """

    RESET: dict[int, int] = {}
    WRITABLE: dict[int, int] = {}
    #: (RCC enable register offset, bit) gating this device, or None (always clocked).
    CLOCK: tuple[int, int] | None = None

    def __init__(self) -> None:
        super().__init__()
        self.regs: dict[int, int] = dict(self.RESET)
        self.gate = ClockGate(self, *self.CLOCK) if self.CLOCK else None

    def reset(self, kind: str) -> None:
        self.regs = dict(self.RESET)

    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if self.gate is not None and not self.gate.enabled():
            return 0
        if aligned not in self.regs:
            self.unmodelled(aligned, "read")
            return 0
        return sub_word(self.on_read(aligned), offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if self.gate is not None and not self.gate.enabled():
            return
        if aligned not in self.regs:
            self.unmodelled(aligned, "write")
            return
        old = self.regs[aligned]
        value = merge_word(old, offset, size, value) if size != 4 else value & 0xFFFFFFFF
        mask = self.WRITABLE.get(aligned, 0xFFFFFFFF)
        self.regs[aligned] = (old & ~mask) | (value & mask)
        self.on_write(aligned, old, value)

    def on_read(self, offset: int) -> int:
        """Value of register ``offset`` for a read (default: stored value)."""
        return self.regs[offset]

    def on_write(self, offset: int, old: int, value: int) -> None:
        """Side effects after a store (``value`` is the full written word)."""

    def snapshot(self) -> dict[str, object]:
        return {f"0x{off:02X}": val for off, val in sorted(self.regs.items())}


class ClockGate:
    """RCC clock-enable check for a peripheral: with its clock off, reads give 0 and
    writes are ignored (as on the chip), and the first such access is logged with the fix.

    Args:
        device: the gated device (for its name, base and services).
        register: RCC enable register offset (0x30 AHB1ENR, 0x34 AHB2ENR, 0x40 APB1ENR,
            0x44 APB2ENR).
        bit: the enable bit in that register.
    """

    NAMES = {0x30: "AHB1ENR", 0x34: "AHB2ENR", 0x40: "APB1ENR", 0x44: "APB2ENR"}

    def __init__(self, device: Device, register: int, bit: int) -> None:
        self.device = device
        self.register = register
        self.bit = bit
        self._rcc: Device | None = None
        self._warned = False

    def enabled(self) -> bool:
        """True if the clock is on (or no RCC model is present)."""
        rcc = self._rcc
        if rcc is None:
            services = self.device.services
            if services is None:
                return True
            try:
                rcc = self._rcc = services.device("rcc")
            except KeyError:
                return True
        regs = getattr(rcc, "regs", None)
        if regs is None or regs.get(self.register, 0) >> self.bit & 1:
            return True
        if not self._warned and self.device.services is not None:
            self._warned = True
            self.device.services.log(
                f"{self.device.name} (0x{self.device.base:08X}) accessed with its clock off: "
                f"reads 0, writes ignored. Enable RCC_{self.NAMES.get(self.register, '?')} "
                f"bit {self.bit} first (__HAL_RCC_{self.device.name.upper()}_CLK_ENABLE)")
        return False
