"""Cortex-M7 fault status registers decoded bit by bit (ARMv7-M ARM B3.2.15-B3.2.18).

Pure data: :func:`decode_cfsr` / :func:`decode_hfsr` return one :class:`Bit` per defined
bit, set or not, with what it means, so the report can list every bit and highlight the set ones
and the failure messages name them (rig/crash_hint.py).
"""

from __future__ import annotations

from dataclasses import dataclass

#: (sub-register, bit, name, meaning) of CFSR = UFSR[31:16] | BFSR[15:8] | MMFSR[7:0].
CFSR_BITS: tuple[tuple[str, int, str, str], ...] = (
    (
        "MMFSR",
        0,
        "IACCVIOL",
        "instruction fetch from a location the MPU or XN forbids (a jump into peripheral or system space?)",
    ),
    ("MMFSR", 1, "DACCVIOL", "data access the MPU forbids (address in MMFAR if MMARVALID)"),
    ("MMFSR", 3, "MUNSTKERR", "MemManage fault while unstacking on exception return"),
    ("MMFSR", 4, "MSTKERR", "MemManage fault while stacking on exception entry (bad SP?)"),
    ("MMFSR", 5, "MLSPERR", "MemManage fault during lazy FP state preservation"),
    ("MMFSR", 7, "MMARVALID", "MMFAR holds the faulting address"),
    (
        "BFSR",
        8,
        "IBUSERR",
        "bus error on instruction fetch (a jump into missing memory: past flash or RAM, an empty FMC bank?)",
    ),
    ("BFSR", 9, "PRECISERR", "precise data bus error (address in BFAR if BFARVALID)"),
    ("BFSR", 10, "IMPRECISERR", "imprecise data bus error (the PC is after the access)"),
    ("BFSR", 11, "UNSTKERR", "bus fault while unstacking on exception return"),
    ("BFSR", 12, "STKERR", "bus fault while stacking on exception entry (SP outside RAM?)"),
    ("BFSR", 13, "LSPERR", "bus fault during lazy FP state preservation"),
    ("BFSR", 15, "BFARVALID", "BFAR holds the faulting address"),
    ("UFSR", 16, "UNDEFINSTR", "undefined instruction (data or erased flash executed as code?)"),
    ("UFSR", 17, "INVSTATE", "invalid EPSR state: T bit clear, e.g. a jump to an even address"),
    ("UFSR", 18, "INVPC", "invalid EXC_RETURN / PC load on exception return"),
    ("UFSR", 19, "NOCP", "coprocessor (FPU) access while it is disabled (CPACR)"),
    (
        "UFSR",
        24,
        "UNALIGNED",
        (
            "unaligned access: LDRD/STRD/LDM/STM/VLDR/VSTR/LDREX off a word boundary (a packet buffer"
            " cast to a struct with 64-bit or float fields?), any to Device or Strongly-ordered memory"
            " (the backup SRAM, an MPU region whose TEX/C/B say so: TEX=0 C=0), or any with"
            " CCR.UNALIGN_TRP set"
        ),
    ),
    ("UFSR", 25, "DIVBYZERO", "integer divide by zero with CCR.DIV_0_TRP set"),
)

HFSR_BITS: tuple[tuple[str, int, str, str], ...] = (
    ("HFSR", 1, "VECTTBL", "bus fault reading the vector table (VTOR points to a bad table?)"),
    (
        "HFSR",
        30,
        "FORCED",
        "a configurable fault escalated to HardFault (handler disabled or priority): see CFSR",
    ),
    ("HFSR", 31, "DEBUGEVT", "debug event while halting debug was disabled (a BKPT run without a debugger?)"),
)

#: Exception numbers (IPSR) of the ARMv7-M system exceptions.
EXCEPTIONS = {
    0: "Thread mode",
    1: "Reset",
    2: "NMI",
    3: "HardFault",
    4: "MemManage",
    5: "BusFault",
    6: "UsageFault",
    11: "SVCall",
    12: "DebugMonitor",
    14: "PendSV",
    15: "SysTick",
}


@dataclass(frozen=True)
class Bit:
    """One decoded status bit."""

    register: str
    bit: int
    name: str
    meaning: str
    set: bool


def _decode(value: int, table: tuple[tuple[str, int, str, str], ...]) -> list[Bit]:
    return [Bit(reg, bit, name, meaning, bool(value >> bit & 1)) for reg, bit, name, meaning in table]


def decode_cfsr(value: int) -> list[Bit]:
    """Every defined CFSR bit (MMFSR, BFSR, UFSR) with its state."""
    return _decode(value, CFSR_BITS)


def decode_hfsr(value: int) -> list[Bit]:
    """Every defined HFSR bit with its state."""
    return _decode(value, HFSR_BITS)


def exception_name(ipsr: int) -> str:
    """Name of exception number ``ipsr`` (external interrupts as ``IRQ n``)."""
    if ipsr >= 16:
        return f"IRQ {ipsr - 16}"
    return EXCEPTIONS.get(ipsr, f"reserved ({ipsr})")


def exc_return_text(lr: int) -> str | None:
    """What an EXC_RETURN value in LR means, or None if LR is not one."""
    if lr & 0xFFFFFF00 != 0xFFFFFF00:
        return None
    mode = (
        "handler mode, MSP"
        if lr & 0xF == 0x1
        else ("thread mode, MSP" if lr & 0xF == 0x9 else "thread mode, PSP" if lr & 0xF == 0xD else "invalid")
    )
    frame = "basic frame" if lr & 0x10 else "extended (FP) frame"
    return f"EXC_RETURN: return to {mode}, {frame}"


def fault_summary(cfsr: int, hfsr: int) -> str:
    """The set bits as one line, e.g. ``HFSR.FORCED, UFSR.INVSTATE`` (or ``none``)."""
    names = [f"{b.register}.{b.name}" for b in decode_hfsr(hfsr) + decode_cfsr(cfsr) if b.set]
    return ", ".join(names) if names else "none"
