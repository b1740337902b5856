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
