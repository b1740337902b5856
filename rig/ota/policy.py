"""Link policies: how the OTA bytes go on the wire, chosen per test.

A policy is a small object; a :class:`LinkPolicy` composes one *segmenter* (how the
stream is cut into TCP segments), an optional *pause*, at most one *cut action* (drop,
RST or stall at an image byte) and any number of *content faults* (application-level:
corrupt bytes, wrong size, truncated image, wrong CRC).

Policies are chosen by name with ``parse_policy``; ``+`` composes them and ``,``
separates parameters (a value may itself be a comma list)::

    parse_policy("split-tokens")
    parse_policy("random:seed=7,max=300+pause:ms=5")
    parse_policy("corrupt:offsets=100,2000")
    parse_policy("per-message+drop-at:byte=4096")

Segment boundaries are real: the server sets TCP_NODELAY and, between writes marked
``separate``, waits until the kernel has transmitted everything (SIOCOUTQNSD reaches 0),
so each write leaves as its own segment. ``byte`` / ``after`` count *image* bytes.

The segmenters are in :mod:`rig.ota.segmenters`, the content faults in
:mod:`rig.ota.content_faults`; this module has the actions (pause, cut), the composition
and the parser, and re-exports the rest.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rig.errors import ConfigError
from rig.ota.content_faults import Corrupt, Fault, Offer, Truncate, WrongCrc, WrongSize
from rig.ota.segmenters import (
    MESSAGE_CHUNK,
    NATURAL_CHUNK,
    Glued,
    Natural,
    PerMessage,
    Piece,
    PieceKind,
    RandomCuts,
    Segmenter,
    SplitTokens,
    Tiny,
    Write,
    fmt_number,
)

__all__ = [
    "MESSAGE_CHUNK",
    "NATURAL_CHUNK",
    "POLICY_NAMES",
    "Corrupt",
    "Cut",
    "Fault",
    "Glued",
    "LinkPolicy",
    "Natural",
    "Offer",
    "Pause",
    "PerMessage",
    "Piece",
    "PieceKind",
    "RandomCuts",
    "Segmenter",
    "SplitTokens",
    "Tiny",
    "Truncate",
    "Write",
    "WrongCrc",
    "WrongSize",
    "parse_policy",
]


@dataclass(frozen=True)
class Pause:
    """Sleep ``ms`` milliseconds between consecutive writes."""

    ms: float

    def describe(self) -> str:
        return f"pause:ms={fmt_number(self.ms)}"


#: what a cut does: orderly close (FIN), reset (RST), or stop sending with the link open
CutAction = Literal["drop", "rst", "stall"]


@dataclass(frozen=True)
class Cut:
    """Act when the ``byte``-th image byte is about to be sent (all before it are sent).

    ``action`` is ``"drop"`` (orderly close, FIN), ``"rst"`` (SO_LINGER {1,0} + close) or
    ``"stall"`` (stop sending and keep the link open; resume after ``ms`` if given, else wait
    up to ``wait`` seconds — default ``Timeouts.stall`` — for the board to react).
    """

    action: CutAction
    byte: int
    ms: float | None = None
    wait: float | None = None

    def describe(self) -> str:
        if self.action == "stall":
            return (
                f"stall:after={self.byte}"
                + (f",ms={fmt_number(self.ms)}" if self.ms is not None else "")
                + (f",wait={fmt_number(self.wait)}" if self.wait is not None else "")
            )
        return f"{self.action}-at:byte={self.byte}"


class LinkPolicy:
    """One segmenter + optional pause + optional cut + content faults."""

    def __init__(
        self,
        segmenter: Segmenter | None = None,
        *,
        pause: Pause | None = None,
        cut: Cut | None = None,
        faults: Sequence[Fault] = (),
    ) -> None:
        self.segmenter = segmenter or Natural()
        self.pause = pause
        self.cut = cut
        self.faults = list(faults)

    @property
    def needs_crc(self) -> bool:
        """True if a fault only makes sense with FILE_CRC on."""
        return any(f.needs_crc for f in self.faults)

    def describe(self) -> str:
        """Canonical spec (``parse_policy(p.describe())`` gives an equivalent policy)."""
        parts = [self.segmenter.describe()]
        if self.pause:
            parts.append(self.pause.describe())
        if self.cut:
            parts.append(self.cut.describe())
        parts += [f.describe() for f in self.faults]
        if len(parts) > 1 and parts[0] == "natural":
            parts = parts[1:]
        return "+".join(parts)

    def __repr__(self) -> str:
        return f"LinkPolicy({self.describe()!r})"

    def validate(self, image_size: int, *, crc: bool) -> None:
        """Check the policy fits this image and protocol settings (ConfigError otherwise)."""
        for f in self.faults:
            f.validate(image_size)
        if self.needs_crc and not crc:
            raise ConfigError(
                f"policy {self.describe()!r} needs FILE_CRC",
                source="policy",
                hint="enable crc (crc=True / --crc)",
            )
        if self.cut and self.cut.byte >= image_size:
            raise ConfigError(
                f"{self.cut.describe()} is at or beyond the end of the {image_size}-byte image",
                source="policy",
                hint=f"choose a byte below {image_size}",
            )

    def make_offer(self, image: bytes, *, crc: bool) -> Offer:
        """The announced size/CRC and the streamed data after this policy's faults."""
        offer = Offer(
            image=image,
            data=image,
            declared_size=len(image),
            crc=zlib.crc32(image) & 0xFFFFFFFF if crc else None,
        )
        for f in self.faults:
            offer = f.apply(offer)
        return offer

    def new_rng(self) -> random.Random:
        """A fresh RNG for one session (seeded from the random segmenter if any)."""
        return random.Random(getattr(self.segmenter, "seed", 0))


