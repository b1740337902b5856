"""Whether a board that went silent in an OTA session crashed, and on which instruction.

Asked after a session that ended without an answer from the board (no ACK, no NACK): the
core is halted (it was running; it is resumed when it turns out not to have crashed) and
its exception number (IPSR), DHCSR.S_LOCKUP and the fault status registers say whether it
sits in a fault handler (NMI, HardFault, MemManage, BusFault, UsageFault) or locked up. The
faulting instruction is the stacked PC of the exception frame: at SP when LR still holds
EXC_RETURN, else just above the word EXC_RETURN was pushed to by a handler that called a
function (``board_unhandled_exception``, a HAL ``Error_Handler``...), accepted only if the
stacked xPSR has the Thumb bit and the PC lies in flash or RAM.

:class:`CrashWatch` notices such a crash while a session runs, without stopping the core:
ICSR.VECTACTIVE (the active exception, readable while the core runs) names a fault handler,
or DHCSR.S_LOCKUP is set, on three polls in a row; the session is then abandoned at once
instead of waiting out the server's ACK timeout (60 s).

Owns: nothing (reads; one halt, one resume). Must not touch: memory, the flash.
"""

from __future__ import annotations

from collections.abc import Callable

from rig.clock_hint import NUCLEO_HSE_HZ, too_few_wait_states
from rig.evidence import FaultInfo
from rig.fault_bits import decode_cfsr, exception_name, fault_summary
from rig.fault_info import read_fault_info
from rig.probe import Probe

DHCSR, S_LOCKUP = 0xE000EDF0, 1 << 19
ICSR = 0xE000ED04  # VECTACTIVE: bits 8:0
CCR, CCR_UNALIGN_TRP = 0xE000ED14, 1 << 3
UFSR_UNALIGNED = 1 << 24
CRASH_POLLS = 3  # polls in a row (the server asks every 0.1 s)
FAULT_EXCEPTIONS = range(2, 7)  # NMI, HardFault, MemManage, BusFault, UsageFault
#: where code runs on an STM32F767 (ITCM, flash through ITCM and AXIM, DTCM/SRAM)
CODE_SPANS = (
    (0x00000000, 0x00004000),
    (0x00200000, 0x00400000),
    (0x08000000, 0x08200000),
    (0x20000000, 0x20080000),
)
STACK_SCAN = 256  # bytes above SP searched for a pushed EXC_RETURN
RAM_END = 0x20080000  # the end of SRAM2: the scan stops there


def crashed(probe: Probe, hse_hz: int = NUCLEO_HSE_HZ) -> tuple[str, FaultInfo] | None:
    """A sentence saying how the board crashed, with the fault evidence; None if its core is
    not in a fault handler (then it runs on as before). ``hse_hz``: the board file's HSE
    (rig/clock_hint.py)."""
    was_halted = probe.is_halted()
    if not was_halted:
        probe.halt()
    regs = probe.registers(["xpsr", "pc"])
    ipsr = regs["xpsr"] & 0x1FF
    lockup = bool(probe.read32(DHCSR) & S_LOCKUP)
    if not lockup and ipsr not in FAULT_EXCEPTIONS:
        if not was_halted:
            probe.resume()
        return None
    info = read_fault_info(probe, regs["pc"])
    r = info.registers
    cfsr, hfsr = r.get("cfsr", 0), r.get("hfsr", 0)
    where = "locked up (a fault inside a fault handler)" if lockup else f"in {exception_name(ipsr)}"
    text = f"the board crashed: its core is {where}, fault bits {fault_summary(cfsr, hfsr)}"
    stacked = None if lockup else _stacked_pc(probe, r)
    if stacked is not None:
        r["crash_pc"] = stacked
        text += f"; the faulting instruction is at 0x{stacked:08X}"
    meanings = [b.meaning for b in decode_cfsr(cfsr) if b.set and not b.name.endswith("VALID")]
    if meanings:
        text += f" ({'; '.join(meanings)})"
    clock = _clock_hint(probe, hse_hz)
    if clock:
        text += f"; {clock}"
    if cfsr & UFSR_UNALIGNED and _unalign_trp(probe):
        text += (
            "; CCR.UNALIGN_TRP is set, so every unaligned LDR/STR/LDRH/STRH faults, and code built "
            "with GCC's default for the Cortex-M7 (-munaligned-access) makes them (memcpy, packed "
            "structs, byte buffers read as words): build with -mno-unaligned-access or leave the bit clear"
        )
    return text, info


def _clock_hint(probe: Probe, hse_hz: int) -> str | None:
    """rig/clock_hint.py's sentence if flash runs with too few wait states for HCLK."""
    try:
        return too_few_wait_states(probe.read32, hse_hz)
    except Exception:
        return None


def _unalign_trp(probe: Probe) -> bool:
    try:
        return bool(probe.read32(CCR) & CCR_UNALIGN_TRP)
    except Exception:
        return False


class CrashWatch:
    """A poll for :meth:`rig.ota.server.OtaServer.wait_session`'s ``abandon_if`` (and, by
    :meth:`before_connect`, its ``give_up_if``): True once the core has sat in a fault
    handler (or locked up) for :data:`CRASH_POLLS` polls in a row; :attr:`fired` then says
    the rig ended the session or the wait for one."""

    def __init__(self, read32: Callable[[int], int]) -> None:
        self._read32 = read32
        self._seen = 0
        self.fired = False

    def __call__(self) -> bool:
        try:
            faulted = self._read32(ICSR) & 0x1FF in FAULT_EXCEPTIONS or bool(self._read32(DHCSR) & S_LOCKUP)
        except Exception:
            faulted = False  # the probe is busy or gone: not this poll's business
        self._seen = self._seen + 1 if faulted else 0
        self.fired = self.fired or self._seen >= CRASH_POLLS
        return self.fired

    def before_connect(self) -> str | None:
        """The same poll for ``wait_session``'s ``give_up_if`` (no board has connected yet):
        a board that crashed on its way to the network never will."""
        return "the board's core stopped in a fault handler before it connected" if self() else None


def _stacked_pc(probe: Probe, regs: dict[str, int]) -> int | None:
    lr = regs.get("lr", 0)
    try:
        if _is_exc_return(lr):
            sp = regs.get("psp", 0) if lr & 0x4 else regs.get("msp", 0)
            return _frame_pc(probe.read(sp, 32))
        sp = regs.get("msp", 0)
        # not past the end of RAM (a stack near its top: the read would fail whole)
        stack = probe.read(sp, min(STACK_SCAN, max(RAM_END - sp, 0)) if sp < RAM_END else STACK_SCAN)
    except Exception:
        return None
    for off in range(0, len(stack) - 4, 4):
        word = int.from_bytes(stack[off : off + 4], "little")
        if not _is_exc_return(word):
            continue
        try:
            frame = probe.read(regs.get("psp", 0), 32) if word & 0x4 else stack[off + 4 : off + 36]
        except Exception:
            return None
        pc = _frame_pc(frame)
        if pc is not None:
            return pc
    return None


def _is_exc_return(value: int) -> bool:
    return value & 0xFFFFFFE0 == 0xFFFFFFE0 and value & 0xF in (0x1, 0x9, 0xD)


def _frame_pc(frame: bytes) -> int | None:
    """The stacked PC of an exception frame, if the frame looks like one."""
    if len(frame) < 32:
        return None
    pc = int.from_bytes(frame[24:28], "little")
    xpsr = int.from_bytes(frame[28:32], "little")
    if not xpsr & (1 << 24) or not any(lo <= pc < hi for lo, hi in CODE_SPANS):
        return None
    return pc
