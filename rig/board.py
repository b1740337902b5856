"""Loading a board file: memory map, flash sector layouts, OTA regions, jump contract, targets.

``load_board(path)`` reads a board YAML file (see ``docs/board-file.md``), validates every key
and returns a frozen :class:`BoardSpec`. Errors are :class:`~rig.errors.ConfigError` naming the
file, the dotted key path and what was expected. Nothing unknown is silently ignored.

Three modules, one job each: :mod:`rig.board_schema` checks each key on its own (pydantic
models and the one error formatter), this module checks what needs the whole file (banks that
cover the flash, regions on sector boundaries of both bank modes, names that refer to other
entries) while it builds the spec, and :mod:`rig.board_spec` holds the spec's dataclasses and
lookups. Import them from here: this module re-exports them.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rig import board_schema as schema
from rig.board_spec import (
    CONTRACT_ITEMS,
    MEMORY_KINDS,
    NUCLEO_HSE_HZ,
    OTA_REGION_NAMES,
    TARGET_NAMES,
    BoardSpec,
    ConsoleSpec,
    ContractItem,
    DebugSpec,
    Endpoint,
    EthSpec,
    FlashLayout,
    JumpContract,
    LabBoard,
    Location,
    MemoryRegion,
    OtaSpec,
    PowerSpec,
    Region,
    Sector,
    TargetSpec,
    UpdateSpec,
    WincSpec,
)
from rig.board_update import build_update
from rig.board_yaml import load_yaml, read_board_text
from rig.errors import ConfigError

__all__ = [
    "CONTRACT_ITEMS",
    "MEMORY_KINDS",
    "OTA_REGION_NAMES",
    "TARGET_NAMES",
    "BoardSpec",
    "ConsoleSpec",
    "ContractItem",
    "DebugSpec",
    "Endpoint",
    "EthSpec",
    "FlashLayout",
    "JumpContract",
    "LabBoard",
    "Location",
    "MemoryRegion",
    "OtaSpec",
    "PowerSpec",
    "Region",
    "Sector",
    "TargetSpec",
    "UpdateSpec",
    "WincSpec",
    "default_board_path",
    "load_board",
    "parse_board",
]


def default_board_path() -> Path:
    """Return the default board file, ``boards/stm32f767.yaml`` (installed as ``rig.boards``)."""
    from importlib.resources import files

    return Path(str(files("rig.boards").joinpath("stm32f767.yaml")))


def load_board(path: str | Path | None = None) -> BoardSpec:
    """Load and validate a board YAML file (default: :func:`default_board_path`).

    Raises:
        ConfigError: the file is missing, not a regular file, over 1 MiB, not UTF-8, not YAML
            (or YAML past the limits of :mod:`rig.board_yaml`: nesting, aliases, a key given
            twice), or a key is unknown, missing or invalid.
    """
    path = Path(path) if path is not None else default_board_path()
    return parse_board(read_board_text(path), str(path))


def parse_board(text: str, source: str = "<string>") -> BoardSpec:
    """Validate board YAML ``text``; ``source`` names it in error messages."""
    doc = load_yaml(text, source)
    if doc is None:
        raise ConfigError(
            "the board file holds no YAML document (empty, or only comments)",
            source=source,
            hint="start from boards/stm32f767.yaml; see docs/board-file.md",
        )
    try:
        board = schema.BoardFile.model_validate(doc)
    except ValidationError as exc:
        raise schema.config_error(exc, source) from None
    return _Builder(source).build(board)


class _Builder:
    """Turns a schema-valid :class:`~rig.board_schema.BoardFile` into a :class:`BoardSpec`,
    checking what needs more than one key; errors read like the schema's."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str, expected: str | None = None) -> ConfigError:
        return ConfigError(
            message, source=self.source, key_path=path, expected=expected, hint=schema.DOC_HINT
        )

    def build(self, board: schema.BoardFile) -> BoardSpec:
        memory = self.memory(board.memory)
        flash = self.flash_memory(board.flash.memory, memory)
        layouts_raw = {
            dual: self.sectors(banks, f"flash.{key}", flash)
            for key, dual, banks in (
                ("single_bank", False, board.flash.single_bank),
                ("dual_bank", True, board.flash.dual_bank),
            )
            if banks is not None
        }
        if not layouts_raw:
            raise self.fail("flash", "no sector layout", "single_bank and/or dual_bank")
        option_bytes = board.option_bytes.model_dump(exclude_none=True)
        regions = self.regions(board.regions, flash)
        ota = self.ota(board.ota, regions)
        active_dual = option_bytes.get("nDBANK", 1) == 0
        if active_dual not in layouts_raw:
            raise self.fail(
                "option_bytes.nDBANK",
                f"nDBANK={int(not active_dual)} but flash has no "
                f"{'dual_bank' if active_dual else 'single_bank'} layout",
                "a matching layout",
            )
        layouts: dict[bool, FlashLayout] = {}
        errors: dict[bool, ConfigError] = {}
        for dual, sectors in layouts_raw.items():
            try:
                mapped = self.map_regions(regions, sectors, dual)
            except ConfigError as exc:
                if dual == active_dual:
                    raise
                errors[dual] = exc  # the inactive layout does not fit the regions: raise on use
                mapped = {}
            layouts[dual] = FlashLayout(dual, flash.base, flash.size, sectors, mapped)
        return BoardSpec(
            name=board.name,
            mcu=board.mcu or board.name,
            source=self.source,
            memory=memory,
            flash_memory=flash.name,
            option_bytes=option_bytes,
            ota=ota,
            contract=_contract(board.contract),
            targets=_targets(board.targets, ota.server, self),
            _layouts=layouts,
            _layout_errors=errors,
            debug=DebugSpec(**(board.debug.model_dump() if board.debug else {})),
            power=_power(board.power, self.source),
            update=build_update(board.update, regions, memory, ota, self.source),
            winc=_winc(board.winc),
            eth=_eth(board.eth),
            console=_console(board.console),
            hse_hz=board.hse_hz or NUCLEO_HSE_HZ,
        )

    def memory(self, entries: dict[str, schema.MemoryEntry]) -> dict[str, MemoryRegion]:
        out = {
            name: MemoryRegion(name, e.base, e.size, e.kind, e.alias_of, e.description)
            for name, e in entries.items()
        }
        for mem in out.values():
            if mem.alias_of is None:
                continue
            target = out.get(mem.alias_of)
            if target is None:
                raise self.fail(
                    f"memory.{mem.name}.alias_of", f"no memory entry {mem.alias_of!r}", " | ".join(out)
                )
            if target.size != mem.size:
                raise self.fail(
                    f"memory.{mem.name}.size", "alias size differs from its target", f"{target.size}"
                )
        return out

    def flash_memory(self, name: str, memory: dict[str, MemoryRegion]) -> MemoryRegion:
        mem = memory.get(name)
        if mem is None or mem.kind != "flash":
            raise self.fail(
                "flash.memory",
                f"{name!r} is not a memory entry of kind flash",
                " | ".join(m.name for m in memory.values() if m.kind == "flash") or "a flash entry",
            )
        return mem

    def sectors(self, banks: list[schema.Bank], path: str, mem: MemoryRegion) -> tuple[Sector, ...]:
        """The sector table of one bank mode: banks contiguous, numbered in order, covering ``mem``."""
        sectors: list[Sector] = []
        for b, bank in enumerate(banks):
            bp = f"{path}[{b}]"
            first = len(sectors) if bank.first_sector is None else bank.first_sector
            snb0 = first if bank.snb is None else bank.snb
            if first != len(sectors):
                raise self.fail(
                    f"{bp}.first_sector", f"got {first}", f"{len(sectors)} (sectors are numbered in order)"
                )
            addr = sectors[-1].end if sectors else mem.base
            if bank.base != addr:
                raise self.fail(
                    f"{bp}.base", f"got 0x{bank.base:08X}", f"0x{addr:08X} (banks are contiguous)"
                )
            sizes = [g.size for g in bank.sectors for _ in range(g.count)]
            if snb0 + len(sizes) - 1 > 0x1F:
                raise self.fail(
                    f"{bp}.snb",
                    f"the bank's {len(sizes)} sectors need SNB 0x{snb0:02X}..0x{snb0 + len(sizes) - 1:02X},"
                    " more than the 5 bits of FLASH_CR.SNB",
                    f"snb <= 0x{0x20 - len(sizes):02X}",
                )
            for n, size in enumerate(sizes):
                sectors.append(Sector(len(sectors), bank.bank, snb0 + n, addr, size))
                addr += size
        if sectors[-1].end != mem.end:
            raise self.fail(
                path,
                f"sectors end at 0x{sectors[-1].end:08X}",
                f"they cover {mem.name} exactly (end 0x{mem.end:08X})",
            )
        return tuple(sectors)

    def regions(self, regions: schema.Regions, flash: MemoryRegion) -> list[Region]:
        """The OTA regions (sectors not mapped yet): inside the flash, not overlapping."""
        out: list[Region] = []
        entries = [(name, getattr(regions, name)) for name in OTA_REGION_NAMES]
        for name, e in [*entries, *regions.extra_regions().items()]:
            if e is None:
                continue
            if not flash.contains(e.base, e.size):
                raise self.fail(
                    f"regions.{name}",
                    f"0x{e.base:08X}+0x{e.size:X} is outside {flash.name}",
                    f"inside 0x{flash.base:08X}..0x{flash.end - 1:08X}",
                )
            writable = name != "bootloader" if e.ota_writable is None else e.ota_writable
            out.append(Region(name, e.base, e.size, (), writable, e.description, e.preserve))
        ordered = sorted(out, key=lambda r: r.base)
        for a, b in itertools.pairwise(ordered):
            if a.end > b.base:
                raise self.fail(
                    f"regions.{b.name}",
                    f"overlaps regions.{a.name} (0x{a.base:08X}..0x{a.end - 1:08X})",
                    f"a base >= 0x{a.end:08X}",
                )
        return out

    def map_regions(
        self, regions: list[Region], sectors: tuple[Sector, ...], dual: bool
    ) -> dict[str, Region]:
        """The regions with the sectors they cover in one bank mode; both ends on sector boundaries."""
        starts = {s.base for s in sectors} | {sectors[-1].end}
        mode = "dual_bank" if dual else "single_bank"
        out: dict[str, Region] = {}
        for reg in regions:
            for key, addr in (("base", reg.base), ("size", reg.end)):
                if addr not in starts:
                    near = [s.base for s in sectors if s.base <= addr][-1:] + [
                        s.end for s in sectors if s.end > addr
                    ][:1]
                    raise self.fail(
                        f"regions.{reg.name}.{key}",
                        f"{'start' if key == 'base' else 'end'} 0x{addr:08X} is not on a {mode} sector boundary",
                        " or ".join(f"0x{a:08X}" for a in near),
                    )
            idx = tuple(s.index for s in sectors if reg.base <= s.base < reg.end)
            out[reg.name] = replace(reg, sectors=idx)
        return out

    def ota(self, ota: schema.Ota, regions: list[Region]) -> OtaSpec:
        """The OTA spec: both regions exist, differ, and are ones an OTA may write."""
        by_name = {r.name: r for r in regions}
        writable = " | ".join(r.name for r in regions if r.ota_writable)
        for key in ("app_region", "staging_region"):
            name = getattr(ota, key)
            if name not in by_name:
                raise self.fail(f"ota.{key}", f"no region {name!r}", " | ".join(by_name))
            if not by_name[name].ota_writable:
                raise self.fail(
                    f"ota.{key}",
                    f"regions.{name} is not OTA-writable (ota_writable: false): an update would overwrite it",
                    f"an OTA-writable region: {writable}",
                )
        if ota.app_region == ota.staging_region:
            raise self.fail(
                "ota.staging_region",
                f"the same region as ota.app_region ({ota.app_region!r}): the download would "
                "overwrite the running application",
                f"another region than {ota.app_region!r}, e.g. scratch",
            )
        for key in ("app_region", "staging_region"):
            name = getattr(ota, key)
            if by_name[name].preserve:
                raise self.fail(
                    f"regions.{name}.preserve",
                    f"ota.{key} is regions.{name}: every update rewrites it, it cannot be preserved",
                    "no preserve on the app or staging region",
                )
        return OtaSpec(
            _endpoint(ota.server),
            ota.app_region,
            ota.staging_region,
            protocol=ota.protocol,
            protocol_options=dict(ota.protocol_options or {}),
            transports=tuple(ota.transports),
            ask_within=float(ota.ask_within),
        )