_SEGMENTERS: dict[str, type[Segmenter]] = {
    "natural": Natural,
    "per-message": PerMessage,
    "glued": Glued,
    "split-tokens": SplitTokens,
    "tiny": Tiny,
    "random": RandomCuts,
}
_FAULTS: dict[str, type[Fault]] = {
    "corrupt": Corrupt,
    "wrong-size": WrongSize,
    "truncate": Truncate,
    "wrong-crc": WrongCrc,
}
_CUTS: dict[str, CutAction] = {"drop-at": "drop", "rst-at": "rst", "stall": "stall"}

#: every policy name parse_policy accepts
POLICY_NAMES = sorted([*_SEGMENTERS, *_FAULTS, *_CUTS, "pause"])

_HINT = (
    "known policies: "
    + ", ".join(POLICY_NAMES)
    + "; syntax NAME[:k=v,...][+NAME...], e.g. 'split-tokens+pause:ms=20'"
)


def parse_policy(spec: str | LinkPolicy | None) -> LinkPolicy:
    """Build a :class:`LinkPolicy` from a spec string (see module docstring).

    Raises:
        ConfigError: unknown name, bad parameter, or two segmenters / cuts.
    """
    if spec is None:
        return LinkPolicy()
    if isinstance(spec, LinkPolicy):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"empty policy spec {spec!r}", source="policy", hint=_HINT)
    segmenter: Segmenter | None = None
    pause: Pause | None = None
    cut: Cut | None = None
    faults: list[Fault] = []
    for part in spec.split("+"):
        name, params = _split_part(part.strip(), spec)
        try:
            if name in _SEGMENTERS:
                if segmenter is not None:
                    raise ConfigError(
                        f"two segmenters in {spec!r} ({segmenter.name}, {name})",
                        source="policy",
                        hint="choose one of " + ", ".join(_SEGMENTERS),
                    )
                segmenter = _SEGMENTERS[name](**params)
            elif name in _FAULTS:
                faults.append(_FAULTS[name](**params))
            elif name in _CUTS:
                if cut is not None:
                    raise ConfigError(
                        f"two cut actions in {spec!r}",
                        source="policy",
                        hint="use at most one of drop-at, rst-at, stall",
                    )
                cut = _make_cut(_CUTS[name], params, spec)
            elif name == "pause":
                if pause is not None or set(params) != {"ms"}:
                    raise ConfigError(
                        f"pause needs exactly ms= once in {spec!r}", source="policy", hint="e.g. pause:ms=20"
                    )
                ms = float(params["ms"])  # type: ignore[arg-type]
                if ms < 0:
                    raise ConfigError("pause:ms must be >= 0", source="policy", hint="e.g. pause:ms=20")
                pause = Pause(ms)
            else:
                raise ConfigError(f"unknown policy {name!r} in {spec!r}", source="policy", hint=_HINT)
        except TypeError as exc:
            raise ConfigError(
                f"bad parameters for {name!r} in {spec!r}: {exc}", source="policy", hint=_HINT
            ) from None
    return LinkPolicy(segmenter, pause=pause, cut=cut, faults=faults)


def _make_cut(action: CutAction, params: dict[str, object], spec: str) -> Cut:
    key = "after" if action == "stall" else "byte"
    allowed = {key, "ms", "wait"} if action == "stall" else {key}
    if {"ms", "wait"} <= set(params):
        raise ConfigError(
            f"stall takes ms= (resume after) or wait= (no resume), not both, in {spec!r}",
            source="policy",
            hint="e.g. stall:after=2048,ms=3000 or stall:after=2048,wait=30",
        )
    if key not in params or not set(params) <= allowed:
        example = "stall:after=2048[,ms=3000 | ,wait=30]" if action == "stall" else f"{action}-at:byte=4096"
        raise ConfigError(f"{action} needs {key}= in {spec!r}", source="policy", hint=f"e.g. {example}")
    byte = params[key]
    if not isinstance(byte, int) or byte < 0:
        raise ConfigError(f"{key} must be an integer >= 0 in {spec!r}", source="policy", hint=_HINT)
    times: dict[str, float | None] = {}
    for name in ("ms", "wait"):
        v = params.get(name)
        if v is not None and (not isinstance(v, (int, float)) or v < 0):
            raise ConfigError(f"stall:{name} must be a number >= 0 in {spec!r}", source="policy", hint=_HINT)
        times[name] = None if v is None else float(v)
    return Cut(action, byte, times["ms"], times["wait"])


def _split_part(part: str, spec: str) -> tuple[str, dict[str, object]]:
    name, _, rest = part.partition(":")
    params: dict[str, object] = {}
    key: str | None = None
    for tok in (t.strip() for t in rest.split(",") if rest):
        if "=" in tok:
            key, _, val = tok.partition("=")
            key = key.strip()
            params[key] = _value(val.strip(), spec)
        elif key is not None and tok:
            prev = params[key]
            params[key] = (prev if isinstance(prev, list) else [prev]) + [_value(tok, spec)]
        else:
            raise ConfigError(f"cannot parse {part!r} in {spec!r}", source="policy", hint=_HINT)
    return name.strip(), params


def _value(text: str, spec: str) -> object:
    try:
        return int(text, 0)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise ConfigError(
                f"parameter value {text!r} in {spec!r} is not a number", source="policy", hint=_HINT
            ) from None
