"""The direct path of CPU accesses to device registers (a mixin of twin/bus.Bus).

Every MMIO page is mapped through libunicorn's C API with a *cell*: the page and, in lookup
order, the offsets each device on it answers. An access inside one of them, with no MPU
view and no pending store fix-up, goes straight to that device with the bus's accounting
(a tick of sub-slice time, short slices after it, the idle-wait address check); anything
else takes the full path (Bus._c_read/_c_write: protection, plain storage, bus faults).
Pages of the PPB (0xE0000000 up) always take the full path: their accesses check privilege.

Owns: the cells and the direct path. Must not touch: the device map's contents (Bus owns
it), protection, time beyond the slice's tick count.
"""

from __future__ import annotations

from twin import memory as mm
from twin.slice import SHORT_SLICES_AFTER_IO

_MASKS = tuple((1 << (8 * n)) - 1 for n in range(9))  # by access size


class CellPaths:
    """The direct path; mixed into Bus, whose attributes it uses."""

    def _update_cell(self, page: int) -> None:
        """The page's devices and their offsets in it, in lookup order (_c_read_cell)."""
        cell = self._cells.setdefault(page, [page, ()])
        devs = self._page_devs.get(page, []) if page < 0xE0000000 else []  # the PPB checks privilege
        cell[1] = tuple(
            (max(d.base, page) - page, min(d.base + d.size, page + mm.PAGE) - page, d) for d in devs
        )

    def _c_read_cell(self, cell: list, _handle: int, offset: int, size: int, _ud: int) -> int:
        """_c_read for a device register with no MPU view and no pending fix-up: the same
        accounting without the address lookup and the protection tests (every status poll
        and data register access of a transfer comes here)."""
        for lo, hi, dev in cell[1]:  # noqa: B007 (the device found is used after the loop)
            if lo <= offset < hi:
                break
        else:
            return self._c_read(cell[0], _handle, offset, size, _ud)
        if self._fixups or self._prot.view is not None:
            return self._c_read(cell[0], _handle, offset, size, _ud)
        try:
            s = self._slice
            s.ticks += 1
            s.short = SHORT_SLICES_AFTER_IO
            address = cell[0] + offset
            if address == s.idle_addr and s.active and self._clock.wait_mode == "idle":
                s.idle_addr = -1  # see _c_read
                s.stop("idle")
            s.last_read = address
            return dev.read(address - dev.base, size) & _MASKS[size]
        except BaseException as exc:
            self._hook_failed(exc)
            return 0

    def _c_write_cell(self, cell: list, _handle: int, offset: int, size: int, value: int, _ud: int) -> None:
        """_c_write for a device register (see _c_read_cell)."""
        for lo, hi, dev in cell[1]:  # noqa: B007 (the device found is used after the loop)
            if lo <= offset < hi:
                break
        else:
            self._c_write(cell[0], _handle, offset, size, value, _ud)
            return
        if self._fixups or self._prot.view is not None:
            self._c_write(cell[0], _handle, offset, size, value, _ud)
            return
        try:
            s = self._slice
            s.ticks += 1
            s.short = SHORT_SLICES_AFTER_IO
            dev.write(cell[0] + offset - dev.base, size, value & _MASKS[size])
            if self._bus_error is not None:  # see _c_write
                what, self._bus_error = self._bus_error, None
                self.stop_after_store()
                s.reasons.append(("fault", ("bus", "imprecise", what)))
                return
            if s.kicked:
                s.kicked = False
                if not s.reasons:
                    self.stop_after_store()
        except BaseException as exc:
            self._hook_failed(exc)
