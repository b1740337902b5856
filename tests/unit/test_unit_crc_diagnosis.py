"""rig.crc_diagnosis: the CRC engine against zlib and the catalogue, and one constructed
disagreement per kind the diagnosis names (prefix, longer, suffix, area, read-back, model)."""

from __future__ import annotations

import binascii
import random
import zlib

import pytest

from rig import crc_diagnosis as cd


def _image(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


#: check values of "123456789" from the CRC catalogue
CHECK = {
    "CRC-32/BZIP2": 0xFC891918,
    "CRC-32/MPEG-2": 0x0376E6E7,
    "CRC-32/POSIX": 0x765E7680,
    "CRC-32/JAMCRC (zlib without the final XOR)": 0x340BC6D9,
    "CRC-32C (Castagnoli)": 0xE3069283,
    "CRC-32D": 0x87315576,
    "CRC-32Q": 0x3010BF7F,
    "CRC-32/XFER": 0xBD0BE338,
    "CRC-32/AUTOSAR": 0x1697D06A,
    "CRC-32/CD-ROM-EDC": 0x6EC2EDC4,
}


@pytest.mark.parametrize("model", cd.COMMON_MODELS, ids=lambda m: m.name[:24])
def test_engine_matches_the_catalogue(model: cd.CrcModel) -> None:
    if model.word_swap:  # STM32 CRC unit, reset configuration: word 0x12345678 -> 0xDF8A8A2B
        assert cd.crc(bytes.fromhex("78563412"), model) == 0xDF8A8A2B
    else:
        assert cd.crc(b"123456789", model) == CHECK[model.name]


@pytest.mark.parametrize("n", [0, 1, 3, 1023, 1024, 1025, 4099])
def test_every_prefix_is_the_zlib_crc(n: int) -> None:
    data = _image(n, n)
    p = cd.prefix_crcs(data)
    assert len(p) == n + 1
    for k in sorted({0, min(1, n), n // 2, max(n - 1, 0), n}):
        assert int(p[k]) == zlib.crc32(data[:k]) == binascii.crc32(data[:k])


def test_prefix_the_last_bytes_ignored() -> None:
    image = _image(307_200)
    board = zlib.crc32(image[:307_197])
    (f,) = [f for f in cd.explain_crc(board, image) if f.kind == "prefix"]
    assert f.message == (
        f"the board's CRC 0x{board:08X} is the CRC-32 of the first 307 197 of 307 200 bytes: "
        "it ignores the last 3 bytes"
    )
    assert f.details["ignored"] == 3


def test_longer_reads_past_the_end() -> None:
    image = _image(5000)
    board = zlib.crc32(image + b"\xff" * 4)
    (f,) = cd.explain_crc(board, image)
    assert f.kind == "longer" and f.details["extra"] == 4
    assert "5 004 bytes, 4 more than the image's 5 000" in f.message and "erased flash" in f.message
    old = bytes(range(8))  # old flash after the image instead of erased bytes
    (g,) = cd.explain_crc(zlib.crc32(image + old[:2]), image, after=old)
    assert g.kind == "longer" and "what flash holds after the image" in g.message


def test_suffix_the_first_bytes_skipped() -> None:
    image = _image(70_000)
    board = zlib.crc32(image[512:])
    (f,) = cd.explain_crc(board, image)
    assert f.kind == "suffix" and f.details["start"] == 512
    assert "the last 69 488 of 70 000 bytes: it skips the first 512 bytes" in f.message


def test_area_the_scratch_instead_of_the_app() -> None:
    image = _image(20_000, 2)
    scratch = _image(512 * 1024, 3)  # another image staged there
    board = zlib.crc32(scratch[:20_000])
    findings = cd.explain_crc(board, image, readbacks={"scratch": (0x08180000, scratch)})
    (f,) = [f for f in findings if f.kind == "area"]
    assert f.details == {"region": "scratch", "base": 0x08180000, "length": 20_000}
    assert "of scratch at 0x08180000" in f.message


def test_area_what_flash_really_holds() -> None:
    image = _image(9_000, 4)
    flash = bytearray(image)
    flash[4321] ^= 0x10  # the copy went wrong: the board checked flash, not the image
    board = zlib.crc32(flash)
    findings = cd.explain_crc(board, image, readbacks={"app_slot": (0x08040000, bytes(flash))})
    assert [f.kind for f in findings] == ["area"]
    assert "app_slot at 0x08040000 as read back, which differs from the image" in findings[0].message
    # an area identical to the image explains nothing
    assert cd.explain_crc(board, image, readbacks={"scratch": (0x08180000, image)}) == []


@pytest.mark.parametrize("name", ["CRC-32/MPEG-2", "CRC-32/JAMCRC", "CRC-32C", "the STM32 CRC unit"])
def test_model_another_crc32(name: str) -> None:
    image = _image(4096 + 8, 5)
    model = next(m for m in cd.COMMON_MODELS if m.name.startswith(name))
    findings = cd.explain_crc(cd.crc(image, model), image)
    assert [f.kind for f in findings] == ["model"]
    assert findings[0].details["model"] == model.name
    assert "not the zlib CRC-32 of the protocol" in findings[0].message


def test_model_over_whole_words_only() -> None:
    """The STM32 unit in its reset configuration, fed len/4 words: both mistakes at once."""
    image = _image(1027, 6)
    model = next(m for m in cd.COMMON_MODELS if m.word_swap)
    (f,) = cd.explain_crc(cd.crc(image[:1024], model), image)
    assert f.kind == "model" and "of the first 1 024 of 1 027 bytes" in f.message


def test_matching_and_unexplained_values() -> None:
    image = _image(3000, 7)
    assert cd.explain_crc(zlib.crc32(image), image) == []
    board = 0x12345678
    assert cd.explain_crc(board, image) == []
    text = cd.describe(board, image, [])
    assert text.startswith("the board's CRC 0x12345678 differs from the image's") and "none of" in text


def test_reported_crcs_from_a_console() -> None:
    console = (
        "BL: ota-rig bootloader (crc-tail-ignored), reset flags 0x0c000000\n"
        "OTA: OTA_DONE, 16389 bytes received, CRC 1a2b3c4d\n"
        "OTA: scratch verify failed: CRC unit 0xDEADBEEF, stream 1a2b3c4d\n"
        "OTA: NACK:flash\n"
    )
    assert cd.reported_crcs(console) == [
        (0x1A2B3C4D, "OTA: OTA_DONE, 16389 bytes received, CRC 1a2b3c4d"),
        (0xDEADBEEF, "OTA: scratch verify failed: CRC unit 0xDEADBEEF, stream 1a2b3c4d"),
    ]


def test_explain_reported_skips_known_values() -> None:
    image = _image(16_389, 8)
    own, short = zlib.crc32(image), zlib.crc32(image[:16_388])
    console = (
        "BL: config valid: flags=0x1 app_crc=0badf00d app_version=4\n"
        f"OTA: FILE_CRC {own:08x}\n"
        f"OTA: scratch verify failed: CRC unit {short:08x}, stream {own:08x}\n"
    )
    (line,) = cd.explain_reported(console, image, known={0x0BADF00D})
    assert line.startswith("'OTA: scratch verify failed: CRC unit")
    assert "the first 16 388 of 16 389 bytes: it ignores the last 1 byte" in line
