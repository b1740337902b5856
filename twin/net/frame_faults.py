"""Seeded, counted frame-level faults between the twin's ETH MAC and the network.

A fault rule is armed with a JSON object (control command ``frames.fault``)::

    {"kind": "drop" | "duplicate" | "corrupt" | "delay" | "reorder",
     "direction": "to_board" | "from_board" | "both",   # default both
     "only": "all" | "arp" | "ip" | "icmp" | "udp" | "tcp" | "tcp_data",  # default all
     "rate": P,      # probability per matching frame (default 1.0)
     "nth": K,       # or: exactly the K-th matching frame from arming (1-based), once
     "count": N,     # at most N hits (default unlimited; nth implies 1)
     "seed": S,      # each rule has its own random.Random(S) (default 1)
     ...kind parameters}

Kind parameters: ``duplicate`` ``copies`` (default 1); ``corrupt`` ``bits`` (default 1,
flipped at random positions after the Ethernet header) and ``fcs`` ``"bad"`` (default: the
FCS is the one of the undamaged frame, as for a line error; a receiving MAC sees a CRC
error) or ``"good"`` (the FCS matches the damaged frame; only the IP/TCP checksums can tell);
``delay`` ``delay_ms`` and ``jitter_ms`` (uniform 0..jitter added, so frames overtake each
other); ``reorder`` ``depth`` (the frame is held until ``depth`` later frames of its
direction went by, default 1) and ``max_hold_ms`` (released anyway after this, default 50).

Rules apply in arming order; each draws from its own generator only for frames it
matches, so the same arming and the same frame sequence give the same faults. Times are
wall-clock (the network side of the twin runs in wall time).

Owns: the rules, their random generators and the fault counters. Must not touch: libslirp,
the MAC, the pcap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from twin.net.frames import ETH_HLEN, classify, fcs

DIRECTIONS = ("to_board", "from_board")
KINDS = ("drop", "duplicate", "corrupt", "delay", "reorder")
CLASSES = ("all", "arp", "ip", "icmp", "udp", "tcp", "tcp_data")
COUNTERS = ("dropped", "duplicated", "corrupted_fcs_good", "corrupted_fcs_bad", "delayed", "reordered")


@dataclass
class Out:
    """One frame leaving the fault stage: send at ``at`` (monotonic seconds) with FCS ``fcs``
    (``None``: compute the right one)."""

    at: float
    body: bytes
    fcs: bytes | None = None


@dataclass
class Rule:
    """One armed fault."""

    kind: str
    directions: tuple[str, ...]
    only: str
    rate: float
    nth: int
    count: int
    seed: int
    params: dict[str, Any]
    rng: random.Random = field(init=False)
    seen: int = 0
    hits: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def selects(self, direction: str, classes: set[str]) -> bool:
        """Decide (and count) whether this rule hits the frame."""
        if direction not in self.directions or self.only not in classes:
            return False
        if self.count >= 0 and self.hits >= self.count:
            return False
        self.seen += 1
        hit = self.seen == self.nth if self.nth > 0 else self.rate >= 1.0 or self.rng.random() < self.rate
        if hit:
            self.hits += 1
        return hit

    def snapshot(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "direction": "both" if len(self.directions) == 2 else self.directions[0],
            "only": self.only,
            "rate": self.rate,
            "nth": self.nth,
            "count": self.count,
            "seed": self.seed,
            **self.params,
            "matched": self.seen,
            "hits": self.hits,
        }


@dataclass
class _Held:
    direction: str
    out: Out
    left: int
    deadline: float


def parse_rule(spec: dict[str, Any]) -> Rule:
    """Check a fault specification and build its rule (ValueError naming the problem)."""
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unknown frame fault kind {kind!r}: use one of {', '.join(KINDS)}, link, clear")
    direction = spec.get("direction", "both")
    if direction not in (*DIRECTIONS, "both"):
        raise ValueError("direction must be to_board, from_board or both")
    only = spec.get("only", "all")
    if only not in CLASSES:
        raise ValueError(f"only must be one of {', '.join(CLASSES)}")
    nth = int(spec.get("nth", 0))
    rate = float(spec.get("rate", 1.0))
    if nth < 0 or not 0.0 < rate <= 1.0:
        raise ValueError("rate must be in (0, 1] and nth >= 1 (or absent)")
    count = int(spec.get("count", 1 if nth else -1))
    params: dict[str, Any] = {}
    if kind == "duplicate":
        params["copies"] = _positive(spec, "copies", 1)
    elif kind == "corrupt":
        params["bits"] = _positive(spec, "bits", 1)
        params["fcs"] = spec.get("fcs", "bad")
        if params["fcs"] not in ("good", "bad"):
            raise ValueError('corrupt: fcs must be "good" or "bad"')
    elif kind == "delay":
        params["delay_ms"] = float(spec.get("delay_ms", 0.0))
        params["jitter_ms"] = float(spec.get("jitter_ms", 0.0))
        if params["delay_ms"] < 0 or params["jitter_ms"] < 0 or params["delay_ms"] + params["jitter_ms"] <= 0:
            raise ValueError("delay: delay_ms and jitter_ms must be >= 0, one of them > 0")
    elif kind == "reorder":
        params["depth"] = _positive(spec, "depth", 1)
        params["max_hold_ms"] = float(spec.get("max_hold_ms", 50.0))
    dirs = DIRECTIONS if direction == "both" else (direction,)
    return Rule(kind, dirs, only, rate, nth, count, int(spec.get("seed", 1)), params)


def _positive(spec: dict[str, Any], name: str, default: int) -> int:
    value = int(spec.get(name, default))
    if value < 1:
        raise ValueError(f"{name} must be >= 1")
    return value


class FrameFaults:
    """The armed rules of one network and their counters. Not thread-safe: the owner locks."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self._held: list[_Held] = []
        self.counters: dict[str, dict[str, int]] = {}
        self.reset_counters()

    def reset_counters(self) -> None:
        self.counters = {d: dict.fromkeys(COUNTERS, 0) for d in DIRECTIONS}

    def arm(self, spec: dict[str, Any]) -> Rule:
        rule = parse_rule(spec)
        self.rules.append(rule)
        return rule

    def clear(self) -> list[tuple[str, Out]]:
        """Disarm every rule; returns the frames held for reordering, with their direction
        (send them now)."""
        self.rules.clear()
        held, self._held = self._held, []
        return [(h.direction, h.out) for h in held]

    # ------------------------------------------------------------------ per frame
    def apply(self, direction: str, body: bytes, now: float) -> list[tuple[str, Out]]:
        """Run one frame through the rules; returns the frames to send, with their direction.

        The result may be empty (dropped or held), hold copies, carry a later send time
        (delay), or include frames held earlier whose turn has come (reorder).
        """
        outs = [Out(now, body)]
        before = len(self._held)
        if self.rules:
            classes = classify(body)
            for rule in self.rules:
                if outs and rule.selects(direction, classes):
                    outs = self._effect(rule, direction, outs, now)
        released = self._count_down(direction, now, new=len(self._held) - before)
        return [(direction, o) for o in outs] + released

    def _effect(self, rule: Rule, direction: str, outs: list[Out], now: float) -> list[Out]:
        c = self.counters[direction]
        p = rule.params
        if rule.kind == "drop":
            c["dropped"] += len(outs)
            return []
        if rule.kind == "duplicate":
            c["duplicated"] += p["copies"] * len(outs)
            return [Out(o.at, o.body, o.fcs) for o in outs for _ in range(1 + p["copies"])]
        if rule.kind == "corrupt":
            result = []
            for o in outs:
                damaged = self._flip(rule, o.body, p["bits"])
                good = p["fcs"] == "good"
                c["corrupted_fcs_good" if good else "corrupted_fcs_bad"] += 1
                result.append(Out(o.at, damaged, None if good else (o.fcs or fcs(o.body))))
            return result
        if rule.kind == "delay":
            for o in outs:
                o.at += (p["delay_ms"] + rule.rng.random() * p["jitter_ms"]) / 1000.0
            c["delayed"] += len(outs)
            return outs
        # reorder: hold the frame(s) until `depth` later frames of this direction went by
        for o in outs:
            self._held.append(_Held(direction, o, p["depth"], now + p["max_hold_ms"] / 1000.0))
        c["reordered"] += len(outs)
        return []

    @staticmethod
    def _flip(rule: Rule, body: bytes, bits: int) -> bytes:
        data = bytearray(body)
        start = ETH_HLEN if len(data) > ETH_HLEN else 0
        span = (len(data) - start) * 8
        for _ in range(bits if span else 0):
            pos = start * 8 + rule.rng.randrange(span)
            data[pos // 8] ^= 0x80 >> (pos % 8)
        return bytes(data)

    def _count_down(self, direction: str, now: float, new: int) -> list[tuple[str, Out]]:
        """A frame of ``direction`` went by: frames of that direction held before it count down
        (the last ``new`` held entries are this frame's own)."""
        if not self._held:
            return []
        released: list[tuple[str, Out]] = []
        keep: list[_Held] = []
        older = len(self._held) - new
        for i, h in enumerate(self._held):
            if h.direction == direction and i < older:
                h.left -= 1
            if h.left <= 0:
                h.out.at = max(h.out.at, now)
                released.append((h.direction, h.out))
            else:
                keep.append(h)
        self._held = keep
        return released

    def expired(self, now: float) -> list[tuple[str, Out]]:
        """Held frames whose ``max_hold_ms`` ran out (traffic stopped)."""
        out = [(h.direction, h.out) for h in self._held if h.deadline <= now]
        if out:
            self._held = [h for h in self._held if h.deadline > now]
            for _, o in out:
                o.at = now
        return out

    def next_deadline(self) -> float | None:
        return min((h.deadline for h in self._held), default=None)

    def snapshot(self) -> dict[str, Any]:
        return {
            "armed": [r.snapshot() for r in self.rules],
            "held": len(self._held),
            "counters": {d: dict(v) for d, v in self.counters.items()},
        }
