"""Why a board's CRC disagrees with the image's: find what the board must have computed.

A bootloader that reports a CRC (on its console, or in a NACK) different from the image's
CRC-32 has computed it over something else, or computed something else. :func:`explain_crc`
tries the usual suspects and says which one gives exactly the board's value:

- a prefix of the image (a tail ignored: the CRC unit fed whole words only), or more bytes
  than the image (a length off by a few, the padding or old flash after it);
- a suffix (a header or the first bytes skipped);
- another area of flash read back (the scratch area instead of the app slot), or what
  flash really holds when it differs from the image;
- another CRC-32 (polynomial, reflection, initial value, final XOR, words fed MSB first as
  the STM32 CRC unit does in its reset configuration).

Every CRC here is computed for *all* prefix lengths at once: the register is linear, so
the image is cut into blocks that are processed side by side with numpy and joined again
(32×32 bit matrices over GF(2)). The zlib CRC-32 of every prefix of 512 KiB takes a few
tens of milliseconds; suffixes follow from the prefixes and the inverse of one zero-byte
step. ``binascii``/``zlib`` give the CRC-32 itself (and check the engine in the tests).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from rig.diff_arrays import num

MASK = 0xFFFFFFFF
#: bytes past the end of the image tried as "a length off by a few bytes"
MAX_EXTRA = 64
#: block length of the vectorised register (blocks are processed side by side)
BLOCK = 1024


@dataclass(frozen=True)
class CrcModel:
    """A CRC-32 in the usual catalogue parameters, plus the STM32 unit's word order."""

    name: str
    poly: int
    refin: bool
    refout: bool
    init: int
    xorout: int
    word_swap: bool = False  #: bytes of each 32-bit little-endian word fed MSB first

    def describe(self) -> str:
        swap = ", words fed MSB first" if self.word_swap else ""
        return (
            f"poly 0x{self.poly:08X}, input {'reflected' if self.refin else 'not reflected'}, "
            f"output {'reflected' if self.refout else 'not reflected'}, init 0x{self.init:08X}, "
            f"final XOR 0x{self.xorout:08X}{swap}"
        )


#: the CRC-32 the OTA protocol uses (FILE_CRC, zlib.crc32)
ZLIB = CrcModel("CRC-32 (zlib, IEEE 802.3)", 0x04C11DB7, True, True, MASK, MASK)
#: named CRC-32s a board may have used instead (the catalogue's common ones)
COMMON_MODELS = (
    CrcModel("CRC-32/BZIP2", 0x04C11DB7, False, False, MASK, MASK),
    CrcModel("CRC-32/MPEG-2", 0x04C11DB7, False, False, MASK, 0),
    CrcModel("CRC-32/POSIX", 0x04C11DB7, False, False, 0, MASK),
    CrcModel("CRC-32/JAMCRC (zlib without the final XOR)", 0x04C11DB7, True, True, MASK, 0),
    CrcModel(
        "the STM32 CRC unit in its reset configuration (CRC-32/MPEG-2 over 32-bit words, MSB first)",
        0x04C11DB7,
        False,
        False,
        MASK,
        0,
        word_swap=True,
    ),
    CrcModel("CRC-32C (Castagnoli)", 0x1EDC6F41, True, True, MASK, MASK),
    CrcModel("CRC-32D", 0xA833982B, True, True, MASK, MASK),
    CrcModel("CRC-32Q", 0x814141AB, False, False, 0, 0),
    CrcModel("CRC-32/XFER", 0x000000AF, False, False, 0, 0),
    CrcModel("CRC-32/AUTOSAR", 0xF4ACFB13, True, True, MASK, MASK),
    CrcModel("CRC-32/CD-ROM-EDC", 0x8001801B, True, True, 0, 0),
)


# ------------------------------------------------------------------------- the engine
def _bitrev32(v: int) -> int:
    return int(f"{v & MASK:032b}"[::-1], 2)


_REV8 = np.array([int(f"{i:08b}"[::-1], 2) for i in range(256)], dtype=np.uint8)


@lru_cache(maxsize=16)
def _table(poly: int) -> np.ndarray:
    """Byte table of the reflected register for ``poly`` (normal representation)."""
    rpoly = _bitrev32(poly)
    out = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (rpoly if c & 1 else 0)
        out[i] = c
    return out


