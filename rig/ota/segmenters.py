"""Segmenters: how the OTA byte stream is cut into application writes (and so TCP segments).

A protocol hands :class:`Piece` objects (one control message, or a run of image bytes) to
the session; the policy's :class:`Segmenter` plans them into :class:`Write` objects, each
either free to coalesce with its neighbours or ``separate`` (its own TCP segment: the
session waits until the kernel has sent everything before it). Chosen by name through
:func:`rig.ota.policy.parse_policy`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rig.errors import ConfigError

PieceKind = Literal["control", "data"]

#: default application write size for data when a policy does not cut it itself
NATURAL_CHUNK = 16384
#: data write size of the message-oriented segmenters
MESSAGE_CHUNK = 1024


@dataclass(frozen=True)
class Piece:
    """A unit the protocol wants to send: one control message or a run of image bytes.

    ``separate`` and ``pause_ms`` are the protocol's own framing (e.g. the forum thread's
    messages without terminators, each in its own segment after a pause): the natural and
    per-message segmenters keep them, the others cut the stream their own way."""

    kind: PieceKind
    payload: bytes
    separate: bool = False
    pause_ms: float = 0.0


@dataclass(frozen=True)
class Write:
    """One application write; ``separate`` means it must be its own TCP segment;
    ``pause_ms``: wait that long after the previous write was transmitted."""

    payload: bytes
    separate: bool
    pause_ms: float = 0.0


class Segmenter:
    """Cuts a burst of pieces into writes."""

    name = "natural"

    def params(self) -> dict[str, object]:
        """Parameters for ``describe``."""
        return {}

    def describe(self) -> str:
        """Canonical spec string."""
        p = self.params()
        return self.name + (":" + ",".join(f"{k}={fmt_number(v)}" for k, v in p.items()) if p else "")

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        """Return the writes for ``pieces`` (their payloads concatenate to the burst)."""
        out: list[Write] = []
        for p in pieces:
            if p.kind == "control":
                out.append(Write(p.payload, p.separate, p.pause_ms))
            else:
                out.extend(Write(c, False) for c in _chunks(p.payload, NATURAL_CHUNK))
        return out


class Natural(Segmenter):
    """No constraint: one write per control message, data in 16 KiB writes, no pacing."""


class PerMessage(Segmenter):
    """One control message per segment; data in separate ``chunk``-byte segments."""

    name = "per-message"

    def __init__(self, chunk: int = MESSAGE_CHUNK) -> None:
        self.chunk = positive_int("per-message", "chunk", chunk)

    def params(self) -> dict[str, object]:
        return {} if self.chunk == MESSAGE_CHUNK else {"chunk": self.chunk}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        out: list[Write] = []
        for p in pieces:
            if p.kind == "control":
                out.append(Write(p.payload, True, p.pause_ms))
            else:
                out.extend(Write(c, True) for c in _chunks(p.payload, self.chunk))
        return out


class Glued(Segmenter):
    """Control messages glued to their neighbours: consecutive control messages share a
    segment, and a control message next to data shares the segment with the data
    (e.g. the last data chunk + ``OTA_DONE``)."""

    name = "glued"

    def __init__(self, chunk: int = MESSAGE_CHUNK) -> None:
        self.chunk = positive_int("glued", "chunk", chunk)

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
        self.at = None if at is None else positive_int("split-tokens", "at", at)
        self.chunk = positive_int("split-tokens", "chunk", chunk)

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
        self.size = positive_int("tiny", "size", size)

    def params(self) -> dict[str, object]:
        return {"size": self.size}

    def plan(self, pieces: Sequence[Piece], rng: random.Random) -> list[Write]:
        burst = b"".join(p.payload for p in pieces)
        return [Write(c, True) for c in _chunks(burst, self.size)]


class RandomCuts(Segmenter):
    """Random segment sizes in [min, max] from ``seed`` (reproducible per session)."""

    name = "random"

    def __init__(self, seed: int = 0, min: int = 1, max: int = 1400) -> None:
        if (
            isinstance(seed, bool)
            or not isinstance(seed, int | float)
            or seed != seed
            or abs(seed) == float("inf")
        ):
            raise ConfigError(
                f"random:seed must be an integer, got {seed!r}",
                source="policy",
                hint="e.g. random:seed=7",
            )
        self.seed = int(seed)
        self.min = positive_int("random", "min", min)
        self.max = positive_int("random", "max", max)
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


def positive_int(name: str, key: str, value: object) -> int:
    if not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"{name}:{key} must be an integer >= 1, got {value!r}",
            source="policy",
            hint=f"e.g. {name}:{key}=7",
        )
    return value


def fmt_number(v: object) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
