"""The bootloader's boot decision: never start an application that does not check out, and
fall back to asking for an update instead (a bootloader that hangs is no fallback)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("where", ["vector-table", "middle", "last-byte"])
def test_damaged_app_is_never_entered(flashed_bench, apps, where, evidence) -> None:
    image = apps["64k"]
    offset = {"vector-table": 0x40, "middle": image.size // 2, "last-byte": image.size - 1}[where]
    evidence.scenario.update(scenario=f"damaged app ({where})", image_size=image.size)
    session = flashed_bench.boot_damaged_app(image, evidence, offset=offset)
    # positive evidence of the fallback: the board asked for an update (REQ_FW reached the
    # server, which then announced an image too large to accept) and installed nothing
    assert session.phase not in ("connect", "request"), session.to_text()
    assert not session.ok, session.to_text()
