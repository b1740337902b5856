"""Flash diff: ranges, sector table, every diagnosis kind on a constructed case, properties."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hst

from rig.board import BoardSpec, FlashLayout, load_board
from rig.diff import KINDS, analyze, diagnose, diff_bytes
from rig.image import padding_pattern

K = 1024
APP = 0x08040000
SIZE = 512 * K  # sectors 5 and 6 in single-bank mode


@pytest.fixture(scope="module")
def spec() -> BoardSpec:
    return load_board()


@pytest.fixture(scope="module")
def layout(spec: BoardSpec) -> FlashLayout:
    return spec.layout(False)


@pytest.fixture(scope="module")
def expected() -> bytes:
    return padding_pattern(0, SIZE, seed=11)


def kinds(diags: list) -> list[str]:
    return [d.kind for d in diags]


def test_clean(expected: bytes, layout: FlashLayout) -> None:
    res = diff_bytes(expected, expected, APP, layout)
    assert res.ok and res.differing == 0 and res.ranges == () and "all 524 288 bytes match" in res.summary()
    assert [s.index for s in res.sectors] == [5, 6] and all(s.differing == 0 for s in res.sectors)
    assert diagnose(expected, expected, APP, layout) == []


def test_ranges_sectors_totals(expected: bytes, layout: FlashLayout) -> None:
    act = bytearray(expected)
    act[10] ^= 0x01  # 1 byte, 0->1 or 1->0
    act[100:110] = b"\xff" * 10  # 10 bytes erased
    act[256 * K + 5] ^= 0xFF  # sector 6
    res = diff_bytes(expected, bytes(act), APP, layout)
    diff_at = {i for i in range(SIZE) if expected[i] != act[i]}
    assert res.differing == len(diff_at)
    assert (res.ranges[0].address - APP, res.ranges[0].length) == (10, 1)
    s5, s6 = res.sectors
    assert (
        s5.index == 5
        and s5.first_offset == 10
        and s6.first_offset == s6.last_offset == 5
        and s6.differing == 1
    )
    assert res.bits_1_to_0 + res.bits_0_to_1 == sum(bin(expected[i] ^ act[i]).count("1") for i in diff_at)
    assert not res.ok and "sector(s) 5-6" in res.summary()
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["differing"] == res.differing and doc["ranges_total"] == res.range_count


def test_region_filter_and_short_readback(expected: bytes, spec: BoardSpec) -> None:
    lay = spec.layout(False)
    full = b"\x00" * (0x08040000 - 0x08000000) + expected
    act = bytearray(full)
    act[5] ^= 1  # bootloader
    act[0x40000 + 7] ^= 1  # app slot
    res = diff_bytes(full, bytes(act), 0x08000000, lay, regions=["app_slot"])
    assert res.differing == 1 and res.ranges[0].address == APP + 7
    short = diff_bytes(expected, expected[:-100], APP)
    assert short.missing == 100 and not short.ok and "100 bytes short" in short.summary()


def test_dual_bank_sector_table(expected: bytes, spec: BoardSpec) -> None:
    act = bytearray(expected)
    act[200 * K] ^= 4
    res = diff_bytes(expected, bytes(act), APP, spec.layout(True))
    bad = [s for s in res.sectors if s.differing]
    assert [s.index for s in bad] == [7] and bad[0].first_offset == 200 * K - 128 * K


# ----------------------------------------------------------------------------- diagnosis kinds


def test_never_erased_confirmed_with_previous(expected: bytes, layout: FlashLayout) -> None:
    prev = padding_pattern(0, SIZE, seed=99)
    a = np.frombuffer(expected, np.uint8).copy()
    p = np.frombuffer(prev, np.uint8)
    a[256 * K :] &= p[256 * K :]  # sector 6 programmed over the old image
    diags = diagnose(expected, a.tobytes(), APP, layout, previous=prev)
    ne = [d for d in diags if d.kind == "never_erased"]
    assert len(ne) == 1 and ne[0].evidence["sector"] == 6 and ne[0].evidence["confirmed"] is True
    assert ne[0].summary().startswith("sector 6 was programmed without an erase:")
    assert "only 1->0 changes" in ne[0].summary()
    assert "sector_aligned" in kinds(diags) and "bit_flips" not in kinds(diags)
    other = diagnose(expected, a.tobytes(), APP, layout, previous=padding_pattern(0, SIZE, seed=5))
    assert [d.evidence["confirmed"] for d in other if d.kind == "never_erased"] == [False]
    assert [
        d.evidence["confirmed"]
        for d in diagnose(expected, a.tobytes(), APP, layout)
        if d.kind == "never_erased"
    ] == [None]


def test_erased_not_written_truncated(expected: bytes, layout: FlashLayout) -> None:
    cut = 300 * K + 3
    act = expected[:cut] + b"\xff" * (SIZE - cut)
    res = analyze(expected, act, APP, layout)
    (d,) = [d for d in res.diagnoses if d.kind == "erased_not_written"]
    assert d.evidence["to_end"] and d.address == APP + cut
    assert d.evidence["bytes"] == sum(1 for b in expected[cut:] if b != 0xFF)
    assert "truncated" in d.detail and res.unexplained == 0
    assert "never_erased" not in res.kinds()


def test_erased_block_in_the_middle(expected: bytes, layout: FlashLayout) -> None:
    act = bytearray(expected)
    act[4096:5120] = b"\xff" * 1024
    (d,) = diagnose(expected, bytes(act), APP, layout)
    assert d.kind == "erased_not_written" and not d.evidence["to_end"] and "never written" in d.detail


@pytest.mark.parametrize("k", [512, 1024, 7])
def test_shifted_lost_chunk(expected: bytes, layout: FlashLayout, k: int) -> None:
    off = 100 * K + 17
    act = expected[:off] + expected[off + k :] + b"\xff" * k
    res = analyze(expected, act, APP, layout)
    sh = [d for d in res.diagnoses if d.kind == "shifted"]
    assert len(sh) == 1 and sh[0].evidence["shift"] == k and sh[0].address == APP + off
    assert "lost" in sh[0].detail
    assert res.unexplained == 0


def test_shifted_duplicated_chunk(expected: bytes, layout: FlashLayout) -> None:
    off, k = 40 * K, 1024
    act = expected[:off] + expected[off - k : off] + expected[off : SIZE - k]
    (sh,) = [d for d in diagnose(expected, act, APP, layout) if d.kind == "shifted"]
    assert sh.evidence["shift"] == -k and "duplicated" in sh.detail


@pytest.mark.parametrize("moved", [-1024, -64, -4, 4, 64, 1024])
def test_image_displaced_from_offset_0(expected: bytes, layout: FlashLayout, moved: int) -> None:
    """The whole image written ``moved`` bytes late (> 0) or early (< 0): the bytes at ``j`` are
    the image's bytes at ``j - moved``, so the diagnosis' shift (actual[j] == expected[j + shift])
    is ``-moved``. Written late used to crash (a negative slice start wrapped to an empty slice)."""
    late, early = max(moved, 0), max(-moved, 0)
    act = b"\xff" * late + expected[early : SIZE - late] + b"\xff" * early
    res = analyze(expected, act, APP, layout)
    (sh,) = [d for d in res.diagnoses if d.kind == "shifted"]
    assert sh.evidence["shift"] == -moved and f"displaced by {-moved:+d} bytes" in sh.detail
    assert sh.address == APP + late and sh.evidence["end"] == APP + SIZE - early
    assert sh.evidence["matched_bytes"] > 0.99 * SIZE
    if moved > 0:
        assert f"starts {moved:,} byte(s) late".replace(",", " ") in sh.detail
    assert res.unexplained <= abs(moved)


def test_foreign_text(expected: bytes, layout: FlashLayout) -> None:
    act = bytearray(expected)
    act[1000:1008] = b"OTA_DONE"
    act[9000:9015] = b"FILE_SIZE:12345"
    diags = diagnose(expected, bytes(act), APP, layout)
    ft = {d.evidence["token"]: d for d in diags if d.kind == "foreign_text"}
    assert set(ft) == {"OTA_DONE", "FILE_SIZE:"} and ft["OTA_DONE"].address == APP + 1000
    custom = diagnose(expected, bytes(act), APP, layout, tokens=[b"OTA_DONE"])
    assert [d.evidence["token"] for d in custom if d.kind == "foreign_text"] == ["OTA_DONE"]


def test_token_present_in_expected_is_not_foreign(layout: FlashLayout) -> None:
    exp = bytearray(padding_pattern(0, 4096, 1))
    exp[100:108] = b"OTA_DONE"  # the app itself contains the string
    act = bytearray(exp)
    act[2000] ^= 0x10
    assert "foreign_text" not in kinds(diagnose(bytes(exp), bytes(act), APP, layout))


def test_inserted_token_gives_text_and_shift(expected: bytes, layout: FlashLayout) -> None:
    off = 64 * K
    act = (expected[:off] + b"OTA_DONE\n" + expected[off:])[:SIZE]
    ks = kinds(diagnose(expected, act, APP, layout))
    assert "foreign_text" in ks and "shifted" in ks


def test_bit_flips_rate(expected: bytes, layout: FlashLayout) -> None:
    rng = np.random.default_rng(3)
    a = np.frombuffer(expected, np.uint8).copy()
    pos = rng.choice(SIZE, SIZE // 100, replace=False)
    a[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)
    res = analyze(expected, a.tobytes(), APP, layout)
    assert res.kinds() == ["bit_flips"] and res.unexplained == 0
    (d,) = res.diagnoses
    assert d.evidence["bytes"] == pos.size and d.evidence["bits"] == pos.size
    assert d.evidence["rate"] == pytest.approx(pos.size / (SIZE * 8))
    assert len(d.evidence["addresses"]) <= 64 and d.evidence["single_bit_fraction"] == 1.0


def test_sector_aligned_needs_sector_edges(expected: bytes, layout: FlashLayout) -> None:
    act = bytearray(expected)
    act[256 * K : 512 * K] = bytes(256 * K)  # whole sector 6 zeroed
    diags = diagnose(expected, bytes(act), APP, layout)
    (sa,) = [d for d in diags if d.kind == "sector_aligned"]
    assert sa.evidence["sectors"] == [6] and sa.address == 0x08080000 and sa.length == 256 * K
    act2 = bytearray(expected)
    act2[10 * K : 20 * K] = bytes(10 * K)  # mid-sector damage: not aligned
    assert "sector_aligned" not in kinds(diagnose(expected, bytes(act2), APP, layout))
    assert "sector_aligned" not in kinds(diagnose(expected, bytes(act), APP, None))


def test_region_touched(spec: BoardSpec) -> None:
    lay = spec.layout(False)
    full = padding_pattern(0, 2 * K * K, 4)
    act = bytearray(full)
    act[0x100:0x140] = b"\x00" * 0x40  # bootloader overwritten
    act[0x50000] ^= 2  # app slot: allowed
    diags = diagnose(full, bytes(act), 0x08000000, lay)
    (rt,) = [d for d in diags if d.kind == "region_touched"]
    assert rt.evidence["region"] == "bootloader" and rt.address == 0x08000100
    assert rt.evidence["bytes"] == sum(1 for i in range(0x100, 0x140) if full[i] != 0)
    only = diagnose(full, bytes(act), 0x08000000, None, writable=[(0x08000000, 0x200)])
    (rt2,) = [d for d in only if d.kind == "region_touched"]
    assert rt2.evidence["region"] is None and rt2.address == 0x08050000
    assert "region_touched" not in kinds(diagnose(full, bytes(act), 0x08000000, None))


def test_every_kind_has_a_case_and_json(expected: bytes, layout: FlashLayout) -> None:
    act = bytearray(expected)
    act[1000:1008] = b"OTA_DONE"
    res = analyze(expected, bytes(act), APP, layout)
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["diagnoses"][0]["kind"] in KINDS
    assert set(doc["diagnoses"][0]) == {"kind", "address", "length", "detail", "evidence"}
    assert "foreign_text" in res.summary()


# ----------------------------------------------------------------------------- properties


@settings(max_examples=150, deadline=None)
@given(
    data=hst.binary(min_size=1, max_size=400),
    edits=hst.lists(hst.tuples(hst.integers(0, 399), hst.integers(1, 255)), max_size=40),
)
def test_diff_finds_exactly_the_differing_bytes(data: bytes, edits: list[tuple[int, int]]) -> None:
    act = bytearray(data)
    for pos, x in edits:
        if pos < len(act):
            act[pos] ^= x
    res = diff_bytes(data, bytes(act), 0x1000)
    truth = {0x1000 + i for i in range(len(data)) if data[i] != act[i]}
    covered = {a for r in res.ranges for a in range(r.address, r.end)}
    assert covered == truth and res.differing == len(truth)
    # coalesced: sorted, non-empty, separated by at least one equal byte
    for r, nxt in itertools.pairwise(res.ranges):
        assert r.length > 0 and r.end < nxt.address
    assert res.ok == (not truth)


@settings(max_examples=50, deadline=None)
@given(start=hst.integers(0, 2 * K * K - 1), length=hst.integers(1, 64 * K), dual=hst.booleans())
def test_sector_table_sums(spec: BoardSpec, start: int, length: int, dual: bool) -> None:
    length = min(length, 2 * K * K - start)
    exp = np.zeros(length, np.uint8)
    act = exp.copy()
    act[:: max(1, length // 7)] = 1
    res = diff_bytes(exp, act, 0x08000000 + start, spec.layout(dual))
    assert sum(s.differing for s in res.sectors) == res.differing == int(np.count_nonzero(act))
    assert sum(s.compared for s in res.sectors) == length


def code_like(size: int, seed: int) -> bytes:
    """Firmware-like bytes: random stretches broken by zero and 0xFF runs (tables, padding)."""
    rng = np.random.default_rng(seed)
    out = bytearray()
    while len(out) < size:
        out += rng.integers(0, 256, int(rng.integers(64, 2048)), dtype=np.uint8).tobytes()
        out += bytes([0x00 if rng.random() < 0.5 else 0xFF]) * int(rng.integers(1, 300))
    return bytes(out[:size])


@pytest.mark.parametrize("off", [0x180, 0x2000 + 1, 100 * K])
def test_shift_in_code_like_data_not_sector_aligned(layout: FlashLayout, off: int) -> None:
    exp = code_like(SIZE, 5)
    act = exp[:off] + exp[off + 1024 :] + b"\xff" * 1024
    res = analyze(exp, act, APP, layout)
    (sh,) = [d for d in res.diagnoses if d.kind == "shifted"]
    assert sh.evidence["shift"] == 1024
    assert "sector_aligned" not in res.kinds()
    assert res.unexplained <= 0.001 * res.diff.differing


def test_shift_starting_in_a_zero_run(layout: FlashLayout) -> None:
    exp = bytearray(padding_pattern(0, SIZE, 3))
    exp[8192 : 8192 + 600] = bytes(600)  # a zero-filled table right where data goes missing
    exp = bytes(exp)
    act = exp[:8000] + exp[8000 + 512 :] + b"\xff" * 512
    (sh,) = [d for d in diagnose(exp, act, APP, layout) if d.kind == "shifted"]
    assert sh.evidence["shift"] == 512


def test_bit_flips_inside_shifted_data(expected: bytes, layout: FlashLayout) -> None:
    off, k = 50 * K, 1024
    act = np.frombuffer(expected[:off] + expected[off + k :] + b"\xff" * k, np.uint8).copy()
    rng = np.random.default_rng(8)
    pos = rng.choice(np.arange(off + 4096, SIZE - 4096), 300, replace=False)
    act[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)
    res = analyze(expected, act.tobytes(), APP, layout)
    assert {"shifted", "bit_flips", "erased_not_written"} == set(res.kinds())
    (bf,) = [d for d in res.diagnoses if d.kind == "bit_flips"]
    exp = np.frombuffer(expected, np.uint8)
    truth = int(np.count_nonzero(act[pos] != exp[pos]))  # a flip may land back on the unshifted byte
    assert bf.evidence["bytes"] == truth >= 290 and bf.evidence["single_bit_fraction"] == 1.0
    assert res.unexplained == 0


@pytest.mark.parametrize("source", [0, 0x1000])
def test_source_pointer_that_never_advances(layout: FlashLayout, source: int) -> None:
    """The same 1 KiB block copied again and again (from ``source`` on): one block repeated,
    not a shift or a duplicated chunk, and nothing left unexplained."""
    image = padding_pattern(0, 300 * K, 3)
    act = bytearray(image)
    for k in range(source // K + 1, len(image) // K):
        act[k * K : (k + 1) * K] = image[source : source + K]
    res = analyze(image, bytes(act), APP, layout)
    assert res.kinds() == ["repeated_block"] and res.unexplained == 0, res.summary()
    (d,) = res.diagnoses
    times = 300 - source // K
    assert d.address == APP + source and d.evidence["source_offset"] == source
    assert (
        f"one 1 024-byte block (the image's bytes at offset 0x{source:X}) is written {times} times"
        in d.detail
    )
    assert "source pointer does not advance" in d.detail


def _plain(obj: object) -> bool:
    """True if obj holds only built-in JSON types (no numpy scalars)."""
    if isinstance(obj, dict):
        return all(type(k) is str and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return obj is None or type(obj) in (int, float, str, bool)


def test_to_dict_is_plain_json_for_every_kind(spec: BoardSpec) -> None:
    lay = spec.layout(False)
    full = padding_pattern(0, 2 * K * K, 6)
    prev = padding_pattern(0, 2 * K * K, 7)
    act = np.frombuffer(full, np.uint8).copy()
    act[0x10:0x20] = 0  # region_touched (bootloader)
    act[0x80000:0xC0000] &= np.frombuffer(prev, np.uint8)[0x80000:0xC0000]  # never_erased + sector_aligned
    act[0x41000:0x41008] = np.frombuffer(b"OTA_DONE", np.uint8)  # foreign_text
    act[0x110000:0x130000] = act[0x110400:0x130400].copy()  # shifted by +1024 (sector 8)
    act[0x150400:0x160000] = np.resize(act[0x150000:0x150400], 0xFC00)  # repeated_block (sector 9)
    act[0x1F0000:] = 0xFF  # erased_not_written to the end
    for line in range(0xC0400, 0xC8000, 96):  # stale_cache_lines (sector 7): old packets' lines
        back = 1024 if line % 192 else 2048
        act[line : line + 32] = np.frombuffer(full, np.uint8)[line - back : line - back + 32]
    rng = np.random.default_rng(2)
    pos = rng.choice(np.arange(0x180000, 0x1C0000), 200, replace=False)
    act[pos] ^= (1 << rng.integers(0, 8, pos.size)).astype(np.uint8)  # bit_flips (sector 10)
    res = analyze(full, act.tobytes(), 0x08000000, lay, previous=prev)
    assert set(res.kinds()) == set(KINDS)
    doc = res.to_dict()
    assert _plain(doc)
    json.dumps(doc, allow_nan=False)


def test_region_filter_errors(expected: bytes, layout: FlashLayout) -> None:
    from rig.errors import ConfigError

    with pytest.raises(ConfigError, match="needs a layout"):
        diff_bytes(expected, expected, APP, None, regions=["app_slot"])
    with pytest.raises(ConfigError, match="no region 'slot'"):
        diff_bytes(expected, expected, APP, layout, regions=["slot"])


def test_never_erased_when_the_copy_stopped_over_old_content() -> None:
    """A bootloader that skips the erase and stops at its first verify error leaves a sector
    that is partly expected-AND-previous and partly still the previous image."""
    import numpy as np

    from rig.board import load_board
    from rig.diff import analyze

    layout = load_board().active_layout
    base, n = 0x08080000, 64 * 1024  # sector 6 (single bank)
    rng = np.random.default_rng(5)
    new = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    old = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
    actual = bytearray(old)
    actual[:100] = bytes(
        a & b for a, b in zip(new[:100], old[:100], strict=True)
    )  # programmed over, then stopped
    result = analyze(new, bytes(actual), base, layout, previous=old)
    kinds = result.kinds()
    assert kinds[0] == "never_erased", result.summary()
    diag = result.diagnoses[0]
    assert diag.evidence["stale_bytes"] > 60000 and diag.evidence["confirmed"] is True
    assert "sector 6 was never erased" in diag.detail
    assert result.unexplained == 0
    # without the previous image the rig must not claim it
    assert "never_erased" not in analyze(new, bytes(actual), base, layout).kinds()
