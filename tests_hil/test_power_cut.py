"""Power cuts at each class of flash operation during an update, then recovery.

A lab does this with a relay; the twin does it exactly at the chosen flash operation. The
board must never end up bricked, and the rig never asks for the update again behind the
bootloader's back: after power returns the bootloader resumes on its own (asks again,
installs, jumps) or comes back with the old application intact; either way the regions the
board file marks ``preserve`` are unchanged (rig/hil_power.py).
"""

from __future__ import annotations

import pytest


def _cuts(spec) -> dict[str, dict]:
    scratch = spec.region(spec.ota.staging_region)
    app = spec.region(spec.ota.app_region)
    cuts = {
        "scratch-erase": {
            "kind": "erase",
            "address": scratch.base,
            "length": scratch.size,
            "nth": 1,
            "mode": "half",
        },
        "scratch-program": {"kind": "program", "address": scratch.base, "length": scratch.size, "nth": 1500},
        "app-erase": {"kind": "erase", "address": app.base, "length": app.size, "nth": 1, "mode": "half"},
        "copy": {"kind": "program", "address": app.base, "length": app.size, "nth": 2000},
        "torn-write": {
            "kind": "program",
            "address": app.base,
            "length": app.size,
            "nth": 700,
            "mode": "torn",
        },
    }
    if "config" in spec.regions:  # the bootloader's own record (the reference's config log)
        cfg = spec.region("config")
        cuts["config-write"] = {"kind": "program", "address": cfg.base, "length": cfg.size, "nth": 2}
    return cuts


# The plugin enforces both markers: on --board nucleo the test is skipped (twin_only: the
# cut comes from the twin's power switch, the rig drives no relay yet; destructive: it would
# need --allow-destructive as well). On the twin it always runs, and a board without a power
# switch would fail in the "boot" phase, never pass.
@pytest.mark.destructive
@pytest.mark.twin_only
@pytest.mark.parametrize(
    "where", ["scratch-erase", "scratch-program", "app-erase", "copy", "torn-write", "config-write"]
)
def test_power_cut_then_recovery(flashed_bench, apps, board_spec, transport, where, evidence) -> None:
    evidence.scenario.update(scenario=f"power cut: {where}")
    if where not in _cuts(board_spec):
        pytest.skip(f"{board_spec.source}: no regions.config, where the bootloader would keep its record")
    flashed_bench.update_through_power_cut(
        apps["16k"], evidence, transport=transport, cut=_cuts(board_spec)[where], previous=apps["64k"]
    )
