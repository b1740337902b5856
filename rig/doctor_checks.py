"""The host checks of ``rig doctor`` (:mod:`rig.doctor`): each turns facts of
:mod:`rig.doctor_facts` into findings, one line each with its fix. ``fail`` blocks a
``--board nucleo`` run; ``warn`` is worth fixing; ``ok`` and ``info`` say what was found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rig.doctor_facts import Facts

UDEV_FIX = (
    "add the ST-LINK udev rule of docs/lab.md §1 to /etc/udev/rules.d/49-stlink.rules, then "
    "`sudo udevadm control --reload && sudo udevadm trigger` and re-plug the board"
)


@dataclass(frozen=True)
class Finding:
    check: str
    level: str
    message: str
    fix: str | None = None

    @property
    def blocks(self) -> bool:
        return self.level == "fail"


def _is_remote(uid: str | None) -> bool:
    return bool(uid and uid.startswith("remote:"))


def probe_findings(facts: Facts, uid: str | None) -> list[Finding]:
    """Probes pyOCD found (and their UIDs), the one asked for."""
    if _is_remote(uid):
        return [
            Finding(
                "probe", "info", f"{uid}: a pyOCD probe server, not a USB probe (USB checks are informative)"
            )
        ]
    probes = facts.probes or []
    if not probes:
        why = f" ({facts.probes_error})" if facts.probes_error else ""
        seen = f"; {len(facts.usb)} ST-LINK(s) on USB that pyOCD cannot open" if facts.usb else ""
        return [
            Finding(
                "probe",
                "fail",
                f"no probe found: pyOCD sees no debug probe on this host{why}{seen}",
                "plug the NUCLEO's ST-LINK USB (CN1, the connector next to the reset button) into this "
                "host and check `.venv/bin/pyocd list`; without a board run on the twin (--board twin)",
            )
        ]
    out = [Finding("probe", "ok", f"probe {p_uid} ({desc or 'no description'})") for p_uid, desc in probes]
    uids = [p_uid.lower() for p_uid, _ in probes]
    if uid and uid.lower() not in uids:
        out.append(
            Finding("probe", "fail", f"the probe {uid} is not connected", "copy the UID from a line above")
        )
    elif not uid and len(probes) > 1:
        out.append(
            Finding(
                "probe",
                "warn",
                f"{len(probes)} probes and none chosen",
                "pass --probe-uid (or OTA_RIG_PROBE_UID, targets.nucleo.probe_uid) to every run",
            )
        )
    return out


def usb_findings(facts: Facts) -> list[Finding]:
    """udev rule for 0483:374b, the user's groups, each ST-LINK's device node."""
    out = []
    for dev in facts.usb:
        if not dev.writable:
            out.append(
                Finding(
                    "usb",
                    "fail",
                    f"ST-LINK {dev.serial or '?'} (0483:{dev.product}) at {dev.node} is not "
                    f"readable and writable by {facts.user}",
                    UDEV_FIX + f"; and `sudo usermod -aG plugdev {facts.user}` (log in again)",
                )
            )
    if facts.udev_rules:
        out.append(
            Finding("usb", "ok", f"udev rule for the ST-LINK (0483:374b): {', '.join(facts.udev_rules)}")
        )
    else:
        out.append(
            Finding(
                "usb", "warn", "no udev rule for the ST-LINK (0483:374b): only root may open it", UDEV_FIX
            )
        )
    if facts.root:
        out.append(
            Finding(
                "usb",
                "info",
                "running as root: the ST-LINK and its VCP need no group (a runner's own user needs "
                "plugdev and dialout)",
            )
        )
        return out
    for group, why in (("plugdev", "the ST-LINK"), ("dialout", "the virtual COM port")):
        if group in facts.groups:
            out.append(Finding("usb", "ok", f"{facts.user} is in {group} ({why})"))
        else:
            missing = "" if group in facts.host_groups else f" (the group {group} does not exist here)"
            out.append(
                Finding(
                    "usb",
                    "warn",
                    f"{facts.user} is not in {group}, which {why} needs{missing}",
                    f"`sudo usermod -aG {group} {facts.user}`, then log in again",
                )
            )
    return out


def vcp_findings(facts: Facts) -> list[Finding]:
    """Each virtual COM port and the probe it belongs to (USB serial number = probe UID)."""
    probes = {p_uid.lower(): p_uid for p_uid, _ in facts.probes or []}
    out = []
    owned: set[str] = set()
    for port in facts.serial_ports:
        name = port.device + (f" ({port.by_id})" if port.by_id else "")
        owner = probes.get((port.serial_number or "").lower())
        if owner:
            owned.add(owner)
        whose = (
            f"belongs to probe {owner}"
            if owner
            else f"serial {port.serial_number or '-'}, no probe of this host"
        )
        if not port.writable:
            out.append(
                Finding(
                    "vcp",
                    "fail",
                    f"{name}: {whose}; not readable and writable",
                    "`sudo usermod -aG dialout $USER`",
                )
            )
        else:
            out.append(Finding("vcp", "ok" if owner else "info", f"{name}: {whose}"))
    for p_uid in probes.values():
        if p_uid not in owned:
            out.append(
                Finding(
                    "vcp",
                    "warn",
                    f"probe {p_uid} has no virtual COM port with its serial number",
                    "check the USB cable and the ST-LINK firmware (`pyocd` can update it), or pass --serial-port",
                )
            )
    if not facts.serial_ports and not probes:
        out.append(
            Finding("vcp", "info", "no virtual COM port (/dev/ttyACM*, /dev/serial/by-id) on this host")
        )
    return out


def capture_findings(facts: Facts) -> list[Finding]:
    """Packet capture rights: never blocking, the rig skips only the capture."""
    if facts.root or facts.cap_net_raw or facts.raw_socket_error is None:
        how = "root" if facts.root else "CAP_NET_RAW" if facts.cap_net_raw else "raw packet sockets"
        out = [Finding("capture", "ok", f"packet capture allowed ({how})")]
    else:
        out = [
            Finding(
                "capture",
                "warn",
                f"no packet capture ({facts.raw_socket_error}): tests run, their pcaps are skipped",
                "run as root or `sudo setcap cap_net_raw,cap_net_admin+eip $(readlink -f .venv/bin/python)`",
            )
        ]
    if facts.tshark:
        state = (
            "dumpcap has capture capabilities"
            if facts.tshark_caps or facts.root
            else "dumpcap has no capabilities"
        )
        out.append(Finding("capture", "info", f"tshark at {facts.tshark} ({state})"))
    return out


def tool_findings(facts: Facts) -> list[Finding]:
    tools = facts.tools
    specs = (
        (
            "arm-none-eabi-gcc",
            "warn",
            "builds the reference firmware",
            "`make setup` (apt-get install gcc-arm-none-eabi)",
        ),
        ("libslirp", "warn", "the twin's network (--board twin, CI)", "`sudo apt-get install libslirp0`"),
        ("chromium", "info", "only the HTML report's rendering check", "`sudo apt-get install chromium`"),
    )
    out = []
    for name, level, why, fix in specs:
        if tools.get(name):
            out.append(Finding("tools", "ok", f"{name}: {tools[name]}"))
        elif name in tools:
            out.append(Finding("tools", level, f"{name} not found ({why})", fix))
    return out


def firewall_findings(facts: Facts, ports: list[int]) -> list[Finding]:
    """Whether the firewall drops what the board sends to the OTA port(s): a drop/reject
    policy on an input chain (or a reject rule) and no rule that names the port."""
    if not ports:
        return []
    if facts.firewall is None:
        return [
            Finding(
                "firewall",
                "info",
                f"rules not read ({facts.firewall_error}); make sure TCP {', '.join(map(str, ports))} may "
                "come in on the lab NIC",
                None
                if "installed" in (facts.firewall_error or "")
                else "run `sudo rig doctor` to have them checked",
            )
        ]
    text = facts.firewall
    drops = re.search(r"hook input[^}]*policy (drop|reject)", text) or re.search(
        r":INPUT (DROP|REJECT)", text
    )
    out = []
    for port in ports:
        named = (
            re.search(rf"dport (\{{[^}}]*\b{port}\b[^}}]*\}}|{port}\b)", text) or f"--dport {port}" in text
        )
        if not drops or named:
            why = "a rule names it" if named else "the input policy accepts"
            out.append(Finding("firewall", "ok", f"TCP {port} may come in ({why})"))
        else:
            out.append(
                Finding(
                    "firewall",
                    "fail",
                    f"the input policy drops and no rule names TCP {port}: the board's connections never arrive",
                    f"allow it on the lab NIC, e.g. `sudo nft add rule inet filter input tcp dport {port} accept` "
                    f"or `sudo ufw allow {port}/tcp`",
                )
            )
    return out