@lru_cache(maxsize=16)
def _zero_block(poly: int) -> tuple[int, ...]:
    """Columns of the linear map "BLOCK zero bytes" on the reflected register."""
    t = _table(poly)
    cols = (np.uint32(1) << np.arange(32, dtype=np.uint32)).astype(np.uint32)
    for _ in range(BLOCK):
        cols = (cols >> np.uint32(8)) ^ t[cols & np.uint32(0xFF)]
    return tuple(int(c) for c in cols)


def _apply(cols: tuple[int, ...], v: int) -> int:
    r = 0
    for bit, col in enumerate(cols):
        if (v >> bit) & 1:
            r ^= col
    return r


def _feed(data: bytes | np.ndarray, model: CrcModel) -> np.ndarray:
    d = np.frombuffer(bytes(data), dtype=np.uint8) if not isinstance(data, np.ndarray) else data
    if model.word_swap:
        words = d[: d.size & ~3].reshape(-1, 4)[:, ::-1].reshape(-1)
        d = np.concatenate([words, d[d.size & ~3 :]])
    return d if model.refin else _REV8[d]


def registers(data: bytes | np.ndarray, model: CrcModel) -> np.ndarray:
    """The reflected CRC register after every prefix: element k is the state after
    ``data[:k]`` (k = 0..len), before the output reflection and final XOR."""
    d = _feed(data, model)
    n = int(d.size)
    t = _table(model.poly)
    init = np.uint32(_bitrev32(model.init))
    if n == 0:
        return np.array([init], dtype=np.uint32)
    m = -(-n // BLOCK)
    flat_in = np.zeros(m * BLOCK, dtype=np.uint8)
    flat_in[:n] = d
    blocks = flat_in.reshape(m, BLOCK)
    eight, low = np.uint32(8), np.uint32(0xFF)
    local = np.zeros((BLOCK + 1, m), dtype=np.uint32)  # each block from a zero register
    for i in range(BLOCK):
        cur = local[i]
        local[i + 1] = (cur >> eight) ^ t[(cur ^ blocks[:, i]) & low]
    zb = _zero_block(model.poly)
    starts = np.zeros(m, dtype=np.uint32)  # the true register at each block start
    s = int(init)
    for j in range(m):
        starts[j] = s
        s = _apply(zb, s) ^ int(local[BLOCK, j])
    out = np.empty((BLOCK + 1, m), dtype=np.uint32)
    cur = starts
    for i in range(BLOCK + 1):  # Z^i(start) xor the block's own contribution
        out[i] = cur ^ local[i]
        cur = (cur >> eight) ^ t[cur & low]
    flat = np.concatenate([out[:BLOCK].T.reshape(-1), out[BLOCK, -1:]])
    return flat[: n + 1]


def finish(regs: np.ndarray | int, model: CrcModel) -> Any:
    """CRC values from register values (output reflection and final XOR)."""
    if isinstance(regs, np.ndarray):
        vals = regs if model.refout else _bitrev_array(regs)
        return vals ^ np.uint32(model.xorout)
    return ((regs if model.refout else _bitrev32(regs)) ^ model.xorout) & MASK


def _bitrev_array(v: np.ndarray) -> np.ndarray:
    b = v.astype("<u4").view(np.uint8).reshape(-1, 4)
    return _REV8[b][:, ::-1].copy().view("<u4").reshape(-1).astype(np.uint32)


def crc(data: bytes, model: CrcModel = ZLIB) -> int:
    """The CRC of ``data`` under ``model``."""
    return int(finish(registers(data, model)[-1:], model)[0])


def prefix_crcs(data: bytes, model: CrcModel = ZLIB) -> np.ndarray:
    """The CRC of every prefix ``data[:k]``, k = 0..len (uint32 array of len + 1)."""
    return finish(registers(data, model), model)


@lru_cache(maxsize=4)
def _unstep_tables(poly: int) -> tuple[np.ndarray, np.ndarray]:
    t = _table(poly)
    top = (t >> np.uint32(24)).astype(np.int64)
    inv = np.zeros(256, dtype=np.uint32)
    inv[top] = np.arange(256, dtype=np.uint32)
    return t, inv


def suffix_starts(data: bytes, value: int, prefixes: np.ndarray | None = None) -> list[int]:
    """Every k with zlib CRC-32 of ``data[k:]`` == ``value`` (k = 1..len-1).

    The register is linear: crc(data[k:]) = crc(data) ^ Z^(n-k)(crc(data[:k])), with Z one
    zero byte. So crc(data[:k]) must equal Z^-(n-k)(crc(data) ^ value), and the inverse
    steps are one table look-up each (the table's top bytes are all different)."""
    n = len(data)
    if n < 2:
        return []
    p = prefix_crcs(data) if prefixes is None else prefixes
    target = (int(p[n]) ^ value) & MASK
    t, inv = _unstep_tables(ZLIB.poly)
    # w[L] = Z^-L(target) for L = 0..n, computed L = q*BLOCK + i side by side over q
    q = n // BLOCK + 1
    zb_inv = _inverse_cols(_zero_block(ZLIB.poly))
    heads = np.zeros(q, dtype=np.uint32)
    s = target
    for j in range(q):
        heads[j] = s
        s = _apply(zb_inv, s)
    w = np.empty((BLOCK, q), dtype=np.uint32)
    cur = heads
    eight, top = np.uint32(8), np.uint32(24)
    for i in range(BLOCK):
        w[i] = cur
        idx = inv[cur >> top]
        cur = ((cur ^ t[idx]) << eight) | idx
    wl = w.T.reshape(-1)[: n + 1]  # wl[L] = Z^-L(target)
    ks = np.arange(1, n)
    hits = ks[p[1:n] == wl[n - ks]]
    return [int(k) for k in hits]


def _inverse_cols(cols: tuple[int, ...]) -> tuple[int, ...]:
    """Columns of the inverse of an invertible 32×32 bit matrix (Gauss-Jordan over GF(2))."""
    rows = [0] * 32  # row r: bits of output r over inputs, augmented with the identity
    for c, col in enumerate(cols):
        for r in range(32):
            if (col >> r) & 1:
                rows[r] |= 1 << c
    aug = [rows[r] | (1 << (32 + r)) for r in range(32)]
    for c in range(32):
        piv = next(r for r in range(c, 32) if (aug[r] >> c) & 1)
        aug[c], aug[piv] = aug[piv], aug[c]
        for r in range(32):
            if r != c and (aug[r] >> c) & 1:
                aug[r] ^= aug[c]
    inv_rows = [(aug[r] >> 32) & MASK for r in range(32)]
    return tuple(sum(((inv_rows[r] >> c) & 1) << r for r in range(32)) for c in range(32))


# ------------------------------------------------------------------------- the diagnosis
@dataclass(frozen=True)
class CrcFinding:
    """One computation that gives exactly the board's CRC.

    ``kind``: ``prefix`` (the first ``length`` bytes), ``longer`` (``length`` bytes, more
    than the image), ``suffix`` (from ``start``), ``area`` (a flash area read back),
    ``model`` (another CRC-32)."""

    kind: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message, **self.details}


