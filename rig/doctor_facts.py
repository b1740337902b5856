"""What ``rig doctor`` looks at on a lab host, gathered into plain data (:class:`Facts`).

Each ``gather_*`` function reads one thing of the host (pyOCD's probe list, the USB devices
in sysfs, the udev rule files, the serial ports, the interfaces of ``ip -j addr``, ...) and
never raises: what cannot be read is recorded as such. :mod:`rig.doctor` turns the facts into
findings, so its logic is tested with facts made up in the test.
"""

from __future__ import annotations

import contextlib
import ctypes.util
import errno
import grp
import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

#: the ST-LINK USB IDs (vendor 0483): V2-1 (the NUCLEO-F767ZI's), V3 variants
STLINK_PRODUCTS = ("374b", "374e", "374f", "3753", "3748")
UDEV_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d")
CAP_NET_RAW = 13


@dataclass(frozen=True)
class UsbDevice:
    """An ST-LINK on the USB bus (sysfs), with its device node's access for this user."""

    product: str
    serial: str
    node: str
    writable: bool


@dataclass(frozen=True)
class SerialPort:
    device: str
    serial_number: str | None
    description: str
    by_id: str | None
    writable: bool


@dataclass(frozen=True)
class Iface:
    name: str
    up: bool
    addresses: tuple[str, ...]


@dataclass
class ProbeRead:
    """What the probe said: its option bytes (OPTCR, OPTCR1), or why they were not read."""

    uid: str
    optcr: int | None = None
    optcr1: int | None = None
    error: str | None = None
    busy: str | None = None


@dataclass
class Facts:
    """Everything ``rig doctor`` found on this host (None: not looked at)."""

    probes: list[tuple[str, str]] | None = None
    probes_error: str | None = None
    usb: list[UsbDevice] = field(default_factory=list)
    udev_rules: list[str] = field(default_factory=list)
    user: str = ""
    groups: list[str] = field(default_factory=list)
    host_groups: list[str] = field(default_factory=list)
    serial_ports: list[SerialPort] = field(default_factory=list)
    root: bool = False
    cap_net_raw: bool = False
    raw_socket_error: str | None = None
    tshark: str | None = None
    tshark_caps: bool = False
    ifaces: list[Iface] | None = None
    bind_errors: dict[str, str | None] = field(default_factory=dict)
    tools: dict[str, str | None] = field(default_factory=dict)
    #: the firewall's rules (``nft list ruleset``, else ``iptables-save``), or why not read
    firewall: str | None = None
    firewall_error: str | None = None
    board_file: str = ""
    board_error: str | None = None
    probe_read: ProbeRead | None = None


def gather_probes(facts: Facts) -> None:
    try:
        from rig.probe_discovery import list_probes

        facts.probes = [(p.uid, p.description) for p in list_probes()]
    except Exception as exc:  # pyOCD's USB back ends raise many types
        facts.probes, facts.probes_error = [], f"{type(exc).__name__}: {exc}"


def gather_usb(facts: Facts, sysfs: Path = Path("/sys/bus/usb/devices")) -> None:
    """Every ST-LINK in sysfs and whether this user may open its /dev/bus/usb node."""
    for dev in sorted(sysfs.glob("*")) if sysfs.is_dir() else []:
        try:
            vendor = (dev / "idVendor").read_text().strip()
            product = (dev / "idProduct").read_text().strip()
        except OSError:
            continue
        if vendor != "0483" or product not in STLINK_PRODUCTS:
            continue
        serial = _read(dev / "serial")
        bus, num = _read(dev / "busnum"), _read(dev / "devnum")
        node = f"/dev/bus/usb/{int(bus or 0):03d}/{int(num or 0):03d}"
        facts.usb.append(UsbDevice(product, serial, node, os.access(node, os.R_OK | os.W_OK)))


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def gather_udev(facts: Facts, dirs: tuple[str, ...] = UDEV_DIRS) -> None:
    """The udev rule files with a line for the NUCLEO's ST-LINK (0483:374b)."""
    for folder in dirs:
        for path in sorted(Path(folder).glob("*.rules")) if Path(folder).is_dir() else []:
            try:
                text = path.read_text(errors="replace").lower()
            except OSError:
                continue
            for line in text.splitlines():
                if not line.lstrip().startswith("#") and "0483" in line and "374b" in line:
                    facts.udev_rules.append(str(path))
                    break


def gather_groups(facts: Facts) -> None:
    import pwd

    try:
        facts.user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        facts.user = str(os.getuid())
    names = []
    for gid in os.getgroups():
        with contextlib.suppress(KeyError):
            names.append(grp.getgrgid(gid).gr_name)
    facts.groups = names
    facts.host_groups = [g.gr_name for g in grp.getgrall() if g.gr_name in ("plugdev", "dialout")]


def gather_serial(facts: Facts, by_id_dir: Path = Path("/dev/serial/by-id")) -> None:
    from serial.tools import list_ports

    links: dict[str, str] = {}
    for link in sorted(by_id_dir.glob("*")) if by_id_dir.is_dir() else []:
        links[os.path.realpath(link)] = str(link)
    for p in list_ports.comports():
        if not (p.device.startswith("/dev/ttyACM") or p.serial_number or p.device in links):
            continue
        writable = os.access(p.device, os.R_OK | os.W_OK)
        facts.serial_ports.append(
            SerialPort(p.device, p.serial_number, p.description or "", links.get(p.device), writable)
        )


