"""The validated board description: what :func:`rig.board.load_board` returns.

Frozen dataclasses only (memory map, sector layouts, OTA regions, jump contract, targets) and
the lookups the rig makes on them. Reading and checking the YAML file is not done here: the
schema is :mod:`rig.board_schema`, the loading and the cross-checks :mod:`rig.board`.
Import these names from :mod:`rig.board`, which re-exports them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from rig.board_sector import Sector
from rig.board_update import UPDATE_METHODS, UpdateSpec  # noqa: F401 (re-exported)
from rig.board_wiring import ConsoleSpec, EthSpec, WincSpec
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
    "clocks",
)
TARGET_NAMES = ("twin", "nucleo")
#: the HSE when the board file gives no ``hse_hz``: a NUCLEO-F767ZI's 8 MHz from the ST-LINK (MCO)
NUCLEO_HSE_HZ = 8_000_000


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
class Region:
    """A region of the board file (bootloader, config, app_slot, scratch, or one of the
    user's own) and the sectors it covers. ``preserve``: None, ``"exact"`` or ``"append"``
    (what must hold for its bytes after every update and power cut)."""

    name: str
    base: int
    size: int
    sectors: tuple[int, ...]
    ota_writable: bool
    description: str = ""
    preserve: str | None = None

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
    #: SWD clock in Hz pyOCD sets on the probe (None: pyOCD's default, 1 MHz)
    swd_frequency: int | None = None
    #: where the OTA server listens when the lab network carries the board's connections to
    #: ``host`` somewhere else (a NAT, a port forward); None: on ``host``
    listen: Endpoint | None = None
    #: the board's own IPv4 address: the OTA server accepts connections from it only
    board_ip: str | None = None
    #: several boards on this host (``targets.nucleo.boards``), one per xdist worker
    boards: tuple[LabBoard, ...] = ()
    #: further pyOCD session options (``targets.nucleo.pyocd_options``)
    pyocd_options: Mapping[str, object] = field(default_factory=dict)
    #: the user's pyocd.yaml (absolute; relative paths are taken from the board file's folder)
    pyocd_config: str | None = None
    #: regex of what the board prints when it boots after the run (None: any line)
    banner: str | None = None
    #: the labgrid place(s) the board is acquired from (``A,B``: one per xdist worker; rig.labgrid_place)
    labgrid_place: str | None = None


@dataclass(frozen=True)
class PowerSpec:
    """How the rig cuts a real board's power (``power:``): ``uhubctl`` = (hub location, port),
    or ``command`` = (off, on) command lines; ``off_time`` s without power, then ``settle`` s
    at most for the probe and console to come back."""

    uhubctl: tuple[str, int] | None = None
    command: tuple[str, str] | None = None
    off_time: float = 2.0
    settle: float = 5.0
    #: folder relative relay-script paths are taken from (the board file's)
    base_dir: str | None = None


@dataclass(frozen=True)
class LabBoard:
    """One real board on this host: its probe, its console, the one address it dials (and
    the OTA server listens on), its own address, its power switch."""

    probe_uid: str | None
    host: Endpoint
    board_ip: str | None = None
    serial_port: str | None = None
    usb_serial: str | None = None
    power: PowerSpec | None = None
    #: the board-file key ``host`` came from, for messages
    host_key: str = "ota.server"
    #: where the OTA server listens, if the lab network carries the board's connections to
    #: ``host`` elsewhere (a NAT, a port forward); None: on ``host``
    listen: Endpoint | None = None
    listen_key: str = ""

    @property
    def bind(self) -> Endpoint:
        """Where this board's OTA server listens: ``listen``, else where the board dials."""
        return self.listen or self.host

    @property
    def bind_key(self) -> str:
        """The board-file key :attr:`bind` came from."""
        return self.listen_key if self.listen else self.host_key


@dataclass(frozen=True)
class OtaSpec:
    """Where the firmware dials, which regions hold the app and the download, the protocol
    (``reference``, ``thread`` or ``module:Class``, with its constructor options) and the
    transports the bootloader has."""

    server: Endpoint
    app_region: str = "app_slot"
    staging_region: str = "scratch"
    protocol: str = "reference"
    protocol_options: Mapping[str, object] = field(default_factory=dict)
    transports: tuple[str, ...] = ("eth", "wifi")
    #: seconds from power-up (or a reset) within which the bootloader, when it wants an
    #: update, has connected to the OTA server (link, DHCP and its own retries included)
    ask_within: float = 20.0


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
    debug: DebugSpec = field(default_factory=DebugSpec)
    #: how to cut a real board's power (``power:``), None: no switch
    power: PowerSpec | None = None
    #: how the bootloader is asked for an update (``update:``)
    update: UpdateSpec = field(default_factory=UpdateSpec)
    #: how the WINC3400 is wired (``winc:``); None: not given (the thread's shield)
    winc: WincSpec | None = None
    #: how the Ethernet PHY is wired (``eth:``); None: not given (the NUCLEO's LAN8742A)
    eth: EthSpec | None = None
    #: the console's U(S)ART (``console:``); USART3 (the NUCLEO's VCP) when not given
    console: ConsoleSpec = field(default_factory=ConsoleSpec)
    #: the HSE's frequency (``hse_hz:``): the NUCLEO's 8 MHz from the ST-LINK (MCO) by default
    hse_hz: int = NUCLEO_HSE_HZ

    def lab_boards(self) -> list[LabBoard]:
        """The real boards this file describes: ``targets.nucleo.boards``, or the one board of
        ``targets.nucleo`` (dialling ``ota.server``). Empty without a ``nucleo`` target."""
        nucleo = self.targets.get("nucleo")
        if nucleo is None:
            return []
        if nucleo.boards:  # a board without a power switch of its own uses power:
            return [b if b.power else replace(b, power=self.power) for b in nucleo.boards]
        return [
            LabBoard(
                probe_uid=nucleo.probe_uid,
                host=nucleo.host or self.ota.server,
                board_ip=nucleo.board_ip,
                serial_port=nucleo.serial_port,
                usb_serial=nucleo.usb_serial,
                power=self.power,
                host_key="targets.nucleo.host" if nucleo.host else "ota.server",
                listen=nucleo.listen,
                listen_key="targets.nucleo.listen",
            )
        ]

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

    def preserved(self) -> list[Region]:
        """The regions marked ``preserve`` (settings, identity, calibration), by address."""
        return sorted((r for r in self.regions.values() if r.preserve), key=lambda r: r.base)

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
