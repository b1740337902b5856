"""The board file's schema: pydantic models of ``boards/*.yaml`` and their error messages.

The models check what one key can be checked for on its own: which keys exist (unknown keys
are refused, ``extra="forbid"``), which are required, types (strict: ``"yes"`` is no bool),
integer ranges, addresses written as integers or ``0x`` strings, sizes with ``K``/``M``
suffixes, ``IP:PORT`` endpoints, and the few rules inside one entry. What needs the whole file
(banks covering the flash, regions on sector boundaries, names that refer to other entries)
is checked by :mod:`rig.board` while it builds the :class:`~rig.board_spec.BoardSpec`. The
``winc:``, ``console:`` and ``eth:`` sections' models are :mod:`rig.board_schema_wiring`'s,
re-exported.

:func:`config_error` is the one place a pydantic ``ValidationError`` becomes the rig's
:class:`~rig.errors.ConfigError`: file, dotted key path, what was got and what was expected,
and the doc to read. Nothing here reads files or knows the spec dataclasses.
"""

from __future__ import annotations

import ipaddress
import re
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from rig.board_schema_wiring import ConsoleWiring, EthWiring, Pin, WincWiring, _pin  # noqa: F401 (re-exported)
from rig.board_types import (  # noqa: F401 (re-exported: the schema's value types)
    DOC_HINT,
    MAX_SIZE,
    Address,
    IntIn,
    Name,
    Serial,
    Size,
    Text,
    _integer,
    _number_to_str,
    _size,
    _Strict,
    got,
    invalid,
)
from rig.board_update import ALL_TRANSPORTS, Transport, Update
from rig.errors import ConfigError


class EndpointModel(_Strict):
    """``IP:PORT`` or ``{ip, port}``."""

    ip: str
    port: Annotated[int, IntIn(1, 65535)]

    @model_validator(mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str) and value.count(":") == 1:
            ip, port = value.split(":")
            return {"ip": ip, "port": port}
        if not isinstance(value, dict):
            raise invalid(f"got {value!r}", "'IP:PORT' or {ip: IP, port: PORT}")
        return value

    @model_validator(mode="after")
    def _ipv4(self) -> EndpointModel:
        try:
            ipaddress.IPv4Address(self.ip)
        except ValueError:
            raise invalid(f"bad IPv4 address {self.ip!r}", "a dotted IPv4 address") from None
        return self


# --------------------------------------------------------------------------- the file


class MemoryEntry(_Strict):
    """``memory.<name>``."""

    base: Address
    size: Size
    kind: Literal["flash", "alias", "ram", "rom", "otp", "id", "register", "option_bytes"]
    alias_of: Name | None = None
    description: Text = ""

    @model_validator(mode="after")
    def _alias_needs_alias_of(self) -> MemoryEntry:
        if (self.kind == "alias") != (self.alias_of is not None):
            raise invalid(
                "alias_of goes with kind 'alias' (and only with it)",
                "alias_of naming another memory entry",
                key="alias_of",
            )
        return self


class SectorGroup(_Strict):
    """``{count, size}``: ``count`` sectors of ``size`` bytes."""

    count: Annotated[int, IntIn(1, 64)]
    size: Size


class Bank(_Strict):
    """One bank of a sector layout (``first_sector`` and ``snb`` default to the running count)."""

    bank: Annotated[int, IntIn(1, 2)]
    base: Address
    first_sector: Annotated[int, IntIn(0, 255)] | None = None
    snb: Annotated[int, IntIn(0, 0x1F)] | None = None
    sectors: Annotated[list[SectorGroup], Field(min_length=1)]


Banks = Annotated[list[Bank], Field(min_length=1)]


class Flash(_Strict):
    """``flash``: the memory entry the sectors cover and the layout of each bank mode."""

    memory: Name
    single_bank: Banks | None = None
    dual_bank: Banks | None = None


class OptionBytes(_Strict):
    """``option_bytes``: values the rig expects on the board (absent: not checked)."""

    nDBANK: Annotated[int, IntIn(0, 1)] | None = None
    BOOT_ADD0: Annotated[int, IntIn(0, 0xFFFF)] | None = None
    BOOT_ADD1: Annotated[int, IntIn(0, 0xFFFF)] | None = None


class RegionEntry(_Strict):
    """``regions.<name>`` (``ota_writable`` absent: false for the bootloader, true otherwise).

    ``preserve``: ``exact`` (every byte must be unchanged after every update and power cut)
    or ``append`` (bytes programmed before stay as they were; the bootloader may program
    erased bytes: a log of records)."""

    base: Address
    size: Size
    ota_writable: bool | None = None
    preserve: Literal["exact", "append"] | None = None
    description: Text = ""