def gather_capture(facts: Facts) -> None:
    """Root, CAP_NET_RAW in this process, a raw packet socket opened for real; tshark."""
    facts.root = os.geteuid() == 0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                facts.cap_net_raw = bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003)).close()
    except (OSError, AttributeError) as exc:
        facts.raw_socket_error = str(exc)
    facts.tshark = shutil.which("tshark")
    dumpcap = shutil.which("dumpcap")
    if dumpcap:
        with contextlib.suppress(OSError):
            facts.tshark_caps = bool(os.getxattr(os.path.realpath(dumpcap), "security.capability"))


def gather_ifaces(facts: Facts) -> None:
    """The interfaces and their IPv4 addresses (``ip -j addr``; getifaddrs without ``ip``)."""
    try:
        out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, timeout=10, check=True)
        facts.ifaces = parse_ip_addr(out.stdout)
        return
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    from rig.capture import interface_addresses

    by_name: dict[str, list[str]] = {}
    with contextlib.suppress(Exception):
        for name, addr in interface_addresses():
            by_name.setdefault(name, []).append(addr)
    facts.ifaces = [
        Iface(n, _read(Path(f"/sys/class/net/{n}/operstate")) in ("up", "unknown"), tuple(a))
        for n, a in by_name.items()
    ]


def parse_ip_addr(text: str) -> list[Iface]:
    """``ip -j addr`` -> interfaces: up when the link is administratively UP and its
    operstate not DOWN (``lo`` says UNKNOWN)."""
    out = []
    for entry in json.loads(text):
        flags = entry.get("flags") or []
        up = "UP" in flags and entry.get("operstate") != "DOWN" and "NO-CARRIER" not in flags
        addrs = tuple(
            a["local"] for a in entry.get("addr_info") or [] if a.get("family") == "inet" and "local" in a
        )
        out.append(Iface(entry.get("ifname", "?"), up, addrs))
    return out


def try_bind(ip: str, port: int) -> str | None:
    """None if a TCP server could listen on ``ip:port`` now, else why not."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((ip, port))
        s.listen(1)
    except OSError as exc:
        name = errno.errorcode.get(exc.errno or 0, "")
        return f"{name}: {exc.strerror or exc}" if name else str(exc)
    finally:
        s.close()
    return None


def gather_firewall(facts: Facts) -> None:
    """The ruleset as text (reading it needs root), or why it could not be read."""
    for command in (["nft", "list", "ruleset"], ["iptables-save"]):
        if not shutil.which(command[0]):
            continue
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            facts.firewall_error = f"{command[0]}: {exc}"
            continue
        if out.returncode == 0:
            facts.firewall, facts.firewall_error = out.stdout, None
            return
        facts.firewall_error = f"`{' '.join(command)}`: {(out.stderr or out.stdout).strip()[:200]}"
    if facts.firewall_error is None:
        facts.firewall_error = "neither nft nor iptables-save is installed"


def gather_tools(facts: Facts) -> None:
    facts.tools = {
        "arm-none-eabi-gcc": shutil.which("arm-none-eabi-gcc"),
        "libslirp": ctypes.util.find_library("slirp"),
        "chromium": next(
            (w for w in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if w), None
        ),
    }


def read_option_bytes(uid: str, pyocd_target: str) -> ProbeRead:
    """OPTCR/OPTCR1 through the probe, if no other job holds the board (never waits)."""
    from rig import probe_lock
    from rig.errors import RigError
    from rig.probe import Probe

    result = ProbeRead(uid)
    holder = probe_lock.current_holder(uid)
    if holder is not None:
        result.busy = holder.describe()
        return result
    try:
        with probe_lock.board_lock(uid, timeout=0, say=lambda _: None), Probe(uid, target=pyocd_target) as p:
            ob = p.option_bytes()
            result.optcr, result.optcr1 = ob.optcr, ob.optcr1
    except probe_lock.BoardBusy as exc:
        result.busy = exc.holder.describe() if exc.holder else str(exc)
    except RigError as exc:
        result.error = str(exc)
    return result


def _default_uid(facts: Facts, boards: list) -> str | None:
    """The probe to read when none was asked for: the board file's, else the only one."""
    connected = {u.lower(): u for u, _ in facts.probes or []}
    for board in boards:
        if board.probe_uid and (
            board.probe_uid.lower() in connected or board.probe_uid.startswith("remote:")
        ):
            return connected.get(board.probe_uid.lower(), board.probe_uid)
    return next(iter(connected.values())) if len(connected) == 1 else None


def gather(board_file: Path | None, uid: str | None) -> tuple[Facts, object | None, str | None]:
    """Every fact of this host for ``rig doctor``; (facts, the board spec or None, the UID)."""
    from rig.board import default_board_path, load_board
    from rig.errors import RigError
    from rig.probe import TARGET

    facts = Facts(board_file=str(board_file or default_board_path()))
    spec = None
    try:
        spec = load_board(board_file)
    except RigError as exc:
        facts.board_error = str(exc)
    for step in (gather_probes, gather_usb, gather_udev, gather_groups, gather_serial, gather_capture):
        step(facts)
    gather_ifaces(facts)
    gather_firewall(facts)
    gather_tools(facts)
    boards = spec.lab_boards() if spec is not None else []
    local = {a for i in facts.ifaces or [] for a in i.addresses}
    for board in boards:
        if board.bind.ip in local:
            facts.bind_errors[str(board.bind)] = try_bind(board.bind.ip, board.bind.port)
    connected = {u.lower() for u, _ in facts.probes or []}
    chosen = uid if uid and (uid.startswith("remote:") or uid.lower() in connected) else None
    chosen = chosen or (None if uid else _default_uid(facts, boards))
    if chosen:
        tspec = spec.targets.get("nucleo") if spec is not None else None
        facts.probe_read = read_option_bytes(chosen, tspec.pyocd_target if tspec else TARGET)
    return facts, spec, uid
