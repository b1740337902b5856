"""The faster flash diff (issue 18: sparse differences, word-level comparison, prefilters that
skip a detector only when it cannot find anything) gives exactly what the simpler code before
it gave: the frozen copy in ``diff_reference`` is the oracle. Seeded random images carry a
random mix of every kind of damage the diagnosis knows (and some it does not), at random
places and sizes; analyze(), diagnose() and diff_bytes() must agree to the last message."""

from __future__ import annotations

import numpy as np
import pytest
from diff_reference import diff as ref

from rig import diff as new
from rig.board import BoardSpec, load_board
from rig.diff_base import DEFAULT_TOKENS
from rig.image import padding_pattern

K = 1024
FLASH = 0x08000000


@pytest.fixture(scope="module")
def spec() -> BoardSpec:
    return load_board()


def _image(rng: np.random.Generator, n: int) -> np.ndarray:
    """Image-like bytes: the padding pattern with code-like repeats, erased runs and zeros."""
    img = np.frombuffer(padding_pattern(0, n, int(rng.integers(1 << 30))), np.uint8).copy()
    for _ in range(int(rng.integers(0, 6))):
        s, k = int(rng.integers(0, n)), int(rng.integers(1, 4 * K))
        img[s : s + k] = rng.choice([0x00, 0xFF])
    for _ in range(int(rng.integers(0, 6))):  # repeated 32-byte lines (tables, code)
        src, dst = (int(x) for x in rng.integers(0, n // 32 - 1, 2) * 32)
        img[dst : dst + 32] = img[src : src + 32]
    return img


def _damage(rng: np.random.Generator, exp: np.ndarray) -> np.ndarray:
    n = exp.size
    act = exp.copy()
    kinds = rng.choice(12, int(rng.integers(1, 4)), replace=False)
    for kind in kinds.tolist():
        s = int(rng.integers(0, n))
        k = int(rng.integers(1, 16 * K))
        if kind == 0:  # scattered bit flips
            pos = rng.choice(n, max(1, int(n * rng.choice([1e-4, 1e-3, 1e-2]))), replace=False)
            act[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)
        elif kind == 1:  # a lost chunk
            act[s:] = np.concatenate((exp[s + k :], np.full(min(k, n - s), 0xFF, np.uint8)))[: n - s]
        elif kind == 2:  # a duplicated chunk
            act[s + k :] = exp[s : n - k] if s + k < n else act[s + k :]
        elif kind == 3:  # erased block / truncated
            act[s : s + k if rng.random() < 0.5 else n] = 0xFF
        elif kind == 4:  # a token
            tok = np.frombuffer(DEFAULT_TOKENS[int(rng.integers(len(DEFAULT_TOKENS)))], np.uint8)
            act[s : s + tok.size] = tok[: n - s]
        elif kind == 5:  # a block written again and again
            period = int(rng.choice([256, 512, 1024, 4096, 96]))
            src = int(rng.integers(0, max(1, n - period)))
            act[s : s + 8 * period] = np.resize(exp[src : src + period], act[s : s + 8 * period].size)
        elif kind == 6:  # stale 32-byte lines from earlier packets
            packet = int(rng.choice([512, 1024, 1408]))
            phase = int(rng.choice([0, 0, 8, 24]))
            lines = np.flatnonzero(rng.random(n // 32) < rng.choice([0.01, 0.05, 0.3])) * 32 + phase
            for line in lines[(lines >= 2 * packet) & (lines + 32 <= n)].tolist():
                back = packet * int(rng.integers(1, 3))
                act[line : line + 32] = exp[line - back : line - back + 32]
        elif kind == 7:  # random lines
            for line in rng.choice(n // 32, 40, replace=False).tolist():
                act[32 * line : 32 * line + 32] = rng.integers(0, 256, 32, dtype=np.uint8)
        elif kind == 8:  # programmed without an erase (over random old data)
            act[s : s + 4 * k] &= rng.integers(0, 256, act[s : s + 4 * k].size, dtype=np.uint8)
        elif kind == 9:  # zeros
            act[s : s + k] = 0
        elif kind == 10:  # a few random bytes
            pos = rng.choice(n, int(rng.integers(1, 50)), replace=False)
            act[pos] = rng.integers(0, 256, pos.size, dtype=np.uint8)
        else:  # multi-bit errors
            pos = rng.choice(n, int(rng.integers(1, 2000)), replace=False)
            act[pos] ^= rng.integers(1, 256, pos.size, dtype=np.uint8)
    return act


def _plain(x: object) -> object:
    """Results of either implementation as built-in values (their classes differ)."""
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x.to_dict() if hasattr(x, "to_dict") else x


@pytest.mark.parametrize("seed", range(60))
def test_analyze_matches_the_reference(spec: BoardSpec, seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([4 * K, 64 * K, 200 * K, 512 * K])) + int(rng.integers(0, 64))
    base = int(rng.choice([FLASH, FLASH + 0x40000, FLASH + 0x20000 + 8]))
    layout = None if seed % 7 == 3 else spec.layout(bool(seed % 2))
    exp = _image(rng, n)
    act = _damage(rng, exp)
    if seed % 5 == 0:  # a short or a long readback
        act = act[: n - int(rng.integers(1, 3 * K))] if seed % 10 else np.concatenate((act, act[:100]))
    prev = _image(rng, n) if seed % 3 == 0 else None
    received = seed % 4 == 1
    e, a = exp.tobytes(), act.tobytes()
    got = new.analyze(e, a, base, layout, previous=prev, received=received)
    want = ref.analyze(e, a, base, layout, previous=prev, received=received)
    assert got.to_dict() == want.to_dict(), got.summary() + "\n---\n" + want.summary()
    assert got.summary() == want.summary() and got.unexplained == want.unexplained
    assert _plain(got.diff.ranges) == _plain(want.diff.ranges)
    assert _plain(got.diagnoses) == _plain(want.diagnoses)


@pytest.mark.parametrize("seed", range(8))
def test_diagnose_and_diff_bytes_match_the_reference(spec: BoardSpec, seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n = 256 * K
    layout = spec.layout(False)
    exp = _image(rng, n)
    act = _damage(rng, exp)
    writable = [(FLASH + 0x40000, 0x20000)] if seed % 2 else None
    base = FLASH + 0x40000
    assert _plain(new.diagnose(exp, act, base, layout, writable=writable)) == _plain(
        ref.diagnose(exp, act, base, layout, writable=writable)
    )
    regions = ["app_slot"] if seed % 2 else None
    got = new.diff_bytes(exp, act, base, layout, regions=regions)
    want = ref.diff_bytes(exp, act, base, layout, regions=regions)
    assert got.to_dict(max_ranges=10**9) == want.to_dict(max_ranges=10**9)
