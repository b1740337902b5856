"""What an ``emu_start`` error means for the core: the fault it takes.

unicorn ends a slice with a :class:`unicorn.UcError` when an access or a fetch fails; the hooks
recorded the address (``Slice.fault_addr``) and an MPU refusal (``Slice.mpu_fault``).
:func:`fault_for` names the fault (kind, detail, text) that twin/runner.py hands to the
exception model: MemManage for an MPU refusal or a fetch from an execute-never region of
the default memory map (device registers), BusFault for an unmapped access or fetch,
UsageFault for an undefined instruction (INVSTATE when EPSR.T is clear) or an unaligned
access, HardFault otherwise.

Owns: that mapping only. Must not touch: the core, the slice, the exception model.
"""

from __future__ import annotations

import unicorn as uc_mod

_PROT = (uc_mod.UC_ERR_READ_PROT, uc_mod.UC_ERR_WRITE_PROT, uc_mod.UC_ERR_FETCH_PROT)
_FETCH = (uc_mod.UC_ERR_FETCH_UNMAPPED, uc_mod.UC_ERR_FETCH_PROT)
_READ = (uc_mod.UC_ERR_READ_UNMAPPED, uc_mod.UC_ERR_READ_PROT)
_DATA = (*_READ, uc_mod.UC_ERR_WRITE_UNMAPPED, uc_mod.UC_ERR_WRITE_PROT)
_UNALIGNED = (uc_mod.UC_ERR_READ_UNALIGNED, uc_mod.UC_ERR_WRITE_UNALIGNED, uc_mod.UC_ERR_FETCH_UNALIGNED)


#: the default memory map's execute-never regions (ARMv7-M B3.1: Peripheral, External device
#: and System): an instruction fetch there is a MemManage IACCVIOL, MPU or not
_XN = ((0x40000000, 0x60000000), (0xA0000000, 0x100000000))


def execute_never(address: int) -> bool:
    """True if ``address`` is in an execute-never region of the default memory map."""
    return any(lo <= address < hi for lo, hi in _XN)


def _xn_fetch(pc: int) -> tuple[str, object, str]:
    return "memmanage", "iaccviol", f"instruction fetch from 0x{pc:08X}: an execute-never region"


def fault_for(
    err: uc_mod.UcError,
    pc: int,
    fault_addr: int | None,
    mpu: tuple[str, int] | None,
    thumb: bool = True,
) -> tuple[str, object, str]:
    """The fault (kind, detail, text) for ``err`` at ``pc``: ``fault_addr`` is the address a
    failing access hook saw, ``mpu`` the MPU's refusal (sub-kind, address) if any, ``thumb``
    the core's EPSR.T (a branch to an even address clears it: unicorn then stops with an
    invalid instruction, which the core takes as INVSTATE)."""
    code = err.errno
    if mpu is not None and code in _PROT:
        sub, addr = mpu
        if sub == "iaccviol":
            return "memmanage", "iaccviol", f"MPU: instruction fetch from 0x{addr:08X} not allowed"
        return "memmanage", addr, f"MPU: data access to 0x{addr:08X} not allowed"
    if execute_never(pc) and (code in _FETCH or code == uc_mod.UC_ERR_INSN_INVALID):
        # the twin maps device registers there (unicorn may even decode them): the core
        # never fetches from such a region
        return _xn_fetch(pc)
    if code in _FETCH:
        where = fault_addr if fault_addr is not None else pc
        return "bus", (where, "instr"), f"instruction fetch from 0x{(fault_addr or pc):08X}"
    if code in _DATA:
        what = "read" if code in _READ else "write"
        return "bus", (fault_addr, "precise"), f"{what} of unmapped 0x{(fault_addr or 0):08X}"
    if code == uc_mod.UC_ERR_INSN_INVALID and not thumb:
        return "usage", "invstate", f"execution at 0x{pc:08X} with EPSR.T = 0 (a branch to an even address)"
    if code == uc_mod.UC_ERR_INSN_INVALID:
        return "usage", "undefinstr", "undefined instruction"
    if code in _UNALIGNED:
        return "usage", "unaligned", "unaligned access"
    return "hard", str(err), f"CPU error: {err}"


#: QEMU's EXCP_PREFETCH_ABORT: unicorn reports an instruction fetch it refused (a page that
#: cannot be executed, such as device registers mapped as MMIO)
INTR_PREFETCH_ABORT = 3
#: QEMU's EXCP_DATA_ABORT: with unicorn's memory errors reported as errors, what is left
#: here is an alignment fault of an access that must be aligned (LDREX/STREX and the like;
#: measured: an unaligned LDREX)
INTR_DATA_ABORT = 4


def fault_for_intr(intno: int, pc: int) -> tuple[str, object, str]:
    """The fault for a CPU exception unicorn reports through its interrupt hook that the
    runner does not handle itself (BKPT, SVC and exception return are its own)."""
    if intno == INTR_PREFETCH_ABORT:
        if execute_never(pc):
            return _xn_fetch(pc)
        return "bus", (pc, "instr"), f"instruction fetch from 0x{pc:08X} refused"
    if intno == INTR_DATA_ABORT:
        return "usage", "unaligned", "unaligned access by an instruction that needs alignment"
    sub = _USAGE_INTR.get(intno, "undefinstr")
    return "usage", sub, f"CPU exception {intno} ({sub})"


#: QEMU's M-profile UsageFault exception numbers (target/arm/cpu.h: EXCP_UDEF 1, EXCP_NOCP 17,
#: EXCP_INVSTATE 18, EXCP_UNALIGNED 22, EXCP_DIVBYZERO 23), should unicorn report them
_USAGE_INTR = {1: "undefinstr", 17: "nocp", 18: "invstate", 22: "unaligned", 23: "divbyzero"}
