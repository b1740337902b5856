"""Memory regions of the STM32F767ZI backed by ctypes buffers (shared with unicorn).

Every region the CPU sees as plain memory is a :class:`Region`: a ctypes byte array that
unicorn maps with ``mem_map_ptr`` (so the host reads and writes it without a unicorn call)
and a memoryview for fast slicing on the host side. Aliases share the buffer of their
primary region (flash at 0x08000000 and its ITCM alias at 0x00200000). :class:`MemoryMap`
is the board's set of regions and finds the one holding an address.

Owns: the addresses and sizes of the memory map, the buffers and their initial content.
Must not touch: unicorn (the bus maps the regions), devices or access rules.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field

PAGE = 0x1000

ITCM_BASE, ITCM_SIZE = 0x00000000, 0x4000
SYSMEM_ITCM_BASE = 0x00100000
FLASH_ITCM_BASE = 0x00200000
FLASH_BASE, FLASH_SIZE = 0x08000000, 0x200000
SYSMEM_BASE, SYSMEM_SIZE = 0x1FF00000, 0xF000
INFO_BASE, INFO_SIZE = 0x1FF0F000, 0x1000  # OTP, UID, flash size, package
OTP_SIZE, OTP_LOCK = 0x400, 0x400
UID_OFFSET, FLASHSIZE_OFFSET, PACKAGE_OFFSET = 0x420, 0x442, 0x7E0
SRAM_BASE, SRAM_SIZE = 0x20000000, 0x80000
BKPSRAM_BASE, BKPSRAM_SIZE = 0x40024000, 0x1000

#: The board's 96-bit unique ID (three words at 0x1FF0F420).
DEFAULT_UID = (0x00470031, 0x3438510B, 0x34333537)


def new_buffer(size: int, fill: int = 0) -> ctypes.Array:
    """A zero-copy ctypes byte buffer of ``size`` bytes filled with ``fill``."""
    buf = (ctypes.c_ubyte * size)()
    if fill:
        ctypes.memset(buf, fill, size)
    return buf


@dataclass
class Region:
    """A memory range backed by a ctypes buffer.

    Attributes:
        name: short name for messages.
        base: first address.
        size: length in bytes (multiple of 4 KiB).
        buf: the backing buffer (shared between aliases).
        writable: True if CPU stores land directly (RAM); False routes stores to a hook.
        volatile: True if a power cycle clears it (SRAM, ITCM, backup SRAM).
        kind: "ram", "flash", "alias" or "rom".
    """

    name: str
    base: int
    size: int
    buf: ctypes.Array
    writable: bool = True
    volatile: bool = False
    kind: str = "ram"
    mv: memoryview = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.mv = memoryview(self.buf).cast("B")

    @property
    def end(self) -> int:
        """One past the last address."""
        return self.base + self.size

    def contains(self, address: int, length: int = 1) -> bool:
        """True if ``[address, address + length)`` lies inside the region."""
        return self.base <= address and address + length <= self.end

    def read(self, address: int, length: int) -> bytes:
        """Bytes at an absolute address (must be inside)."""
        off = address - self.base
        return self.mv[off : off + length].tobytes()

    def write(self, address: int, data: bytes) -> None:
        """Store bytes at an absolute address (must be inside), bypassing any semantics."""
        off = address - self.base
        self.mv[off : off + len(data)] = data

    def clear(self) -> None:
        """Zero the region (power loss)."""
        ctypes.memset(self.buf, 0, self.size)


def info_block(uid: tuple[int, int, int] = DEFAULT_UID, flash_kib: int = 2048) -> ctypes.Array:
    """The 4 KiB page at 0x1FF0F000: erased OTP, OTP lock bytes, UID, flash size, package."""
    buf = new_buffer(INFO_SIZE, 0xFF)
    mv = memoryview(buf).cast("B")
    for i, word in enumerate(uid):
        mv[UID_OFFSET + 4 * i : UID_OFFSET + 4 * i + 4] = word.to_bytes(4, "little")
    mv[FLASHSIZE_OFFSET : FLASHSIZE_OFFSET + 2] = flash_kib.to_bytes(2, "little")
    mv[PACKAGE_OFFSET : PACKAGE_OFFSET + 2] = (0x0700).to_bytes(2, "little")  # LQFP144
    return buf


def system_memory() -> ctypes.Array:
    """System memory (ST's ROM bootloader is not modelled): a vector table whose reset
    handler is an endless ``b .`` loop, so booting from BOOT_ADD1 parks the core."""
    buf = new_buffer(SYSMEM_SIZE, 0xFF)
    mv = memoryview(buf).cast("B")
    mv[0:4] = (SRAM_BASE + 0x3000).to_bytes(4, "little")  # initial MSP
    mv[4:8] = (SYSMEM_BASE + 0x201).to_bytes(4, "little")  # reset handler (Thumb)
    for vec in range(2, 16):  # faults -> same loop
        mv[4 * vec : 4 * vec + 4] = (SYSMEM_BASE + 0x201).to_bytes(4, "little")
    mv[0x200:0x202] = bytes((0xFE, 0xE7))  # b .
    return buf


class MemoryMap:
    """The STM32F767ZI's memory regions (ITCM, system memory, flash, OTP/info, SRAM,
    backup SRAM and the ITCM aliases), in the order the bus maps them."""

    def __init__(self) -> None:
        self.flash_buf = new_buffer(FLASH_SIZE, 0xFF)
        sysmem = system_memory()
        self.itcm = Region("itcm", ITCM_BASE, ITCM_SIZE, new_buffer(ITCM_SIZE), volatile=True)
        self.flash = Region("flash", FLASH_BASE, FLASH_SIZE, self.flash_buf, writable=False, kind="flash")
        self.flash_alias = Region(
            "flash-itcm", FLASH_ITCM_BASE, FLASH_SIZE, self.flash_buf, writable=False, kind="alias"
        )
        self.sram = Region("sram", SRAM_BASE, SRAM_SIZE, new_buffer(SRAM_SIZE), volatile=True)
        self.bkpsram = Region("bkpsram", BKPSRAM_BASE, BKPSRAM_SIZE, new_buffer(BKPSRAM_SIZE), volatile=True)
        self.sysmem = Region("sysmem", SYSMEM_BASE, SYSMEM_SIZE, sysmem, writable=False, kind="rom")
        self.sysmem_alias = Region(
            "sysmem-itcm", SYSMEM_ITCM_BASE, SYSMEM_SIZE, sysmem, writable=False, kind="rom"
        )
        self.info = Region("otp-info", INFO_BASE, INFO_SIZE, info_block(), writable=False, kind="rom")
        self.regions: list[Region] = [
            self.itcm,
            self.sysmem_alias,
            self.flash_alias,
            self.flash,
            self.sysmem,
            self.info,
            self.sram,
            self.bkpsram,
        ]
        self._last = self.sram  # region_at's last hit (the regions do not overlap)

    def region_at(self, address: int, length: int = 1) -> Region | None:
        """The region holding ``[address, address + length)``, or None (the last one found
        is tried first: exception entry and return, and the runner, ask several times a
        slice, mostly for the same SRAM or flash)."""
        last = self._last
        if last.base <= address and address + length <= last.base + last.size:
            return last
        for reg in self.regions:
            if reg.base <= address and address + length <= reg.base + reg.size:
                self._last = reg
                return reg
        return None

    def power_loss(self) -> None:
        """Clear what a power cycle loses (SRAM, ITCM, backup SRAM)."""
        for reg in self.regions:
            if reg.volatile:
                reg.clear()
