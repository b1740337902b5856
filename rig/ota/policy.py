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
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from rig.errors import ConfigError

PieceKind = Literal["control", "data"]

#: default application write size for data when a policy does not cut it itself
NATURAL_CHUNK = 16384
#: data write size of the message-oriented segmenters
MESSAGE_CHUNK = 1024


@dataclass(frozen=True)
class Piece:
    """A unit the protocol wants to send: one control message or a run of image bytes."""

    kind: PieceKind
    payload: bytes


@dataclass(frozen=True)
class Write:
    """One application write; ``separate`` means it must be its own TCP segment."""

    payload: bytes
    separate: bool


@dataclass(frozen=True)
class Offer:
    """What the protocol announces and sends, after content faults.

    Attributes:
        image: the configured image (never modified).
        data: the bytes actually streamed (corrupted / truncated by faults).
        declared_size: the size announced to the board.
        crc: the CRC-32 announced (``zlib.crc32`` of ``image``), or None.
    """

    image: bytes
    data: bytes
    declared_size: int
    crc: int | None


# --------------------------------------------------------------------- segmenters
class Segmenter:
    """Cuts a burst of pieces into writes."""

    name = "natural"

    def params(self) -> dict[str, object]:
        """Parameters for ``describe``."""
        return {}

    def describe(self) -> str:
        """Canonical spec string."""
        p = self.params()
        return self.name + (":" + ",".join(f"{k}={_fmt(v)}" for k, v in p.items()) if p else "")

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        """Return the writes for ``pieces`` (their payloads concatenate to the burst)."""
        out: list[Write] = []
        for p in pieces:
            if p.kind == "control":
                out.append(Write(p.payload, False))
            else:
                out.extend(Write(c, False) for c in _chunks(p.payload, NATURAL_CHUNK))
        return out


class Natural(Segmenter):
    """No constraint: one write per control message, data in 16 KiB writes, no pacing."""


class PerMessage(Segmenter):
    """One control message per segment; data in separate ``chunk``-byte segments."""

    name = "per-message"

    def __init__(self, chunk: int = MESSAGE_CHUNK) -> None:
        self.chunk = _positive("per-message", "chunk", chunk)

    def params(self) -> dict[str, object]:
        return {} if self.chunk == MESSAGE_CHUNK else {"chunk": self.chunk}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        out: list[Write] = []
        for p in pieces:
            if p.kind == "control":
                out.append(Write(p.payload, True))
            else:
                out.extend(Write(c, True) for c in _chunks(p.payload, self.chunk))
        return out


class Glued(Segmenter):
    """Control messages glued to their neighbours: consecutive control messages share a
    segment, and a control message next to data shares the segment with the data
    (e.g. the last data chunk + ``OTA_DONE``)."""

    name = "glued"

    def __init__(self, chunk: int = MESSAGE_CHUNK) -> None:
        self.chunk = _positive("glued", "chunk", chunk)

    def params(self) -> dict[str, object]:
        return {} if self.chunk == MESSAGE_CHUNK else {"chunk": self.chunk}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        units: list[tuple[PieceKind, bytes]] = []
        for p in pieces:
            if p.kind == "control":
                units.append(("control", p.payload))
            else:
                units.extend(("data", c) for c in _chunks(p.payload, self.chunk))
        merged: list[bytearray] = []
        pending = bytearray()  # control bytes waiting for a following unit
        for kind, payload in units:
            if kind == "control":
                if merged and not pending:
                    merged[-1] += payload
                else:
                    pending += payload
            else:
                merged.append(bytearray(pending) + payload)
                pending = bytearray()
        if pending:
            merged.append(pending)
        return [Write(bytes(m), True) for m in merged]


