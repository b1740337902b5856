"""The virtual STM32F767's core: unicorn Cortex-M7, memory map, bus, time and run loop.

Threading: the CPU runs instruction slices on its own thread while holding ``_lock``.
Host threads (debug port, control server) use :meth:`Machine.host` to get the lock between
slices; a small fairness handshake makes the CPU thread step aside when a host waits.
Devices are only called with the lock held (on the CPU thread, or by a host thread while
the CPU is parked between slices), which is the mutual exclusion device.py asks for.

Virtual time is the number of executed instructions (1 cycle each) at ``core_hz``.
Slices are cut at scheduled events; after any MMIO access slices are kept short so that
time reads (DWT CYCCNT, SysTick) see fine-grained progress. A poll a device reports
(``poll_wait``, e.g. FLASH_SR.BSY) jumps straight to the next event. WFI idles: the machine
jumps to the next event (``idle="skip"``) or sleeps in wall time until then
(``idle="realtime"``, the default, so host-side timeouts stay meaningful).
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import unicorn as uc_mod
import unicorn.arm_const as A

from twin import memory as mm
from twin.device import Device, ExceptionUnit, ResetKind
from twin.mpu import MpuView
from twin.mpu import decode as mpu_decode

LONG_SLICE = 200_000
SHORT_SLICE = 2_000
SHORT_SLICES_AFTER_IO = 8
_UNTIL = 0xFFFFFFFF

_REGS = {f"r{i}": getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)}
_REGS.update(
    sp=A.UC_ARM_REG_SP,
    lr=A.UC_ARM_REG_LR,
    pc=A.UC_ARM_REG_PC,
    xpsr=A.UC_ARM_REG_XPSR,
    ipsr=A.UC_ARM_REG_IPSR,
    msp=A.UC_ARM_REG_MSP,
    psp=A.UC_ARM_REG_PSP,
    control=A.UC_ARM_REG_CONTROL,
    primask=A.UC_ARM_REG_PRIMASK,
    basepri=A.UC_ARM_REG_BASEPRI,
    faultmask=A.UC_ARM_REG_FAULTMASK,
    fpscr=A.UC_ARM_REG_FPSCR,
)
_REGS.update({f"s{i}": A.UC_ARM_REG_S0 + i for i in range(32)})

_FLASH_END = mm.FLASH_BASE + mm.FLASH_SIZE
_SPECIAL = frozenset({"msp", "psp", "primask", "basepri", "faultmask", "control"})
_UC_PAGE = 0x400  # unicorn's page (ARM): the MPU's protection granule here
_MASKS = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF, 8: 0xFFFFFFFFFFFFFFFF}

WFI_T16 = 0xBF30
WFE_T16 = 0xBF20


class _Event:
    __slots__ = ("callback", "cancelled", "seq", "when")

    def __init__(self, when: int, seq: int, callback: Callable[[], None]) -> None:
        self.when, self.seq, self.callback, self.cancelled = when, seq, callback, False

    def __lt__(self, other: _Event) -> bool:
        return (self.when, self.seq) < (other.when, other.seq)


class DeviceServices:
    """The :class:`twin.device.Services` a device gets: the machine, plus its own name for logs."""

    def __init__(self, machine: Machine, owner: str) -> None:
        self._m = machine
        self._owner = owner

    @property
    def core_hz(self) -> int:
        return self._m.core_hz

    def set_core_hz(self, hz: int) -> None:
        self._m.set_core_hz(hz)

    def now_cycles(self) -> int:
        return self._m.now_cycles()

    def now_ns(self) -> int:
        return self._m.now_ns()

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        return self._m.schedule(delay_cycles, callback)

    def cancel(self, handle: object) -> None:
        self._m.cancel(handle)

    def set_irq(self, irqn: int, level: bool) -> None:
        self._m.set_irq(irqn, level)

    def pend_irq(self, irqn: int) -> None:
        self._m.pend_irq(irqn)

    def read_mem(self, address: int, length: int) -> bytes:
        return self._m.dma_read(address, length)

    def write_mem(self, address: int, data: bytes) -> None:
        self._m.dma_write(address, data)

    def request_reset(self, kind: str, cause: str) -> None:
        self._m.request_reset(kind, cause)

    def bus_error(self, what: str) -> None:
        self._m.device_bus_error(what)

    def post(self, fn: Callable[[], None]) -> None:
        self._m.post(fn)

    def log(self, message: str) -> None:
        self._m.log(message, self._owner)

    def device(self, name: str) -> Device:
        return self._m.device(name)

    def set_backup_write_access(self, allowed: bool) -> None:
        """Extra (PWR): PWR_CR1.DBP changed; backup SRAM takes CPU stores only while set."""
        self._m.set_backup_write_access(allowed)

    def set_backup_clock(self, enabled: bool) -> None:
        """Extra (RCC): RCC_AHB1ENR.BKPSRAMEN changed; without it CPU stores are ignored."""
        self._m.set_backup_write_access(enabled, gate="clock")

    def poll_wait(self) -> None:
        """Extra (not in the protocol): the firmware is polling a flag that only a scheduled
        event can change (e.g. FLASH_SR.BSY); end the slice and jump to the next event.
        Only from side-effect-free reads (the load runs again)."""
        self._m.poll_wait()

    def idle_wait(self) -> None:
        """Extra (not in the protocol): the firmware waits for host input (socket data);
        after this slice idle until the next event or a post(), at wall pace (realtime)."""
        self._m.idle_wait()


#: A host wait (``idle_wait``) lets the firmware run again after 1/IDLE_SLICE_DIV s of
#: idle (2 ms): its polling loop then sees the time that passed and can time out.
IDLE_SLICE_DIV = 500

#: Waits (host waits, WFI in realtime mode) that follow each other with less than
#: 1/PACE_GAP_DIV s (20 ms) of executed time in between share one wall-clock anchor, so
#: virtual time catches up with wall time when the emulation fell behind (a loaded host):
#: without it each SysTick wake-up started a new anchor and the lag only grew.
PACE_GAP_DIV = 50


class Machine:
    """A Cortex-M7 with the STM32F767ZI memory map, devices, a scheduler and a run loop.

    Args:
        core_hz: initial core clock (HSI 16 MHz after reset).
        idle: "realtime" (idle waits take wall time) or "skip" (jump to the next event).
        log_stream: where :meth:`log` writes (stderr).
    """

    def __init__(self, core_hz: int = 16_000_000, idle: str = "realtime", log_stream=None) -> None:
        if idle not in ("realtime", "skip"):
            raise ValueError(f"idle must be 'realtime' or 'skip', not {idle!r}")
        self.idle_mode = idle
        self.reset_core_hz = core_hz
        self.core_hz = core_hz
        self._ns_base = 0
        self._ns_cycles = 0
        self._log_stream = log_stream
        self.uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M7)
        self._cycles = 0
        self._ctx0 = self.uc.context_save()

        # time and events
        self._cycles = 0
        self._ticks = 0  # per-slice MMIO access counter (monotonic sub-slice time)
        self._events: list[_Event] = []
        self._seq = itertools.count()
        self._short = 0
        self._idle_anchor: tuple[float, int] | None = None
        self._pace: tuple[float, int] | None = None  # anchor of the current run of waits
        self._pace_end = 0  # cycles when the last wait of that run ended
        self._wait_start = 0  # cycles when the current wait began
        self._last_read = -1  # address of the latest MMIO read (in a slice)
        self._idle_addr = -1  # the register whose read asked for the host wait
        self.instructions = 0  # executed instructions since start (statistics)

        # threading
        self._lock = threading.RLock()
        self._gate = threading.Condition()
        self._host_waiting = 0
        self._wake = threading.Event()
        self._posted: deque[Callable[[], None]] = deque()
        self._thread: threading.Thread | None = None
        self._quit = False
        self._cpu_thread_id: int | None = None

        # CPU state
        self.halted = False
        self.sleeping = False
        self.locked_up = False
        self.reset_held = False
        self.in_slice = False
        self._stop_reasons: list[tuple[str, object]] = []
        self._fault_addr: int | None = None
        self._fixups: list[tuple[int, bytes]] = []
        self._replaying: dict[int, bytes] | None = None
        self._dirty: list[int] | None = None
        self._pending_reset: tuple[str, str] | None = None
        self._wait_mode: str | None = None  # None, "poll" or "idle"
        self._posts_done = 0
        self._idle_posts = 0
        self._kicked = False
        self._bus_error: str | None = None  # set by a device inside an MMIO write
        self._slice_end = 0
        self.reset_history: list[dict[str, object]] = []
        self.lockup_reason = ""
        self.on_halt: list[Callable[[str], None]] = []
        # devices whose clock runs on while the core is stopped (watchdogs): see _sync_stopped
        self._stop_watchers: list[Device] = []
        self._stopped_state: str | None = None
        self.backup_writable = True  # backup SRAM takes CPU stores: all gates open
        # PWR_CR1.DBP ("dbp") and RCC_AHB1ENR.BKPSRAMEN ("clock"); their models close them
        # at reset (a machine without them keeps backup SRAM writable)
        self._backup_gates = {"dbp": True, "clock": True}
        self.backup_ignored_writes = 0
        # MPU enforcement (see _mpu_sync): the configuration applied to the page protections
        self._mpu_key: object = None
        self._mpu_view: MpuView | None = None
        self._stack_checks: dict[tuple[int, ...], bool] = {}  # mpu_allows answers
        self._mpu_fault: tuple[str, int] | None = None
        self._mpu_hooks: list[int] = []

        # memory
        self.regions: list[mm.Region] = []
        self._map_memory()

        # devices
        self.devices: dict[str, Device] = {}
        self._dev_list: list[Device] = []
        self._page_devs: dict[int, list[Device]] = {}
        self._storage_pages: set[int] = set()
        self._storage: dict[int, int] = {}
        self._mapped_pages: set[int] = set()
        self.exc: ExceptionUnit | None = None
        self.debug = None  # twin.scs.DebugUnit, set by attach_debug()
        self.flash = None  # twin.flash.FlashController

        uc = self.uc
        uc.hook_add(uc_mod.UC_HOOK_MEM_WRITE_PROT, self._hook_write_prot)
        uc.hook_add(uc_mod.UC_HOOK_MEM_UNMAPPED, self._hook_unmapped)
        uc.hook_add(uc_mod.UC_HOOK_MEM_FETCH_PROT | uc_mod.UC_HOOK_MEM_READ_PROT, self._hook_prot_other)
        uc.hook_add(uc_mod.UC_HOOK_INTR, self._hook_intr)

    # ------------------------------------------------------------------ memory map
    def _map_memory(self) -> None:
        R = mm.Region
        self.flash_buf = mm.new_buffer(mm.FLASH_SIZE, 0xFF)
        sysmem = mm.system_memory()
        self.itcm = R("itcm", mm.ITCM_BASE, mm.ITCM_SIZE, mm.new_buffer(mm.ITCM_SIZE), volatile=True)
        self.flash_region = R(
            "flash", mm.FLASH_BASE, mm.FLASH_SIZE, self.flash_buf, writable=False, kind="flash"
        )
        self.flash_alias = R(
            "flash-itcm", mm.FLASH_ITCM_BASE, mm.FLASH_SIZE, self.flash_buf, writable=False, kind="alias"
        )
        self.sram = R("sram", mm.SRAM_BASE, mm.SRAM_SIZE, mm.new_buffer(mm.SRAM_SIZE), volatile=True)
        self.bkpsram = R(
            "bkpsram", mm.BKPSRAM_BASE, mm.BKPSRAM_SIZE, mm.new_buffer(mm.BKPSRAM_SIZE), volatile=True
        )
        self.sysmem = R("sysmem", mm.SYSMEM_BASE, mm.SYSMEM_SIZE, sysmem, writable=False, kind="rom")
        self.sysmem_alias = R(
            "sysmem-itcm", mm.SYSMEM_ITCM_BASE, mm.SYSMEM_SIZE, sysmem, writable=False, kind="rom"
        )
        self.info = R("otp-info", mm.INFO_BASE, mm.INFO_SIZE, mm.info_block(), writable=False, kind="rom")
        for reg in (
            self.itcm,
            self.sysmem_alias,
            self.flash_alias,
            self.flash_region,
            self.sysmem,
            self.info,
            self.sram,
            self.bkpsram,
        ):
            perms = uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC
            if reg.writable:
                perms |= uc_mod.UC_PROT_WRITE
            self.uc.mem_map_ptr(reg.base, reg.size, perms, reg.buf)
            self.regions.append(reg)

    def region_at(self, address: int, length: int = 1) -> mm.Region | None:
        """The memory region holding ``[address, address + length)``, or None."""
        for reg in self.regions:
            if reg.contains(address, length):
                return reg
        return None

    # ------------------------------------------------------------------ devices
    def add_device(self, dev: Device, first: bool = False) -> None:
        """Attach and map a device; ``first`` gives it priority over earlier ones."""
        if dev.name in self.devices:
            raise ValueError(f"duplicate device name {dev.name!r}")
        self.devices[dev.name] = dev
        dev.attach(DeviceServices(self, dev.name))
        for page in range(dev.base & ~(mm.PAGE - 1), dev.base + dev.size, mm.PAGE):
            lst = self._page_devs.setdefault(page, [])
            if first:
                lst.insert(0, dev)
            else:
                lst.append(dev)
            self._map_mmio_page(page)
        self._dev_list.append(dev)
        if hasattr(dev, "core_stopped") and hasattr(dev, "stopped_tick"):
            self._stop_watchers.append(dev)

    def add_storage_range(self, base: int, size: int) -> None:
        """Map ``[base, base+size)`` so addresses no device claims act as plain storage
        (an unmodelled peripheral), logged once per address, instead of bus faults."""
        for page in range(base & ~(mm.PAGE - 1), base + size, mm.PAGE):
            if self.region_at(page) is not None:
                continue
            self._storage_pages.add(page)
            self._map_mmio_page(page)

    def _map_mmio_page(self, page: int) -> None:
        if page in self._mapped_pages:
            return
        self._mapped_pages.add(page)
        self.uc.mmio_map(page, mm.PAGE, self._mmio_read, page, self._mmio_write, page)

    def set_exception_unit(self, unit: ExceptionUnit) -> None:
        """Install the exception model; its register blocks take over the SCS."""
        self.exc = unit
        if hasattr(unit, "on_kick"):
            unit.on_kick = self.kick
        for dev in unit.devices():
            self.add_device(dev)

    def device(self, name: str) -> Device:
        """A device by name (KeyError if absent)."""
        return self.devices[name]

    def _lookup(self, address: int) -> Device | None:
        for dev in self._page_devs.get(address & ~(mm.PAGE - 1), ()):
            if dev.base <= address < dev.base + dev.size:
                return dev
        return None

    def _mmio_read(self, uc, offset: int, size: int, page: int) -> int:
        if self._fixups:
            self._apply_fixups()
        self._ticks += 1
        self._short = SHORT_SLICES_AFTER_IO
        address = page + offset
        if (
            (address >= 0xE0000000 or self._mpu_view is not None)
            and self.in_slice
            and self._access_denied(address, False)
        ):
            return 0
        if self._wait_mode == "idle" and address == self._idle_addr and self.in_slice:
            # the firmware polls again the register that started the host wait: end the
            # slice here (that status read is repeated afterwards, harmless) instead of
            # spinning through the rest of it, so waiting costs little host CPU and the
            # wait can catch up with wall time on a loaded machine
            self._idle_addr = -1
            self._stop("idle")
        self._last_read = address
        dev = self._lookup(address)
        if dev is not None:
            return dev.read(address - dev.base, size) & ((1 << (8 * size)) - 1)
        if page in self._storage_pages:
            return self._storage_read(address, size)
        self._cpu_bus_fault(address, "precise", "read")
        return 0

    def _mmio_write(self, uc, offset: int, size: int, value: int, page: int) -> None:
        if self._fixups:
            self._apply_fixups()
        self._ticks += 1
        self._short = SHORT_SLICES_AFTER_IO
        address = page + offset
        if (
            (address >= 0xE0000000 or self._mpu_view is not None)
            and self.in_slice
            and self._access_denied(address, True)
        ):
            return
        dev = self._lookup(address)
        if dev is not None:
            dev.write(address - dev.base, size, value & ((1 << (8 * size)) - 1))
            if self._bus_error is not None:
                # the device answered with an error: the store retires (write buffer), the
                # fault follows as an imprecise BusFault (no BFAR), as on the Cortex-M7
                what, self._bus_error = self._bus_error, None
                self._stop_after_store()
                self._stop_reasons.append(("fault", ("bus", "imprecise", what)))
                return
        elif page in self._storage_pages:
            self._storage_write(address, size, value)
        else:
            self._cpu_bus_fault(address, "precise", "write")
        if self._kicked:
            self._kicked = False
            if not self._stop_reasons:
                self._stop_after_store()

    def _access_denied(self, address: int, write: bool) -> bool:
        """A CPU access to device space that faults before reaching the device: the PPB
        (0xE0000000-0xE00FFFFF) is privileged-only (BusFault; NVIC_STIR stays writable with
        CCR.USERSETMPEND) and is never subject to the MPU; other device memory (peripherals)
        is checked against the MPU like RAM (MemManage DACCVIOL with MMFAR). The faulting
        instruction does not retire and the device never sees the access."""
        what = "write" if write else "read"
        if address >= 0xE0000000:
            if address >= 0xE0100000 or self.exc is None or self.exc.active:
                return False
            if not self.uc.reg_read(A.UC_ARM_REG_CONTROL) & 1:
                return False
            if write and address == 0xE000EF00 and self.exc.ccr & 2:
                return False
            self._stop(
                "fault", ("bus", (address, "precise"), f"unprivileged {what} of the PPB at 0x{address:08X}")
            )
            return True
        view = self._mpu_view
        if view is not None and not view.perms(address) & (2 if write else 1):
            self._stop("fault", ("memmanage", address, f"MPU: data {what} of 0x{address:08X} not allowed"))
            return True
        return False

    def device_bus_error(self, what: str) -> None:
        """A device refuses the access it is handling (see Services.bus_error)."""
        if self.in_slice:  # slices run with the lock; debugger accesses do not
            self._bus_error = what
        else:
            self.log(
                f"bus error for a debugger access: {what} (no fault; the probe would see a transfer error)"
            )

    def kick(self) -> None:
        """The exception unit says an exception became takeable (``on_kick``): end the
        slice right after the current store so it is taken without delay."""
        if self.in_slice:
            self._kicked = True
            self._short = SHORT_SLICES_AFTER_IO
        self._wake.set()

    def _stop_after_store(self) -> None:
        # emu_stop inside an MMIO write callback leaves PC on the store, which would run
        # again (double write). For a plain single store outside an IT block, step PC past
        # it first; otherwise let the (short) slice end by itself.
        try:
            pc = self.uc.reg_read(A.UC_ARM_REG_PC)
            if self.uc.reg_read(A.UC_ARM_REG_XPSR) & 0x0600FC00:  # inside an IT block
                return
            reg = self.region_at(pc, 4)
            if reg is None:
                return
            hw = int.from_bytes(reg.read(pc, 2), "little")
            if hw >> 11 in (0x1D, 0x1E, 0x1F):
                if hw & 0xFF10 != 0xF800:  # STR{,B,H}.W only
                    return
                nxt = pc + 4
            elif hw >> 9 in (0x28, 0x29, 0x2A) or hw >> 11 in (0x0C, 0x0E, 0x10, 0x12):
                nxt = pc + 2
            else:
                return
            self.uc.reg_write(A.UC_ARM_REG_PC, nxt | 1)
            self._stop("kick")
        except uc_mod.UcError:
            return

    def _storage_read(self, address: int, size: int) -> int:
        word = self._storage.get(address & ~3, 0)
        if (address & ~3) not in self._storage:
            self._storage[address & ~3] = 0
            self.log(f"unmodelled peripheral register 0x{address:08X} read (plain storage)")
        return (word >> (8 * (address & 3))) & ((1 << (8 * size)) - 1)

    def _storage_write(self, address: int, size: int, value: int) -> None:
        key = address & ~3
        if key not in self._storage:
            self.log(f"unmodelled peripheral register 0x{address:08X} written (plain storage)")
        old = self._storage.get(key, 0)
        shift = 8 * (address & 3)
        mask = ((1 << (8 * size)) - 1) << shift
        self._storage[key] = (old & ~mask) | ((value << shift) & mask)

    # ------------------------------------------------------------------ hooks
    def _stop(self, reason: str, detail: object = None) -> None:
        self._stop_reasons.append((reason, detail))
        self.uc.emu_stop()

    def _cpu_bus_fault(self, address: int, kind: str, what: str) -> None:
        if self.in_slice:
            self._stop("fault", ("bus", (address, kind), f"{what} of 0x{address:08X}"))
        else:
            raise ValueError(f"bus error: {what} of unmapped address 0x{address:08X}")

    def _hook_write_prot(self, uc, access, address, size, value, _ud) -> bool:
        if self._replaying is not None and address in self._replaying:
            self._fixups.append((address, self._replaying[address]))
            return True
        if self._fixups:
            self._apply_fixups()
        if (
            self._mpu_view is not None
            and self._mpu_denies(address, uc_mod.UC_PROT_WRITE)
            and self.region_at(address, 1) is not None
        ):
            self._mpu_fault = ("daccviol", address)
            self._fault_addr = address
            return False
        fl = self.flash
        if fl is not None and (mm.FLASH_BASE <= address < _FLASH_END):
            # hot path: a store into flash (every word of a flash download)
            off = address - mm.FLASH_BASE
            buf = self.flash_region.mv
            fl.cpu_store(address, size, value)
            d = self._dirty
            if d is None:
                self._dirty = [address, address + size]
            else:
                if address < d[0]:
                    d[0] = address
                if address + size > d[1]:
                    d[1] = address + size
            if int.from_bytes(buf[off : off + size], "little") != value & _MASKS[size]:
                self._fixups.append((address, buf[off : off + size].tobytes()))
                if self.in_slice and not self._stop_reasons and self._replaying is None:
                    self._stop("fixup")
            return True
        reg = self.region_at(address, size)
        if reg is None:
            self._cpu_bus_fault(address, "precise", "write")
            return True
        old = reg.read(address, size)
        if reg.kind == "flash" and self.flash is not None:
            self.flash.cpu_store(address, size, value)
            self._mark_dirty(address, size)
        elif reg is self.bkpsram and not self.backup_writable:
            self._backup_store_ignored(address)
        elif reg.writable:
            # RAM on a page the MPU protects only in part: the MPU allows this address, so
            # store it here (unicorn does not complete a store its page protection refused)
            reg.write(address, (value & _MASKS[size]).to_bytes(size, "little"))
            self._mark_dirty(address, size)
            return True
        else:
            self._cpu_bus_fault(address, "precise", f"write to read-only {reg.name}")
        # unicorn still performs the raw store into the ptr-mapped buffer after this hook
        # (pitfall U4). If that differs from the intended bytes (NOR AND over programmed
        # bits, a rejected store), end the slice after this instruction and restore them
        # before the firmware can read the raw value back.
        intended = reg.read(address, size) if reg.kind == "flash" else old
        if intended != (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"):
            self._fixups.append((address, intended))
            if self.in_slice and not self._stop_reasons and self._replaying is None:
                self._stop("fixup")
        return True

    def set_backup_write_access(self, allowed: bool, gate: str = "dbp") -> None:
        """PWR_CR1.DBP (``gate="dbp"``) or RCC_AHB1ENR.BKPSRAMEN (``"clock"``): while either
        is clear the CPU's stores to backup SRAM are ignored (the debugger's are not). Done
        with page protections, so RAM speed is kept."""
        self._backup_gates[gate] = bool(allowed)
        allowed = all(self._backup_gates.values())
        if allowed == self.backup_writable:
            return
        self.backup_writable = allowed
        if self._mpu_view is not None:
            self._mpu_key = ("stale",)  # recomputed with the MPU at the next slice
            return
        self.uc.mem_protect(self.bkpsram.base, self.bkpsram.size, self._base_perms(self.bkpsram))

    def _base_perms(self, reg: mm.Region) -> int:
        """Page protections of a memory region without the MPU."""
        perms = uc_mod.UC_PROT_READ | uc_mod.UC_PROT_EXEC
        if reg.writable and (reg is not self.bkpsram or self.backup_writable):
            perms |= uc_mod.UC_PROT_WRITE
        return perms

    def _mpu_sync(self) -> None:
        """Before each slice: make unicorn's page protections follow the MPU.

        Nothing to do while MPU_CTRL.ENABLE is clear (one attribute read per slice). While it
        is set, the configuration, the privilege level (handler mode or CONTROL.nPRIV = 0)
        and "execution priority below 0 without HFNMIENA" form a key; a new key recomputes
        the protections page by page (a page gets the rights common to all of it) and the
        protection hooks check the exact address, so a 32-byte region is exact too. A change
        of CONTROL.nPRIV inside a slice takes effect at the next slice (up to a few thousand
        instructions later; the architecture asks for an ISB there anyway).
        """
        exc = self.exc
        ctrl = getattr(exc, "mpu_ctrl", 0) if exc is not None else 0
        if not ctrl & 1:
            if self._mpu_key is not None:
                self._mpu_key = None
                self._mpu_view = None
                self._apply_protections(None)
            return
        # per slice, so cheap: handler mode is known from the model's active list
        privileged = bool(exc.active) or not self.uc.reg_read(A.UC_ARM_REG_CONTROL) & 1
        if self._mpu_default_map(ctrl):
            key: object = ("default-map",)
        else:
            key = (exc.mpu_gen, privileged)  # mpu_gen: bumped by every MPU register write
        if key == self._mpu_key:
            return
        self._mpu_key = key
        view = None
        if key != ("default-map",):
            view = MpuView(ctrl, mpu_decode(list(exc.mpu_rbar), list(exc.mpu_rasr)), privileged)
        self._mpu_view = view
        self._apply_protections(view)

    def _mpu_default_map(self, ctrl: int) -> bool:
        """The execution priority is below 0 (HardFault/NMI active or FAULTMASK set) and
        HFNMIENA is clear: the default memory map applies instead of the MPU."""
        exc = self.exc
        return not ctrl & 2 and (
            2 in exc.active or 3 in exc.active or bool(self.uc.reg_read(A.UC_ARM_REG_FAULTMASK) & 1)
        )

    def mpu_allows(self, address: int, length: int, write: bool, privileged: bool) -> bool:
        """Whether the MPU lets an access of ``length`` bytes at ``address`` through, at the
        given privilege and the current execution priority (exception stacking and
        unstacking ask this; the core's own accesses go through the page protections)."""
        exc = self.exc
        ctrl = getattr(exc, "mpu_ctrl", 0) if exc is not None else 0
        if not ctrl & 1:
            return True
        if self._mpu_default_map(ctrl):
            return True
        # a stack frame sits at a handful of addresses: remember the answers per MPU setup
        key = (exc.mpu_gen, ctrl, privileged, write, address, length)
        hit = self._stack_checks.get(key)
        if hit is not None:
            return hit
        view = MpuView(ctrl, mpu_decode(list(exc.mpu_rbar), list(exc.mpu_rasr)), privileged)
        need = 2 if write else 1  # W / R
        ok = all(perms & need for _, _, perms in view.intervals(address, address + length))
        if len(self._stack_checks) >= 256:
            self._stack_checks.clear()
        self._stack_checks[key] = ok
        return ok

    def _apply_protections(self, view: MpuView | None) -> None:
        uc = self.uc
        for h in self._mpu_hooks:
            uc.hook_del(h)
        self._mpu_hooks = []
        for reg in self.regions:
            base = self._base_perms(reg)
            if view is None:
                uc.mem_protect(reg.base, reg.size, base)
                continue
            for lo, hi, perms, varies in view.page_perms(reg.base, reg.end, _UC_PAGE):
                uc.mem_protect(lo, hi - lo, base & perms)
                if varies & uc_mod.UC_PROT_READ:
                    self._mpu_hooks.append(
                        uc.hook_add(uc_mod.UC_HOOK_MEM_READ, self._mpu_read_hook, begin=lo, end=hi - 1)
                    )
                if varies & uc_mod.UC_PROT_EXEC:
                    self._mpu_hooks.append(
                        uc.hook_add(uc_mod.UC_HOOK_CODE, self._mpu_code_hook, begin=lo, end=hi - 1)
                    )
        uc.ctl_flush_tb()

    def _mpu_read_hook(self, uc, access, address, size, value, _ud) -> None:
        """Reads on a page the MPU protects only in part: refuse the exact address (the
        instruction does not retire; MemManage DACCVIOL with MMFAR)."""
        if self._mpu_denies(address, uc_mod.UC_PROT_READ):
            self._stop("fault", ("memmanage", address, f"MPU: data access to 0x{address:08X} not allowed"))

    def _mpu_code_hook(self, uc, address, size, _ud) -> None:
        """Fetches on a page the MPU makes executable only in part (IACCVIOL)."""
        if self._mpu_denies(address, uc_mod.UC_PROT_EXEC):
            self._stop(
                "fault", ("memmanage", "iaccviol", f"MPU: instruction fetch from 0x{address:08X} not allowed")
            )

    def _mpu_denies(self, address: int, right: int) -> bool:
        """The MPU (when enforced) forbids ``right`` at ``address`` for the current level."""
        view = self._mpu_view
        return view is not None and not view.perms(address) & right

    def _backup_store_ignored(self, address: int) -> None:
        self.backup_ignored_writes += 1
        if self.backup_ignored_writes == 1:
            why = []
            if not self._backup_gates.get("clock", True):
                why.append("RCC_AHB1ENR.BKPSRAMEN is 0 (__HAL_RCC_BKPSRAM_CLK_ENABLE)")
            if not self._backup_gates.get("dbp", True):
                why.append("PWR_CR1.DBP is 0 (HAL_PWR_EnableBkUpAccess)")
            self.log(
                f"store to backup SRAM 0x{address:08X} ignored: {' and '.join(why)}; "
                "set it first — logged once"
            )

    def _apply_fixups(self) -> None:
        fix, self._fixups = self._fixups, []
        for address, data in fix:
            reg = self.region_at(address, len(data))
            if reg is not None:
                reg.write(address, data)

    def _hook_unmapped(self, uc, access, address, size, value, _ud) -> bool:
        self._fault_addr = address
        return False

    def _hook_prot_other(self, uc, access, address, size, value, _ud) -> bool:
        if self._mpu_view is not None and self.region_at(address, 1) is not None:
            # the page grants no read (or no fetch) anywhere: the MPU refuses this access
            fetch = access == uc_mod.UC_MEM_FETCH_PROT
            self._mpu_fault = ("iaccviol" if fetch else "daccviol", address)
        self._fault_addr = address
        return False

    def _hook_intr(self, uc, intno: int, _ud) -> None:
        if intno == 7:  # BKPT
            self._stop("bkpt")
        elif intno == 2:  # SVC: PC is after the SVC
            self._stop("svc")
        elif intno == 8:  # exception exit (EXC_RETURN)
            self._stop("excret", self.uc.reg_read(A.UC_ARM_REG_PC) | 1)
        else:
            self._stop("fault", ("usage", "undefinstr", f"CPU exception {intno}"))

    # ------------------------------------------------------------------ TB cache
    def _mark_dirty(self, address: int, length: int) -> None:
        if self._dirty is None:
            self._dirty = [address, address + length]
        else:
            self._dirty[0] = min(self._dirty[0], address)
            self._dirty[1] = max(self._dirty[1], address + length)

    def _flush_dirty(self) -> None:
        if self._dirty is None:
            return
        lo, hi = self._dirty
        self._dirty = None
        self.flush_code_cache(lo, hi)
        if mm.FLASH_BASE <= lo < mm.FLASH_BASE + mm.FLASH_SIZE:
            off = mm.FLASH_ITCM_BASE - mm.FLASH_BASE
            self.flush_code_cache(lo + off, hi + off)

    def flush_code_cache(self, lo: int = 0, hi: int = 0xFFFFFFFF) -> None:
        """Drop translated code in [lo, hi) (unicorn pitfall U1/U2)."""
        if lo == 0 and hi >= 0xFFFFFFFF:
            self.uc.ctl_flush_tb()
        else:
            self.uc.ctl_remove_cache(lo & ~(mm.PAGE - 1), max(hi, lo + 1))

    # ------------------------------------------------------------------ Cpu protocol
    def reg(self, name: str) -> int:
        """Read a core register by name (see twin.device.Cpu)."""
        if name in _SPECIAL and self._unprivileged_thread():
            return self._as_privileged(lambda: self.uc.reg_read(_REGS[name]))
        return self.uc.reg_read(_REGS[name])

    def set_reg(self, name: str, value: int) -> None:
        """Write a core register by name (PC: bit 0 dropped)."""
        if name == "pc":
            # unicorn takes EPSR.T from bit 0 of a PC write: keep the current T bit
            value = (value & ~1) | ((self.uc.reg_read(A.UC_ARM_REG_XPSR) >> 24) & 1)
        if name in _SPECIAL and name != "control" and self._unprivileged_thread():
            self._as_privileged(lambda: self.uc.reg_write(_REGS[name], value & 0xFFFFFFFF))
            return
        self.uc.reg_write(_REGS[name], value & 0xFFFFFFFF)

    def _unprivileged_thread(self) -> bool:
        uc = self.uc
        return bool(uc.reg_read(A.UC_ARM_REG_CONTROL) & 1) and not uc.reg_read(A.UC_ARM_REG_IPSR) & 0x1FF

    def _as_privileged(self, fn: Callable[[], int | None]):
        """unicorn reads MSP/PSP/PRIMASK/BASEPRI/FAULTMASK through MRS semantics: 0 (and
        writes ignored) for unprivileged thread code. The model and the debugger see the
        real values, so look through handler mode (IPSR != 0) for the access; unicorn
        re-banks SP on the IPSR write and back (measured)."""
        uc = self.uc
        uc.reg_write(A.UC_ARM_REG_IPSR, 1)
        try:
            return fn()
        finally:
            uc.reg_write(A.UC_ARM_REG_IPSR, 0)

    def read_mem(self, address: int, length: int) -> bytes:
        """System-bus read (RAM, flash, MMIO). ValueError if unmapped."""
        return self.bus_read(address, length)

    def write_mem(self, address: int, data: bytes) -> None:
        """System-bus write as the core would (flash goes through the controller)."""
        self.bus_write(address, data)

    # ------------------------------------------------------------------ bus (host side)
    def bus_read(self, address: int, length: int, width: int = 4) -> bytes:
        """Read ``length`` bytes through the bus; MMIO in ``width``-byte accesses."""
        if self._fixups:
            self._apply_fixups()
        reg = self.region_at(address, length)
        if reg is not None:
            return reg.read(address, length)
        out = bytearray()
        a, end = address, address + length
        while a < end:
            reg = self.region_at(a)
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

    def _mmio_access_read(self, address: int, size: int) -> int:
        page = address & ~(mm.PAGE - 1)
        dev = self._lookup(address)
        if dev is not None:
            return dev.read(address - dev.base, size) & ((1 << (8 * size)) - 1)
        if page in self._storage_pages:
            return self._storage_read(address, size)
        raise ValueError(f"bus error: read of unmapped address 0x{address:08X}")

    def _mmio_access_write(self, address: int, size: int, value: int) -> None:
        page = address & ~(mm.PAGE - 1)
        dev = self._lookup(address)
        if dev is not None:
            dev.write(address - dev.base, size, value)
        elif page in self._storage_pages:
            self._storage_write(address, size, value)
        else:
            raise ValueError(f"bus error: write of unmapped address 0x{address:08X}")

    def bus_write(self, address: int, data: bytes, width: int = 4) -> None:
        """Write through the bus like a bus master: RAM directly, flash through the flash
        controller (a store without PG is rejected there), MMIO in ``width``-byte accesses.
        ValueError on unmapped or read-only targets."""
        if self._fixups:
            self._apply_fixups()
        a, end, i = address, address + len(data), 0
        while a < end:
            reg = self.region_at(a)
            if reg is not None:
                n = min(end, reg.end) - a
                chunk = data[i : i + n]
                if reg.writable:
                    reg.write(a, chunk)
                    self._mark_dirty(a, n)
                elif reg.kind == "flash" and self.flash is not None:
                    self._flash_store_bytes(a, chunk, width)
                else:
                    raise ValueError(f"bus error: {reg.name} at 0x{a:08X} is read-only")
                a += n
                i += n
                continue
            w = width
            while w > 1 and (a % w or a + w > end):
                w //= 2
            self._mmio_access_write(a, w, int.from_bytes(data[i : i + w], "little"))
            a += w
            i += w
        self._flush_dirty()

    def _flash_store_bytes(self, address: int, chunk: bytes, width: int) -> None:
        j = 0
        while j < len(chunk):
            w = width
            while w > 1 and ((address + j) % w or j + w > len(chunk)):
                w //= 2
            self.flash.cpu_store(address + j, w, int.from_bytes(chunk[j : j + w], "little"))
            j += w
        self._mark_dirty(address, len(chunk))

    def dma_read(self, address: int, length: int) -> bytes:
        """Bus-master read of RAM/flash/ROM (not MMIO). ValueError if not memory."""
        reg = self.region_at(address, length)
        if reg is None:
            raise ValueError(f"DMA read of 0x{address:08X}+{length}: not memory")
        if self._fixups:
            self._apply_fixups()
        return reg.read(address, length)

    def dma_write(self, address: int, data: bytes) -> None:
        """Bus-master write into RAM. ValueError if not RAM."""
        reg = self.region_at(address, len(data))
        if reg is None or not reg.writable:
            raise ValueError(f"DMA write of 0x{address:08X}+{len(data)}: not RAM")
        reg.write(address, data)
        self._mark_dirty(address, len(data))
        if not self.in_slice:
            self._flush_dirty()

    # ------------------------------------------------------------------ time & events
    def now_cycles(self) -> int:
        """Virtual time in cycles (inside a slice: slice start + MMIO accesses so far)."""
        return self._cycles + self._ticks if self.in_slice else self._cycles

    def now_ns(self) -> int:
        """Virtual time in nanoseconds since power-on (monotonic across clock changes)."""
        return self._ns_base + (self.now_cycles() - self._ns_cycles) * 1_000_000_000 // self.core_hz

    def set_core_hz(self, hz: int) -> None:
        """Change the core clock (RCC)."""
        if hz > 0 and hz != self.core_hz:
            self._ns_base = self.now_ns()
            self._ns_cycles = self.now_cycles()
            self.core_hz = hz
            self._break_pace()  # the run of waits counted cycles at the old clock
            self.log(f"core clock now {hz} Hz")

    def schedule(self, delay_cycles: int, callback: Callable[[], None]) -> object:
        """Run ``callback`` on the CPU thread ``delay_cycles`` from now."""
        ev = _Event(self.now_cycles() + max(0, int(delay_cycles)), next(self._seq), callback)
        heapq.heappush(self._events, ev)
        if self.in_slice and ev.when < self._slice_end:
            self._short = SHORT_SLICES_AFTER_IO
        return ev

    def cancel(self, handle: object) -> None:
        """Cancel a scheduled callback (no error if it already ran)."""
        if isinstance(handle, _Event):
            handle.cancelled = True

    def _next_event(self) -> int | None:
        while self._events and self._events[0].cancelled:
            heapq.heappop(self._events)
        return self._events[0].when if self._events else None

    def _advance(self, to: int) -> None:
        """Move virtual time to ``to``, firing every event due on the way."""
        while True:
            nxt = self._next_event()
            if nxt is None or nxt > to:
                break
            ev = heapq.heappop(self._events)
            self._cycles = max(self._cycles, ev.when)
            self._guard(ev.callback)
        self._cycles = max(self._cycles, to)

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:
            self.log("device callback failed:\n" + traceback.format_exc().rstrip())

    # ------------------------------------------------------------------ interrupts
    def set_irq(self, irqn: int, level: bool) -> None:
        """Drive an external interrupt line (forwarded to the exception unit)."""
        fn = getattr(self.exc, "set_irq", None)
        if fn is not None:
            fn(irqn, level)
        if level:
            self._wake.set()

    def pend_irq(self, irqn: int) -> None:
        """Pend an external interrupt once."""
        fn = getattr(self.exc, "pend_irq", None)
        if fn is not None:
            fn(irqn)
        self._wake.set()

    # ------------------------------------------------------------------ host side
    def post(self, fn: Callable[[], None]) -> None:
        """Thread-safe: run ``fn`` on the CPU thread at the next slice boundary."""
        self._posted.append(fn)
        self._wake.set()

    @contextmanager
    def host(self) -> Iterator[Machine]:
        """Hold the machine between slices (for debugger/control access)."""
        with self._gate:
            self._host_waiting += 1
        self._lock.acquire()
        with self._gate:
            self._host_waiting -= 1
        try:
            yield self
        finally:
            self._lock.release()
            with self._gate:
                self._gate.notify_all()

    def log(self, message: str, who: str = "twin") -> None:
        """One line on stderr with virtual time and origin."""
        t_ms = (self._ns_base + (self._cycles - self._ns_cycles) * 1e9 / self.core_hz) / 1e6
        try:
            print(f"[twin {t_ms:10.3f} ms] {who}: {message}", file=self._log_stream or sys.stderr, flush=True)
        except (ValueError, OSError):
            pass

    # ------------------------------------------------------------------ run control
    def halt(self, reason: str = "halted") -> None:
        """Enter debug halt (called with the lock held)."""
        if not self.halted:
            self.halted = True
            self.sleeping = False
            self._end_wait()
            # entering debug state exits lockup (ARMv7-M); resuming at the same PC may
            # lock up again
            self.locked_up = False
            if self.exc is not None and getattr(self.exc, "locked_up", False):
                self.exc.locked_up = False
            for cb in self.on_halt:
                cb(reason)
            self._sync_stopped()

    def resume(self, wake: bool = True) -> None:
        """Leave debug halt (called with the lock held)."""
        self.halted = False
        self._short = SHORT_SLICES_AFTER_IO
        self._sync_stopped()
        if self.debug is not None:
            self.debug.arm_skip(self.reg("pc"))
        if wake:
            self._wake.set()

    def is_locked_up(self) -> bool:
        """True if the core is locked up (machine or exception unit)."""
        return self.locked_up or (self.exc is not None and self.exc.is_locked_up())

    def lockup(self, reason: str) -> None:
        """Lock the core up: it stops executing; the debugger can still halt and read it."""
        if not self.locked_up:
            self.locked_up = True
            self.lockup_reason = reason
            self.log(f"LOCKUP: {reason} (pc=0x{self.reg('pc'):08X}); halt or reset to recover")
            self._sync_stopped()

    def poll_wait(self) -> None:
        """A device says the firmware polls a flag that only a scheduled event can change
        (flash BSY, UART TXE while shifting): end the slice now and jump to the next event.
        The polling load is executed again afterwards, so use it for side-effect-free reads.
        """
        if self.in_slice:
            self._wait_mode = "poll"
            self._stop("poll")

    def idle_wait(self) -> None:
        """A device says the firmware waits for something only the host can bring (socket
        data): after this (short) slice, idle until the next event or until host work is
        posted, at wall-clock pace in both idle modes. Does not stop the slice at the
        asking read (a read with side effects is not repeated); the slice ends at the next
        read of that same register.
        """
        if self._wait_mode is None:
            self._wait_mode = "idle"
            self._idle_posts = self._posts_done
            self._idle_addr = self._last_read if self.in_slice else -1
            self._begin_pace(self.now_cycles())

    def _begin_pace(self, now: int) -> None:
        """A wall-paced wait begins at cycle ``now``: pick its wall-clock anchor.

        It continues the previous run of waits (same anchor) when that one ended less than
        1/PACE_GAP_DIV s of execution ago and virtual time is behind that run's wall
        timeline; then the wait catches up the lag. Otherwise (virtual time ahead, e.g.
        after a poll jump or a skipped WFI, or a long computation) it starts a new run here:
        virtual time is never pushed further ahead than wall time by this.
        """
        wall = time.monotonic()
        pace = self._pace
        if (
            pace is not None
            and 0 <= now - self._pace_end <= self.core_hz // PACE_GAP_DIV
            and now <= pace[1] + int((wall - pace[0]) * self.core_hz)
        ):
            self._idle_anchor = pace
        else:
            self._idle_anchor = self._pace = (wall, now)
        self._wait_start = now

    def _break_pace(self) -> None:
        """Virtual time must not catch up what passed on the wall clock from here (debug
        halt, lockup, reset, clock change)."""
        self._pace = None

    def request_reset(self, kind: str, cause: str) -> None:
        """Reset at the next slice boundary (never inside a hook, pitfall U9)."""
        order = {ResetKind.CORE: 0, ResetKind.SYSTEM: 1, ResetKind.POWER: 2}
        if self._pending_reset is None or order[kind] > order[self._pending_reset[0]]:
            self._pending_reset = (kind, cause)
        if self.in_slice:
            self._stop("reset")
        elif threading.get_ident() != self._cpu_thread_id and not self.reset_held and self._lock._is_owned():
            # a debugger/control write (e.g. AIRCR.SYSRESETREQ through the probe): the CPU is
            # parked between slices, so reset now; a deferred reset could land after the
            # debugger already wrote registers for its next step.
            self.reset(*self._pending_reset)
        self._wake.set()

    def reset(self, kind: str, cause: str) -> None:
        """Do a reset now (lock held, outside emu_start)."""
        self._pending_reset = None
        self.reset_history.append({"kind": kind, "cause": cause, "cycles": self._cycles, "wall": time.time()})
        del self.reset_history[:-32]
        if kind == ResetKind.POWER:
            for reg in self.regions:
                if reg.volatile:
                    reg.clear()
            self._storage.clear()
            self.set_core_hz(self.reset_core_hz)
        elif kind == ResetKind.SYSTEM:
            self.set_core_hz(self.reset_core_hz)
        self._fixups.clear()
        self.sleeping = False
        self._end_wait()
        self._break_pace()
        self.locked_up = False
        self.lockup_reason = ""
        if kind != ResetKind.CORE:
            for ev in self._events:
                ev.cancelled = True
            for dev in self._dev_list:
                if self.exc is None or dev not in self._exc_devices():
                    self._guard(lambda d=dev: d.reset(kind))
            for dev in self._dev_list:
                rc = getattr(dev, "reset_cause", None)
                if rc is not None:
                    self._guard(lambda f=rc: f(kind, cause))
        if self.debug is not None:
            self.debug.on_reset(kind)
        self.uc.context_restore(self._ctx0)
        self.uc.ctl_flush_tb()
        self._boot(kind)
        if self.debug is not None:
            self.debug.after_reset()
        self._sync_stopped(force=True)  # DBGMCU freeze bits may have been cleared

    def _exc_devices(self) -> list[Device]:
        if not hasattr(self, "_exc_devs_cache"):
            self._exc_devs_cache = list(self.exc.devices()) if self.exc is not None else []
        return self._exc_devs_cache

    def boot_address(self) -> int:
        """Where the core fetches its vector table: BOOT_ADD0 << 14 (BOOT pin low)."""
        if self.flash is not None:
            return self.flash.boot_address()
        return mm.FLASH_ITCM_BASE

    def _boot(self, kind: str) -> None:
        """The core's reset sequence: MSP and PC from the vector table at the boot address.

        Like the hardware, an invalid reset vector does not fault here but when the first
        instruction executes (so a debugger halted by vector catch can still run code, e.g.
        pyOCD's flash algorithm on a board with garbage in flash).
        """
        boot = self.boot_address()
        if self.exc is not None:
            if hasattr(self.exc, "boot_vtor"):
                self.exc.boot_vtor = boot
            self._guard(lambda: self.exc.reset(kind))
        try:
            table = self.bus_read(boot, 8)
        except ValueError:
            self.lockup(f"vector table at boot address 0x{boot:08X} is unreadable")
            return
        sp = int.from_bytes(table[:4], "little")
        pc = int.from_bytes(table[4:], "little")
        for name in ("control", "primask", "basepri", "faultmask", "psp"):
            self.set_reg(name, 0)
        self.set_reg("msp", sp & ~3)
        self.set_reg("lr", 0xFFFFFFFF)
        self.set_reg("pc", pc & ~1)
        self.set_reg("xpsr", 0x01000000 if pc & 1 else 0)
        if self.region_at(pc & ~1, 2) is None or not pc & 1:
            msg = (
                f"reset vector 0x{pc:08X} at boot address 0x{boot:08X} is not executable "
                "Thumb code (erased or missing firmware?)"
            )
            if self.exc is None:
                self.lockup(msg)
            else:
                self.log(msg + "; the core will fault")

    # ------------------------------------------------------------------ execution
    def start(self) -> None:
        """Start the CPU thread (free-running)."""
        if self._thread is None:
            self._quit = False
            self._thread = threading.Thread(target=self._run, name="twin-cpu", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the CPU thread and wait for it."""
        self._quit = True
        self._wake.set()
        with self._gate:
            self._gate.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _runnable(self) -> bool:
        return not (self.halted or self.reset_held or self.is_locked_up())

    def _sync_stopped(self, force: bool = False) -> None:
        """Tell devices whose clock keeps running while the core is stopped (the watchdogs)
        that it now runs (None), is in debug halt ("halt") or locked up ("lockup").

        Virtual time stands still in both stopped states; such a device counts wall time
        instead (see ``twin.periph.base.StoppedTime``). ``force`` re-sends the same state
        (the DBGMCU freeze bits changed). NRST held counts as running: the devices are held
        in reset then.
        """
        if self.reset_held:
            state = None
        elif self.halted:
            state = "halt"
        elif self.is_locked_up():
            state = "lockup"
        else:
            state = None
        if state == self._stopped_state and not force:
            return
        if state != self._stopped_state:
            self._break_pace()
        self._stopped_state = state
        for dev in self._stop_watchers:
            self._guard(lambda d=dev: d.core_stopped(state))  # type: ignore[attr-defined]

    def _stopped_wait(self) -> float:
        """While the core is stopped: let the watchdogs check their wall-time expiry (they
        may request a reset); return how long to sleep before the next check."""
        wait = 0.05
        for dev in self._stop_watchers:
            left: float | None = None

            def tick(d: Device = dev) -> None:
                nonlocal left
                left = d.stopped_tick()  # type: ignore[attr-defined]

            self._guard(tick)
            if left is not None:
                wait = min(wait, max(left, 0.001))
        return wait

    def _drain(self) -> None:
        while self._posted:
            fn = self._posted.popleft()
            self._posts_done += 1
            self._guard(fn)

    def _run(self) -> None:
        self._cpu_thread_id = threading.get_ident()
        while not self._quit:
            wait: float | None = None
            with self._lock:
                self._drain()
                if self._pending_reset is not None and not self.reset_held:
                    self.reset(*self._pending_reset)
                self._sync_stopped()  # catches lockups entered inside the exception unit
                if not self._runnable():
                    wait = self._stopped_wait() if self._stopped_state else 0.05
                    if self._pending_reset is not None:
                        wait = 0.0
                elif self.sleeping or self._wait_mode:
                    wait = self._idle_step()
                else:
                    self.step_slice()
            if wait:
                self._wake.wait(wait)
                self._wake.clear()
            if self._host_waiting:
                with self._gate:
                    self._gate.wait_for(lambda: self._host_waiting == 0 or self._quit, 0.05)

    def _wants_entry(self) -> bool:
        return (
            self.exc is not None
            and self.exc.wants_entry()
            and not (self.debug is not None and self.debug.maskints())
        )

    def _idle_step(self) -> float:
        """One idle iteration (WFI sleep, a device poll or a host wait): returns wall seconds
        to wait (0 = go on).

        * WFI: ends when the exception model says an exception can wake the core.
        * "poll" (``poll_wait``): jumps straight to the next event, then runs again.
        * WFI: with ``idle="skip"`` jump to the next event; with ``idle="realtime"`` let
          virtual time follow wall time until the next event.
        * "idle" (``idle_wait``, the firmware waits for the host): virtual time follows wall
          time in both modes (jumping would race the host: under load a firmware timeout
          fired before the host's data arrived). It also ends when host work was posted
          (e.g. network data arrived).
        """
        if self.sleeping and self.exc is not None and self.exc.sleeping_can_wake():
            self.sleeping = False
            if self._idle_anchor is not None:
                self._pace_end = self._cycles
            self._idle_anchor = None
            return 0.0
        if self._wait_mode == "idle" and self._posts_done != self._idle_posts:
            if self._idle_anchor is not None:
                wall0, cyc0 = self._idle_anchor
                target = cyc0 + int((time.monotonic() - wall0) * self.core_hz)
                nxt = self._next_event()
                self._advance(min(target, nxt) if nxt is not None else target)
            self._end_wait()
            return 0.0
        nxt = self._next_event()
        now = self._cycles
        # "skip" jumps WFI sleeps (and polls always jump); a host wait (idle_wait) follows
        # wall time in both modes: jumping it would race the host that is about to send
        skip = (self.idle_mode == "skip" and self._wait_mode != "idle") or self._wait_mode == "poll"
        if skip or (nxt is not None and nxt <= now):
            if nxt is None:
                if self._wait_mode is not None:  # nothing scheduled: just run again
                    self._end_wait()
                    return 0.0
                return 0.05
            self._advance(nxt)
            self._end_wait()
            return 0.0
        wall = time.monotonic()
        if self._idle_anchor is None:
            self._begin_pace(now)
            assert self._idle_anchor is not None
        target = self._idle_anchor[1] + int((wall - self._idle_anchor[0]) * self.core_hz)
        if nxt is not None and nxt <= target:
            self._advance(nxt)
            self._end_wait()
            return 0.0
        if target > now:
            self._advance(target)
        if (
            self._wait_mode == "idle"
            and not self.sleeping
            and self._cycles - self._wait_start >= self.core_hz // IDLE_SLICE_DIV
        ):
            # A host wait is not a WFI: the firmware polls with its own timeout, so let it run
            # again every IDLE_SLICE (virtual time has followed wall time meanwhile).
            self._end_wait()
            return 0.0
        if nxt is None:
            return min(0.05, 1.0 / IDLE_SLICE_DIV)
        return min(0.05, 1.0 / IDLE_SLICE_DIV, max((nxt - target) / self.core_hz, 0.0005))

    def _end_wait(self) -> None:
        if self._wait_mode is not None:
            self._wait_mode = None
            if self._idle_anchor is not None:
                self._pace_end = self._cycles
            self._idle_anchor = None

    def step_slice(self, max_count: int | None = None) -> int:
        """Run one slice (lock held). Returns instructions charged.

        A pending poll/idle wait (when slices are stepped by hand, e.g. in tests) is
        resolved first by jumping to the next event.
        """
        if self._wait_mode is not None:
            nxt = self._next_event()
            if nxt is not None:
                self._advance(nxt)
            self._end_wait()
        if self._wants_entry():
            self._guard(self.exc.enter)
            if not self._runnable():
                return 0
        nxt = self._next_event()
        budget = SHORT_SLICE if self._short else LONG_SLICE
        if self._short:
            self._short -= 1
        if nxt is not None:
            budget = max(1, min(budget, nxt - self._cycles))
        if max_count is not None:
            budget = min(budget, max_count)
        return self._execute(budget)

    def _execute(self, budget: int) -> int:
        uc = self.uc
        pc = uc.reg_read(A.UC_ARM_REG_PC)
        self._stop_reasons = []
        self._fault_addr = None
        self._mpu_fault = None
        self._kicked = False
        self._ticks = 0
        self._slice_end = self._cycles + budget
        self._mpu_sync()
        if self.debug is not None:
            self.debug.before_execute(pc)
        if not uc.reg_read(A.UC_ARM_REG_XPSR) & 0x01000000:
            # EPSR.T = 0 (e.g. a reset vector without the Thumb bit): INVSTATE UsageFault
            self._fault("usage", "invstate", f"execution with EPSR.T=0 at 0x{pc:08X}")
            return 0
        err: BaseException | None = None
        self.in_slice = True
        try:
            uc.emu_start(pc | 1, _UNTIL, 0, budget)
        except uc_mod.UcError as e:
            err = e
        except Exception as e:
            err = e
        finally:
            self.in_slice = False
        if err is None and any(r == "fixup" for r, _ in self._stop_reasons):
            err = self._replay_store()
        if err is None and any(r == "watchpoint" for r, _ in self._stop_reasons):
            err = self._complete_watched_access()
        if self._fixups:
            self._apply_fixups()
        self._flush_dirty()
        reasons = self._stop_reasons
        wfi = False
        if not reasons and err is None:
            wfi = self._after_wfi()
            executed = budget if not wfi else max(1, self._ticks)
        else:
            executed = max(1, min(budget, self._ticks + 1))
        self.instructions += executed
        if self.debug is not None:
            self.debug.retired(executed)
        self._advance(self._cycles + executed)
        if err is not None:
            self._on_error(err)
        for reason, detail in reasons:
            self._on_stop(reason, detail)
        if wfi and not self.halted:
            self.sleeping = True
            if self.idle_mode == "realtime":
                self._begin_pace(self._cycles)
            else:
                self._break_pace()
                self._idle_anchor = (time.monotonic(), self._cycles)
        return executed

    def _replay_store(self) -> BaseException | None:
        """A flash store whose raw value must not be seen stopped the slice *before* the
        instruction retired (unicorn restarts it). Execute that one instruction again with
        the already-modelled addresses replayed (no second flash operation), so writeback
        happens, then the fix-ups restore the modelled bytes."""
        self._stop_reasons = [r for r in self._stop_reasons if r[0] != "fixup"]
        self._replaying = {a: d for a, d in self._fixups}
        self._apply_fixups()
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        self.in_slice = True
        try:
            self.uc.emu_start(pc | 1, _UNTIL, 0, 1)
        except uc_mod.UcError as e:
            return e
        except Exception as e:
            return e
        finally:
            self.in_slice = False
            self._replaying = None
        self._stop_reasons = [r for r in self._stop_reasons if r[0] != "fixup"]
        return None

    def _complete_watched_access(self) -> BaseException | None:
        """A DWT data watchpoint stopped the core *before* the access (unicorn restarts the
        instruction); like the hardware, let that access complete, then halt."""
        reasons = self._stop_reasons
        self._stop_reasons = []
        self.debug.suppress = True
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        self.in_slice = True
        try:
            self.uc.emu_start(pc | 1, _UNTIL, 0, 1)
        except Exception as e:
            return e
        finally:
            self.in_slice = False
            self.debug.suppress = False
            self._stop_reasons = reasons + [r for r in self._stop_reasons if r[0] != "watchpoint"]
        return None

    def _after_wfi(self) -> bool:
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        try:
            prev = int.from_bytes(self.bus_read(pc - 2, 2), "little")
            if prev not in (WFI_T16, WFE_T16):
                return False
            before = int.from_bytes(self.bus_read(pc - 4, 2), "little")
            return before >> 11 not in (0b11101, 0b11110, 0b11111)
        except ValueError:
            return False

    def _on_error(self, err: BaseException) -> None:
        pc = self.uc.reg_read(A.UC_ARM_REG_PC)
        mpu, self._mpu_fault = self._mpu_fault, None
        if (
            mpu is not None
            and isinstance(err, uc_mod.UcError)
            and err.errno in (uc_mod.UC_ERR_READ_PROT, uc_mod.UC_ERR_WRITE_PROT, uc_mod.UC_ERR_FETCH_PROT)
        ):
            sub, addr = mpu
            if sub == "iaccviol":
                self._fault("memmanage", "iaccviol", f"MPU: instruction fetch from 0x{addr:08X} not allowed")
            else:
                self._fault("memmanage", addr, f"MPU: data access to 0x{addr:08X} not allowed")
            return
        if isinstance(err, uc_mod.UcError):
            code = err.errno
            addr = self._fault_addr
            if code in (uc_mod.UC_ERR_FETCH_UNMAPPED, uc_mod.UC_ERR_FETCH_PROT):
                self._fault(
                    "bus",
                    (addr if addr is not None else pc, "instr"),
                    f"instruction fetch from 0x{(addr or pc):08X}",
                )
            elif code in (
                uc_mod.UC_ERR_READ_UNMAPPED,
                uc_mod.UC_ERR_WRITE_UNMAPPED,
                uc_mod.UC_ERR_READ_PROT,
                uc_mod.UC_ERR_WRITE_PROT,
            ):
                what = "read" if code in (uc_mod.UC_ERR_READ_UNMAPPED, uc_mod.UC_ERR_READ_PROT) else "write"
                self._fault("bus", (addr, "precise"), f"{what} of unmapped 0x{(addr or 0):08X}")
            elif code == uc_mod.UC_ERR_INSN_INVALID:
                self._fault("usage", "undefinstr", "undefined instruction")
            elif code in (
                uc_mod.UC_ERR_READ_UNALIGNED,
                uc_mod.UC_ERR_WRITE_UNALIGNED,
                uc_mod.UC_ERR_FETCH_UNALIGNED,
            ):
                self._fault("usage", "unaligned", "unaligned access")
            else:
                self._fault("hard", str(err), f"CPU error: {err}")
        else:
            self.log(
                "internal error inside a device hook:\n" + "".join(traceback.format_exception(err)).rstrip()
            )
            self.lockup(f"internal error: {err!r}")

    def _fault(self, kind: str, detail: object, text: str) -> None:
        if self.exc is not None:
            self._guard(lambda: self.exc.fault(kind, detail))
            if self.exc.is_locked_up():
                self.log(f"LOCKUP after {kind} fault: {text}")
            return
        self.lockup(f"{kind} fault: {text} (no exception model installed)")

    def _on_stop(self, reason: str, detail: object) -> None:
        if reason == "bkpt":
            if self.debug is not None and self.debug.debug_enabled():
                self.debug.halt_for("bkpt")
            else:
                self._fault("hard", "bkpt", "BKPT executed with debug disabled")
        elif reason == "svc":
            if self.exc is not None:
                self._guard(self.exc.svc)
            else:
                self.lockup("SVC without an exception model")
        elif reason == "excret":
            if self.exc is not None:
                self._guard(lambda: self.exc.exception_return(int(detail)))
            else:
                self.lockup(f"exception return 0x{int(detail):08X} without an exception model")
        elif reason == "fault":
            kind, det, text = detail
            self._fault(kind, det, text)
        elif reason in ("breakpoint", "watchpoint"):
            if self.debug is not None:
                self.debug.halt_for(reason)

    def run_burst(self, seconds: float = 0.004) -> None:
        """Run the core on the calling (host) thread for up to ``seconds`` of wall time,
        lock held, stopping early when it halts, sleeps, polls or wants a reset. Used right
        after a debugger resume so a short flash-algorithm call is usually finished before
        the debugger's first status poll (saves many protocol round trips)."""
        deadline = time.perf_counter() + seconds
        while (
            self._runnable()
            and not self.sleeping
            and not self._wait_mode
            and self._pending_reset is None
            and not self._posted
            and time.perf_counter() < deadline
        ):
            self.step_slice()
        if self._pending_reset is not None and not self.reset_held:
            self.reset(*self._pending_reset)

    def step_instruction(self) -> None:
        """Debugger single step (lock held, core halted): one instruction, then halted."""
        self.halted = False
        self.sleeping = False
        try:
            if self._wants_entry():
                self._guard(self.exc.enter)
            else:
                self._execute(1)
        finally:
            if self._pending_reset is not None and not self.reset_held:
                self.reset(*self._pending_reset)
            if not self.halted:
                self.halt("step")
            self._sync_stopped()
