"""The jump-state table, and (when the jump failed) the disassembly and decoded fault registers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rig.report import disasm, faults
from rig.report._html import esc, hex32

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


def jump_table(ev: Evidence) -> str:
    """Register / expected / actual / verdict / why it matters, one row per contract item."""
    if ev.jump is None:
        if ev.jump_state is None:
            return '<p class="muted">The jump was not reached or not checked in this test.</p>'
        return '<p class="muted">The jump state was captured but not checked.</p>' + raw_state(ev)
    rows = []
    for r in ev.jump.rows:
        if not r.checked:
            verdict, cls = '<span class="muted">not checked</span>', ' class="unchecked"'
        elif r.ok:
            verdict, cls = '<span class="ok">OK</span>', ""
        else:
            verdict, cls = '<span class="bad">FAIL</span>', ' class="fail"'
        rows.append(
            f'<tr{cls}><td class="mono">{esc(r.name)}</td><td class="mono">{esc(r.expected)}</td>'
            f'<td class="mono">{esc(r.actual)}</td><td>{verdict}</td><td>{esc(r.reason)}</td></tr>'
        )
    n_fail = len(ev.jump.failures)
    checked = sum(r.checked for r in ev.jump.rows)
    head = (
        '<p class="ok">Jump contract holds: every checked item is in the reset state the app expects '
        f"({checked} checked).</p>"
        if ev.jump.ok
        else f'<p class="bad">{n_fail} of {checked} checked item(s) violate the jump contract.</p>'
    )
    table = (
        '<table class="jump"><thead><tr><th>register</th><th>expected</th><th>actual</th><th>verdict</th>'
        f"<th>why it matters</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    return head + table + raw_state(ev)


def raw_state(ev: Evidence) -> str:
    """Every captured jump-state value in hex, folded."""
    if ev.jump_state is None:
        return ""
    cells = []
    for key, value in ev.jump_state.to_dict().items():
        if isinstance(value, list):
            text = " ".join(hex32(v) for v in value)
        elif value is None:
            text = "—"
        else:
            text = hex32(int(value))
        cells.append(f'<tr><td class="mono">{esc(key)}</td><td class="mono">{esc(text)}</td></tr>')
    return f"<details><summary>all captured registers</summary><table>{''.join(cells)}</table></details>"


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


def _disassembly(fault: FaultInfo | None, pc: int | None) -> str:
    if fault is None or not fault.code or pc is None:
        return '<p class="muted">No code bytes around the PC were captured.</p>'
    insns = disasm.around(fault.code, fault.code_base, pc)
    if not insns:
        return (
            f'<p class="muted">The PC {hex32(pc)} is outside the captured code '
            f"({hex32(fault.code_base)}..{hex32(fault.code_base + len(fault.code) - 1)}).</p>"
        )
    rows = []
    for i in insns:
        mark = ' class="pc"' if i.address == pc & ~1 else ""
        arrow = "→" if mark else ""
        rows.append(
            f"<tr{mark}><td>{arrow}</td><td>{hex32(i.address)}</td><td>{esc(i.raw.hex(' '))}</td>"
            f"<td>{esc(i.mnemonic)}</td><td>{esc(i.operands)}</td></tr>"
        )
    return (
        '<table class="disasm mono"><thead><tr><th></th><th>address</th><th>bytes</th><th>insn</th>'
        f"<th>operands</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<p class="muted">Thumb-2 (ARMv7-M) linear sweep by capstone; decoding restarts at the PC.</p>'
    )


def _bits_table(title: str, value: int, bits: list[faults.Bit]) -> str:
    rows = []
    for b in bits:
        cls = ' class="set"' if b.set else ""
        rows.append(
            f'<tr{cls}><td>{esc(b.register)}</td><td class="num">{b.bit}</td>'
            f'<td class="mono">{esc(b.name)}</td><td>{int(b.set)}</td><td>{esc(b.meaning)}</td></tr>'
        )
    return (
        f'<h4>{esc(title)} = {hex32(value)}</h4><table class="bits"><thead><tr><th>field</th><th>bit</th>'
        f"<th>name</th><th>value</th><th>meaning</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def fault_view(ev: Evidence) -> str:
    """Core state, disassembly around the PC, CFSR/HFSR bit by bit, MMFAR/BFAR validity."""
    regs = _fault_regs(ev)
    pc = regs.get("pc")
    cfsr, hfsr = regs.get("cfsr", 0), regs.get("hfsr", 0)
    parts = []
    state = ev.fault.state if ev.fault is not None else "stopped"
    line = f"Core {state}" + (f" at PC {hex32(pc)}" if pc is not None else "")
    if "xpsr" in regs:
        ipsr = regs["xpsr"] & 0x1FF
        line += f", IPSR {ipsr} ({faults.exception_name(ipsr)})"
    line += f"; fault bits set: {faults.fault_summary(cfsr, hfsr)}"
    parts.append(f"<p><b>{esc(line)}</b></p>")
    parts.append("<h4>Disassembly around the PC</h4>" + _disassembly(ev.fault, pc))
    parts.append(_bits_table("HFSR", hfsr, faults.decode_hfsr(hfsr)))
    parts.append(_bits_table("CFSR", cfsr, faults.decode_cfsr(cfsr)))
    addr_rows = []
    for name, valid_bit, label in (("mmfar", 7, "MMARVALID"), ("bfar", 15, "BFARVALID")):
        valid = bool(cfsr >> valid_bit & 1)
        value = regs.get(name)
        shown = hex32(value) if value is not None else "not captured"
        verdict = "valid: the faulting address" if valid else f"not valid ({label}=0): ignore the value"
        addr_rows.append(
            f'<tr><td class="mono">{name.upper()}</td><td class="mono">{esc(shown)}</td>'
            f"<td>{esc(verdict)}</td></tr>"
        )
    parts.append(
        "<h4>Fault address registers</h4><table><thead><tr><th>register</th><th>value</th>"
        f"<th>meaning</th></tr></thead><tbody>{''.join(addr_rows)}</tbody></table>"
    )
    keys = [k for k in _CORE_ORDER if k in regs] + sorted(k for k in regs if k not in _CORE_ORDER)
    reg_rows = []
    for k in keys:
        note = ""
        if k == "lr":
            note = faults.exc_return_text(regs[k]) or ""
        elif k == "xpsr":
            note = f"T={regs[k] >> 24 & 1}, IPSR={regs[k] & 0x1FF} ({faults.exception_name(regs[k] & 0x1FF)})"
        reg_rows.append(
            f'<tr><td class="mono">{esc(k)}</td><td class="mono">{hex32(regs[k])}</td>'
            f"<td>{esc(note)}</td></tr>"
        )
    parts.append("<h4>Core registers</h4><table><tbody>" + "".join(reg_rows) + "</tbody></table>")
    return "".join(parts)