def _bytes(n: int) -> str:
    return f"{num(n)} byte{'s' if n != 1 else ''}"


def _lengths_found(board: int, image: bytes, prefixes: np.ndarray, extra: bytes) -> list[CrcFinding]:
    n = len(image)
    head = f"the board's CRC 0x{board:08X} is the CRC-32 of"
    out = []
    for k in np.flatnonzero(prefixes[:n] == np.uint32(board)).tolist()[:3]:
        out.append(
            CrcFinding(
                "prefix",
                f"{head} the first {num(k)} of {_bytes(n)}: it ignores the last {_bytes(n - k)}",
                {"length": k, "image_size": n, "ignored": n - k},
            )
        )
    c = int(prefixes[n])
    for j in range(1, len(extra) + 1):
        c = zlib.crc32(extra[j - 1 : j], c)
        if c == board:
            what = "erased flash (0xFF)" if set(extra[:j]) == {0xFF} else "what flash holds after the image"
            out.append(
                CrcFinding(
                    "longer",
                    f"{head} {_bytes(n + j)}, {j} more than the image's {num(n)}: it reads "
                    f"{_bytes(j)} of {what} past the end",
                    {"length": n + j, "image_size": n, "extra": j},
                )
            )
            break
    for k in suffix_starts(image, board, prefixes)[:3]:
        out.append(
            CrcFinding(
                "suffix",
                f"{head} the last {num(n - k)} of {_bytes(n)}: it skips the first {_bytes(k)}",
                {"start": k, "length": n - k, "image_size": n},
            )
        )
    return out


