"""The system bus: who answers an address, for the CPU, the debugger and bus masters.

Memory regions (twin/memory.py) are mapped into unicorn with ``mem_map_ptr``: the CPU
reaches them at RAM speed and the host reads and writes the buffers directly. Devices
are mapped per 4 KiB page with ``mmio_map``; a CPU access there calls
:meth:`Bus._c_read`/:meth:`Bus._c_write`, which check protection first
(twin/protection.py), count one cycle of sub-slice time and dispatch to the device. In the
peripheral ranges an address no device claims is plain storage (logged once); any other
unmapped access is a bus error: a fault for the CPU (recorded on the slice), a
:class:`~twin.device.BusError` for the debugger (:meth:`Bus.read`/:meth:`Bus.write`) and
for bus masters (:class:`~twin.bus_master.BusMasterPort`, the one port every DMA-capable
device uses).

Owns: the region mapping in unicorn, the device page map, the plain-storage registers,
the error a device raised for the store it handles. Must not touch: time (other than the
slice's tick count), the run state, the exception model; flash stores go through
twin/stores.py.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

import unicorn as uc_mod
import unicorn.arm_const as A
from unicorn.unicorn_py3.unicorn import HOOK_MEM_INVALID_CFUNC as _HOOK_MEM_INVALID_CFUNC
from unicorn.unicorn_py3.unicorn import MMIO_READ_CFUNC as _MMIO_READ_CFUNC
from unicorn.unicorn_py3.unicorn import MMIO_WRITE_CFUNC as _MMIO_WRITE_CFUNC
from unicorn.unicorn_py3.unicorn import uclib as _uclib

from twin import memory as mm
from twin.bus_master import BusMasterPort
from twin.clock import Clock
from twin.dcache import DCache
from twin.device import BusError, Device, Services
from twin.fastreg import reg_reader
from twin.protection import Protection
from twin.slice import SHORT_SLICES_AFTER_IO, Slice
from twin.stores import Stores

_UNKNOWN = object()  # not in Bus._lookup_cache yet


class Bus:
    """Memory map, device map and every kind of access to them.

    Args:
        uc: the unicorn engine (regions and MMIO pages are mapped into it).
        slice_: the running slice (sub-slice time, faults, stops).
        clock: asked only whether a host wait ends at this read.
        memory: the memory regions.
        protection: refuses device-space accesses (PPB privilege, MPU) before dispatch.
        stores: fix-ups to apply before any read, flash stores of host writes, code cache.
        log: the machine's log.
    """

    def __init__(
        self,
        uc,
        slice_: Slice,
        clock: Clock,
        memory: mm.MemoryMap,
        protection: Protection,
        stores: Stores,
        log: Callable[[str], None],
    ) -> None:
        self.uc = uc
        self._reg = reg_reader(uc)  # fast core register reads (twin/fastreg.py)
        self._slice = slice_
        self._clock = clock
        self.memory = memory
        self._prot = protection
        self._stores = stores
        self._log = log
        self.devices: dict[str, Device] = {}
        self.dev_list: list[Device] = []
        self._page_devs: dict[int, list[Device]] = {}
        self._lookup_cache: dict[int, Device | None] = {}  # address -> lookup()
        self._storage_pages: set[int] = set()
        self._storage: dict[int, int] = {}
        self._mapped_pages: set[int] = set()
        self._c_callbacks: list[tuple[object, object]] = []  # see _map_mmio_page
        self._page_callbacks: dict[int, tuple[object, object]] = {}  # page -> its callbacks
        self._fixups = stores.fixups  # the same list object, tested on every MMIO access
        self._bus_error: tuple[str, object, str] | None = None  # a device's fault for its store
        self.master_port = BusMasterPort(
            memory, stores, slice_, self._mmio_access_read, self._mmio_access_write
        )
        #: the D-cache model: bus masters and the debugger see memory, not the CPU's lines
        self.dcache = self._dcache = DCache(uc, memory, stores.flush_code_cache, stores.mark_dirty, log)
        self.master_port.dcache = self.dcache
        for reg in memory.regions:
            # memory is mapped without EXEC: the translator's every fetch reaches
            # Protection.hook_prot_other (a RAM page that holds code; twin/usage_checks.py)
            perms = uc_mod.UC_PROT_READ
            perms |= uc_mod.UC_PROT_WRITE if reg.writable else 0
            uc.mem_map_ptr(reg.base, reg.size, perms, reg.buf)

    # ------------------------------------------------------------------ device map
    def add_device(self, dev: Device, services: Services, first: bool = False) -> None:
        """Attach ``dev`` with its services and map its pages; ``first`` gives it priority
        over devices mapped earlier on the same page."""
        if dev.name in self.devices:
            raise ValueError(f"duplicate device name {dev.name!r}")
        self.devices[dev.name] = dev
        dev.attach(services)
        for page in range(dev.base & ~(mm.PAGE - 1), dev.base + dev.size, mm.PAGE):
            self._lookup_cache.clear()  # the map changes: answers remembered may too
            lst = self._page_devs.setdefault(page, [])
            if first:
                lst.insert(0, dev)
            else:
                lst.append(dev)
            self._map_mmio_page(page)
        self.dev_list.append(dev)

    def add_storage_range(self, base: int, size: int) -> None:
        """Map ``[base, base+size)`` so addresses no device claims act as plain storage
        (an unmodelled peripheral), logged once per address, instead of bus faults."""
        for page in range(base & ~(mm.PAGE - 1), base + size, mm.PAGE):
            if self.memory.region_at(page) is not None:
                continue
            self._storage_pages.add(page)
            self._map_mmio_page(page)

    def _map_mmio_page(self, page: int) -> None:
        if page in self._mapped_pages:
            return
        self._mapped_pages.add(page)
        uc = self.uc
        if not hasattr(uc, "_uch"):  # an engine double: the binding's own mapping
            uc.mmio_map(page, mm.PAGE, self._mmio_read, page, self._mmio_write, page)
            return
        # straight through libunicorn's C API: the binding wraps every access in two more
        # Python frames (its exception guard and its adapter); functools.partial adds none
        read = _MMIO_READ_CFUNC(functools.partial(self._c_read, page))
        write = _MMIO_WRITE_CFUNC(functools.partial(self._c_write, page))
        status = _uclib.uc_mmio_map(uc._uch, page, mm.PAGE, read, None, write, None)
        if status != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(status)
        self._c_callbacks.append((read, write))  # ctypes callbacks must outlive the mapping
        self._page_callbacks[page] = (read, write)

    def page_callbacks(self, page: int) -> tuple[object, object]:
        """The ctypes read and write callbacks mapped for a device ``page`` (twin/flash_fast.py
        maps C in front of them)."""
        return self._page_callbacks[page]

    def add_store_hook(self, fn: Callable[..., bool]) -> None:
        """UC_HOOK_MEM_WRITE_PROT calling ``fn(uc, access, address, size, value, ud)`` (the
        binding's signature) straight through libunicorn's C API, as the MMIO pages are:
        every word of a flash download is such a store, and the binding's two wrapper
        frames were a sixth of its cost. An exception in ``fn`` stops the slice as the
        binding's guard does (:meth:`_hook_failed`)."""
        uc = self.uc
        if not hasattr(uc, "_uch"):  # an engine double
            uc.hook_add(uc_mod.UC_HOOK_MEM_WRITE_PROT, fn)
            return

        def call(_handle: int, access: int, address: int, size: int, value: int, ud: int) -> bool:
            try:
                return fn(uc, access, address, size, value, ud)
            except BaseException as exc:
                self._hook_failed(exc)
                return False

        cb = _HOOK_MEM_INVALID_CFUNC(call)
        handle = ctypes.c_size_t()
        status = _uclib.uc_hook_add(
            uc._uch,
            ctypes.byref(handle),
            uc_mod.UC_HOOK_MEM_WRITE_PROT,
            ctypes.cast(cb, ctypes.c_void_p),
            None,
            ctypes.c_uint64(1),
            ctypes.c_uint64(0),
        )
        if status != uc_mod.UC_ERR_OK:
            raise uc_mod.UcError(status)
        self._c_callbacks.append((cb, call))  # must outlive the hook

    def _hook_failed(self, exc: BaseException) -> None:
        """A device raised inside a CPU access: as the binding's guard does, record it and
        stop; emu_start raises it (the runner turns it into a lockup). With an engine
        double (no C engine) it propagates."""
        uc = self.uc
        if not hasattr(uc, "_uch"):
            raise exc
        if uc._hook_exception is None:
            uc._hook_exception = exc
        uc.emu_stop()

    def device(self, name: str) -> Device:
        """A device by name (KeyError if absent)."""
        return self.devices[name]

    def lookup(self, address: int) -> Device | None:
        """The device answering ``address``, or None (remembered per address: firmware
        touches few registers, each of them thousands of times)."""
        try:
            return self._lookup_cache[address]
        except KeyError:
            pass
        found = None
        for dev in self._page_devs.get(address & ~(mm.PAGE - 1), ()):
            if dev.base <= address < dev.base + dev.size:
                found = dev
                break
        if len(self._lookup_cache) < 65536:
            self._lookup_cache[address] = found
        return found

    # ------------------------------------------------------------------ CPU accesses
    def _mmio_read(self, uc, offset: int, size: int, page: int) -> int:
        """A CPU read of a device page (the binding's signature; engine doubles)."""
        return self._c_read(page, 0, offset, size, 0)

    def _c_read(self, page: int, _handle: int, offset: int, size: int, _ud: int) -> int:
        """A CPU read of a device page, called by libunicorn (see _map_mmio_page)."""
        try:
            if self._fixups:
                self._stores.apply_fixups()
            s = self._slice
            s.ticks += 1
            address = page + offset
            if (
                (address >= 0xE0000000 or (self._prot.view is not None and page not in self._prot.open_pages))
                and s.active
                and self._prot.access_denied(address, False)
            ):
                return 0
            if address == s.idle_addr and s.active and self._clock.wait_mode == "idle":
                # the firmware polls again the register that started the host wait: end the
                # slice here (that status read is repeated afterwards, harmless) instead of
                # spinning through the rest of it, so waiting costs little host CPU and the
                # wait can catch up with wall time on a loaded machine
                s.idle_addr = -1
                s.stop("idle")
            s.last_read = address
            dev = self._lookup_cache.get(address, _UNKNOWN)
            if dev is _UNKNOWN:
                dev = self.lookup(address)
            if dev is not None:
                return dev.read(address - dev.base, size) & ((1 << (8 * size)) - 1)
            if page in self._storage_pages:
                return self._storage_read(address, size)
            s.bus_fault(address, "precise", "read")
            return 0
        except BaseException as exc:  # never into C: recorded, the slice stops
            self._hook_failed(exc)
            return 0

    def _mmio_write(self, uc, offset: int, size: int, value: int, page: int) -> None:
        """A CPU write to a device page (the binding's signature; engine doubles)."""
        self._c_write(page, 0, offset, size, value, 0)

    def _c_write(self, page: int, _handle: int, offset: int, size: int, value: int, _ud: int) -> None:
        """A CPU write to a device page, called by libunicorn (see _map_mmio_page)."""
        try:
            if self._fixups:
                self._stores.apply_fixups()
            s = self._slice
            s.ticks += 1
            address = page + offset
            if (
                (address >= 0xE0000000 or (self._prot.view is not None and page not in self._prot.open_pages))
                and s.active
                and self._prot.access_denied(address, True)
            ):
                return
            dev = self._lookup_cache.get(address, _UNKNOWN)
            if dev is _UNKNOWN:
                dev = self.lookup(address)
            if dev is not None:
                dev.write(address - dev.base, size, value & ((1 << (8 * size)) - 1))
                if self._bus_error is not None:
                    # the device answered with an error: the store retires (write buffer), then
                    # the fault (imprecise BusFault, no BFAR, as on the Cortex-M7)
                    fault, self._bus_error = self._bus_error, None
                    self.stop_after_store()
                    s.reasons.append(("fault", fault))
                    return
            elif page in self._storage_pages:
                self._storage_write(address, size, value)
            else:
                s.bus_fault(address, "precise", "write")
            if s.kicked:
                s.kicked = False
                if not s.reasons:
                    self.stop_after_store()
            if s.early_event:  # the write scheduled an event far inside this slice
                s.early_event = False
                if not (s.reasons or self.stop_after_store()):
                    s.short = SHORT_SLICES_AFTER_IO  # not a plain store: short slices
        except BaseException as exc:
            self._hook_failed(exc)

    def hook_unmapped(self, uc, access, address, size, value, _ud) -> bool:
        """UC_HOOK_MEM_UNMAPPED: remember the address for the fault (the runner raises it)."""
        self._slice.fault_addr = address
        return False

    def device_bus_error(self, what: str) -> None:
        """A device refuses the access it is handling (see Services.bus_error)."""
        if not self.device_fault("bus", "imprecise", what):
            self._log(
                f"bus error for a debugger access: {what} (no fault; the probe would see a transfer error)"
            )

    def device_fault(self, kind: str, detail: object, what: str) -> bool:
        """The CPU faults (as :meth:`twin.runner.Runner.fault`) once the store a device is
        handling retires; False for a debugger's access (no slice runs, no core fault)."""
        if not self._slice.active:  # slices run with the lock; debugger accesses do not
            return False
        self._bus_error = (kind, detail, what)
        return True

    def stop_after_store(self) -> bool:
        """End the slice right after the store being handled; False if it cannot.

        emu_stop inside an MMIO write callback leaves PC on the store, which would run
        again (double write). For a plain single store outside an IT block, step PC past
        it first; otherwise let the (short) slice end by itself.
        """
        try:
            pc = self._reg(A.UC_ARM_REG_PC)
            if self._reg(A.UC_ARM_REG_XPSR) & 0x0600FC00:  # inside an IT block
                return False
            reg = self.memory.region_at(pc, 4)
            if reg is None:
                return False
            hw = int.from_bytes(reg.read(pc, 2), "little")
            if hw >> 11 in (0x1D, 0x1E, 0x1F):
                if hw & 0xFF10 != 0xF800:  # STR{,B,H}.W only
                    return False
                nxt = pc + 4
            elif hw >> 9 in (0x28, 0x29, 0x2A) or hw >> 11 in (0x0C, 0x0E, 0x10, 0x12):
                nxt = pc + 2
            else:
                return False
            self.uc.reg_write(A.UC_ARM_REG_PC, nxt | 1)
            self._slice.stop("kick")
            return True
        except uc_mod.UcError:
            return False

    # ------------------------------------------------------------------ plain storage
    def _storage_read(self, address: int, size: int) -> int:
        word = self._storage.get(address & ~3, 0)
        if (address & ~3) not in self._storage:
            self._storage[address & ~3] = 0
            self._log(f"unmodelled peripheral register 0x{address:08X} read (plain storage)")
        return (word >> (8 * (address & 3))) & ((1 << (8 * size)) - 1)

    def _storage_write(self, address: int, size: int, value: int) -> None:
        key = address & ~3
        if key not in self._storage:
            self._log(f"unmodelled peripheral register 0x{address:08X} written (plain storage)")
        old = self._storage.get(key, 0)
        shift = 8 * (address & 3)
        mask = ((1 << (8 * size)) - 1) << shift
        self._storage[key] = (old & ~mask) | ((value << shift) & mask)

    def clear_storage(self) -> None:
        """Power loss: the plain-storage registers read 0 again."""
        self._storage.clear()

    # ------------------------------------------------------------------ host accesses
    def read(self, address: int, length: int, width: int = 4, *, cpu: bool = False) -> bytes:
        """Read ``length`` bytes as the debugger does; MMIO in ``width``-byte accesses.
        BusError if any part is unmapped. ``cpu``: the core's own access (exception
        stacking, vector fetch), which sees its D-cache lines, not memory behind them."""
        if self._stores.fixups:
            self._stores.apply_fixups()
        region_at = self.memory.region_at
        reg = region_at(address, length)
        if reg is not None:
            data = reg.read(address, length)
            dc = self._dcache
            return dc.overlay(address, data) if not cpu and dc is not None and dc.shadow else data
        out = bytearray()
        a, end = address, address + length
        while a < end:
            reg = region_at(a)
            if reg is not None:
                n = min(end, reg.end) - a
                out += reg.read(a, n)
                a += n
                continue
            w = width
            while w > 1 and (a % w or a + w > end):
                w //= 2
            out += self._mmio_access_read(a, w).to_bytes(w, "little")
            a += w
        return bytes(out)

    def write(self, address: int, data: bytes, width: int = 4) -> None:
        """Write as the debugger does: RAM directly, flash through the flash controller (a
        store without PG is rejected there), MMIO in ``width``-byte accesses. BusError on
        unmapped or read-only targets."""
        stores = self._stores
        if stores.fixups:
            stores.apply_fixups()
        a, end, i = address, address + len(data), 0
        while a < end:
            reg = self.memory.region_at(a)
            if reg is not None:
                n = min(end, reg.end) - a
                chunk = data[i : i + n]
                if reg.writable:
                    reg.write(a, chunk)
                    stores.mark_dirty(a, n)
                elif reg.kind == "flash" and stores.flash is not None:
                    stores.host_flash_store(a, chunk, width)
                else:
                    raise BusError(f"bus error: {reg.name} at 0x{a:08X} is read-only")
                a += n
                i += n
                continue
            w = width
            while w > 1 and (a % w or a + w > end):
                w //= 2
            self._mmio_access_write(a, w, int.from_bytes(data[i : i + w], "little"))
            a += w
            i += w
        stores.flush_dirty()

    def _mmio_access_read(self, address: int, size: int) -> int:
        dev = self.lookup(address)
        if dev is not None:
            return dev.read(address - dev.base, size) & ((1 << (8 * size)) - 1)
        if (address & ~(mm.PAGE - 1)) in self._storage_pages:
            return self._storage_read(address, size)
        raise BusError(f"bus error: read of unmapped address 0x{address:08X}")

    def _mmio_access_write(self, address: int, size: int, value: int) -> None:
        dev = self.lookup(address)
        if dev is not None:
            dev.write(address - dev.base, size, value)
        elif (address & ~(mm.PAGE - 1)) in self._storage_pages:
            self._storage_write(address, size, value)
        else:
            raise BusError(f"bus error: write of unmapped address 0x{address:08X}")