def _endpoint(e: schema.EndpointModel) -> Endpoint:
    return Endpoint(e.ip, e.port)


def _contract(contract: schema.Contract) -> JumpContract:
    items = {
        name: ContractItem(name, entry.enabled, entry.reason)
        for name in CONTRACT_ITEMS
        if (entry := getattr(contract, name)) is not None
    }
    return JumpContract(items)


def _targets(targets: schema.Targets, server: Endpoint, builder: _Builder) -> dict[str, TargetSpec]:
    """Targets given in the file (``twin: {}`` is the twin with every default)."""
    out: dict[str, TargetSpec] = {}
    for name in TARGET_NAMES:
        given: Any = getattr(targets, name)
        if given is None:
            continue
        fields = given.model_dump(exclude_none=True, exclude={"boards"})
        for key in ("host", "forward", "listen"):
            if getattr(given, key, None) is not None:
                fields[key] = _endpoint(getattr(given, key))
        if fields.get("pyocd_config"):
            fields["pyocd_config"] = str(_beside(builder.source, fields["pyocd_config"]))
        if name == "nucleo" and given.boards:
            fields["boards"] = _lab_boards(given, server, builder)
        out[name] = TargetSpec(name, **fields)
    # One address per board: where it dials is where the server listens (issue 15: 3)
    for name, key in (("twin", "forward"), ("nucleo", "host")):
        spec = out.get(name)
        where = getattr(spec, key, None) if spec else None
        if where is not None and where != server:
            raise builder.fail(
                f"targets.{name}.{key}",
                f"{where} differs from ota.server {server}: the board dials one address, and the "
                "OTA server listens there",
                "the same address as ota.server (or leave it out); several boards each give "
                "their own in targets.nucleo.boards",
            )
    return out