#: a region name of the user's own (``regions.settings``, ``regions.calibration``)
_REGION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class Regions(_Strict):
    """``regions``: the OTA layout, plus any regions of the user's own (settings, identity,
    calibration: lowercase names), each a :class:`RegionEntry`."""

    model_config = ConfigDict(extra="allow", strict=True, frozen=True)
    __pydantic_extra__: dict[str, RegionEntry] = Field(init=False)

    @model_validator(mode="after")
    def _names(self) -> Regions:
        for name in self.__pydantic_extra__ or {}:
            if not _REGION_NAME.match(name):
                raise invalid(
                    f"region name {name!r}",
                    "a lowercase name: a letter, then letters, digits or _ (at most 32)",
                    key=name,
                )
        return self

    def extra_regions(self) -> dict[str, RegionEntry]:
        """The user's own regions, in file order."""
        return dict(self.__pydantic_extra__ or {})

    bootloader: RegionEntry | None = None
    config: RegionEntry | None = None
    app_slot: RegionEntry
    scratch: RegionEntry | None = None


#: a value of ``ota.protocol_options`` (the protocol's constructor keyword arguments)
ProtocolOption = bool | int | float | str


class Ota(_Strict):
    """``ota``."""

    server: EndpointModel
    app_region: Name = "app_slot"
    staging_region: Name = "scratch"
    protocol: Name = "reference"
    protocol_options: dict[str, ProtocolOption] | None = None
    transports: Annotated[list[Transport], Field(min_length=1)] = Field(
        default_factory=lambda: [*ALL_TRANSPORTS]
    )
    ask_within: Annotated[float, Field(gt=0.0, le=3600.0, strict=False)] = 20.0

    @model_validator(mode="after")
    def _unique_transports(self) -> Ota:
        if len(set(self.transports)) != len(self.transports):
            raise invalid(f"got {self.transports}", "each transport once", key="transports")
        return self


class ContractEntry(_Strict):
    """``contract.<item>``."""

    enabled: bool
    reason: Name


class Contract(_Strict):
    """``contract``: the jump contract's items, in :data:`rig.board_spec.CONTRACT_ITEMS` order."""

    vtor: ContractEntry | None = None
    msp: ContractEntry | None = None
    pc: ContractEntry | None = None
    thumb: ContractEntry | None = None
    thread_mode: ContractEntry | None = None
    control: ContractEntry | None = None
    primask: ContractEntry | None = None
    basepri: ContractEntry | None = None
    faultmask: ContractEntry | None = None
    nvic_enabled: ContractEntry | None = None
    nvic_pending: ContractEntry | None = None
    systick: ContractEntry | None = None
    pending_exceptions: ContractEntry | None = None
    mpu: ContractEntry | None = None
    dcache: ContractEntry | None = None
    icache: ContractEntry | None = None
    faults: ContractEntry | None = None
    clocks: ContractEntry | None = None


class TwinTarget(_Strict):
    """``targets.twin``."""

    pyocd_target: Name = "stm32f767zi"
    forward: EndpointModel | None = None
    baudrate: Annotated[int, IntIn(300, 20_000_000)] = 115200  # the host's side of the console line


def _ipv4(value: Any) -> Any:
    """A dotted IPv4 address (a board's own address)."""
    if not isinstance(value, str):
        raise invalid(got(value), "a dotted IPv4 address")
    try:
        return str(ipaddress.IPv4Address(value))
    except ValueError:
        raise invalid(f"bad IPv4 address {value!r}", "a dotted IPv4 address") from None


IPv4 = Annotated[str, BeforeValidator(_ipv4)]
#: a pyOCD session option's value (``targets.nucleo.pyocd_options``)
OptionValue = bool | int | float | str


class Uhubctl(_Strict):
    """``power.uhubctl``: per-port USB power of a hub uhubctl supports (the ST-LINK's port)."""

    location: Name
    port: Annotated[int, IntIn(1, 255)]


class PowerCommand(_Strict):
    """``power.command``: the user's relay script, one command line to cut power, one to
    restore it (split like a shell would, run without a shell)."""

    off: Name
    on: Name


class Power(_Strict):
    """``power``: how the rig cuts a real board's power (exactly one of ``uhubctl``/``command``)."""

    uhubctl: Uhubctl | None = None
    command: PowerCommand | None = None
    off_time: Annotated[float, Field(ge=0.0, le=60.0, strict=False)] = 2.0
    settle: Annotated[float, Field(ge=0.0, le=120.0, strict=False)] = 5.0

    @model_validator(mode="after")
    def _one_switch(self) -> Power:
        if (self.uhubctl is None) == (self.command is None):
            raise invalid("give exactly one switch", "uhubctl: {location, port} or command: {off, on}")
        return self


class NucleoBoard(_Strict):
    """``targets.nucleo.boards[i]``: one of several boards on this host (one per xdist worker)."""

    probe_uid: Annotated[str, BeforeValidator(_number_to_str), Field(min_length=1)]
    host: EndpointModel | None = None
    listen: EndpointModel | None = None
    board_ip: IPv4 | None = None
    serial_port: Serial = None
    usb_serial: Serial = None
    power: Power | None = None


