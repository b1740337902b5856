"""Reading a board file safely: what may reach the YAML parser, and what the parser may build.

A board file is a few KiB of UTF-8 YAML. Anything else is one :class:`~rig.errors.ConfigError`
naming the file, never a traceback, a hang or a memory blow-up:

- only a regular file is opened (a directory, a FIFO that would block for ever, ``/dev/zero``
  that never ends, ``/dev/null``), opened non-blocking and read up to :data:`MAX_BYTES`;
- the bytes must be UTF-8 (a UTF-8 BOM is accepted; UTF-16 and Latin-1 files are named as such);
- the YAML is first scanned event by event (PyYAML's parser does not recurse) for nesting
  deeper than :data:`MAX_DEPTH`, a scalar longer than :data:`MAX_SCALAR` characters (a
  5 000-digit integer) and more than :data:`MAX_NODES` values once every alias is expanded
  (a "billion laughs" bomb): anchors and aliases stay usable for what a board file needs,
  e.g. one sector list shared by two layouts;
- a key given twice in one mapping is an error (YAML would keep the last one silently).
"""

from __future__ import annotations

import codecs
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

from rig.errors import ConfigError

#: the largest board file read (the shipped one is about 6 KiB)
MAX_BYTES = 1 << 20
#: the deepest nesting of mappings and lists (the shipped file needs 5)
MAX_DEPTH = 32
#: the longest scalar, in characters (a description line, an address)
MAX_SCALAR = 4096
#: the most values (scalars, mappings, lists) the file may hold with every alias expanded
MAX_NODES = 100_000

_HINT = "pass --board with an existing file, e.g. boards/stm32f767.yaml"
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages (``"a directory"``, ``"a FIFO (named pipe)"``...)."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def read_board_text(path: Path) -> str:
    """The text of the board file at ``path``; ConfigError unless it is a readable regular
    file of at most :data:`MAX_BYTES` bytes of UTF-8."""
    source = str(path)
    try:
        # O_NONBLOCK: opening a FIFO never waits for a writer; the fstat below refuses it
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(
            f"cannot read board file: {exc.strerror or exc}", source=source, hint=_HINT
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"the board file is {file_kind(mode)}, not a regular file", source=source, hint=_HINT
            )
        raw = _read_at_most(fd, MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"cannot read board file: {exc.strerror or exc}", source=source, hint=_HINT
        ) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"the board file is larger than {MAX_BYTES >> 20} MiB",
            source=source,
            hint="a board file is a few KiB of YAML; is this the right file?",
        )
    return decode(raw, source)


def _read_at_most(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def decode(raw: bytes, source: str) -> str:
    """UTF-8 bytes (an optional BOM dropped) → text; ConfigError naming what the bytes are."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise ConfigError(
            "the board file is UTF-16/UTF-32 text (it starts with that byte-order mark)",
            source=source,
            hint="save it as UTF-8",
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02X} on line {line} (offset {exc.start})",
            source=source,
            hint="save the file as UTF-8 (a Latin-1 'é' is one byte, UTF-8 needs two)",
        ) from None


def load_yaml(text: str, source: str) -> Any:
    """Parse board YAML within the limits above; every problem is one ConfigError."""
    if len(text) > MAX_BYTES:
        raise ConfigError(f"the board text is longer than {MAX_BYTES >> 20} MiB", source=source, hint=_HINT)
    try:
        _check_events(text, source)
        return yaml.load(text, Loader=_BoardLoader)  # a SafeLoader: no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        if "nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own limit, met first
            raise _too_deep(mark.line + 1 if mark else 1, source) from None
        if isinstance(exc, _DuplicateKey):
            raise ConfigError(
                f"{where}{exc.problem}", source=source, hint="keep one of the two (the one you mean)"
            ) from None
        raise ConfigError(
            f"malformed YAML: {where}{getattr(exc, 'problem', None) or exc}",
            source=source,
            hint="fix the YAML syntax (indentation, colons, brackets)",
        ) from None
    except (ValueError, OverflowError, RecursionError, MemoryError) as exc:  # belt and braces
        raise ConfigError(
            f"the YAML cannot be read: {type(exc).__name__}: {str(exc)[:120]}",
            source=source,
            hint="see docs/board-file.md for what a board file holds",
        ) from None


def _check_events(text: str, source: str) -> None:
    """Depth, scalar length and the alias-expanded value count, from the parser's events."""
    anchored: dict[str, int] = {}  # anchor -> values it stands for, expanded
    open_: list[list[Any]] = []  # [anchor, values so far] of each open mapping / list
    total = 0
    for event in yaml.parse(text, Loader=_SafeLoader):
        if isinstance(event, CollectionEndEvent):
            anchor, count = open_.pop()
            if anchor is not None:
                anchored[anchor] = count
            continue
        if not isinstance(event, (ScalarEvent, AliasEvent, CollectionStartEvent)):
            continue
        mark = event.start_mark  # None only for events built by hand, never the parser's
        line = mark.line + 1 if mark is not None else 0
        alias = event.anchor if isinstance(event, AliasEvent) else None
        n = anchored.get(alias, 1) if alias is not None else 1
        if isinstance(event, ScalarEvent):
            if len(event.value) > MAX_SCALAR:
                raise ConfigError(
                    f"line {line}: a value of {len(event.value)} characters (at most {MAX_SCALAR})",
                    source=source,
                    hint="no key of a board file takes a value that long; see docs/board-file.md",
                )
            if event.anchor is not None:
                anchored[event.anchor] = 1
        for frame in open_:
            frame[1] += n
        total += n
        if total > MAX_NODES:
            raise ConfigError(
                f"line {line}: the file holds more than {MAX_NODES} values once its aliases are "
                "expanded (a YAML alias bomb?)",
                source=source,
                hint="write the board file out without nested aliases; see docs/board-file.md",
            )
        if isinstance(event, CollectionStartEvent):
            open_.append([event.anchor, 1])
            if len(open_) > MAX_DEPTH:
                raise _too_deep(line, source)


def _too_deep(line: int, source: str) -> ConfigError:
    return ConfigError(
        f"line {line}: mappings/lists nested deeper than {MAX_DEPTH} levels",
        source=source,
        hint="a board file nests a few levels; see docs/board-file.md",
    )


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A key given twice in one mapping."""


#: libyaml's parser when PyYAML was built with it (10 times faster), else the pure-Python one
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _BoardLoader(_SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (composed only after
    :func:`_check_events` bounded the nesting: libyaml's composer recurses in C)."""

    def construct_mapping(self, node: yaml.Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults": merged keys may be overridden, as YAML says
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: the base class reports it
                if first is not None:
                    raise _DuplicateKey(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first}; YAML would keep "
                        "only the last one)",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)
