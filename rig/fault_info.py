"""Where the core ended up when a jump did not reach the application: fault status
registers, the core registers, the stacked frame of a handler and the code around the PC,
read through the probe into a :class:`rig.evidence.FaultInfo`."""

from __future__ import annotations

from rig.evidence import FaultInfo
from rig.probe import Probe

#: Fault status registers read when the jump did not reach the app.
FAULT_REGS = {
    "cfsr": 0xE000ED28,
    "hfsr": 0xE000ED2C,
    "mmfar": 0xE000ED34,
    "bfar": 0xE000ED38,
    "icsr": 0xE000ED04,
    "vtor": 0xE000ED08,
    "dhcsr": 0xE000EDF0,
}


def read_fault_info(probe: Probe, pc: int) -> FaultInfo:
    """Read what explains a core stopped at ``pc`` (the core must be halted)."""
    regs: dict[str, int] = {}
    for name, addr in FAULT_REGS.items():
        try:
            regs[name] = probe.read32(addr)
        except Exception:
            continue
    for name, value in probe.registers(["xpsr", "lr", "msp", "psp", "control", "primask"]).items():
        regs[name] = value
    state = "lockup" if regs.get("dhcsr", 0) & (1 << 19) else "halted"
    if regs.get("xpsr", 0) & 0x1FF:
        # In a handler: the interrupted context's frame shows the faulting instruction.
        lr = regs.get("lr", 0)
        sp = regs.get("psp", 0) if (lr & 0xFFFFFF00) == 0xFFFFFF00 and lr & 0x4 else regs.get("msp", 0)
        try:
            frame = probe.read(sp, 32)
            regs["stacked_lr"] = int.from_bytes(frame[20:24], "little")
            regs["stacked_pc"] = int.from_bytes(frame[24:28], "little")
            regs["stacked_xpsr"] = int.from_bytes(frame[28:32], "little")
        except Exception:
            regs["stacked_frame_unreadable_at"] = sp
    code_base = (pc & ~1) - 16
    code = b""
    try:
        code = probe.read(code_base, 48)
    except Exception:
        code_base = 0
    return FaultInfo(pc=pc, state=state, registers=regs, code_base=code_base, code=code)
