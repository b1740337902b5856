"""Content faults: application-level changes to what the server announces or streams.

A :class:`Fault` turns the :class:`Offer` (the configured image, the bytes streamed, the size
and CRC announced) into a faulted one: corrupt bytes, a wrong size, a truncated image, a
wrong CRC. The image itself is never modified. Chosen by name through
:func:`rig.ota.policy.parse_policy`.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

from rig.errors import ConfigError
from rig.ota.segmenters import positive_int


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
        self.nbytes = positive_int("truncate", "bytes", bytes)

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
