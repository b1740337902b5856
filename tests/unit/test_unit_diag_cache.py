"""``stale_cache_lines``: an image received by DMA into a cached buffer and read by the CPU
through lines it never invalidated, simulated the way the Cortex-M7's D-cache does it."""

from __future__ import annotations

import numpy as np
import pytest

from rig.board import FlashLayout, load_board
from rig.diff import analyze
from rig.image import padding_pattern

K = 1024
APP = 0x08040000


@pytest.fixture(scope="module")
def layout() -> FlashLayout:
    return load_board().active_layout


def received_through_stale_lines(
    image: bytes, *, packet: int, header: int = 0, evict: float = 0.5, seed: int = 1
) -> bytes:
    """What a CPU copies to flash when a DMA writes each packet into one buffer (``header``
    bytes before the payload, the buffer 32-byte aligned) and the CPU reads the payload through
    a D-cache it never invalidates: a line read once stays cached (with the bytes of that
    packet) until it is evicted, here with probability ``evict`` per packet."""
    rng = np.random.default_rng(seed)
    cached: dict[int, bytes] = {}  # RAM line index -> the bytes the cache holds
    out = bytearray()
    for start in range(0, len(image), packet):
        ram = bytearray(header) + bytearray(image[start : start + packet])  # what the DMA wrote
        for line in list(cached):
            if rng.random() < evict:
                del cached[line]
        seen = bytearray(ram)
        for line in range((len(ram) + 31) // 32):
            if line in cached:
                old = cached[line][: len(ram) - 32 * line]
                seen[32 * line : 32 * line + len(old)] = old
            else:
                cached[line] = bytes(ram[32 * line : 32 * line + 32])
        out += seen[header:]
    return bytes(out)


@pytest.mark.parametrize(("packet", "header", "phase"), [(K, 0, 0), (1408, 8, 24), (512, 0, 0)])
def test_stale_lines_are_named_with_their_source(
    layout: FlashLayout, packet: int, header: int, phase: int
) -> None:
    image = padding_pattern(0, 64 * K, 3)
    actual = received_through_stale_lines(image, packet=packet, header=header)
    res = analyze(image, actual, APP, layout)
    assert res.kinds() == ["stale_cache_lines"], res.summary()
    (d,) = res.diagnoses
    assert d.evidence["phase"] == phase
    assert d.evidence["distance"] % packet == 0  # a previous packet at the same place in the buffer
    assert d.evidence["lines_stale"] >= 0.9 * d.evidence["lines_differing"]
    assert res.unexplained <= 0.05 * int(
        np.count_nonzero(np.frombuffer(image, np.uint8) != np.frombuffer(actual, np.uint8))
    )
    for line in d.evidence["lines"]:
        off, src = line["address"] - APP, line["source"] - APP
        assert actual[off : off + 32] == image[src : src + 32] and src < off
    assert "SCB_InvalidateDCache_by_Addr" in d.detail and "32-byte lines" in d.detail


def test_random_lines_and_bit_errors_are_not_stale_lines(layout: FlashLayout) -> None:
    image = padding_pattern(0, 64 * K, 3)
    rng = np.random.default_rng(4)
    act = np.frombuffer(image, np.uint8).copy()
    for line in rng.choice(2 * K, 40, replace=False):  # aligned lines of bytes the image never had
        act[32 * line : 32 * line + 32] = rng.integers(0, 256, 32, dtype=np.uint8)
    pos = rng.choice(np.arange(0, 64 * K), 100, replace=False)
    act[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)
    res = analyze(image, act.tobytes(), APP, layout)
    assert "stale_cache_lines" not in res.kinds(), res.summary()


def test_a_whole_shift_is_still_a_shift(layout: FlashLayout) -> None:
    image = padding_pattern(0, 64 * K, 3)
    actual = image[: 8 * K] + image[8 * K + 64 :] + b"\xff" * 64
    assert "stale_cache_lines" not in analyze(image, actual, APP, layout).kinds()


def test_a_buffer_cached_since_the_first_packet(layout: FlashLayout) -> None:
    """Every line of the receive buffer stays cached (nothing evicts it): each packet is
    written as the first one. In received data that is the cache; in a copy it is a source
    pointer that does not advance."""
    image = padding_pattern(0, 16 * K, 3)
    actual = received_through_stale_lines(image, packet=K, evict=0.0)
    assert actual == image[:K] * 16
    res = analyze(image, actual, APP, layout, received=True)
    assert res.kinds() == ["stale_cache_lines"] and res.unexplained == 0, res.summary()
    (d,) = res.diagnoses
    assert d.evidence["block"] == K and d.evidence["lines_stale"] == 32
    assert "receive buffer" in d.detail and "SCB_InvalidateDCache_by_Addr" in d.detail
    assert analyze(image, actual, APP, layout).kinds() == ["repeated_block"]
    odd = (image[:1000] * 17)[: 16 * K]  # not whole cache lines: not the cache
    assert "stale_cache_lines" not in analyze(image, odd, APP, layout, received=True).kinds()


def test_lines_with_a_few_flipped_bits_are_not_looked_up_as_stale(layout: FlashLayout) -> None:
    """Scattered bit flips leave lines with one or two differing bytes: they are not
    candidates (MIN_BYTES), so no line of the image is hashed for them, while lines read
    through a stale cache line (most of their bytes from an earlier packet) are."""
    from rig import diagnosis as dg
    from rig.diagnosis_cache import MIN_BYTES, _well_differing

    image = padding_pattern(0, 64 * K, seed=5)
    flipped = bytearray(image)
    for off in range(100, len(image), 997):  # one byte in many lines
        flipped[off] ^= 0x10
    stale = bytearray(flipped)
    for line in (40, 41, 90, 300, 301, 302, 700, 1200, 1500):  # 32-byte lines from 1 KiB earlier
        stale[32 * line : 32 * line + 32] = image[32 * line - K : 32 * line - K + 32]
    a = np.frombuffer(image, np.uint8)
    st = dg.State(a, np.frombuffer(bytes(stale), np.uint8), APP, layout, None)
    starts = np.unique(st.idx // 32) * 32
    kept = _well_differing(st, starts, 0)
    assert set((kept // 32).tolist()) == {40, 41, 90, 300, 301, 302, 700, 1200, 1500}
    assert MIN_BYTES > 2
    only_stale = bytearray(image)
    for line in range(40, 1600, 37):
        only_stale[32 * line : 32 * line + 32] = image[32 * line - K : 32 * line - K + 32]
    assert "stale_cache_lines" in analyze(image, bytes(only_stale), APP, layout).kinds()
    assert "stale_cache_lines" not in analyze(image, bytes(flipped), APP, layout).kinds()


def _first_equal_oracle(wa: np.ndarray, wq: np.ndarray, before: np.ndarray) -> list[int]:
    """The first line of ``wa`` with the bytes of each line of ``wq``, if before ``before``."""
    first: dict[bytes, int] = {}
    for i, row in enumerate(wa):
        first.setdefault(row.tobytes(), i)
    out = [first.get(row.tobytes(), -1) for row in wq]
    return [s if s < b else -1 for s, b in zip(out, before.tolist(), strict=True)]


def _lines_with_repeats(rng: np.random.Generator, n_lines: int) -> np.ndarray:
    """Random 32-byte lines with many exact repeats and near repeats (one byte changed, so the
    sieve word and most of the hash input are shared), including copies of line 0."""
    pool = rng.integers(0, 256, (int(rng.integers(2, 40)), 32), dtype=np.uint8)
    lines = rng.integers(0, 256, (n_lines, 32), dtype=np.uint8)
    pick = rng.random(n_lines) < 0.6
    lines[pick] = pool[rng.integers(0, pool.size // 32, int(pick.sum()))]
    near = np.flatnonzero(rng.random(n_lines) < 0.2)
    lines[near, rng.integers(0, 32, near.size)] ^= rng.integers(1, 256, near.size, dtype=np.uint8)
    copies0 = rng.integers(1, n_lines, 5)
    lines[copies0] = lines[0]
    return lines


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("weak_hash", [False, True])
def test_first_equal_line_is_exact(monkeypatch: pytest.MonkeyPatch, seed: int, weak_hash: bool) -> None:
    """The earliest equal line, whatever the hashes: with the real hash and with one that
    collides all the time (two bits of one word), on lines with many repeats, duplicate
    queries, sources at line 0, and few or many queries (sieved or all lines hashed)."""
    from rig import diagnosis_cache as dc

    if weak_hash:
        monkeypatch.setattr(dc, "_hashes", lambda w: w[:, 0] & np.uint64(3))
    rng = np.random.default_rng(seed)
    n_lines = int(rng.choice([40, 300, 3000]))
    lines = _lines_with_repeats(rng, n_lines)
    start = int(rng.integers(0, 32))  # the words need not be aligned (a phase)
    raw = np.zeros(start + lines.size, dtype=np.uint8)
    raw[start:] = lines.ravel()
    wa = raw[start:].view(np.uint64).reshape(n_lines, 4)
    k = int(rng.choice([3, n_lines // 20 + 1, n_lines // 2]))
    before = np.sort(rng.choice(np.arange(1, n_lines), min(k, n_lines - 1), replace=False))
    wq = wa[rng.integers(0, n_lines, before.size)].copy()  # lines of the image, duplicates too
    fresh = rng.random(before.size) < 0.1
    wq[fresh] = rng.integers(0, 2**63, (int(fresh.sum()), 4), dtype=np.int64).view(np.uint64)
    got = dc._first_equal(wa, wq, before)
    assert got.tolist() == _first_equal_oracle(wa, wq, before)


@pytest.mark.parametrize("seed", range(10))
def test_earliest_with_crowded_buckets(seed: int) -> None:
    """Hashes that share their top bits (one table bucket for many queries): the queries that
    lose the bucket are still answered, with the first index."""
    from rig.diagnosis_cache import _earliest

    rng = np.random.default_rng(seed)
    pool = rng.integers(0, 1 << 20, int(rng.integers(2, 200))).astype(np.uint64)  # top bits all 0
    ha = pool[rng.integers(0, pool.size, int(rng.integers(1, 3000)))]
    hb = np.concatenate(
        (pool[rng.integers(0, pool.size, 300)], np.arange(1 << 20, (1 << 20) + 5, dtype=np.uint64))
    )
    first: dict[int, int] = {}
    for i, h in enumerate(ha.tolist()):
        first.setdefault(h, i)
    assert _earliest(ha, hb).tolist() == [first.get(h, -1) for h in hb.tolist()]


@pytest.mark.parametrize("seed", range(20))
def test_lines_and_their_bytes_from_runs(seed: int) -> None:
    """The differing lines at a phase and the bytes of the runs in each, as a byte-by-byte
    count gives them; candidates by those counts are the ones counted from the offsets."""
    from rig import diagnosis as dg
    from rig.diagnosis_cache import _differing_lines, _may_hold_lines, _well_differing

    rng = np.random.default_rng(seed)
    n = int(rng.integers(100, 20000))
    a = rng.integers(0, 256, n, dtype=np.uint8)
    b = a.copy()
    for _ in range(int(rng.integers(1, 60))):
        s = int(rng.integers(0, n))
        b[s : s + int(rng.choice([1, 3, 9, 31, 40, 200]))] ^= 0x5A
    st = dg.State(a, b, APP, None, None)
    if st.idx.size == 0:
        return
    st.done[:] = rng.random(st.idx.size) < 0.1
    starts, ends, _ = st.open_runs()
    off = st.open_idx()
    phase = int(rng.integers(0, 32))
    lines, held = _differing_lines(starts, ends, phase, n)
    m = (n - phase) // 32
    per_line = np.bincount((off[off >= phase] - phase) // 32, minlength=m + 1)[:m]
    assert lines.tolist() == (np.flatnonzero(per_line) * 32 + phase).tolist()
    assert held.tolist() == per_line[per_line > 0].tolist()
    assert np.array_equal(_well_differing(st, lines, phase, held), _well_differing(st, lines, phase))
    if off.size <= n // 8 and not _may_hold_lines(off):  # the prefilter never skips candidates
        assert all(
            _well_differing(st, *_differing_lines(starts, ends, p, n)[:1], p).size < 8 for p in range(32)
        )


def test_prefilter_keeps_lines_with_their_bytes_far_apart() -> None:
    """Eight differing bytes that span a whole line (its first seven and its last) in each of
    eight lines, scattered bytes elsewhere: the prefilter lets them through, at phase 0 only."""
    from rig import diagnosis as dg
    from rig.diagnosis_cache import _differing_lines, _may_hold_lines, _well_differing

    a = np.frombuffer(padding_pattern(0, 64 * K, seed=9), np.uint8)
    b = a.copy()
    for line in range(100, 1700, 200):
        b[32 * line + np.array([0, 1, 2, 3, 4, 5, 6, 31])] ^= 0x21
    b[np.arange(7, 64 * K, 101)] ^= 0x04
    st = dg.State(a, b, APP, None, None)
    off = st.open_idx()
    assert _may_hold_lines(off)
    starts, ends, _ = st.open_runs()
    lines, held = _differing_lines(starts, ends, 0, st.n)
    assert _well_differing(st, lines, 0, held).size == 8
    assert not _may_hold_lines(off[off % 32 != 31])  # seven bytes a line: nothing to look up
