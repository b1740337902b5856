"""The board file's ``update:`` section: how the bootloader is asked for an update.

Its schema (:class:`Update`, checked key by key: which keys each ``method`` takes), the
spec the rig uses (:class:`UpdateSpec`) and :func:`build_update`, the checks that need the
rest of the file (a config region for ``config_record``, RAM at a ``ram_magic`` address, a
word for each transport the bootloader has). What the rig does with it: :mod:`rig.update`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from rig.board_types import DOC_HINT, Address, IntIn, Name, _Strict, invalid
from rig.errors import ConfigError

if TYPE_CHECKING:
    from rig.board_spec import MemoryRegion, OtaSpec, Region

Transport = Literal["eth", "wifi"]
#: every transport, in the order a board file's ``ota.transports`` defaults to
ALL_TRANSPORTS: tuple[Transport, ...] = ("eth", "wifi")
Word = Annotated[int, IntIn(0, 0xFFFFFFFF)]
#: ``update.value``: one word, or one per transport (``{eth: 0x..., wifi: 0x...}``)
WordPerTransport = Word | dict[Transport, Word]
_PIN = re.compile(r"^P([A-K])([0-9]|1[0-5])$")

#: ``update.method`` → (keys it requires, keys it takes besides ``method`` and ``install``)
UPDATE_KEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "config_record": ((), ()),
    "always": ((), ()),
    "backup_register": (("register", "value"), ("idle",)),
    "ram_magic": (("address", "value"), ("idle",)),
    "button": (("pin",), ("active", "hold_ms", "press", "release")),
    "console": (("line",), ("after", "wait_ms")),
    "command": (("run",), ("withdraw", "timeout")),
}


class Update(_Strict):
    """``update``: how the bootloader is asked for an update (docs/board-file.md)."""

    method: Literal["config_record", "always", "backup_register", "ram_magic", "button", "console", "command"]
    #: how the rig puts a previous image on the board: ``probe`` (written through the
    #: debugger) or ``ota`` (a real update, so the bootloader records it its own way)
    install: Literal["probe", "ota"] | None = None
    #: ``register`` in the file (the attribute name would shadow ``BaseModel.register``)
    bkp_register: Annotated[int, IntIn(0, 31)] | None = Field(default=None, alias="register")
    address: Address | None = None
    value: WordPerTransport | None = None
    idle: Word | None = None
    pin: Name | None = None
    active: Literal["high", "low"] | None = None
    hold_ms: Annotated[int, IntIn(0, 60_000)] | None = None
    press: Name | None = None
    release: Name | None = None
    line: Name | None = None
    after: Name | None = None
    wait_ms: Annotated[int, IntIn(0, 60_000)] | None = None
    run: Name | None = None
    withdraw: Name | None = None
    timeout: Annotated[float, Field(gt=0.0, le=600.0, strict=False)] | None = None

    @model_validator(mode="after")
    def _keys_of_the_method(self) -> Update:
        required, optional = UPDATE_KEYS[self.method]
        given = {
            field.alias or name
            for name, field in type(self).model_fields.items()
            if name not in ("method", "install") and getattr(self, name) is not None
        }
        for key in required:
            if key not in given:
                raise invalid(
                    "missing key",
                    f"a value (update.method {self.method} needs {', '.join(required)})",
                    key=key,
                )
        for key in sorted(given - set(required) - set(optional)):
            takes = ", ".join((*required, *optional, "install")) or "install"
            raise invalid(f"update.method {self.method} takes no {key}", f"one of {takes}", key=key)
        if self.pin is not None and not _PIN.match(self.pin):
            raise invalid(f"got {self.pin!r}", "a GPIO pin such as PC13 (port A..K, pin 0..15)", key="pin")
        if self.address is not None and self.address % 4:
            raise invalid(f"got 0x{self.address:08X}", "a word-aligned RAM address", key="address")
        if self.after is not None:
            try:
                re.compile(self.after)
            except re.error as exc:
                raise invalid(
                    f"bad regular expression {self.after!r}: {exc}", "a Python regex", key="after"
                ) from None
        return self


#: the ways a bootloader can be asked for an update (``update.method``)
UPDATE_METHODS = ("config_record", "always", "backup_register", "ram_magic", "button", "console", "command")


@dataclass(frozen=True)
class UpdateSpec:
    """How the bootloader is asked for an update (``update:``; docs/board-file.md).

    ``method`` is one of :data:`UPDATE_METHODS`; ``install`` how the rig puts a previous
    image on the board (``probe``: written through the debugger, plus the config record
    for ``config_record``; ``ota``: a real update). The other fields belong to one method
    each: ``register`` (backup_register: RTC_BKPxR index), ``address`` (ram_magic),
    ``values`` (the word to write, per transport), ``idle`` (written to withdraw a
    request), ``pin``/``active``/``hold_ms``/``press``/``release`` (button), ``line``/
    ``after``/``wait_ms`` (console), ``run``/``withdraw``/``timeout`` (command)."""

    method: str = "config_record"
    install: str = "probe"
    register: int | None = None
    address: int | None = None
    values: Mapping[str, int] = field(default_factory=dict)
    idle: int = 0
    pin: str | None = None
    active: str = "high"
    hold_ms: int = 1000
    press: str | None = None
    release: str | None = None
    line: str | None = None
    after: str | None = None
    wait_ms: int = 5000
    run: str | None = None
    withdraw: str | None = None
    timeout: float = 60.0
    #: the board file's folder: relative script paths (``run``, ``press``...) start there
    base_dir: str | None = None

    def value_for(self, transport: str) -> int:
        """The word that asks for an update over ``transport``."""
        if transport not in self.values:
            raise ConfigError(
                f"update.value has no word for transport {transport!r}",
                key_path="update.value",
                expected=" | ".join(self.values) or "a word",
            )
        return self.values[transport]


def build_update(
    update: Update,
    regions: list[Region],
    memory: Mapping[str, MemoryRegion],
    ota: OtaSpec,
    source: str,
) -> UpdateSpec:
    """``update:``: what the method needs exists (a config region, RAM at the address, a
    word per transport the bootloader has)."""
    method = update.method
    if method == "config_record" and not any(r.name == "config" for r in regions):
        raise _fail(
            source,
            "update.method",
            "config_record writes the reference config record into regions.config, which this file lacks",
            "a regions.config entry, or another update.method",
        )
    if method == "config_record" and update.install == "ota":
        raise _fail(
            source,
            "update.install",
            "config_record installs through the probe (it writes the record)",
            "probe",
        )
    if update.address is not None:
        ram = [m for m in memory.values() if m.kind == "ram" and m.contains(update.address, 4)]
        if not ram:
            raise _fail(
                source,
                "update.address",
                f"0x{update.address:08X} is not in a ram entry of memory",
                " | ".join(f"{m.name} 0x{m.base:08X}+{m.size}" for m in memory.values() if m.kind == "ram"),
            )
    values: dict[str, int] = {}
    if isinstance(update.value, int):
        values = dict.fromkeys(ota.transports, update.value)
    elif update.value is not None:
        values = {transport: word for transport, word in update.value.items()}
        missing = [t for t in ota.transports if t not in values]
        if missing:
            raise _fail(
                source,
                "update.value",
                f"no word for transport {', '.join(missing)} (ota.transports: {', '.join(ota.transports)})",
                "one word, or one per transport: {eth: ..., wifi: ...}",
            )
    given = update.model_dump(exclude_none=True, exclude={"method", "install", "value", "bkp_register"})
    return UpdateSpec(
        method=method,
        register=update.bkp_register,
        install=update.install or ("probe" if method == "config_record" else "ota"),
        values=values,
        base_dir=None if source.startswith("<") else str(Path(source).resolve().parent),
        **given,
    )


def _fail(source: str, path: str, message: str, expected: str | None = None) -> ConfigError:
    return ConfigError(message, source=source, key_path=path, expected=expected, hint=DOC_HINT)
