"""The ``foreign_text`` detector: protocol control tokens (``OTA_DONE``, ``FILE_SIZE:``, ...)
stored as image data, i.e. found in the readback where the image does not have them.

A token the readback has and the image has not overlaps a differing byte, and that byte
and a neighbour form one of the tokens' two-byte pairs. With few differing bytes only the
ones passing that test are searched around (2 MiB with 1% scattered errors leaves a handful),
else the whole readback (where it has a token's first bytes); all find the same tokens.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import numpy as np

from rig.diagnosis import MAX_LIST, Diagnosis, State
from rig.diff_sparse import true_at

#: above this many candidate bytes (text-like data) the whole readback is searched
_MAX_CANDIDATES = 256


def foreign_text(st: State, tokens: Sequence[bytes]) -> list[Diagnosis]:
    toks = list(dict.fromkeys(t for t in tokens if t))
    if not toks:
        return []
    windows = _windows(st, toks)
    if windows == []:
        return []
    actual = st.b_bytes
    expected = st.a_bytes
    hits: dict[bytes, list[int]] = {}
    starting: dict[int, np.ndarray] = {}  # first byte -> where the readback has it
    for tok in toks:
        found = _everywhere(st, tok, starting) if windows is None else _occurrences(actual, tok, windows)
        for p in found:
            if expected[p : p + len(tok)] != tok:
                hits.setdefault(tok, []).append(p)
    st.explain_all([(p, p + len(tok)) for tok, offs in hits.items() for p in offs])
    out = []
    for tok, offs in hits.items():
        text = tok.decode("ascii", "replace")
        out.append(
            Diagnosis(
                "foreign_text",
                st.base + offs[0],
                len(tok),
                f"protocol token {text!r} found {len(offs)} time(s) inside the flash data, first at "
                f"{st.where(offs[0])}: a control message was stored as image data",
                {"token": text, "count": len(offs), "addresses": [st.base + o for o in offs[:MAX_LIST]]},
            )
        )
    return out


def _everywhere(st: State, tok: bytes, starting: dict[int, np.ndarray]) -> list[int]:
    """Every (overlapping) offset of ``tok`` in the readback: where it has the token's first
    bytes (vectorised), then checked whole."""
    if tok[0] not in starting:
        starting[tok[0]] = np.flatnonzero(st.b == tok[0])
    pos = starting[tok[0]]
    pos = pos[pos <= st.n - len(tok)]
    for k in range(1, min(len(tok), 4)):
        pos = pos[st.b[pos + k] == tok[k]]
    actual = st.b_bytes
    return [p for p in pos.tolist() if actual[p : p + len(tok)] == tok]


def _occurrences(data: bytes, tok: bytes, windows: list[tuple[int, int]]) -> list[int]:
    """Every (overlapping) offset of ``tok`` in ``data`` inside the (disjoint, sorted) ``windows``."""
    found: list[int] = []
    for lo, hi in windows:
        p = data.find(tok, lo, hi)
        while p != -1:
            found.append(p)
            p = data.find(tok, p + 1, hi)
    return found


@functools.lru_cache(maxsize=8)
def _tables(toks: tuple[bytes, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Which byte values the tokens hold, and which two-byte pairs (``x << 8 | y``)."""
    in_tok = np.zeros(256, dtype=bool)
    pairs = np.zeros(1 << 16, dtype=bool)
    for tok in toks:
        in_tok[list(tok)] = True
        for x, y in itertools.pairwise(tok):
            pairs[(x << 8) | y] = True
    return in_tok, pairs


def _windows(st: State, toks: list[bytes]) -> list[tuple[int, int]] | None:
    """The stretches of the readback a foreign token can lie in (merged, sorted), or None
    for the whole of it."""
    o = st.idx
    if min(len(t) for t in toks) < 2 or o.size > st.n // 16:
        return None
    in_tok, pairs = _tables(tuple(toks))
    b, n = st.b, st.n
    here = st.at("b")
    sel = true_at(np.take(in_tok, here))  # a byte no token has is in none of their pairs
    o, here = o[sel], here[sel].astype(np.intp)
    after = b[np.minimum(o + 1, n - 1)]
    before = b[np.maximum(o - 1, 0)].astype(np.intp)
    cand = o[pairs[(here << 8) | after] | pairs[(before << 8) | here]]
    if cand.size > _MAX_CANDIDATES:
        return None
    longest = max(len(t) for t in toks)
    out: list[tuple[int, int]] = []
    for c in cand.tolist():
        lo, hi = max(c - longest + 1, 0), min(c + longest, n)
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out
