"""The pieces of the faster diff (issue 18) against the plain numpy they replace: differing
offsets from 64-bit words, runs of offsets, block counts on words, popcounts, the earliest
equal hash by bucket tables, and the protocol-token search's three paths."""

from __future__ import annotations

import numpy as np
import pytest
from diff_reference import diff as ref

from rig import diff as new
from rig.diagnosis_cache import _earliest
from rig.diff_arrays import POPCOUNT, bit_counts, popcount_sum, runs
from rig.diff_sparse import block_counts, differing, idx_runs, last_true, merge_runs, true_at

APP = 0x08040000


@pytest.mark.parametrize("seed", range(40))
def test_differing_offsets_are_the_bytes_that_differ(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 5000))
    start = int(rng.integers(0, 8))  # views that do not start on a word
    a = rng.integers(0, 256, n + start, dtype=np.uint8)[start:]
    b = a.copy()
    share = rng.choice([0.0, 0.001, 0.05, 0.5, 1.0])
    pos = np.flatnonzero(rng.random(n) < share)
    b[pos] ^= rng.integers(1, 256, pos.size, dtype=np.uint8)
    got, mask = differing(a, b)
    assert got.dtype == np.int64 and np.array_equal(got, np.flatnonzero(a != b))
    assert mask is None or np.array_equal(mask, a != b)


@pytest.mark.parametrize("seed", range(40))
def test_true_at_is_flatnonzero(seed: int) -> None:
    """Word by word below one True in ten (the band where numpy's nonzero is slow), on sizes
    that are not whole words, views that start inside a word, and strided views."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40_000))
    start = int(rng.integers(0, 8))
    share = rng.choice([0.0, 0.0005, 0.03, 0.08, 0.099, 0.11, 0.5, 1.0])
    mask = (rng.random(n + start) < share)[start:]
    assert np.array_equal(true_at(mask), np.flatnonzero(mask))
    assert np.array_equal(true_at(mask[::3]), np.flatnonzero(mask[::3]))


def test_bit_counts() -> None:
    x = np.arange(256, dtype=np.uint8)
    assert np.array_equal(bit_counts(x), POPCOUNT) and bit_counts(x).dtype == np.uint8


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize("gap", [0, 1, 64])
def test_runs_of_offsets_are_the_runs_of_the_mask(seed: int, gap: int) -> None:
    rng = np.random.default_rng(seed)
    mask = rng.random(int(rng.integers(0, 3000))) < rng.choice([0.01, 0.3, 0.9])
    starts, ends = runs(mask, gap=gap)
    o = np.flatnonzero(mask)
    s, e, first = idx_runs(o, gap=gap)
    assert np.array_equal(s, starts) and np.array_equal(e, ends)
    assert np.array_equal(first[:-1], np.searchsorted(o, starts)) and first[-1] == o.size
    ms, me, mfirst = merge_runs(idx_runs(o), gap)
    assert np.array_equal(ms, s) and np.array_equal(me, e) and np.array_equal(mfirst, first)


@pytest.mark.parametrize("block", [8, 256, 2040])
def test_block_counts(block: int) -> None:
    rng = np.random.default_rng(block)
    for share in (0.0, 0.5, 0.99, 1.0):
        mask = rng.random(10 * block + 5) < share
        nb = mask.size // block
        want = mask[: nb * block].reshape(nb, block).sum(axis=1)
        assert np.array_equal(block_counts(mask, block), want)
    with pytest.raises(ValueError):
        block_counts(np.zeros(8192, dtype=bool), 4096)


def test_last_true_and_popcount() -> None:
    rng = np.random.default_rng(3)
    for n in (0, 1, 7, 8, 9, 1000):
        mask = rng.random(n) < 0.01
        hits = np.flatnonzero(mask)
        assert last_true(mask) == (int(hits[-1]) if hits.size else -1)
        x = rng.integers(0, 256, n, dtype=np.uint8)
        want = int(POPCOUNT[x].sum())
        assert popcount_sum(x) == want and popcount_sum(x[::-1]) == want
        if n > 1:
            assert popcount_sum(x[1:]) == int(POPCOUNT[x[1:]].sum())


@pytest.mark.parametrize("seed", range(20))
def test_earliest_equal_hash(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 2**63, int(rng.integers(1, 300)), dtype=np.uint64)
    ha = pool[rng.integers(0, pool.size, int(rng.integers(0, 2000)))]  # many repeats
    hb = np.concatenate((pool[rng.integers(0, pool.size, 500)], rng.integers(0, 2**63, 50, dtype=np.uint64)))
    got = _earliest(ha, hb)
    first: dict[int, int] = {}
    for i, h in enumerate(ha.tolist()):
        first.setdefault(h, i)
    assert got.tolist() == [first.get(h, -1) for h in hb.tolist()]


def _both(exp: bytes, act: bytes, tokens: tuple[bytes, ...] | None = None) -> None:
    kw = {} if tokens is None else {"tokens": tokens}
    got = new.analyze(exp, act, APP, **kw)
    want = ref.analyze(exp, act, APP, **kw)
    assert got.to_dict() == want.to_dict(), got.summary() + "\n---\n" + want.summary()


@pytest.mark.parametrize("share", [0.0, 0.001, 0.1, 0.5])
@pytest.mark.parametrize("text", [False, True])
def test_foreign_tokens_on_every_search_path(share: float, text: bool) -> None:
    """Few differing bytes (searched around), many (the whole readback by first bytes),
    text-like data (too many candidates): the same tokens as searching everywhere."""
    rng = np.random.default_rng(int(share * 1000) + text)
    n = 200_000
    if text:
        alphabet = np.frombuffer(b"OTA_DONE FILE_SIZE:NACK:REQ_FW", np.uint8)
        exp = alphabet[rng.integers(0, alphabet.size, n)]
    else:
        exp = rng.integers(0, 256, n, dtype=np.uint8)
    act = exp.copy()
    pos = np.flatnonzero(rng.random(n) < share)
    act[pos] = rng.integers(0, 256, pos.size, dtype=np.uint8)
    for at, tok in ((0, b"NACK:"), (n - 8, b"OTA_DONE"), (5000, b"NACK:NACK:"), (7001, b"REQ_FW")):
        act[at : at + len(tok)] = np.frombuffer(tok, np.uint8)
    act[9000:9008] = np.frombuffer(b"OTA_DONE", np.uint8)
    exp[9000:9008] = np.frombuffer(b"OTA_DONE", np.uint8)  # the image has it: not foreign
    _both(exp.tobytes(), act.tobytes())
    _both(exp.tobytes(), act.tobytes(), tokens=(b"N", b"OTA_DONE", b"", b"NACK:"))  # one-byte token
    _both(exp.tobytes(), act.tobytes(), tokens=())


def test_stale_lines_as_the_benchmark_makes_them() -> None:
    from rig.board import load_board
    from rig.image import padding_pattern

    image = padding_pattern(0, 512 * 1024, 2024)
    act = np.frombuffer(image, np.uint8).copy()
    rng = np.random.default_rng(3)
    lines = np.flatnonzero(rng.random(len(image) // 32) < 0.02)
    for line in lines[lines * 32 >= 1024].tolist():
        act[32 * line : 32 * line + 32] = act[32 * line - 1024 : 32 * line - 1024 + 32]
    layout = load_board().active_layout
    res = new.analyze(image, act.tobytes(), APP, layout)
    assert res.kinds() == ["stale_cache_lines"], res.summary()
    assert res.diagnoses[0].evidence["distance"] == 1024 and res.unexplained == 0
    assert res.to_dict() == ref.analyze(image, act.tobytes(), APP, layout).to_dict()
