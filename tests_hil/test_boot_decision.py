"""The bootloader's boot decision: never start an application that does not check out."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("where", ["vector-table", "middle", "last-byte"])
def test_damaged_app_is_never_entered(flashed_bench, apps, where, evidence) -> None:
    image = apps["64k"]
    offset = {"vector-table": 0x40, "middle": image.size // 2, "last-byte": image.size - 1}[where]
    evidence.scenario.update(scenario=f"damaged app ({where})", image_size=image.size)
    flashed_bench.boot_damaged_app(image, evidence, offset=offset)
