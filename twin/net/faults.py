"""Seeded, reproducible faults of the WiFi module's SPI link and interrupt line.

Each fault kind has its own ``random.Random(seed)`` so the same arming replays the same
faults for the same byte stream, whatever else happens in the twin.

Owns: the armed faults, their random streams and counters. Must not touch: the module's
state (it only answers what to corrupt, drop or lose).
"""

from __future__ import annotations

import math
import random
from typing import Any


class BitErrors:
    """Independent bit flips at a bit-error rate, drawn as geometric gaps between errors.

    Args:
        rate: probability that any one bit is flipped (0 < rate < 1).
        seed: RNG seed; the same seed and byte stream give the same flips.
    """

    def __init__(self, rate: float, seed: int) -> None:
        if not 0.0 < rate < 1.0:
            raise ValueError(f"bit error rate must be in (0, 1), got {rate}")
        self.rate = rate
        self.rng = random.Random(seed)
        self._log1p = math.log1p(-rate)
        self.gap = self._draw()  # bits to pass before the next flip
        self.flipped = 0
        self.bytes_hit = 0
        self.bits_seen = 0

    def _draw(self) -> int:
        u = 1.0 - self.rng.random()  # (0, 1]
        return int(math.log(u) / self._log1p)

    def apply(self, byte: int) -> int:
        """Return ``byte`` with this stream's flips applied (8 bits consumed)."""
        self.bits_seen += 8
        if self.gap >= 8:
            self.gap -= 8
            return byte
        out = byte
        pos = self.gap
        while pos < 8:
            out ^= 0x80 >> pos
            self.flipped += 1
            pos += 1 + self._draw()
        self.gap = pos - 8
        self.bytes_hit += 1
        return out


class WincFaults:
    """The fault plan of one WINC module and its counters (for the control interface)."""

    SCOPES = ("payload", "all")
    DIRECTIONS = ("miso", "mosi", "both")

    def __init__(self) -> None:
        self.clear()
        self.counters: dict[str, int] = {}
        self.reset_counters()

    def clear(self) -> None:
        """Disarm every fault (counters are kept)."""
        self.miso: BitErrors | None = None
        self.mosi: BitErrors | None = None
        self.scope = "payload"
        self.drop_rng: random.Random | None = None
        self.drop_rate = 0.0
        self.drop_left = 0  # drops still allowed (-1 = unlimited)
        self.drop_nth = 0  # drop the nth transaction from arming (1-based), 0 = off
        self.irq_mode = ""  # "" | "lost" | "delay"
        self.irq_left = 0
        self.irq_delay_us = 0

    def reset_counters(self) -> None:
        """Zero the counters."""
        self.counters = {
            "bits_flipped_miso": 0,
            "bits_flipped_mosi": 0,
            "bytes_corrupted_miso": 0,
            "bytes_corrupted_mosi": 0,
            "transfers_dropped": 0,
            "irqs_lost": 0,
            "irqs_delayed": 0,
            "module_resets": 0,
            "transactions": 0,
        }

    # ---------------------------------------------------------------- arming
    def arm_bit_errors(
        self, rate: float, seed: int = 1, direction: str = "miso", scope: str = "payload"
    ) -> None:
        """Flip bits on the SPI data at ``rate`` (per bit). ``scope`` payload = socket data only."""
        if direction not in self.DIRECTIONS:
            raise ValueError(f"direction must be one of {self.DIRECTIONS}")
        if scope not in self.SCOPES:
            raise ValueError(f"scope must be one of {self.SCOPES}")
        self.scope = scope
        self.miso = BitErrors(rate, seed) if direction in ("miso", "both") else None
        self.mosi = BitErrors(rate, seed + 0x5EED) if direction in ("mosi", "both") else None

    def arm_drop(self, rate: float = 0.0, seed: int = 1, count: int = -1, nth: int = 0) -> None:
        """Drop SPI transactions: each with probability ``rate``, or exactly the ``nth`` one."""
        if nth <= 0 and not 0.0 < rate <= 1.0:
            raise ValueError("drop needs rate in (0, 1] or nth >= 1")
        self.drop_rng = random.Random(seed)
        self.drop_rate = rate
        self.drop_left = count
        self.drop_nth = nth

    def arm_irq(self, mode: str, count: int = 1, delay_us: int = 0) -> None:
        """Lose (``lost``) or delay (``delay``, by ``delay_us`` virtual µs) the next ``count`` interrupts."""
        if mode not in ("lost", "delay"):
            raise ValueError("irq mode must be 'lost' or 'delay'")
        if mode == "delay" and delay_us <= 0:
            raise ValueError("irq delay needs delay_us > 0")
        self.irq_mode, self.irq_left, self.irq_delay_us = mode, count, delay_us

    # ---------------------------------------------------------------- queries (CPU thread)
    def corrupt(self, direction: str, byte: int, payload: bool) -> int:
        """Apply the armed bit errors of ``direction`` to one byte on the wire."""
        stream = self.miso if direction == "miso" else self.mosi
        if stream is None or (self.scope == "payload" and not payload):
            return byte
        before = stream.flipped
        out = stream.apply(byte)
        if out != byte:
            self.counters[f"bits_flipped_{direction}"] += stream.flipped - before
            self.counters[f"bytes_corrupted_{direction}"] += 1
        return out

    def drop_transaction(self) -> bool:
        """Called at the start of each SPI transaction: True if the module must miss it."""
        self.counters["transactions"] += 1
        if self.drop_rng is None or self.drop_left == 0:
            return False
        if self.drop_nth > 0:
            self.drop_nth -= 1
            hit = self.drop_nth == 0
            if hit:
                self.drop_rng = None
        else:
            hit = self.drop_rng.random() < self.drop_rate
        if hit:
            self.counters["transfers_dropped"] += 1
            if self.drop_left > 0:
                self.drop_left -= 1
        return hit

    def irq_fault(self) -> tuple[str, int]:
        """For an interrupt about to be raised: ("", 0), ("lost", 0) or ("delay", µs)."""
        if not self.irq_mode or self.irq_left == 0:
            return "", 0
        if self.irq_left > 0:
            self.irq_left -= 1
        if self.irq_mode == "lost":
            self.counters["irqs_lost"] += 1
            return "lost", 0
        self.counters["irqs_delayed"] += 1
        return "delay", self.irq_delay_us

    def snapshot(self) -> dict[str, Any]:
        """Armed faults and counters."""
        return {
            "armed": {
                "bit_errors_miso": self.miso.rate if self.miso else 0.0,
                "bit_errors_mosi": self.mosi.rate if self.mosi else 0.0,
                "scope": self.scope,
                "drop_rate": self.drop_rate if self.drop_rng else 0.0,
                "drop_nth": self.drop_nth,
                "irq": self.irq_mode,
                "irq_left": self.irq_left,
            },
            "counters": dict(self.counters),
        }
