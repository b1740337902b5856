"""Who decides an access is refused before it happens: MPU enforcement, PPB privilege and
the backup SRAM write gates.

The MPU's registers live in the exception model; :func:`twin.mpu` decodes them into an
:class:`~twin.mpu.MpuView`. Before each slice :meth:`Protection.sync` turns the view into
unicorn page protections (1 KiB pages get the rights common to the whole page) plus
exact per-access hooks on pages a region boundary cuts. A refusal becomes a MemManage
fault (DACCVIOL with MMFAR, IACCVIOL for a fetch) recorded on the slice. Exception
stacking asks :meth:`Protection.mpu_allows`. Device space is checked per MMIO access by
:meth:`Protection.access_denied` (the PPB: privileged only, never the MPU).

Owns: the applied MPU key and view, the page protections of memory regions, the MPU hooks,
the stacking-check cache, the backup SRAM gates and their refusal count. Must not touch:
memory contents, devices, time; it never takes an exception itself (the runner hands the
recorded fault to the exception model).
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import unicorn as uc_mod
import unicorn.arm_const as A

from twin import memory as mm
from twin.device import ExceptionUnit
from twin.fastreg import reg_reader
from twin.itstate import itstate_fix
from twin.mpu import MpuView
from twin.mpu import decode as mpu_decode
from twin.slice import Slice

_UC_PAGE = 0x400  # unicorn's page (ARM): the MPU's protection granule here


class Protection:
    """MPU enforcement, PPB privilege and the backup SRAM gates of one machine.

    Args:
        uc: the unicorn engine (page protections, hooks).
        slice_: the running slice (refusals stop it with a fault).
        memory: the memory map whose regions get page protections.
        log: the machine's log.
    """

    def __init__(self, uc, slice_: Slice, memory: mm.MemoryMap, log: Callable[[str], None]) -> None:
        self.uc = uc
        self._reg = reg_reader(uc)  # fast core register reads (twin/fastreg.py)
        self._slice = slice_
        self._memory = memory
        self._log = log
        self.exc: ExceptionUnit | None = None  # set when the exception model is installed
        # the MPU configuration applied to the page protections (see sync)
        self._mpu_key: object = None
        self.view: MpuView | None = None  # None: nothing refused by the MPU
        #: device pages (mm.PAGE) where ``view`` grants reads and writes everywhere: the bus
        #: skips :meth:`access_denied` for them (found on first access, cleared with the view)
        self.open_pages: set[int] = set()
        self._seen_pages: set[int] = set()  # open or not, already looked at under ``view``
        #: device page -> a flag that is 1 while the MPU restricts some access to that page,
        #: for C in front of it that must not answer an access the MPU may refuse
        self._watched: dict[int, ctypes.c_uint32] = {}
        self._stack_checks: dict[tuple[int, ...], bool] = {}  # mpu_allows answers
        self._mpu_hooks: list[int] = []
        #: told of every fetch the translator makes and the MPU allows (twin/usage_checks.py)
        self.on_fetch: Callable[[int], None] | None = None
        #: told the MPU's configuration whenever the page protections follow a new one:
        #: (MPU_CTRL, RBARs, RASRs), or None for the default map (twin/device_memory.py)
        self.on_mpu: Callable[[tuple[int, list[int], list[int]] | None], None] | None = None
        self._x_in_part: set[int] = set()  # pages the MPU makes executable only in part
        self.backup_writable = True  # backup SRAM takes CPU stores: all gates open
        # PWR_CR1.DBP ("dbp") and RCC_AHB1ENR.BKPSRAMEN ("clock"); their models close them
        # at reset (a machine without them keeps backup SRAM writable)
        self._backup_gates = {"dbp": True, "clock": True}
        self.backup_ignored_writes = 0
        #: 1 KiB pages of writable memory the CPU has fetched code from (RAM functions, a
        #: debugger's flash algorithm): writes behind the CPU drop translated code only there
        self.code_pages: set[int] = set()

    # ------------------------------------------------------------------ device space
    def access_denied(self, address: int, write: bool) -> bool:
        """A CPU access to device space that faults before reaching the device: the PPB
        (0xE0000000-0xE00FFFFF) is privileged-only (BusFault; NVIC_STIR stays writable with
        CCR.USERSETMPEND) and is never subject to the MPU; other device memory (peripherals)
        is checked against the MPU like RAM (MemManage DACCVIOL with MMFAR). The faulting
        instruction does not retire and the device never sees the access."""
        what = "write" if write else "read"
        if address >= 0xE0000000:
            exc = self.exc
            if address >= 0xE0100000 or exc is None or exc.active:
                return False
            if not self._reg(A.UC_ARM_REG_CONTROL) & 1:
                return False
            if write and address == 0xE000EF00 and exc.ccr & 2:
                return False
            self._slice.stop(
                "fault", ("bus", (address, "precise"), f"unprivileged {what} of the PPB at 0x{address:08X}")
            )
            return True
        view = self.view
        if view is None:
            return False
        if not view.perms(address) & (2 if write else 1):
            self._slice.stop(
                "fault", ("memmanage", address, f"MPU: data {what} of 0x{address:08X} not allowed")
            )
            return True
        page = address & ~(mm.PAGE - 1)
        if page not in self._seen_pages:  # a page a region cuts is looked at once, not per access
            self._seen_pages.add(page)
            if _page_open(view, page):
                self.open_pages.add(page)  # CubeMX's background region leaves the peripherals so
        return False

    def restricted_flag(self, page: int) -> ctypes.c_uint32:
        """A flag that is 1 while the MPU restricts some access to device ``page`` at the
        current level (kept up to date by :meth:`sync`): C in front of the page must then
        leave every access to the bus's Python, which asks the MPU."""
        flag = self._watched.setdefault(page, ctypes.c_uint32(0))
        self._set_flags()
        return flag

    def _set_flags(self) -> None:
        view = self.view
        for page, flag in self._watched.items():
            flag.value = view is not None and not _page_open(view, page)

    # ------------------------------------------------------------------ backup SRAM
    def set_backup_write_access(self, allowed: bool, gate: str = "dbp") -> None:
        """PWR_CR1.DBP (``gate="dbp"``) or RCC_AHB1ENR.BKPSRAMEN (``"clock"``): while either
        is clear the CPU's stores to backup SRAM are ignored (the debugger's are not). Done
        with page protections, so RAM speed is kept."""
        self._backup_gates[gate] = bool(allowed)
        allowed = all(self._backup_gates.values())
        if allowed == self.backup_writable:
            return
        self.backup_writable = allowed
        if self.view is not None:
            self._mpu_key = ("stale",)  # recomputed with the MPU at the next slice
            return
        bkp = self._memory.bkpsram
        self.uc.mem_protect(bkp.base, bkp.size, self._base_perms(bkp))

    def backup_store_ignored(self, address: int) -> None:
        """A CPU store to backup SRAM was dropped by a closed gate (logged once)."""
        self.backup_ignored_writes += 1
        if self.backup_ignored_writes == 1:
            why = []
            if not self._backup_gates.get("clock", True):
                why.append("RCC_AHB1ENR.BKPSRAMEN is 0 (__HAL_RCC_BKPSRAM_CLK_ENABLE)")
            if not self._backup_gates.get("dbp", True):
                why.append("PWR_CR1.DBP is 0 (HAL_PWR_EnableBkUpAccess)")
            self._log(
                f"store to backup SRAM 0x{address:08X} ignored: {' and '.join(why)}; "
                "set it first — logged once"
            )

    def _base_perms(self, reg: mm.Region) -> int:
        """Page protections of a memory region without the MPU. Memory never gets EXEC: the
        translator's every fetch reaches :meth:`hook_prot_other`, which records a page of
        writable memory as holding code (see :meth:`code_in`), tells :attr:`on_fetch` and
        lets the fetch go on."""
        perms = uc_mod.UC_PROT_READ
        if not reg.writable:
            return perms
        if reg is not self._memory.bkpsram or self.backup_writable:
            perms |= uc_mod.UC_PROT_WRITE
        return perms

    def code_in(self, lo: int, hi: int) -> bool:
        """Whether the CPU ever fetched code from a page of writable memory in [lo, hi):
        only then can a write there behind the CPU (DMA, the debugger) leave stale
        translated code (unicorn pitfall U1), so only then is it worth dropping."""
        if not self.code_pages:
            return False
        first, last = lo & ~(_UC_PAGE - 1), max(hi, lo + 1) - 1
        return any(first <= p <= last for p in self.code_pages)  # a handful of pages at most

    # ------------------------------------------------------------------ MPU
    def sync(self) -> None:
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
                self.view = None
                self.open_pages, self._seen_pages = set(), set()
                self._set_flags()
                self._apply(None)
            return
        key = self._key(exc, ctrl)
        if key == self._mpu_key:
            return
        self._mpu_key = key
        view = None
        if key != ("default-map",):
            view = MpuView(ctrl, mpu_decode(list(exc.mpu_rbar), list(exc.mpu_rasr)), key[1])
        self.view = view
        self.open_pages, self._seen_pages = set(), set()
        self._set_flags()
        self._apply(view)

    def _key(self, exc: ExceptionUnit, ctrl: int) -> tuple:
        """What the page protections depend on while the MPU is on: the configuration
        (``mpu_gen``, bumped by every MPU register write) and the privilege level, or the
        default map. Cheap: handler mode is known from the model's active list."""
        if self._default_map(ctrl):
            return ("default-map",)
        return (exc.mpu_gen, bool(exc.active) or not self._reg(A.UC_ARM_REG_CONTROL) & 1)

    def stale(self) -> bool:
        """The page protections :meth:`sync` applied no longer follow the MPU (an exception
        return inside a slice went to unprivileged code, or out of HardFault): the slice
        must end so the next one applies them."""
        exc = self.exc
        ctrl = getattr(exc, "mpu_ctrl", 0) if exc is not None else 0
        if not ctrl & 1:
            return self._mpu_key is not None
        return self._key(exc, ctrl) != self._mpu_key

    def _default_map(self, ctrl: int) -> bool:
        """The execution priority is below 0 (HardFault/NMI active or FAULTMASK set) and
        HFNMIENA is clear: the default memory map applies instead of the MPU."""
        exc = self.exc
        return not ctrl & 2 and (
            2 in exc.active or 3 in exc.active or bool(self._reg(A.UC_ARM_REG_FAULTMASK) & 1)
        )

    def mpu_allows(self, address: int, length: int, write: bool, privileged: bool) -> bool:
        """Whether the MPU lets an access of ``length`` bytes at ``address`` through, at the
        given privilege and the current execution priority (exception stacking and
        unstacking ask this; the core's own accesses go through the page protections)."""
        exc = self.exc
        ctrl = getattr(exc, "mpu_ctrl", 0) if exc is not None else 0
        if not ctrl & 1:
            return True
        if self._default_map(ctrl):
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

    def denies(self, address: int, right: int) -> bool:
        """The MPU (when enforced) forbids ``right`` (a UC_PROT_* bit) at ``address`` for the
        current level."""
        view = self.view
        return view is not None and not view.perms(address) & right

    def _apply(self, view: MpuView | None) -> None:
        uc = self.uc
        if self.on_mpu is not None:
            exc = self.exc
            self.on_mpu(None if view is None else (exc.mpu_ctrl, list(exc.mpu_rbar), list(exc.mpu_rasr)))
        for h in self._mpu_hooks:
            uc.hook_del(h)
        self._mpu_hooks = []
        self._x_in_part.clear()
        for reg in self._memory.regions:
            base = self._base_perms(reg)
            if view is None:
                uc.mem_protect(reg.base, reg.size, base)
                continue
            for lo, hi, perms, varies in view.page_perms(reg.base, reg.end, _UC_PAGE):
                # a page readable only in part is mapped unreadable: every read asks
                # hook_prot_other, which refuses it before it happens (the range hook
                # keeps unicorn from caching the answer for the page)
                uc.mem_protect(lo, hi - lo, base & perms & ~(varies & uc_mod.UC_PROT_READ))
                if varies & uc_mod.UC_PROT_READ:
                    self._mpu_hooks.append(
                        uc.hook_add(uc_mod.UC_HOOK_MEM_READ, self._read_hook, begin=lo, end=hi - 1)
                    )
                if varies & uc_mod.UC_PROT_EXEC:
                    self._x_in_part.update(range(lo, hi, _UC_PAGE))
                    self._mpu_hooks.append(
                        uc.hook_add(uc_mod.UC_HOOK_CODE, self._code_hook, begin=lo, end=hi - 1)
                    )
        uc.ctl_flush_tb()

    def _read_hook(self, uc, access, address, size, value, _ud) -> None:
        """Reads on a page the MPU protects only in part. The page is mapped unreadable, so
        unicorn asks :meth:`hook_prot_other` after this hook, for every read (this hook
        being there keeps the page off unicorn's fast path): a refused read then stops
        before it happens, the state restored (MemManage DACCVIOL with MMFAR; the faulting
        instruction and any IT state are stacked). Here: the IT state unicorn restored for
        the hooks goes (twin/itstate.py); a refusal restores it again."""
        itstate_fix(uc)

    def _code_hook(self, uc, address, size, _ud) -> None:
        """Fetches on a page the MPU makes executable only in part (IACCVIOL)."""
        if self.denies(address, uc_mod.UC_PROT_EXEC):
            self._slice.stop(
                "fault", ("memmanage", "iaccviol", f"MPU: instruction fetch from 0x{address:08X} not allowed")
            )

    def hook_prot_other(self, uc, access, address, size, value, _ud) -> bool:
        """UC_HOOK_MEM_READ_PROT | UC_HOOK_MEM_FETCH_PROT: unicorn refused a read or fetch
        by page protection: the MPU, on a page that grants that right nowhere or, for a
        read, on a page that grants it in part (then the exact address decides).

        A fetch from writable memory the MPU does not refuse is allowed: writable memory is
        mapped without EXEC so that unicorn asks here when it translates code there; the
        page is recorded in :attr:`code_pages` (unicorn goes on with the fetch). On a page
        executable only in part every fetch is allowed here: unicorn translates a block
        ahead of running it, and the code hook refuses the instruction when it runs."""
        if access == uc_mod.UC_MEM_FETCH_PROT:
            reg = self._memory.region_at(address, 1)
            page = address & ~(_UC_PAGE - 1)
            if reg is not None and (page in self._x_in_part or not self.denies(address, uc_mod.UC_PROT_EXEC)):
                if reg.writable:
                    self.code_pages.add(page)
                if self.on_fetch is not None:
                    self.on_fetch(address)
                return True
        read = access == uc_mod.UC_MEM_READ_PROT
        if read and self.view is not None and not self.denies(address, uc_mod.UC_PROT_READ):
            return True  # a page readable in part, at an address the MPU allows
        if self.view is not None and self._memory.region_at(address, 1) is not None:
            # the MPU refuses this read (or this fetch: the page grants none anywhere)
            fetch = access == uc_mod.UC_MEM_FETCH_PROT
            self._slice.mpu_fault = ("iaccviol" if fetch else "daccviol", address)
        self._slice.fault_addr = address
        return False


def _page_open(view: MpuView, page: int) -> bool:
    """Whether ``view`` grants reads and writes on the whole device ``page``."""
    return all(perms & 3 == 3 for _, _, perms in view.intervals(page, page + mm.PAGE))
