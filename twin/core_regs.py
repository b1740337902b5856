"""The core's registers by name, as the exception model and the debugger see them.

unicorn reads and writes the special registers (MSP, PSP, PRIMASK, BASEPRI, FAULTMASK,
CONTROL) with MRS/MSR semantics, which hide them from unprivileged thread code (reads give 0,
writes are ignored; CONTROL reads are not hidden); the model and the debugger need the real
values, so :class:`CoreRegs` looks through handler mode for those accesses.
A PC write keeps the current EPSR.T bit (unicorn would take it from bit 0 of the value).

Owns: the register name table and those two unicorn workarounds. Must not touch: memory,
time, devices or the run state.
"""

from __future__ import annotations

from collections.abc import Callable

import unicorn.arm_const as A

from twin.fastreg import RegBatch, reg_batch, reg_reader, reg_writer

REGS = {f"r{i}": getattr(A, f"UC_ARM_REG_R{i}") for i in range(13)}
REGS.update(
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
REGS.update({f"s{i}": A.UC_ARM_REG_S0 + i for i in range(32)})

_SPECIAL = frozenset({"msp", "psp", "primask", "basepri", "faultmask", "control"})
#: written with one C call (twin/fastreg.py); the FP registers go through the binding
_PLAIN = frozenset(n for n in REGS if not n.startswith("s") and n != "fpscr") | {"sp"}
#: read together with one C call (CONTROL is not hidden from unprivileged code)
_BATCH_READ = (_PLAIN - _SPECIAL) | {"control"}
_MASKS = (
    A.UC_ARM_REG_CONTROL,
    A.UC_ARM_REG_IPSR,
    A.UC_ARM_REG_PRIMASK,
    A.UC_ARM_REG_BASEPRI,
    A.UC_ARM_REG_FAULTMASK,
)


class CoreRegs:
    """Register access by name over a unicorn Cortex-M7 (see ``twin.device.Cpu``)."""

    def __init__(self, uc) -> None:
        self.uc = uc
        self._reg = reg_reader(uc)  # fast core register reads (twin/fastreg.py)
        self._write = reg_writer(uc)
        self._batches: dict[tuple[str, ...], RegBatch] = {}
        self._masks = reg_batch(uc, _MASKS)

    def reg(self, name: str) -> int:
        """Read a core register by name."""
        if name == "control":  # MRS CONTROL is not hidden from unprivileged code
            return self._reg(A.UC_ARM_REG_CONTROL)
        if name in _SPECIAL and self._unprivileged_thread():
            return self._as_privileged(lambda: self._reg(REGS[name]))
        return self._reg(REGS[name])

    def masks(self) -> tuple[int, int, int]:
        """PRIMASK, BASEPRI and FAULTMASK, with one privilege check for the three (the
        exception model asks for them before every slice)."""
        control, ipsr, primask, basepri, faultmask = self._masks.read()
        if control & 1 and not ipsr & 0x1FF:  # unprivileged thread: unicorn read them as 0
            rd = self._reg
            return self._as_privileged(
                lambda: (rd(A.UC_ARM_REG_PRIMASK), rd(A.UC_ARM_REG_BASEPRI), rd(A.UC_ARM_REG_FAULTMASK))
            )
        return primask, basepri, faultmask

    def read_regs(self, names: tuple[str, ...]) -> list[int]:
        """Several registers of _BATCH_READ (r0-r12, sp, lr, pc, xpsr, ipsr, control) at once."""
        return self._batch(names, _BATCH_READ, "readable").read()

    def write_context(self, names: tuple[str, ...], values: list[int] | tuple[int, ...]) -> None:
        """Registers written in the given order with one engine call, as unicorn's own
        writes: for the exception model's entry and return, which order them so that every
        special register (MSP, PSP, the masks, CONTROL) is written while the core is
        privileged (handler mode, or before the xPSR write that leaves it), SP after the
        xPSR and CONTROL that bank it, and the PC last with the Thumb bit in bit 0 (one
        call instead of one per register: ~1.5 us against ~1-2 us each)."""
        self._batch(names, _PLAIN, "writable in order").write(values)

    def _batch(self, names: tuple[str, ...], allowed: frozenset[str], what: str) -> RegBatch:
        """The engine batch for ``names`` (made once), if they are all in ``allowed``."""
        batch = self._batches.get((what, *names))
        if batch is None:
            if not set(names) <= allowed:
                raise ValueError(f"not {what} together: {sorted(set(names) - allowed)}")
            batch = self._batches[(what, *names)] = reg_batch(self.uc, tuple(REGS[n] for n in names))
        return batch

    def set_reg(self, name: str, value: int) -> None:
        """Write a core register by name (PC: bit 0 dropped, EPSR.T kept)."""
        if name == "pc":
            # unicorn takes EPSR.T from bit 0 of a PC write: keep the current T bit
            value = (value & ~1) | ((self._reg(A.UC_ARM_REG_XPSR) >> 24) & 1)
        if name in _SPECIAL and self._unprivileged_thread():
            # CONTROL too: unicorn ignores a thread-mode write with nPRIV set (MSR), and in
            # handler mode it takes SPSEL, so back in thread mode the SP banks by the new value
            self._as_privileged(lambda: self.uc.reg_write(REGS[name], value & 0xFFFFFFFF))
            return
        if name in _PLAIN:
            self._write(REGS[name], value)
            return
        self.uc.reg_write(REGS[name], value & 0xFFFFFFFF)

    def _unprivileged_thread(self) -> bool:
        return bool(self._reg(A.UC_ARM_REG_CONTROL) & 1) and not self._reg(A.UC_ARM_REG_IPSR) & 0x1FF

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
