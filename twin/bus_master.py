"""The bus as a DMA master sees it (:class:`BusMasterPort`): memory regions and, through a
DMA's peripheral port, device registers; never a CPU fault.

Owns: bus-master reads and writes (and their D-cache and translated-code effects). Must
not touch: the CPU's accesses (twin/bus.py), time, devices' state.
"""

from __future__ import annotations

from collections.abc import Callable

from twin import memory as mm
from twin.device import BusError
from twin.slice import Slice
from twin.stores import Stores


class BusMasterPort:
    """The bus as a bus master (DMA) sees it: implements :class:`twin.device.BusMaster`.

    Reads reach memory regions (RAM, flash, ROM), not peripheral registers; writes reach
    RAM only. Anything else raises :class:`BusError` with nothing transferred. A write
    drops translated code over the written range (at once outside a slice, at the end of
    the slice inside one), as a CPU store would.
    """

    def __init__(
        self,
        memory: mm.MemoryMap,
        stores: Stores,
        slice_: Slice,
        io_read: Callable[[int, int], int] | None = None,
        io_write: Callable[[int, int, int], None] | None = None,
    ) -> None:
        self._memory = memory
        self._stores = stores
        self._slice = slice_
        self._io_read = io_read
        self._io_write = io_write
        self.dcache = None  # twin/dcache.py: masters see memory, not the CPU's lines

    def read_io(self, address: int, size: int) -> int:
        """One ``size``-byte access at ``address`` through the peripheral port of a DMA
        (DMA2's SxPAR): a device register, or memory. BusError if unmapped."""
        if self._memory.region_at(address, size) is not None:
            return int.from_bytes(self.read(address, size), "little")
        if self._io_read is None:
            raise BusError(f"DMA peripheral read of 0x{address:08X}: no device")
        return self._io_read(address, size)

    def write_io(self, address: int, size: int, value: int) -> None:
        """One ``size``-byte store at ``address`` through a DMA's peripheral port."""
        if self._memory.region_at(address, size) is not None:
            self.write(address, value.to_bytes(size, "little"))
            return
        if self._io_write is None:
            raise BusError(f"DMA peripheral write of 0x{address:08X}: no device")
        self._io_write(address, size, value)

    def read(self, address: int, length: int) -> bytes:
        """``length`` bytes of memory at ``address``."""
        reg = self._memory.region_at(address, length)
        if reg is None:
            raise BusError(f"DMA read of 0x{address:08X}+{length}: not memory")
        if self._stores.fixups:
            self._stores.apply_fixups()
        dc = self.dcache
        if dc is not None and dc.shadow:
            return dc.overlay(address, reg.read(address, length))
        return reg.read(address, length)

    def write(self, address: int, data: bytes) -> None:
        """Store ``data`` into RAM at ``address``."""
        reg = self._memory.region_at(address, len(data))
        if reg is None or not reg.writable:
            raise BusError(f"DMA write of 0x{address:08X}+{len(data)}: not RAM")
        dc = self.dcache
        if dc is not None and dc.held:
            dc.begin_write(address, len(data))
            reg.write(address, data)
            dc.end_write()
        else:
            reg.write(address, data)
        self._stores.mark_dirty(address, len(data))
        if not self._slice.active:
            self._stores.flush_dirty()