def _areas_found(board: int, image: bytes, readbacks: Mapping[str, tuple[int, bytes]]) -> list[CrcFinding]:
    n = len(image)
    out = []
    for name, (base, data) in readbacks.items():
        for length in dict.fromkeys((n, n & ~3)):
            if len(data) < length or data[:length] == image[:length]:
                continue
            if zlib.crc32(data[:length]) & MASK == board:
                same = "" if length == n else f" (the first {num(length)})"
                out.append(
                    CrcFinding(
                        "area",
                        f"the board's CRC 0x{board:08X} is the CRC-32 of {_bytes(length)}{same} of "
                        f"{name} at 0x{base:08X} as read back, which differs from the image: the board "
                        f"checked {name}, or what it wrote there",
                        {"region": name, "base": base, "length": length},
                    )
                )
                break
    return out


def _models_found(board: int, image: bytes) -> list[CrcFinding]:
    n = len(image)
    out = []
    for model in COMMON_MODELS:
        regs = registers(image, model)
        for length in dict.fromkeys(k for k in (n, n & ~3) if k > 0):  # every CRC of 0 bytes is alike
            if int(finish(regs[length : length + 1], model)[0]) == board:
                part = "the image" if length == n else f"the first {num(length)} of {_bytes(n)}"
                out.append(
                    CrcFinding(
                        "model",
                        f"the board's CRC 0x{board:08X} is {model.name} of {part} ({model.describe()}), "
                        "not the zlib CRC-32 of the protocol",
                        {"model": model.name, "length": length, "image_size": n},
                    )
                )
                break
    return out


def explain_crc(
    board: int,
    image: bytes,
    *,
    readbacks: Mapping[str, tuple[int, bytes]] | None = None,
    after: bytes | None = None,
) -> list[CrcFinding]:
    """What the board must have computed to get ``board`` instead of the image's CRC-32.

    Args:
        board: the CRC the board reported.
        image: the image bytes (what the CRC should cover).
        readbacks: flash areas read back, ``name -> (base, bytes)`` (e.g. the app slot and
            the scratch area), tried as "the CRC of another area" and "what flash holds".
        after: the bytes that follow the image where the board reads it (default 0xFF,
            erased flash), tried for a length a few bytes too long.

    Returns the findings, most specific first; empty if the value matches the image or
    nothing tried explains it.
    """
    board &= MASK
    if zlib.crc32(image) & MASK == board:
        return []
    prefixes = prefix_crcs(image)
    extra = (after if after is not None else b"\xff" * MAX_EXTRA)[:MAX_EXTRA]
    found = _lengths_found(board, image, prefixes, extra)
    found += _areas_found(board, image, readbacks or {})
    found += _models_found(board, image)
    return found


def describe(board: int, image: bytes, findings: list[CrcFinding]) -> str:
    """One sentence for a failure message: the findings, or what was ruled out."""
    if findings:
        return "; ".join(f.message for f in findings)
    return (
        f"the board's CRC 0x{board:08X} differs from the image's 0x{zlib.crc32(image) & MASK:08X} and is "
        f"none of: a prefix or suffix of the image, up to {MAX_EXTRA} bytes more, the areas read "
        "back, the common CRC-32 variants (corrupted data?)"
    )


_HEX = re.compile(r"(?<![0-9A-Za-z])(?:0x)?([0-9A-Fa-f]{8})(?![0-9A-Za-z])")
#: "CRC" as a word ("FILE_CRC", "CRC-32", "app_crc" count; a name like "crc-tail-ignored" does not)
_CRC_WORD = re.compile(r"(?i)(?<![a-z])crc(?![a-z]|-[a-z])")


def reported_crcs(text: str) -> list[tuple[int, str]]:
    """CRC values a board reported: 8-digit hex numbers on lines that mention a CRC
    (console lines, NACK reasons), with their line; each value once, in order."""
    seen: dict[int, str] = {}
    for line in text.splitlines():
        if not _CRC_WORD.search(line):
            continue
        for m in _HEX.finditer(line):
            seen.setdefault(int(m.group(1), 16), line.strip())
    return list(seen.items())


def explain_reported(
    text: str,
    image: bytes,
    *,
    known: set[int] | frozenset[int] = frozenset(),
    readbacks: Mapping[str, tuple[int, bytes]] | None = None,
    limit: int = 3,
) -> list[str]:
    """A sentence for each CRC in ``text`` (a console log) that differs from the image's
    CRC-32 and from the ``known`` values (the FILE_CRC the server sent, the installed app's
    CRC): the line it came from and what the board must have computed."""
    own = zlib.crc32(image) & MASK
    out = []
    for value, line in reported_crcs(text):
        if value == own or value in known:
            continue
        findings = explain_crc(value, image, readbacks=readbacks)
        out.append(f"{line!r}: {describe(value, image, findings)}")
        if len(out) >= limit:
            break
    return out