def _beside(source: str, path: str) -> Path:
    """``path`` as written in the board file, relative paths taken from the file's folder."""
    given = Path(path).expanduser()
    if given.is_absolute() or source.startswith("<"):
        return given
    return (Path(source).resolve().parent / given).resolve()


def _power(power: schema.Power | None, source: str) -> PowerSpec | None:
    if power is None:
        return None
    return PowerSpec(
        uhubctl=(power.uhubctl.location, power.uhubctl.port) if power.uhubctl else None,
        command=(power.command.off, power.command.on) if power.command else None,
        off_time=float(power.off_time),
        settle=float(power.settle),
        base_dir=None if source.startswith("<") else str(Path(source).resolve().parent),
    )


def _lab_boards(nucleo: schema.NucleoTarget, server: Endpoint, builder: _Builder) -> tuple[LabBoard, ...]:
    """``targets.nucleo.boards``: each board's address defaults to ota.server; no two boards
    may share a probe, a server address (``listen``, else ``host``: the second server could
    not listen) or an own address (the allow-list could not tell them apart)."""
    boards = []
    seen: dict[str, dict[object, int]] = {"probe_uid": {}, "host": {}, "board_ip": {}}
    for i, b in enumerate(nucleo.boards or []):
        board = LabBoard(
            probe_uid=b.probe_uid,
            host=_endpoint(b.host) if b.host else server,
            board_ip=b.board_ip,
            serial_port=b.serial_port,
            usb_serial=b.usb_serial,
            power=_power(b.power, builder.source),
            host_key=f"targets.nucleo.boards[{i}].host" if b.host else "ota.server",
            listen=_endpoint(b.listen) if b.listen else None,
            listen_key=f"targets.nucleo.boards[{i}].listen",
        )
        for key, value in (
            ("probe_uid", board.probe_uid.lower() if board.probe_uid else None),
            ("host", board.bind),
            ("board_ip", board.board_ip),
        ):
            if value is None:
                continue
            if value in seen[key]:
                j = seen[key][value]
                name = "listen" if key == "host" and board.listen else key
                raise builder.fail(
                    f"targets.nucleo.boards[{i}].{name}",
                    f"boards {j} and {i} share {name} {value}",
                    f"a {key} of its own for each board" + (" (host: IP:PORT)" if key == "host" else ""),
                )
            seen[key][value] = i
        boards.append(board)
    return tuple(boards)


def _winc(w: schema.WincWiring | None) -> WincSpec | None:
    """``winc:`` (None: absent, the thread's shield) as a spec."""
    if w is None:
        return None
    pins = None
    if w.sck is not None and w.miso is not None and w.mosi is not None and w.af is not None:
        pins = (w.sck, w.miso, w.mosi, w.af)
    return WincSpec(w.spi, w.cs, w.irqn, w.reset_n, w.chip_en, pins=pins)


def _eth(e: schema.EthWiring | None) -> EthSpec | None:
    """``eth:`` (None: absent, the NUCLEO's LAN8742A) as a spec."""
    if e is None:
        return None
    return EthSpec(e.tx_en, e.txd0, e.txd1, e.phy_address)


def _console(c: schema.ConsoleWiring | None) -> ConsoleSpec:
    """``console:`` (None: absent, USART3) as a spec."""
    if c is None:
        return ConsoleSpec()
    pins = (c.tx, c.rx, c.af) if c.tx is not None and c.rx is not None and c.af is not None else None
    return ConsoleSpec(c.uart, given=True, pins=pins)