class NucleoTarget(_Strict):
    """``targets.nucleo``."""

    pyocd_target: Name = "stm32f767zi"
    probe_uid: Serial = None
    serial_port: Serial = None
    usb_serial: Serial = None
    baudrate: Annotated[int, IntIn(300, 20_000_000)] = 115200
    host: EndpointModel | None = None
    swd_frequency: Annotated[int, IntIn(1_000, 100_000_000)] | None = None
    listen: EndpointModel | None = None
    board_ip: IPv4 | None = None
    boards: Annotated[list[NucleoBoard], Field(min_length=1)] | None = None
    pyocd_options: dict[str, OptionValue] | None = None
    pyocd_config: Name | None = None
    banner: Name | None = None
    labgrid_place: Serial = None  # a labgrid place (or A,B: one per xdist worker), docs/lab.md


class Targets(_Strict):
    """``targets``: at least one; ``twin: {}`` is the twin with every default (``null`` is
    refused: it reads as "no twin" as much as "the default twin")."""

    twin: TwinTarget | None = None
    nucleo: NucleoTarget | None = None

    @model_validator(mode="before")
    @classmethod
    def _given(cls, value: Any) -> Any:
        if isinstance(value, dict):
            if not value:
                raise invalid("no target", "twin and/or nucleo (twin: {} for every default)")
            for name, entry in value.items():
                if entry is None:
                    raise invalid("got null", "the target's keys, or {} for every default", key=str(name))
        return value


class Debug(_Strict):
    """``debug``."""

    freeze_watchdogs: bool = True


class BoardFile(_Strict):
    """A whole board file, checked key by key (cross-references are checked by rig.board)."""

    name: Name
    mcu: Name | None = None
    memory: Annotated[dict[str, MemoryEntry], Field(min_length=1)]
    flash: Flash
    option_bytes: OptionBytes = OptionBytes()
    regions: Regions
    ota: Ota
    contract: Contract
    targets: Targets
    debug: Debug | None = None
    power: Power | None = None
    update: Update
    winc: WincWiring | None = None
    console: ConsoleWiring | None = None
    eth: EthWiring | None = None
    hse_hz: Annotated[int, IntIn(1_000_000, 50_000_000)] | None = None  # DS11532: HSE 4-26 MHz, bypass 1-50


# --------------------------------------------------------------------------- errors

#: what was expected, for pydantic's own error types (the message is "got <input>")
_EXPECTED = {
    "missing": "a value",
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "bool_type": "true or false",
    "int_type": "an integer",
    "string_type": "a non-empty string",
    "string_too_short": "a non-empty string",
    "float_type": "a number",
    "greater_than": "a number > 0",
    "less_than_equal": "a smaller number",
}


def config_error(exc: ValidationError, source: str, root: type[BaseModel] = BoardFile) -> ConfigError:
    """Turn a pydantic ``ValidationError`` on ``root`` into one :class:`ConfigError`.

    The first problem gives the message and the key path; the key paths of the others, if
    any, are listed in the hint so that one run shows everything to fix. Unknown keys come
    first: a misspelt key also makes the right one "missing", and the typo is the cause.
    """
    errors = sorted(exc.errors(include_url=False), key=lambda err: err["type"] != "extra_forbidden")
    problems = [_describe(err, root) for err in errors]
    path, message, expected = problems[0]
    hint = DOC_HINT
    others = list(dict.fromkeys(p for p, _, _ in problems[1:] if p != path))
    if others:
        hint += f"; {len(others)} more key(s) to fix: {', '.join(others)}"
    return ConfigError(message, source=source, key_path=path, expected=expected, hint=hint)


def _describe(err: Any, root: type[BaseModel]) -> tuple[str, str, str | None]:
    """``(dotted key path, message, expected)`` of one pydantic error."""
    loc = list(err["loc"])
    ctx = err.get("ctx") or {}
    if ctx.get("key"):
        loc.append(ctx["key"])
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".") or "<top>"
    kind, got = err["type"], err["input"]
    if kind == "board":
        return path, err["msg"], ctx.get("expected")
    if kind == "missing":
        return path, "missing key", "a value"
    if kind == "extra_forbidden":
        model = _model_at(root, loc[:-1])
        return path, "unknown key", "one of " + ", ".join(model.model_fields) if model else None
    if kind == "literal_error":
        return path, f"got {got!r}", ctx["expected"]
    if kind == "too_short":
        return path, f"got {got!r}", f"a non-empty {'mapping' if isinstance(got, dict) else 'list'}"
    if kind in ("model_type", "dict_type", "list_type"):
        return path, f"got {type(got).__name__}", _EXPECTED[kind]
    return path, f"got {got!r}"[:80], _EXPECTED.get(kind, err["msg"])


def _model_at(root: type[BaseModel], loc: list[Any]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``loc`` (for its list of keys)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            tp = field.annotation if field else None
        else:  # dict[str, X] or list[X]: the values' type
            tp = (get_args(tp) or (None,))[-1]
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` → ``X``."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp
