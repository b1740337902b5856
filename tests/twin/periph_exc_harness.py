"""Test scaffolding for the exception model and peripherals (not a behaviour fake).

A real unicorn Cortex-M7 runs real Thumb-2 code assembled with arm-none-eabi-as; this
module provides the pieces twin/machine.py provides in the product: a :class:`Cpu`
adapter over unicorn and a small run loop that calls the ExceptionUnit at the contract's
points; the services are the shared test double (``twin.testing.ServicesDouble``:
virtual time = executed instructions, an event queue).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile

from unicorn import (
    UC_ARCH_ARM,
    UC_ERR_INSN_INVALID,
    UC_HOOK_CODE,
    UC_HOOK_INTR,
    UC_HOOK_MEM_UNMAPPED,
    UC_MODE_MCLASS,
    UC_MODE_THUMB,
    UC_PROT_ALL,
    Uc,
    UcError,
)
from unicorn import arm_const as A

from twin.device import Device
from twin.testing import ServicesDouble

FLASH, FLASH_SIZE = 0x08000000, 0x40000
RAM, RAM_SIZE = 0x20000000, 0x80000

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
_REGS.update({f"s{i}": getattr(A, f"UC_ARM_REG_S{i}") for i in range(32)})

_cache: dict[str, bytes] = {}

#: :class:`Board` gives its CPU the machine's C exception entry and return
#: (twin/exc_fast.py) when set; tests run both ways (the model's Python when clear)
C_ENTRY = False


class _NoStores:
    """What twin/exc_fast.py asks of the machine's stores: no flash fix-ups here, and the
    stacked range (this harness drops translated code only when a test asks)."""

    def __init__(self) -> None:
        self.fixups: list = []

    def mark_dirty(self, address: int, length: int) -> None:
        pass


def assemble(src: str, base: int = FLASH) -> bytes:
    """Assemble and link Thumb-2 source at ``base`` with the Debian cross toolchain."""
    key = f"{base:x}:{src}"
    if key in _cache:
        return _cache[key]
    with tempfile.TemporaryDirectory() as d:
        s, o, e, b = (os.path.join(d, n) for n in ("a.s", "a.o", "a.elf", "a.bin"))
        with open(s, "w") as f:
            f.write(".syntax unified\n.cpu cortex-m7\n.fpu fpv5-d16\n.thumb\n" + src + "\n")
        subprocess.run(["arm-none-eabi-as", "-o", o, s], check=True, timeout=60)
        subprocess.run(["arm-none-eabi-ld", f"-Ttext=0x{base:08X}", "-o", e, o], check=True, timeout=60)
        subprocess.run(["arm-none-eabi-objcopy", "-O", "binary", e, b], check=True, timeout=60)
        with open(b, "rb") as f:
            _cache[key] = f.read()
    return _cache[key]


class UcCpu:
    """The Cpu contract over a unicorn instance; SCS accesses go to mapped devices."""

    def __init__(self, uc: Uc, devices: list[Device]) -> None:
        self.uc = uc
        self.devices = devices
        self.flushes = 0

    def reg(self, name: str) -> int:
        return self.uc.reg_read(_REGS[name])

    def set_reg(self, name: str, value: int) -> None:
        self.uc.reg_write(_REGS[name], value & 0xFFFFFFFF)

    def masks(self) -> tuple[int, int, int]:
        return self.reg("primask"), self.reg("basepri"), self.reg("faultmask")

    def _dev(self, address: int) -> Device | None:
        for d in self.devices:
            if d.base <= address < d.base + d.size:
                return d
        return None

    def read_mem(self, address: int, length: int) -> bytes:
        dev = self._dev(address)
        if dev is not None:
            return b"".join(
                dev.read(address + i - dev.base, 4).to_bytes(4, "little") for i in range(0, length, 4)
            )[:length]
        try:
            return bytes(self.uc.mem_read(address, length))
        except UcError as exc:
            raise ValueError(f"unmapped 0x{address:08X}") from exc

    def write_mem(self, address: int, data: bytes) -> None:
        if address < RAM or address + len(data) > RAM + RAM_SIZE:
            raise ValueError(f"not RAM 0x{address:08X}")
        self.uc.mem_write(address, bytes(data))

    def flush_code_cache(self, lo: int = 0, hi: int = 0xFFFFFFFF) -> None:
        self.flushes += 1
        self.uc.ctl_flush_tb()


class Board:
    """A unicorn M7 with flash, RAM, the SCS devices and optional extra devices."""

    def __init__(self, program: bytes, extra: list[Device] | None = None) -> None:
        from twin.exception_model import ExceptionModel

        self.uc = Uc(UC_ARCH_ARM, UC_MODE_THUMB | UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(A.UC_CPU_ARM_CORTEX_M7)
        # memory from host buffers, as the machine maps it (the C entry writes them)
        self._mem = {
            base: ctypes.create_string_buffer(size) for base, size in ((FLASH, FLASH_SIZE), (RAM, RAM_SIZE))
        }
        for base, buf in self._mem.items():
            self.uc.mem_map_ptr(base, len(buf), UC_PROT_ALL, ctypes.addressof(buf))
        self.uc.mem_write(FLASH, program)
        self.services = ServicesDouble()
        self.cpu = UcCpu(self.uc, [])
        if C_ENTRY:
            from twin.exc_fast import ExcFast

            regions = [(base, len(buf), buf, base == RAM) for base, buf in self._mem.items()]
            self.cpu.exc_fast = ExcFast(self.uc, regions, _NoStores(), None)  # type: ignore[attr-defined]
        self.model = ExceptionModel(self.cpu, self.services)  # type: ignore[arg-type]
        self.model.boot_vtor = FLASH
        self.services.unit = self.model
        devs = self.model.devices() + list(extra or [])
        self.cpu.devices = devs
        self.services.add(*devs)
        self.model.reset("power")
        self._map_mmio(devs)
        self.stop_reason: str | None = None
        self.unmapped: int | None = None
        self.uc.hook_add(UC_HOOK_INTR, self._intr)
        self.uc.hook_add(UC_HOOK_MEM_UNMAPPED, self._unmapped)
        self.uc.hook_add(UC_HOOK_CODE, self._count)
        self.executed = 0
        self.model.load_reset_vector()

    def _map_mmio(self, devs: list[Device]) -> None:
        pages = sorted({d.base & ~0xFFF for d in devs})
        for page in pages:

            def rd(uc: Uc, off: int, size: int, ud: object, page: int = page) -> int:
                dev = self.cpu._dev(page + off)
                return dev.read(page + off - dev.base, size) if dev else 0

            def wr(uc: Uc, off: int, size: int, value: int, ud: object, page: int = page) -> None:
                dev = self.cpu._dev(page + off)
                if dev:
                    dev.write(page + off - dev.base, size, value)
                # NB: uc.emu_stop() here would leave PC on the store and re-execute it.

            self.uc.mmio_map(page, 0x1000, rd, None, wr, None)

    def _count(self, uc: Uc, address: int, size: int, ud: object) -> None:
        self.executed += 1

    def _intr(self, uc: Uc, intno: int, ud: object) -> None:
        self.stop_reason = {2: "svc", 7: "bkpt", 8: "excret"}.get(intno, f"intr{intno}")
        uc.emu_stop()

    def _unmapped(self, uc: Uc, access: int, address: int, size: int, value: int, ud: object) -> bool:
        self.unmapped = address
        return False

    def run(self, max_instructions: int = 200_000, quantum: int = 1) -> str:
        """Run until BKPT, lockup or the instruction budget; returns why it stopped."""
        start = self.executed
        while self.executed - start < max_instructions:
            if self.model.is_locked_up():
                return "lockup"
            if self.model.wants_entry():
                self.model.enter()
                continue
            nxt = self.services.next_event()
            n = quantum if nxt is None else max(1, min(quantum, nxt - self.services.cycles))
            self.stop_reason = None
            before = self.executed
            pc = self.cpu.reg("pc")
            try:
                self.uc.emu_start(pc | 1, 0xFFFFFFFF, count=n)
            except UcError as exc:
                self.services.advance(self.executed - before)
                if exc.errno == UC_ERR_INSN_INVALID:
                    self.model.fault("usage", "undefinstr")
                elif self.unmapped is not None:
                    addr, self.unmapped = self.unmapped, None
                    if self.cpu.reg("pc") == addr & ~1:
                        self.model.fault("bus", (addr, "instr"))
                    else:
                        self.model.fault("bus", (addr, "precise"))
                else:
                    self.model.fault("hard", str(exc))
                continue
            executed = self.executed - before
            reason = self.stop_reason
            self.services.advance(executed)
            if reason == "bkpt":
                return "bkpt"
            if reason == "svc":
                self.model.svc()
            elif reason == "excret":
                self.model.exception_return(self.cpu.reg("pc"))
        return "budget"

    def word(self, address: int) -> int:
        return int.from_bytes(self.cpu.read_mem(address, 4), "little")


def boot_until_done(chunks: list, done: int, marker: int = 0xD0DE, timeout: float = 20.0):
    """A twin board (no PTY) powered on with ``chunks`` and started; returns it once the
    word at ``done`` reads ``marker`` (the program finished), or fails after ``timeout`` s.
    The caller closes it."""
    import time

    from twin.board import Board, BoardOptions

    b = Board(BoardOptions(pty=False))
    try:
        b.power_on(chunks)
        b.machine.start()
        deadline = time.monotonic() + timeout
        while True:
            with b.machine.host() as m:
                if int.from_bytes(m.bus_read(done, 4), "little") == marker:
                    return b
            assert time.monotonic() < deadline, "the program did not finish"
            time.sleep(0.01)
    except BaseException:
        b.close()
        raise