class SplitTokens(Segmenter):
    """Every control message split across two segments (at ``at`` bytes, default the
    middle); data in separate ``chunk``-byte segments."""

    name = "split-tokens"

    def __init__(self, at: int | None = None, chunk: int = MESSAGE_CHUNK) -> None:
        self.at = None if at is None else _positive("split-tokens", "at", at)
        self.chunk = _positive("split-tokens", "chunk", chunk)

    def params(self) -> dict[str, object]:
        p: dict[str, object] = {}
        if self.at is not None:
            p["at"] = self.at
        if self.chunk != MESSAGE_CHUNK:
            p["chunk"] = self.chunk
        return p

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        out: list[Write] = []
        for p in pieces:
            if p.kind == "control":
                n = len(p.payload)
                if n < 2:
                    out.append(Write(p.payload, True))
                    continue
                cut = min(max(1, self.at if self.at is not None else n // 2), n - 1)
                out.append(Write(p.payload[:cut], True))
                out.append(Write(p.payload[cut:], True))
            else:
                out.extend(Write(c, True) for c in _chunks(p.payload, self.chunk))
        return out


class Tiny(Segmenter):
    """The whole stream (control and data) in segments of at most ``size`` bytes."""

    name = "tiny"

    def __init__(self, size: int = 7) -> None:
        self.size = _positive("tiny", "size", size)

    def params(self) -> dict[str, object]:
        return {"size": self.size}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        burst = b"".join(p.payload for p in pieces)
        return [Write(c, True) for c in _chunks(burst, self.size)]


class RandomCuts(Segmenter):
    """Random segment sizes in [min, max] from ``seed`` (reproducible per session)."""

    name = "random"

    def __init__(self, seed: int = 0, min: int = 1, max: int = 1400) -> None:
        self.seed = int(seed)
        self.min = _positive("random", "min", min)
        self.max = _positive("random", "max", max)
        if self.max < self.min:
            raise ConfigError(
                f"random: max={self.max} < min={self.min}",
                source="policy",
                hint="use e.g. random:seed=7,min=1,max=300",
            )

    def params(self) -> dict[str, object]:
        return {"seed": self.seed, "min": self.min, "max": self.max}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        burst = b"".join(p.payload for p in pieces)
        out: list[Write] = []
        pos = 0
        while pos < len(burst):
            n = rng.randint(self.min, self.max)
            out.append(Write(burst[pos : pos + n], True))
            pos += n
        return out


# --------------------------------------------------------------------- actions
@dataclass(frozen=True)
class Pause:
    """Sleep ``ms`` milliseconds between consecutive writes."""

    ms: float

    def describe(self) -> str:
        return f"pause:ms={_fmt(self.ms)}"


@dataclass(frozen=True)
class Cut:
    """Act when the ``byte``-th image byte is about to be sent (all before it are sent).

    ``action`` is ``"drop"`` (orderly close, FIN), ``"rst"`` (SO_LINGER {1,0} + close) or
    ``"stall"`` (stop sending and keep the link open; resume after ``ms`` if given, else wait
    up to ``wait`` seconds — default ``Timeouts.stall`` — for the board to react).
    """

    action: Literal["drop", "rst", "stall"]
    byte: int
    ms: float | None = None
    wait: float | None = None

    def describe(self) -> str:
        if self.action == "stall":
            return (
                f"stall:after={self.byte}"
                + (f",ms={_fmt(self.ms)}" if self.ms is not None else "")
                + (f",wait={_fmt(self.wait)}" if self.wait is not None else "")
            )
        return f"{self.action}-at:byte={self.byte}"


# --------------------------------------------------------------------- content faults
class Fault:
    """An application-level fault: changes what is announced or streamed."""

    name = "fault"
    needs_crc = False

    def describe(self) -> str:
        return self.name

    def validate(self, image_size: int) -> None:
        """Raise ConfigError if the fault cannot apply to an image of this size."""

    def apply(self, offer: Offer) -> Offer:
        """Return the faulted offer."""
        raise NotImplementedError


class Corrupt(Fault):
    """XOR chosen image bytes (default 0xFF) while keeping size and CRC of the original."""

    name = "corrupt"

    def __init__(self, offsets: Sequence[int] | int, xor: int = 0xFF) -> None:
        self.offsets = [int(o) for o in ([offsets] if isinstance(offsets, int) else offsets)]
        if not self.offsets or any(o < 0 for o in self.offsets):
            raise ConfigError(
                "corrupt needs non-negative offsets", source="policy", hint="e.g. corrupt:offsets=100,2000"
            )
        self.xor = int(xor) & 0xFF
        if self.xor == 0:
            raise ConfigError("corrupt: xor=0 changes nothing", source="policy", hint="use xor=0x01..0xff")

    def describe(self) -> str:
        s = "corrupt:offsets=" + ",".join(str(o) for o in self.offsets)
        return s + (f",xor=0x{self.xor:02x}" if self.xor != 0xFF else "")

    def validate(self, image_size: int) -> None:
        bad = [o for o in self.offsets if o >= image_size]
        if bad:
            raise ConfigError(
                f"corrupt offsets {bad} are outside the {image_size}-byte image",
                source="policy",
                hint=f"use offsets below {image_size}",
            )

    def apply(self, offer: Offer) -> Offer:
        data = bytearray(offer.data)
        for o in self.offsets:
            if o < len(data):
                data[o] ^= self.xor
        return replace(offer, data=bytes(data))


class WrongSize(Fault):
    """Announce ``FILE_SIZE`` = real size + ``delta`` (or exactly ``size``); stream the real image."""

    name = "wrong-size"

    def __init__(self, delta: int | None = None, size: int | None = None) -> None:
        if (delta is None) == (size is None):
            raise ConfigError(
                "wrong-size needs exactly one of delta= or size=",
                source="policy",
                hint="e.g. wrong-size:delta=-10 or wrong-size:size=0",
            )
        if delta == 0:
            raise ConfigError(
                "wrong-size:delta=0 is the right size", source="policy", hint="use a non-zero delta"
            )
        self.delta = delta
        self.size = size

    def describe(self) -> str:
        return f"wrong-size:delta={self.delta}" if self.delta is not None else f"wrong-size:size={self.size}"

    def validate(self, image_size: int) -> None:
        declared = self.size if self.size is not None else image_size + (self.delta or 0)
        if declared < 0:
            raise ConfigError(
                f"wrong-size would announce {declared} bytes",
                source="policy",
                hint=f"delta must be >= -{image_size}",
            )

    def apply(self, offer: Offer) -> Offer:
        declared = self.size if self.size is not None else offer.declared_size + (self.delta or 0)
        return replace(offer, declared_size=declared)


class Truncate(Fault):
    """Stream the image without its last ``bytes`` bytes (FILE_SIZE and CRC unchanged)."""

    name = "truncate"

    def __init__(self, bytes: int) -> None:
        self.nbytes = _positive("truncate", "bytes", bytes)

    def describe(self) -> str:
        return f"truncate:bytes={self.nbytes}"

    def validate(self, image_size: int) -> None:
        if self.nbytes > image_size:
            raise ConfigError(
                f"truncate:bytes={self.nbytes} exceeds the {image_size}-byte image",
                source="policy",
                hint=f"use bytes <= {image_size}",
            )

    def apply(self, offer: Offer) -> Offer:
        return replace(offer, data=offer.data[: max(0, len(offer.data) - self.nbytes)])


class WrongCrc(Fault):
    """Announce a FILE_CRC that differs from the image's (all bits flipped, or ``value``)."""

    name = "wrong-crc"
    needs_crc = True

    def __init__(self, value: int | None = None) -> None:
        self.value = None if value is None else int(value) & 0xFFFFFFFF

    def describe(self) -> str:
        return "wrong-crc" + (f":value=0x{self.value:08x}" if self.value is not None else "")

    def apply(self, offer: Offer) -> Offer:
        real = offer.crc if offer.crc is not None else zlib.crc32(offer.image)
        value = self.value if self.value is not None else real ^ 0xFFFFFFFF
        if value == real:
            value ^= 1
        return replace(offer, crc=value)


# --------------------------------------------------------------------- composition
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
_CUTS = {"drop-at": "drop", "rst-at": "rst", "stall": "stall"}

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
                segmenter = _SEGMENTERS[name](**params)  # type: ignore[arg-type]
            elif name in _FAULTS:
                faults.append(_FAULTS[name](**params))  # type: ignore[arg-type]
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


def _make_cut(action: str, params: dict[str, object], spec: str) -> Cut:
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
    ms, wait = params.get("ms"), params.get("wait")
    for name, v in (("ms", ms), ("wait", wait)):
        if v is not None and (not isinstance(v, (int, float)) or v < 0):
            raise ConfigError(f"stall:{name} must be a number >= 0 in {spec!r}", source="policy", hint=_HINT)
    return Cut(
        action,
        byte,
        None if ms is None else float(ms),  # type: ignore[arg-type]
        None if wait is None else float(wait),
    )  # type: ignore[arg-type]


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


def _positive(name: str, key: str, value: object) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{name}:{key} must be an integer >= 1, got {value!r}",
            source="policy",
            hint=f"e.g. {name}:{key}=7",
        )
    return value


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _fmt(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
