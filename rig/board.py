"""Board description: memory map, flash sector layouts, OTA regions, jump contract, targets.

``load_board(path)`` reads a board YAML file (see ``docs/board-file.md``), validates every key
and returns a frozen :class:`BoardSpec`. Errors are :class:`~rig.errors.ConfigError` naming the
file, the dotted key path and what was expected. Nothing unknown is silently ignored.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rig.errors import ConfigError

MEMORY_KINDS = ("flash", "alias", "ram", "rom", "otp", "id", "register", "option_bytes")
OTA_REGION_NAMES = ("bootloader", "config", "app_slot", "scratch")
CONTRACT_ITEMS = (
    "vtor",
    "msp",
    "pc",
    "thumb",
    "thread_mode",
    "control",
    "primask",
    "basepri",
    "faultmask",
    "nvic_enabled",
    "nvic_pending",
    "systick",
    "pending_exceptions",
    "mpu",
    "dcache",
    "icache",
    "faults",
)
TARGET_NAMES = ("twin", "nucleo")


def default_board_path() -> Path:
    """Return the default board file, ``boards/stm32f767.yaml`` (installed as ``rig.boards``)."""
    from importlib.resources import files

    return Path(str(files("rig.boards").joinpath("stm32f767.yaml")))


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class MemoryRegion:
    """One entry of the memory map."""

    name: str
    base: int
    size: int
    kind: str
    alias_of: str | None = None
    description: str = ""

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.base + self.size

    def contains(self, address: int, length: int = 1) -> bool:
        """True if ``[address, address+length)`` lies inside the region."""
        return self.base <= address and address + length <= self.end


@dataclass(frozen=True)
class Sector:
    """One flash sector in a given bank mode."""

    index: int
    bank: int
    snb: int
    base: int
    size: int

    @property
    def end(self) -> int:
        """First address after the sector."""
        return self.base + self.size


@dataclass(frozen=True)
class Region:
    """An OTA region (bootloader, config, app_slot, scratch) and the sectors it covers."""

    name: str
    base: int
    size: int
    sectors: tuple[int, ...]
    ota_writable: bool
    description: str = ""

    @property
    def end(self) -> int:
        """First address after the region."""
        return self.base + self.size

    def contains(self, address: int) -> bool:
        """True if ``address`` is inside the region."""
        return self.base <= address < self.end


@dataclass(frozen=True)
class Location:
    """Where a flash address is: bank, sector index, sector SNB, offset and OTA region."""

    address: int
    bank: int
    sector: int
    snb: int
    sector_base: int
    offset: int
    region: str | None


@dataclass(frozen=True)
class FlashLayout:
    """The sector table of one bank mode plus the OTA regions mapped onto it."""

    dual_bank: bool
    base: int
    size: int
    sectors: tuple[Sector, ...]
    regions: Mapping[str, Region] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """First address after the flash."""
        return self.base + self.size

    def sector(self, index: int) -> Sector:
        """Return sector ``index`` (the HAL's FLASH_SECTOR_n numbering)."""
        for sec in self.sectors:
            if sec.index == index:
                return sec
        raise ConfigError(
            f"no sector {index} in the {self.mode} layout", expected=f"0..{len(self.sectors) - 1}"
        )

    @property
    def mode(self) -> str:
        """``"dual_bank"`` or ``"single_bank"``."""
        return "dual_bank" if self.dual_bank else "single_bank"

    def _sector_at(self, address: int) -> Sector:
        if not self.base <= address < self.end:
            raise ConfigError(
                f"address 0x{address:08X} is outside the flash",
                expected=f"0x{self.base:08X}..0x{self.end - 1:08X}",
                hint="use the AXIM address (0x08xxxxxx), not the ITCM alias",
            )
        starts = [s.base for s in self.sectors]
        return self.sectors[bisect.bisect_right(starts, address) - 1]

    def locate(self, address: int) -> Location:
        """Return the bank, sector and OTA region of a flash address."""
        sec = self._sector_at(address)
        region = next((r.name for r in self.regions.values() if r.contains(address)), None)
        return Location(address, sec.bank, sec.index, sec.snb, sec.base, address - sec.base, region)

    def sectors_for_span(self, base: int, length: int) -> list[Sector]:
        """Sectors touched by ``[base, base+length)`` (empty for length 0)."""
        if length < 0:
            raise ConfigError(f"negative length {length}", expected="length >= 0")
        if length == 0:
            return []
        first = self._sector_at(base)
        last = self._sector_at(base + length - 1)
        return [s for s in self.sectors if first.index <= s.index <= last.index]

    def on_boundary(self, address: int) -> bool:
        """True if ``address`` is the start of a sector or the end of the flash."""
        return address == self.end or any(s.base == address for s in self.sectors)

    def boundaries(self) -> list[int]:
        """Sector start addresses plus the end of the flash."""
        return [s.base for s in self.sectors] + [self.end]


@dataclass(frozen=True)
class ContractItem:
    """One rule of the jump contract."""

    name: str
    enabled: bool
    reason: str


@dataclass(frozen=True)
class JumpContract:
    """What must hold at the application's first instruction; items keyed by name."""

    items: Mapping[str, ContractItem]

    def enabled(self, name: str) -> bool:
        """True if item ``name`` is checked."""
        item = self.items.get(name)
        return bool(item and item.enabled)

    def reason(self, name: str) -> str:
        """Why item ``name`` matters."""
        item = self.items.get(name)
        return item.reason if item else ""

    @classmethod
    def all_enabled(cls) -> JumpContract:
        """A contract with every known item enabled and a generic reason (for tests and tools)."""
        return cls(
            {
                n: ContractItem(n, True, f"{n} differs from the reset state the app expects")
                for n in CONTRACT_ITEMS
            }
        )


@dataclass(frozen=True)
class Endpoint:
    """An IPv4 address and TCP port."""

    ip: str
    port: int

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"


@dataclass(frozen=True)
class TargetSpec:
    """How to reach one kind of board (``twin`` or ``nucleo``)."""

    name: str
    pyocd_target: str = "stm32f767zi"
    probe_uid: str | None = None
    serial_port: str | None = None
    usb_serial: str | None = None
    baudrate: int = 115200
    host: Endpoint | None = None
    forward: Endpoint | None = None


@dataclass(frozen=True)
class OtaSpec:
    """Where the firmware dials and which regions hold the app and the download."""

    server: Endpoint
    app_region: str = "app_slot"
    staging_region: str = "scratch"


@dataclass(frozen=True)
class DebugSpec:
    """What the rig sets up through the probe when it connects."""

    #: set DBGMCU_APB1_FZ.DBG_IWDG_STOP and DBG_WWDG_STOP: the watchdogs stop while the rig
    #: holds the core halted (at a breakpoint, during readback), as an IDE's "suspend
    #: watchdog counters while halted" does. Without it a running IWDG resets the board in
    #: the middle of a long halt; the firmware's own watchdog behaviour while it runs is
    #: unchanged (the bits only act in debug halt).
    freeze_watchdogs: bool = True


@dataclass(frozen=True)
class BoardSpec:
    """A validated board description (see :func:`load_board`)."""

    name: str
    mcu: str
    source: str
    memory: Mapping[str, MemoryRegion]
    flash_memory: str
    option_bytes: Mapping[str, int]
    ota: OtaSpec
    contract: JumpContract
    targets: Mapping[str, TargetSpec]
    _layouts: Mapping[bool, FlashLayout]
    _layout_errors: Mapping[bool, ConfigError] = field(default_factory=dict, compare=False)
    debug: DebugSpec = field(default_factory=lambda: DebugSpec())

    # -- layouts and regions
    @property
    def dual_bank(self) -> bool:
        """The bank mode the board is expected in (option byte nDBANK == 0)."""
        return self.option_bytes.get("nDBANK", 1) == 0

    @property
    def active_layout(self) -> FlashLayout:
        """The layout of the expected bank mode."""
        return self._layouts[self.dual_bank]

    def layout(self, dual_bank: bool | None = None) -> FlashLayout:
        """Sector table and regions for a bank mode (default: the expected one).

        Raises:
            ConfigError: the regions are not on sector boundaries in that mode.
        """
        dual = self.dual_bank if dual_bank is None else bool(dual_bank)
        if dual in self._layout_errors:
            raise self._layout_errors[dual]
        if dual not in self._layouts:
            raise ConfigError(
                f"the board has no {'dual' if dual else 'single'}_bank layout",
                source=self.source,
                key_path="flash",
                expected=f"flash.{'dual' if dual else 'single'}_bank",
            )
        return self._layouts[dual]

    @property
    def regions(self) -> Mapping[str, Region]:
        """OTA regions with their sectors in the expected bank mode."""
        return self.active_layout.regions

    def region(self, name: str) -> Region:
        """Return OTA region ``name``; ConfigError naming the known ones otherwise."""
        try:
            return self.regions[name]
        except KeyError:
            raise ConfigError(
                f"no region {name!r}",
                source=self.source,
                key_path="regions",
                expected=" | ".join(self.regions),
            ) from None

    def sectors_needed(self, region: str, nbytes: int, dual_bank: bool | None = None) -> list[Sector]:
        """Sectors an image of ``nbytes`` written at the start of ``region`` occupies."""
        reg = self.layout(dual_bank).regions.get(region) or self.region(region)
        if nbytes > reg.size:
            raise ConfigError(
                f"{nbytes} bytes do not fit region {region!r} ({reg.size} bytes)",
                source=self.source,
                key_path=f"regions.{region}.size",
                expected=f"at most {reg.size} bytes",
            )
        return self.layout(dual_bank).sectors_for_span(reg.base, nbytes)

    @property
    def max_image_size(self) -> int:
        """Largest OTA image: the smaller of the app region and the staging region."""
        sizes = [
            self.regions[n].size for n in (self.ota.app_region, self.ota.staging_region) if n in self.regions
        ]
        return min(sizes)

    def ota_writable(self) -> list[tuple[int, int]]:
        """``(base, size)`` of every region an OTA may write."""
        return [(r.base, r.size) for r in self.regions.values() if r.ota_writable]

    # -- memory map
    @property
    def flash(self) -> MemoryRegion:
        """The main flash memory entry."""
        return self.memory[self.flash_memory]

    def ram_regions(self) -> list[MemoryRegion]:
        """Memory entries of kind ``ram``."""
        return [m for m in self.memory.values() if m.kind == "ram"]

    def in_ram(self, address: int, length: int = 0) -> bool:
        """True if ``[address, address+length)`` is in RAM; length 0 accepts the end address
        (an initial stack pointer may be the first address after RAM)."""
        spans = _merge_spans((m.base, m.end) for m in self.ram_regions())
        if length == 0:
            return any(lo < address <= hi for lo, hi in spans)
        return any(lo <= address and address + length <= hi for lo, hi in spans)

    def to_flash_address(self, address: int) -> int:
        """Translate an address in a flash alias (e.g. ITCM 0x0020xxxx) to the AXIM address."""
        for mem in self.memory.values():
            if mem.kind == "alias" and mem.contains(address):
                target = self.memory[mem.alias_of or ""]
                return target.base + (address - mem.base)
        return address

    def memory_at(self, address: int) -> MemoryRegion | None:
        """The memory-map entry containing ``address`` (aliases included), or None."""
        for mem in self.memory.values():
            if mem.contains(address):
                return mem
        return None


def _merge_spans(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(a, b) for a, b in out]


# --------------------------------------------------------------------------- parsing helpers

_SIZE_RE = re.compile(r"^\s*(0x[0-9a-fA-F_]+|\d[\d_]*(?:\.\d+)?)\s*([KkMm]i?[Bb]?)?\s*$")


class _Ctx:
    """Validation context: the source file, for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str, expected: str | None = None) -> ConfigError:
        return ConfigError(
            message,
            source=self.source,
            key_path=path or "<top>",
            expected=expected,
            hint="see docs/board-file.md",
        )

    def mapping(
        self, value: Any, path: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"got {type(value).__name__}", "a mapping")
        allowed = tuple(allowed)
        for key in value:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}" if path else str(key), "unknown key", "one of " + ", ".join(allowed)
                )
        for key in required:
            if key not in value:
                raise self.fail(f"{path}.{key}" if path else key, "missing key", "a value")
        return value

    def integer(self, value: Any, path: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.fail(path, f"got {value!r}", "an integer")
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError:
                raise self.fail(path, f"got {value!r}", "an integer (decimal or 0x hex)") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise self.fail(path, f"got {value}", f"an integer in {lo}..{hi}")
        return value

    def size(self, value: Any, path: str) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            n = value
        elif isinstance(value, str) and (m := _SIZE_RE.match(value)):
            num, unit = m.groups()
            scale = {"k": 1024, "m": 1024 * 1024}.get((unit or " ")[0].lower(), 1)
            number = (
                int(num.replace("_", ""), 0) if num.lower().startswith("0x") else float(num.replace("_", ""))
            )
            n = int(number * scale)
            if n != number * scale:
                raise self.fail(path, f"{value!r} is not a whole number of bytes", "a size in bytes")
        else:
            raise self.fail(path, f"got {value!r}", "a size: integer bytes or a string like '32K', '2M'")
        if n <= 0:
            raise self.fail(path, f"got {n}", "a positive size")
        return n

    def string(self, value: Any, path: str, optional: bool = False) -> str | None:
        if value is None and optional:
            return None
        if not isinstance(value, str) or not value:
            raise self.fail(path, f"got {value!r}", "a non-empty string")
        return value

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"got {value!r}", "true or false")
        return value

    def endpoint(self, value: Any, path: str) -> Endpoint:
        if isinstance(value, dict):
            value = self.mapping(value, path, ("ip", "port"), ("ip", "port"))
            ip, port = value["ip"], value["port"]
        elif isinstance(value, str) and value.count(":") == 1:
            ip, port = value.split(":")
        else:
            raise self.fail(path, f"got {value!r}", "'IP:PORT' or {ip: IP, port: PORT}")
        try:
            ipaddress.IPv4Address(str(ip))
        except ValueError:
            raise self.fail(path, f"bad IPv4 address {ip!r}", "a dotted IPv4 address") from None
        return Endpoint(str(ip), self.integer(port, f"{path}.port", 1, 65535))


# --------------------------------------------------------------------------- loading


def load_board(path: str | Path | None = None) -> BoardSpec:
    """Load and validate a board YAML file (default: :func:`default_board_path`).

    Raises:
        ConfigError: the file is missing, not YAML, or a key is unknown, missing or invalid.
    """
    path = Path(path) if path is not None else default_board_path()
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read board file: {exc.strerror or exc}",
            source=source,
            hint="pass --board with an existing file, e.g. boards/stm32f767.yaml",
        ) from None
    return parse_board(text, source)


def parse_board(text: str, source: str = "<string>") -> BoardSpec:
    """Validate board YAML ``text``; ``source`` names it in error messages."""
    ctx = _Ctx(source)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError(
            f"malformed YAML: {where}{getattr(exc, 'problem', None) or exc}",
            source=source,
            hint="fix the YAML syntax (indentation, colons, brackets)",
        ) from None
    top = ctx.mapping(
        doc,
        "",
        ("name", "mcu", "memory", "flash", "option_bytes", "regions", "ota", "contract", "targets", "debug"),
        ("name", "memory", "flash", "regions", "ota", "contract", "targets"),
    )
    name = ctx.string(top["name"], "name") or ""
    mcu = ctx.string(top.get("mcu", name), "mcu") or ""
    memory = _parse_memory(ctx, top["memory"])
    flash_mem, layouts_raw = _parse_flash(ctx, top["flash"], memory)
    option_bytes = _parse_option_bytes(ctx, top.get("option_bytes", {}))
    region_defs = _parse_regions(ctx, top["regions"], memory[flash_mem])
    ota = _parse_ota(ctx, top["ota"], region_defs)
    contract = _parse_contract(ctx, top["contract"])
    targets = _parse_targets(ctx, top["targets"])
    dbg = ctx.mapping(top.get("debug") or {}, "debug", ("freeze_watchdogs",))
    debug = DebugSpec(
        **(
            {"freeze_watchdogs": ctx.boolean(dbg["freeze_watchdogs"], "debug.freeze_watchdogs")}
            if "freeze_watchdogs" in dbg
            else {}
        )
    )

    active_dual = option_bytes.get("nDBANK", 1) == 0
    if active_dual not in layouts_raw:
        raise ctx.fail(
            "option_bytes.nDBANK",
            f"nDBANK={int(not active_dual)} but flash has no "
            f"{'dual_bank' if active_dual else 'single_bank'} layout",
            "a matching layout",
        )
    mem = memory[flash_mem]
    layouts: dict[bool, FlashLayout] = {}
    errors: dict[bool, ConfigError] = {}
    for dual, sectors in layouts_raw.items():
        try:
            regions = _map_regions(ctx, region_defs, sectors, dual)
        except ConfigError as exc:
            if dual == active_dual:
                raise
            errors[dual] = exc  # the inactive layout does not fit the regions: raise on use
            regions = {}
        layouts[dual] = FlashLayout(dual, mem.base, mem.size, sectors, regions)
    return BoardSpec(
        name, mcu, source, memory, flash_mem, option_bytes, ota, contract, targets, layouts, errors, debug
    )


def _parse_memory(ctx: _Ctx, raw: Any) -> dict[str, MemoryRegion]:
    if not isinstance(raw, dict) or not raw:
        raise ctx.fail("memory", f"got {raw!r}", "a mapping of memory regions")
    out: dict[str, MemoryRegion] = {}
    for name, entry in raw.items():
        p = f"memory.{name}"
        e = ctx.mapping(
            entry, p, ("base", "size", "kind", "alias_of", "description"), ("base", "size", "kind")
        )
        kind = e["kind"]
        if kind not in MEMORY_KINDS:
            raise ctx.fail(f"{p}.kind", f"got {kind!r}", " | ".join(MEMORY_KINDS))
        alias_of = ctx.string(e.get("alias_of"), f"{p}.alias_of", optional=True)
        if (kind == "alias") != (alias_of is not None):
            raise ctx.fail(
                f"{p}.alias_of",
                "alias_of goes with kind 'alias' (and only with it)",
                "alias_of naming another memory entry",
            )
        out[str(name)] = MemoryRegion(
            str(name),
            ctx.integer(e["base"], f"{p}.base", 0, 0xFFFFFFFF),
            ctx.size(e["size"], f"{p}.size"),
            kind,
            alias_of,
            str(e.get("description", "")),
        )
    for mem in out.values():
        if mem.alias_of is not None:
            target = out.get(mem.alias_of)
            if target is None:
                raise ctx.fail(
                    f"memory.{mem.name}.alias_of", f"no memory entry {mem.alias_of!r}", " | ".join(out)
                )
            if target.size != mem.size:
                raise ctx.fail(
                    f"memory.{mem.name}.size", "alias size differs from its target", f"{target.size}"
                )
    return out


def _parse_flash(
    ctx: _Ctx, raw: Any, memory: Mapping[str, MemoryRegion]
) -> tuple[str, dict[bool, tuple[Sector, ...]]]:
    f = ctx.mapping(raw, "flash", ("memory", "single_bank", "dual_bank"), ("memory",))
    mem_name = ctx.string(f["memory"], "flash.memory") or ""
    mem = memory.get(mem_name)
    if mem is None or mem.kind != "flash":
        raise ctx.fail(
            "flash.memory",
            f"{mem_name!r} is not a memory entry of kind flash",
            " | ".join(m.name for m in memory.values() if m.kind == "flash") or "a flash entry",
        )
    layouts: dict[bool, tuple[Sector, ...]] = {}
    for key, dual in (("single_bank", False), ("dual_bank", True)):
        if key in f:
            layouts[dual] = _parse_banks(ctx, f[key], f"flash.{key}", mem)
    if not layouts:
        raise ctx.fail("flash", "no sector layout", "single_bank and/or dual_bank")
    return mem_name, layouts


def _parse_banks(ctx: _Ctx, raw: Any, path: str, mem: MemoryRegion) -> tuple[Sector, ...]:
    if not isinstance(raw, list) or not raw:
        raise ctx.fail(path, f"got {raw!r}", "a list of banks")
    sectors: list[Sector] = []
    for b, bank_raw in enumerate(raw):
        bp = f"{path}[{b}]"
        bank = ctx.mapping(
            bank_raw, bp, ("bank", "base", "first_sector", "snb", "sectors"), ("bank", "base", "sectors")
        )
        bank_no = ctx.integer(bank["bank"], f"{bp}.bank", 1, 2)
        addr = ctx.integer(bank["base"], f"{bp}.base", 0, 0xFFFFFFFF)
        first = ctx.integer(bank.get("first_sector", len(sectors)), f"{bp}.first_sector", 0, 255)
        snb0 = ctx.integer(bank.get("snb", first), f"{bp}.snb", 0, 0x1F)
        if first != len(sectors):
            raise ctx.fail(
                f"{bp}.first_sector", f"got {first}", f"{len(sectors)} (sectors are numbered in order)"
            )
        expected_base = sectors[-1].end if sectors else mem.base
        if addr != expected_base:
            raise ctx.fail(f"{bp}.base", f"got 0x{addr:08X}", f"0x{expected_base:08X} (banks are contiguous)")
        groups = bank["sectors"]
        if not isinstance(groups, list) or not groups:
            raise ctx.fail(f"{bp}.sectors", f"got {groups!r}", "a list of {count, size}")
        n_in_bank = 0
        for g, grp in enumerate(groups):
            gp = f"{bp}.sectors[{g}]"
            grp = ctx.mapping(grp, gp, ("count", "size"), ("count", "size"))
            count = ctx.integer(grp["count"], f"{gp}.count", 1, 64)
            size = ctx.size(grp["size"], f"{gp}.size")
            for _ in range(count):
                snb = snb0 + n_in_bank
                if snb > 0x1F:
                    raise ctx.fail(f"{bp}.snb", f"SNB 0x{snb:X} does not fit 5 bits", "snb + sectors <= 0x1F")
                sectors.append(Sector(len(sectors), bank_no, snb, addr, size))
                addr += size
                n_in_bank += 1
    if sectors[-1].end != mem.end:
        raise ctx.fail(
            path,
            f"sectors end at 0x{sectors[-1].end:08X}",
            f"they cover {mem.name} exactly (end 0x{mem.end:08X})",
        )
    return tuple(sectors)


def _parse_option_bytes(ctx: _Ctx, raw: Any) -> dict[str, int]:
    ob = ctx.mapping(raw, "option_bytes", ("nDBANK", "BOOT_ADD0", "BOOT_ADD1"))
    out: dict[str, int] = {}
    if "nDBANK" in ob:
        out["nDBANK"] = ctx.integer(ob["nDBANK"], "option_bytes.nDBANK", 0, 1)
    for key in ("BOOT_ADD0", "BOOT_ADD1"):
        if key in ob:
            out[key] = ctx.integer(ob[key], f"option_bytes.{key}", 0, 0xFFFF)
    return out


def _parse_regions(ctx: _Ctx, raw: Any, flash: MemoryRegion) -> list[tuple[str, int, int, bool, str]]:
    regs = ctx.mapping(raw, "regions", OTA_REGION_NAMES, ("app_slot",))
    out: list[tuple[str, int, int, bool, str]] = []
    for name, entry in regs.items():
        p = f"regions.{name}"
        e = ctx.mapping(entry, p, ("base", "size", "ota_writable", "description"), ("base", "size"))
        base = ctx.integer(e["base"], f"{p}.base", 0, 0xFFFFFFFF)
        size = ctx.size(e["size"], f"{p}.size")
        writable = ctx.boolean(e.get("ota_writable", name != "bootloader"), f"{p}.ota_writable")
        if not flash.contains(base, size):
            raise ctx.fail(
                p,
                f"0x{base:08X}+0x{size:X} is outside {flash.name}",
                f"inside 0x{flash.base:08X}..0x{flash.end - 1:08X}",
            )
        out.append((str(name), base, size, writable, str(e.get("description", ""))))
    ordered = sorted(out, key=lambda r: r[1])
    for a, b in zip(ordered, ordered[1:]):
        if a[1] + a[2] > b[1]:
            raise ctx.fail(
                f"regions.{b[0]}",
                f"overlaps regions.{a[0]} (0x{a[1]:08X}..0x{a[1] + a[2] - 1:08X})",
                f"a base >= 0x{a[1] + a[2]:08X}",
            )
    return out


def _map_regions(
    ctx: _Ctx, defs: Iterable[tuple[str, int, int, bool, str]], sectors: tuple[Sector, ...], dual: bool
) -> dict[str, Region]:
    starts = {s.base: s for s in sectors}
    end = sectors[-1].end
    mode = "dual_bank" if dual else "single_bank"
    out: dict[str, Region] = {}
    for name, base, size, writable, desc in defs:
        for key, addr in (("base", base), ("size", base + size)):
            if addr not in starts and addr != end:
                near = [s.base for s in sectors if s.base <= addr][-1:] + [
                    s.end for s in sectors if s.end > addr
                ][:1]
                raise ctx.fail(
                    f"regions.{name}.{key}",
                    f"{'start' if key == 'base' else 'end'} 0x{addr:08X} is not on a {mode} sector boundary",
                    " or ".join(f"0x{a:08X}" for a in near),
                )
        idx = tuple(s.index for s in sectors if base <= s.base < base + size)
        out[name] = Region(name, base, size, idx, writable, desc)
    return out


def _parse_ota(ctx: _Ctx, raw: Any, region_defs: list[tuple[str, int, int, bool, str]]) -> OtaSpec:
    o = ctx.mapping(raw, "ota", ("server", "app_region", "staging_region"), ("server",))
    names = [r[0] for r in region_defs]
    app = ctx.string(o.get("app_region", "app_slot"), "ota.app_region") or ""
    staging = ctx.string(o.get("staging_region", "scratch"), "ota.staging_region") or ""
    for key, val in (("app_region", app), ("staging_region", staging)):
        if val not in names:
            raise ctx.fail(f"ota.{key}", f"no region {val!r}", " | ".join(names))
    return OtaSpec(ctx.endpoint(o["server"], "ota.server"), app, staging)


def _parse_contract(ctx: _Ctx, raw: Any) -> JumpContract:
    c = ctx.mapping(raw, "contract", CONTRACT_ITEMS)
    items: dict[str, ContractItem] = {}
    for name, entry in c.items():
        p = f"contract.{name}"
        e = ctx.mapping(entry, p, ("enabled", "reason"), ("enabled", "reason"))
        items[name] = ContractItem(
            name, ctx.boolean(e["enabled"], f"{p}.enabled"), ctx.string(e["reason"], f"{p}.reason") or ""
        )
    return JumpContract(items)


def _parse_targets(ctx: _Ctx, raw: Any) -> dict[str, TargetSpec]:
    t = ctx.mapping(raw, "targets", TARGET_NAMES)
    out: dict[str, TargetSpec] = {}
    keys = {
        "twin": ("pyocd_target", "forward"),
        "nucleo": ("pyocd_target", "probe_uid", "serial_port", "usb_serial", "baudrate", "host"),
    }
    for name, entry in t.items():
        p = f"targets.{name}"
        e = ctx.mapping(entry or {}, p, keys[name])
        kw: dict[str, Any] = {}
        if "pyocd_target" in e:
            kw["pyocd_target"] = ctx.string(e["pyocd_target"], f"{p}.pyocd_target")
        for key in ("probe_uid", "serial_port", "usb_serial"):
            if key in e:
                val = e[key]
                kw[key] = None if val is None else ctx.string(str(val), f"{p}.{key}")
        if "baudrate" in e:
            kw["baudrate"] = ctx.integer(e["baudrate"], f"{p}.baudrate", 300, 20_000_000)
        for key in ("host", "forward"):
            if key in e and e[key] is not None:
                kw[key] = ctx.endpoint(e[key], f"{p}.{key}")
        out[name] = TargetSpec(name, **kw)
    return out
