"""Ten updates in a row, alternating versions and sizes, each ending in the new version.

The thread: "the application runs only on the first two updates using WiFi TCP. After that,
no other application runs" — app sectors not erased before the copy only shows from the
second update on.
"""

from __future__ import annotations

import pytest

SEQUENCE = ["16k", "300k", "64k", "512k", "16k", "300k", "64k", "16k", "512k", "64k"]


@pytest.mark.slow
def test_ten_consecutive_updates(flashed_bench, apps, transport, evidence) -> None:
    flashed_bench.install_app_direct(apps["64k"] if SEQUENCE[0] != "64k" else apps["16k"], transport)
    for i, size in enumerate(SEQUENCE, 1):
        evidence.scenario.update(scenario=f"consecutive #{i} ({size})")
        evidence.regions.clear()
        flashed_bench.update(apps[size], evidence, transport=transport)
