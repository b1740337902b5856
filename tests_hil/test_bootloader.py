"""Phase `flash`: the bootloader is programmed through the probe and reads back byte for byte."""

from __future__ import annotations


def test_bootloader_flashed_and_verified(flashed_bench, bootloader_image, evidence) -> None:
    evidence.scenario.update(scenario="flash bootloader", image_size=bootloader_image.size)
    check = flashed_bench.check_region(evidence, "bootloader", bootloader_image.data, phase="flash")
    assert check.analysis.ok, check.analysis.summary()
    # the probe sees the chip as the board file describes it
    ob = flashed_bench.probe.option_bytes()
    assert ob.dual_bank == flashed_bench.spec.dual_bank
    assert ob.boot_address0 == flashed_bench.spec.option_bytes["BOOT_ADD0"] << 14
