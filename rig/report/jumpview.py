"""The jump-state table, and (when the jump failed) the disassembly and decoded fault registers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from rig.report import disasm, faults
from rig.report._html import hex32, render

if TYPE_CHECKING:
    from rig.evidence import Evidence, FaultInfo

#: Registers shown first in the fault's register table, in this order.
_CORE_ORDER = (
    "pc",
    "lr",
    "msp",
    "psp",
    "xpsr",
    "control",
    "primask",
    "cfsr",
    "hfsr",
    "mmfar",
    "bfar",
    "shcsr",
    "icsr",
    "vtor",
)


def jump_table(ev: Evidence) -> Markup:
    """Register / expected / actual / verdict / why it matters, one row per contract item."""
    jump = ev.jump
    return render(
        "jump.html",
        jump=jump,
        checked=sum(r.checked for r in jump.rows) if jump is not None else 0,
        raw=raw_state(ev),
    )


def raw_state(ev: Evidence) -> list[tuple[str, str]] | None:
    """Every captured jump-state value in hex (None when no state was captured)."""
    if ev.jump_state is None:
        return None
    cells = []
    for key, value in ev.jump_state.to_dict().items():
        if isinstance(value, list):
            text = " ".join(hex32(v) for v in value)
        elif value is None:
            text = "—"
        else:
            text = hex32(int(value))
        cells.append((key, text))
    return cells


def jump_failed(ev: Evidence) -> bool:
    """True if the jump contract failed or the core ended in a fault."""
    return ev.fault is not None or (ev.jump is not None and not ev.jump.ok)


def _fault_regs(ev: Evidence) -> dict[str, int]:
    regs: dict[str, int] = {}
    if ev.jump_state is not None:
        st = ev.jump_state
        regs.update(
            {
                "pc": st.pc,
                "lr": st.lr,
                "msp": st.msp,
                "xpsr": st.xpsr,
                "cfsr": st.cfsr,
                "hfsr": st.hfsr,
                "vtor": st.vtor,
            }
        )
    if ev.fault is not None:
        regs["pc"] = ev.fault.pc
        regs.update({k.lower(): int(v) for k, v in ev.fault.registers.items()})
    return regs


def _disassembly(fault: FaultInfo | None, pc: int | None) -> dict[str, Any]:
    """What the disassembly part shows: rows (is the PC, address, bytes, mnemonic, operands) or why not."""
    if fault is None or not fault.code or pc is None:
        return {"insns": None}
    insns = disasm.around(fault.code, fault.code_base, pc)
    rows = [(i.address == pc & ~1, i.address, i.raw.hex(" "), i.mnemonic, i.operands) for i in insns]
    return {"insns": rows, "code_lo": fault.code_base, "code_hi": fault.code_base + len(fault.code) - 1}


def _register_rows(regs: dict[str, int]) -> list[tuple[str, int, str]]:
    keys = [k for k in _CORE_ORDER if k in regs] + sorted(k for k in regs if k not in _CORE_ORDER)
    rows = []
    for k in keys:
        note = ""
        if k == "lr":
            note = faults.exc_return_text(regs[k]) or ""
        elif k == "xpsr":
            note = f"T={regs[k] >> 24 & 1}, IPSR={regs[k] & 0x1FF} ({faults.exception_name(regs[k] & 0x1FF)})"
        rows.append((k, regs[k], note))
    return rows


def fault_view(ev: Evidence) -> Markup:
    """Core state, disassembly around the PC, CFSR/HFSR bit by bit, MMFAR/BFAR validity."""
    regs = _fault_regs(ev)
    pc = regs.get("pc")
    cfsr, hfsr = regs.get("cfsr", 0), regs.get("hfsr", 0)
    state = ev.fault.state if ev.fault is not None else "stopped"
    line = f"Core {state}" + (f" at PC {hex32(pc)}" if pc is not None else "")
    if "xpsr" in regs:
        ipsr = regs["xpsr"] & 0x1FF
        line += f", IPSR {ipsr} ({faults.exception_name(ipsr)})"
    line += f"; fault bits set: {faults.fault_summary(cfsr, hfsr)}"
    addresses = []
    for name, valid_bit, label in (("mmfar", 7, "MMARVALID"), ("bfar", 15, "BFARVALID")):
        value = regs.get(name)
        shown = hex32(value) if value is not None else "not captured"
        valid = bool(cfsr >> valid_bit & 1)
        meaning = "valid: the faulting address" if valid else f"not valid ({label}=0): ignore the value"
        addresses.append((name.upper(), shown, meaning))
    return render(
        "fault.html",
        line=line,
        pc=pc,
        **_disassembly(ev.fault, pc),
        hfsr=hfsr,
        cfsr=cfsr,
        hfsr_bits=faults.decode_hfsr(hfsr),
        cfsr_bits=faults.decode_cfsr(cfsr),
        addresses=addresses,
        registers=_register_rows(regs),
    )
