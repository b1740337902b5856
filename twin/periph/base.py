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

    def __init__(self) -> None:
        super().__init__()
        self.regs: dict[int, int] = dict(self.RESET)

    def reset(self, kind: str) -> None:
        self.regs = dict(self.RESET)

    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if aligned not in self.regs:
            self.unmodelled(aligned, "read")
            return 0
        return sub_word(self.on_read(aligned), offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
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
