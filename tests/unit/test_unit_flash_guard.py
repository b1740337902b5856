"""Flash outside the OTA-writable regions (rig.flash_guard) and the bench's check of it:
every such byte is compared with a readback taken before the update, not only the first
``len(bootloader.bin)`` bytes of the bootloader region."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest
import yaml

from rig.board import BoardSpec, default_board_path, load_board
from rig.console import Console
from rig.errors import PhaseFailure
from rig.evidence import Evidence
from rig.flash_guard import protected_ranges, write_protected_note
from rig.hil import Bench
from rig.image import Image
from rig.probe import OptionBytes, Probe
from rig.targets.base import Target

K = 1024


@pytest.fixture(scope="module")
def spec() -> BoardSpec:
    return load_board()


def test_protected_ranges_of_the_reference_board(spec: BoardSpec) -> None:
    assert protected_ranges(spec) == [("bootloader", 0x08000000, 128 * K)]


def test_flash_no_region_claims_is_protected(tmp_path: Path) -> None:
    doc = yaml.safe_load(Path(default_board_path()).read_text())
    doc["regions"]["scratch"]["size"] = "256K"  # the last sector belongs to no region now
    path = tmp_path / "board.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert protected_ranges(load_board(path)) == [
        ("bootloader", 0x08000000, 128 * K),
        ("flash", 0x081C0000, 256 * K),
    ]


class FakeProbe:
    def __init__(self, flash: bytearray) -> None:
        self.flash = flash

    def read(self, base: int, length: int) -> bytes:
        off = base - 0x08000000
        return bytes(self.flash[off : off + length])

    def halt(self) -> None:
        pass


class FakeConsole:
    def text(self, since: int = 0) -> str:
        return ""

    def mark(self) -> int:
        return 0


def _bench(spec: BoardSpec, tmp_path: Path) -> tuple[Bench, bytearray]:
    flash = bytearray(b"\xff" * (2048 * K))
    boot = bytes(range(256)) * 48  # a 12 KiB bootloader image at 0x08000000
    flash[: len(boot)] = boot
    probe, console = cast(Probe, FakeProbe(flash)), cast(Console, FakeConsole())  # only what the check uses
    bench = Bench(spec, cast(Target, None), probe, console, tmp_path)
    bench.bootloader = Image(boot, 0x08000000)
    return bench, flash


def test_a_write_past_the_bootloader_image_is_caught(spec: BoardSpec, tmp_path: Path) -> None:
    bench, flash = _bench(spec, tmp_path)
    bench.guard_flash()
    flash[0x1FC00:0x1FC04] = b"\xde\xc0\x07\xb0"  # sector 3, far past the 12 KiB image
    flash[0x40000:0x40010] = b"\x00" * 16  # the app slot may change
    ev = Evidence()
    with pytest.raises(PhaseFailure) as err:
        bench.check_guarded(ev)
    assert str(err.value).startswith("[write] flash outside the OTA-writable regions changed (bootloader")
    assert "0x0801FC00" in str(err.value) and "region_touched" in str(err.value)


def test_unchanged_protected_flash_passes(spec: BoardSpec, tmp_path: Path) -> None:
    bench, flash = _bench(spec, tmp_path)
    bench.guard_flash()
    flash[0x180000:0x180100] = b"\x00" * 256  # scratch: writable
    ev = Evidence()
    bench.check_guarded(ev)
    # the bootloader region, then the preserved config log (preserve: append, issue 15)
    assert [r.name for r in ev.regions] == ["bootloader", "config"] and len(ev.regions[0].expected) == 128 * K


def test_a_preserved_record_erased_is_caught(spec: BoardSpec, tmp_path: Path) -> None:
    """The reference config log is preserve: append: appending is fine, erasing what was
    programmed is not (issue 15)."""
    bench, flash = _bench(spec, tmp_path)
    flash[0x20000:0x20028] = bytes(range(40))  # a record in slot 0
    bench.guard_flash()
    flash[0x20040:0x20068] = bytes(range(40))  # a record appended in slot 1: allowed
    bench.check_guarded(Evidence())
    flash[0x20000:0x20028] = b"\xff" * 40  # slot 0 erased
    with pytest.raises(PhaseFailure) as err:
        bench.check_guarded(Evidence())
    text = str(err.value)
    assert text.startswith("[write] the preserved region config (0x08020000+131072) changed")
    assert "40 of the 40 bytes programmed before read 0xFF now (erased)" in text


# ------------------------------------------------------------------ write protection (nWRP)
def _image_at(base: int, size: int) -> Image:
    return Image(base=base, data=b"\x00" * size)


def test_write_protected_sectors_named_before_anything_is_erased() -> None:
    spec = load_board(default_board_path())
    factory = OptionBytes(0xFFFFAAFD, 0x0080_2000)  # RDP 0, every nWRP bit set, single bank
    boot = _image_at(0x08000000, 40 * 1024)  # sectors 0 and 1
    assert write_protected_note(factory, spec, boot) is None
    sector1 = OptionBytes(0xFFFFAAFD & ~(1 << 17), 0x0080_2000)
    note = write_protected_note(sector1, spec, boot)
    assert note and "sector 1 (0x08008000)" in note and "sector 0" not in note
    assert "0xFFFDAAFD" in note
    assert write_protected_note(sector1, spec, _image_at(0x08000000, 32 * 1024)) is None  # sector 0 only


def test_dual_bank_nwrp_bit_covers_two_sectors() -> None:
    dual = OptionBytes(0xDFFFAAFD & ~(1 << 18), 0)  # nDBANK=0, nWRP2 cleared
    assert [i for i in range(24) if dual.write_protected(i)] == [4, 5]
    single = OptionBytes(0xFFFFAAFD & ~(1 << 18), 0)
    assert [i for i in range(12) if single.write_protected(i)] == [2]
