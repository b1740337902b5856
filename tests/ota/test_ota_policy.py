"""Unit tests of link-policy parsing, segmentation plans and content faults (no sockets)."""

from __future__ import annotations

import random
import zlib

import pytest

from rig.errors import ConfigError
from rig.ota.policy import POLICY_NAMES, Piece, parse_policy

CTRL = [
    Piece("control", b"FILE_SIZE:5000\n"),
    Piece("control", b"FILE_CRC:DEADBEEF\n"),
    Piece("control", b"OTA_UPDATE\n"),
]
DATA = [Piece("data", bytes(range(256)) * 12), Piece("control", b"OTA_DONE\n")]


def plan(spec: str, pieces: list[Piece]) -> list:
    pol = parse_policy(spec)
    return pol.segmenter.plan(pieces, pol.new_rng())


def joined(writes: list) -> bytes:
    return b"".join(w.payload for w in writes)


@pytest.mark.parametrize(
    "spec",
    [
        "natural",
        "per-message",
        "glued",
        "split-tokens",
        "tiny:size=7",
        "random:seed=7",
        "random:seed=3,min=1,max=5",
    ],
)
@pytest.mark.parametrize("pieces", [CTRL, DATA], ids=["control", "data"])
def test_every_segmenter_preserves_the_stream(spec: str, pieces: list[Piece]) -> None:
    assert joined(plan(spec, pieces)) == b"".join(p.payload for p in pieces)


def test_per_message_puts_each_control_message_in_its_own_separate_write() -> None:
    writes = plan("per-message", CTRL)
    assert [w.payload for w in writes] == [p.payload for p in CTRL]
    assert all(w.separate for w in writes)
    data_writes = plan("per-message:chunk=1000", DATA)
    assert [len(w.payload) for w in data_writes] == [1000, 1000, 1000, 72, 9]


def test_glued_joins_control_messages_and_glues_done_to_the_last_data() -> None:
    assert [w.payload for w in plan("glued", CTRL)] == [b"".join(p.payload for p in CTRL)]
    writes = plan("glued:chunk=1000", DATA)
    assert writes[-1].payload == DATA[0].payload[3000:] + b"OTA_DONE\n"
    assert all(b"OTA_DONE" not in w.payload for w in writes[:-1])


def test_split_tokens_cuts_every_control_message_in_two() -> None:
    writes = plan("split-tokens", CTRL)
    assert [w.payload for w in writes] == [
        b"FILE_SI",
        b"ZE:5000\n",
        b"FILE_CRC:",
        b"DEADBEEF\n",
        b"OTA_U",
        b"PDATE\n",
    ]
    assert [w.payload for w in plan("split-tokens:at=3", CTRL)][:2] == [b"FIL", b"E_SIZE:5000\n"]
    assert plan("split-tokens", DATA)[-2:][0].payload == b"OTA_"


def test_tiny_never_exceeds_size() -> None:
    sizes = [len(w.payload) for w in plan("tiny:size=7", CTRL + DATA)]
    assert max(sizes) == 7 and sum(sizes) == sum(len(p.payload) for p in CTRL + DATA)


def test_random_is_reproducible_from_the_seed_and_differs_between_seeds() -> None:
    a = [len(w.payload) for w in plan("random:seed=7,max=50", DATA)]
    b = [len(w.payload) for w in plan("random:seed=7,max=50", DATA)]
    c = [len(w.payload) for w in plan("random:seed=8,max=50", DATA)]
    assert a == b and a != c and max(a) <= 50


def test_parse_composes_and_describe_round_trips() -> None:
    pol = parse_policy("random:seed=7,max=300+pause:ms=5+drop-at:byte=4096+corrupt:offsets=1,2")
    assert pol.segmenter.name == "random" and pol.pause and pol.pause.ms == 5
    assert pol.cut and pol.cut.action == "drop" and pol.cut.byte == 4096
    again = parse_policy(pol.describe())
    assert again.describe() == pol.describe()
    assert parse_policy(None).describe() == "natural"
    assert parse_policy("stall:after=2048,ms=300").cut.ms == 300  # type: ignore[union-attr]
    assert parse_policy("stall:after=2048,wait=30").cut.wait == 30  # type: ignore[union-attr]
    assert parse_policy("stall:after=2048,wait=30").describe() == "stall:after=2048,wait=30"


@pytest.mark.parametrize(
    "spec,needle",
    [
        ("bogus", "unknown policy"),
        ("tiny:size=0", ">= 1"),
        ("glued+tiny", "two segmenters"),
        ("drop-at:byte=1+rst-at:byte=2", "two cut actions"),
        ("drop-at", "needs byte="),
        ("pause", "pause needs"),
        ("tiny:size=x", "not a number"),
        ("wrong-size", "exactly one"),
        ("corrupt:offsets=1,xor=0", "xor=0"),
        ("random:min=9,max=3", "max=3 < min=9"),
        ("", "empty"),
        ("tiny:bogus=3", "bad parameters"),
        ("stall:after=1,ms=5,wait=3", "not both"),
    ],
)
def test_bad_specs_raise_config_error_with_a_hint(spec: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(spec)
    assert needle in str(info.value)
    assert info.value.hint


def test_policy_names_listed() -> None:
    assert {
        "natural",
        "per-message",
        "glued",
        "split-tokens",
        "tiny",
        "random",
        "pause",
        "drop-at",
        "rst-at",
        "stall",
        "corrupt",
        "wrong-size",
        "truncate",
        "wrong-crc",
    } == set(POLICY_NAMES)


def test_content_faults_change_only_what_they_claim() -> None:
    image = bytes(random.Random(1).randbytes(3000))
    crc = zlib.crc32(image)
    o = parse_policy("corrupt:offsets=100,2000").make_offer(image, crc=True)
    diff = [i for i in range(len(image)) if o.data[i] != image[i]]
    assert diff == [100, 2000] and o.crc == crc and o.declared_size == 3000
    assert o.data[100] == image[100] ^ 0xFF
    o = parse_policy("wrong-size:delta=-10").make_offer(image, crc=True)
    assert o.declared_size == 2990 and o.data == image
    assert parse_policy("wrong-size:size=0").make_offer(image, crc=False).declared_size == 0
    o = parse_policy("truncate:bytes=1000").make_offer(image, crc=True)
    assert o.data == image[:2000] and o.declared_size == 3000 and o.crc == crc
    o = parse_policy("wrong-crc").make_offer(image, crc=True)
    assert o.crc == crc ^ 0xFFFFFFFF and o.data == image
    assert parse_policy("natural").make_offer(image, crc=False).crc is None


def test_validate_against_the_image() -> None:
    with pytest.raises(ConfigError, match="outside"):
        parse_policy("corrupt:offsets=5000").validate(3000, crc=True)
    with pytest.raises(ConfigError, match="needs FILE_CRC"):
        parse_policy("wrong-crc").validate(3000, crc=False)
    with pytest.raises(ConfigError, match="beyond the end"):
        parse_policy("drop-at:byte=3000").validate(3000, crc=True)
    with pytest.raises(ConfigError, match="exceeds"):
        parse_policy("truncate:bytes=3001").validate(3000, crc=True)
    parse_policy("drop-at:byte=2999+truncate:bytes=3000").validate(3000, crc=True)


@pytest.mark.parametrize("seed", ["1e400", "nan", "inf"])
def test_a_seed_that_is_no_integer_is_a_config_error(seed: str) -> None:
    """Found by the CLI fuzz test: a seed read as float infinity raised OverflowError."""
    with pytest.raises(ConfigError, match="random:seed must be an integer"):
        parse_policy(f"random:seed={seed}")
