"""pyOCD session options from the user: checked against pyOCD's own list, layered in the
documented order (docs/board-file.md "pyOCD settings: who wins"), the rig's safety options
pinned whatever they say. :class:`rig.probe.Probe` applies them."""

from __future__ import annotations

import difflib
import shlex
import sys
from collections.abc import Mapping, Sequence

from rig.errors import ConfigError, RigError


def pyocd_command(*args: str) -> str:
    """The pyOCD command line of this environment (``python -m pyocd``), for messages: a
    ``pyocd`` found on PATH may belong to another installation, or not exist."""
    return shlex.join([sys.executable, "-m", "pyocd", *args])


#: pyOCD session options the rig always sets, whatever a pyocd.yaml, the board file or the
#: command line say: never unlock a read-protected chip (pyOCD would mass-erase it), erase
#: per sector, keep the unwritten rest of an erased sector
PINNED_OPTIONS: dict[str, object] = {"auto_unlock": False, "chip_erase": "sector", "keep_unwritten": True}
#: the rig's own choices, below the user's pyocd.yaml and options (pyOCD's ``option_defaults``)
RIG_DEFAULT_OPTIONS: dict[str, object] = {
    "smart_flash": True,
    "hide_programming_progress": True,
    "resume_on_disconnect": True,
}
#: options that have a board-file key of their own
MANAGED_OPTIONS = {
    "target_override": "targets.<kind>.pyocd_target",
    "config_file": "targets.nucleo.pyocd_config",
    "no_config": "targets.nucleo.pyocd_config",
}


def check_pyocd_option(key: str, value: object, *, source: str) -> object:
    """A pyOCD session option's value in pyOCD's type (strings converted the way pyOCD's own
    ``-O KEY=VALUE`` does). An unknown name (pyOCD would only warn: a typo is silently
    ignored), a value of the wrong type, a pinned option or one with its own board-file key
    is a ConfigError naming ``source``."""
    from pyocd.core.options import OPTIONS_INFO
    from pyocd.utility.cmdline import convert_one_session_option

    if key in PINNED_OPTIONS:
        raise ConfigError(
            f"{source}: {key} is pinned to {PINNED_OPTIONS[key]!r}: the rig never unlocks (mass-erases) "
            "a protected chip, erases only the sectors it writes and keeps their unwritten rest",
            hint=f"leave {key} out",
        )
    if key in MANAGED_OPTIONS:
        raise ConfigError(
            f"{source}: {key} has a board-file key of its own", hint=f"use {MANAGED_OPTIONS[key]}"
        )
    info = OPTIONS_INFO.get(key)
    if info is None:
        close = difflib.get_close_matches(key, list(OPTIONS_INFO), n=3)
        raise ConfigError(
            f"{source}: pyOCD has no session option {key!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else ""),
            hint=f"`{pyocd_command('list', '--options')}` lists them",
        )
    if isinstance(value, str) and info.type is not str:
        _name, converted = convert_one_session_option(key, value)
    else:
        converted = value
    types = info.type if isinstance(info.type, tuple) else (info.type,)
    if float in types and isinstance(converted, int) and not isinstance(converted, bool):
        converted = float(converted)
    if (
        converted is None
        or not isinstance(converted, types)
        or (bool not in types and isinstance(converted, bool))
    ):
        wanted = " or ".join(t.__name__ for t in types)
        raise ConfigError(f"{source}: {key}={value!r} is not a valid {wanted}", hint=info.help)
    return converted


def session_options(*layers: Mapping[str, object]) -> dict[str, object]:
    """The user's pyOCD options, later layers over earlier ones (board file, command line)."""
    merged: dict[str, object] = {}
    for layer in layers:
        merged.update(layer)
    return merged


def probe_for(target, board_spec, cli_options: Sequence[tuple[str, str]] = ()):
    """The (unopened) :class:`rig.probe.Probe` of ``target`` with the board file's session
    settings: ``targets.<kind>.pyocd_target``, ``swd_frequency``, ``pyocd_options`` and
    ``pyocd_config``, then ``cli_options`` (``--pyocd-option``), and
    ``debug.freeze_watchdogs`` (precedence: docs/board-file.md)."""
    from rig.probe import TARGET, Probe

    tspec = board_spec.targets.get(target.kind)
    where = f"targets.{target.kind}.pyocd_options"
    board = {
        k: check_pyocd_option(k, v, source=f"{where}.{k}")
        for k, v in ((tspec.pyocd_options if tspec else None) or {}).items()
    }
    if "frequency" in board and tspec is not None and tspec.swd_frequency:
        raise RigError(
            f"the board file sets the SWD clock twice: targets.{target.kind}.swd_frequency and {where}.frequency",
            hint="keep swd_frequency only",
        )
    cli = {k: check_pyocd_option(k, v, source="--pyocd-option") for k, v in cli_options}
    return Probe(
        target.probe_uid,
        target=tspec.pyocd_target if tspec else TARGET,
        frequency=tspec.swd_frequency if tspec else None,
        freeze_watchdogs=board_spec.debug.freeze_watchdogs,
        options=session_options(board, cli),
        config_file=tspec.pyocd_config if tspec else None,
    )
