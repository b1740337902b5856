"""``rig doctor``: is this host ready to drive a real board? One line per finding, with its fix.

The facts are gathered by :mod:`rig.doctor_facts`; here they become findings (``ok``,
``info``, ``warn``: worth fixing, ``fail``: blocks a ``--board nucleo`` run), so the logic is
tested with made-up facts. Exit code 0 when nothing blocks, 1 when something does (named in
the last line), 2 on a usage error (as every ``rig`` command).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rig.doctor_checks import (
    Finding,
    capture_findings,
    firewall_findings,
    probe_findings,
    tool_findings,
    usb_findings,
    vcp_findings,
)
from rig.doctor_facts import Facts, ProbeRead

__all__ = ["Finding", "blocking", "findings", "register"]

EXIT_OK, EXIT_BLOCKED = 0, 1
LEVELS = {"ok": "green", "info": "cyan", "warn": "yellow", "fail": "red"}


def network_findings(facts: Facts, boards: Sequence[Any]) -> list[Finding]:
    """For each lab board: the interface holding its server address, up, the port free."""
    out = []
    for board in boards:
        bind = board.bind
        where = f"{bind} ({board.bind_key})"
        if board.listen:
            where += f", where the lab network carries the board's connections to {board.host}"
        owners = [i for i in facts.ifaces or [] if bind.ip in i.addresses]
        if facts.ifaces is None:
            out.append(Finding("network", "warn", f"interfaces not read; the board's server: {where}"))
            continue
        if not owners:
            out.append(
                Finding(
                    "network",
                    "fail",
                    f"no interface holds {where}: the board dials it, the OTA server cannot listen",
                    f"`sudo ip addr add {bind.ip}/24 dev <lab NIC>` (or your network manager), or change "
                    f"{board.bind_key} in the board file",
                )
            )
            continue
        iface = owners[0]
        if not iface.up:
            out.append(
                Finding(
                    "network",
                    "fail",
                    f"{iface.name} holds {where} but is down",
                    f"`sudo ip link set {iface.name} up` and check its cable",
                )
            )
        else:
            out.append(Finding("network", "ok", f"{iface.name} holds {where} and is up"))
        out.append(_port_finding(bind, facts.bind_errors.get(str(bind))))
    return out


def _port_finding(bind: Any, error: str | None) -> Finding:
    if error is None:
        return Finding("network", "ok", f"the OTA port {bind} is free to listen on")
    if error.startswith("EADDRINUSE"):
        fix = f"stop what listens there (`ss -ltnp 'sport = :{bind.port}'` names it)"
    elif error.startswith("EACCES"):
        fix = "use a port above 1023, or give the python binary CAP_NET_BIND_SERVICE"
    else:
        fix = "see the error"
    return Finding("network", "fail", f"the OTA server cannot listen on {bind}: {error}", fix)


def board_findings(facts: Facts, spec: Any) -> list[Finding]:
    if facts.board_error:
        return [
            Finding(
                "board",
                "fail",
                f"the board file is not valid: {facts.board_error}",
                "fix it (docs/board-file.md)",
            )
        ]
    boards = spec.lab_boards() if spec is not None else []
    if not boards:
        return [
            Finding(
                "board",
                "fail",
                f"{facts.board_file} has no targets.nucleo section: --board nucleo has nothing to drive",
                "add targets.nucleo (docs/board-file.md)",
            )
        ]
    return [Finding("board", "ok", f"{facts.board_file} is valid ({len(boards)} lab board(s))")]


def option_byte_findings(read: ProbeRead | None, spec: Any) -> list[Finding]:
    """nDBANK, BOOT_ADD0 and RDP read through the probe, against the board file."""
    from rig.probe import OptionBytes

    if read is None:
        return [Finding("option bytes", "info", "not read: no probe to read them through")]
    if read.busy:
        return [Finding("option bytes", "warn", f"not read: the board {read.uid} is in use by {read.busy}")]
    if read.error or read.optcr is None or read.optcr1 is None:
        return [
            Finding(
                "option bytes", "fail", f"cannot read them through {read.uid}: {read.error}", "see the error"
            )
        ]
    ob = OptionBytes(read.optcr, read.optcr1)
    raw = f"OPTCR=0x{ob.optcr:08X}, OPTCR1=0x{ob.optcr1:08X}"
    out = []
    if ob.rdp_level != 0:
        out.append(
            Finding(
                "option bytes",
                "fail",
                f"RDP level {ob.rdp_level}: the chip is read-protected ({raw})",
                "unlock it with STM32CubeProgrammer if the board may be wiped (the rig never changes RDP)",
            )
        )
    else:
        out.append(Finding("option bytes", "ok", "RDP level 0 (not read-protected)"))
    fix = "set it with STM32CubeProgrammer, or change option_bytes in the board file"
    if spec is None:
        return out
    want = "dual" if spec.dual_bank else "single"
    have = "dual" if ob.dual_bank else "single"
    out.append(
        Finding("option bytes", "ok", f"nDBANK: {have}-bank, as the board file says")
        if have == want
        else Finding(
            "option bytes",
            "fail",
            f"nDBANK: the chip is {have}-bank, the board file expects {want}-bank",
            fix,
        )
    )
    boot = spec.option_bytes.get("BOOT_ADD0", 0x0080)
    out.append(
        Finding(
            "option bytes",
            "ok",
            f"BOOT_ADD0 0x{ob.boot_add0:04X} (boots from 0x{ob.boot_address0:08X}), as the board file says",
        )
        if ob.boot_add0 == boot
        else Finding(
            "option bytes",
            "fail",
            f"BOOT_ADD0 is 0x{ob.boot_add0:04X} (boots from 0x{ob.boot_address0:08X}), the board file expects 0x{boot:04X}",
            fix,
        )
    )
    return out


def findings(facts: Facts, spec: Any, uid: str | None) -> list[Finding]:
    """Every finding, in the order they are printed."""
    boards = spec.lab_boards() if spec is not None else []
    return [
        *board_findings(facts, spec),
        *probe_findings(facts, uid),
        *usb_findings(facts),
        *vcp_findings(facts),
        *option_byte_findings(facts.probe_read, spec),
        *network_findings(facts, boards),
        *firewall_findings(facts, sorted({b.bind.port for b in boards})),
        *capture_findings(facts),
        *tool_findings(facts),
    ]


def blocking(found: Sequence[Finding]) -> list[str]:
    """The checks that block a run, each named once."""
    return list(dict.fromkeys(f.check for f in found if f.blocks))


# ------------------------------------------------------------------------------ the command
def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="check this host for a real-board run (probes, USB rights, VCPs, network, option bytes)",
        description="Check a lab host: one line per finding with its fix. Exit 0 when nothing "
        "blocks a --board nucleo run, 1 when something does (named last), 2 on a usage error.",
    )
    p.add_argument("--board-file", type=Path, help="board file (default: boards/stm32f767.yaml)")
    p.add_argument(
        "--probe-uid", help="check this probe (a USB UID or remote:HOST:PORT); default: the only one"
    )
    p.add_argument("--json", action="store_true", help="print the findings as JSON")
    p.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    from rig.doctor_facts import gather

    facts, spec, uid = gather(args.board_file, args.probe_uid)
    found = findings(facts, spec, uid)
    blocked = blocking(found)
    if args.json:
        doc = {"ok": not blocked, "blocking": blocked, "findings": [asdict(f) for f in found]}
        print(json.dumps(doc, indent=2))
    else:
        _print(found, blocked)
    return EXIT_BLOCKED if blocked else EXIT_OK


def _print(found: Sequence[Finding], blocked: Sequence[str]) -> None:
    from rich.console import Console
    from rich.text import Text

    from rig.ota.cli import visible

    out = Console(highlight=False, soft_wrap=True, markup=False, emoji=False)
    for f in found:
        line = Text(f"{f.level.upper():<4} ", style=LEVELS[f.level])
        line.append(visible(f"{f.check}: {f.message}"))
        if f.fix:
            line.append(visible(f" -> fix: {f.fix}"), style="dim" if f.level == "ok" else None)
        out.print(line)
    if blocked:
        out.print(Text(f"blocks a --board nucleo run: {', '.join(blocked)}", style="bold red"))
    else:
        out.print(Text("nothing blocks a --board nucleo run", style="bold green"))
