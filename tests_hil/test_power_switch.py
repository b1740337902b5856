"""Power cut by the board's power switch during an update, then recovery.

The switch is what the target provides: on the twin its own power (a pulse, at once), on a
real board the board file's ``power:`` (a USB hub port switched by uhubctl, or the user's
relay script) with ``--allow-destructive``. It cuts at a moment of the update, not at a
chosen flash operation (that is tests_hil/test_power_cut.py, twin only): with half the
image sent, and while the board installs it. The board must come back and finish the
update on its own, or boot an intact application; the rig does not ask again.
"""

from __future__ import annotations

import pytest


@pytest.mark.destructive
@pytest.mark.parametrize("moment", ["transfer", "install"])
def test_power_switched_off_during_update(flashed_bench, apps, transport, moment, evidence) -> None:
    from rig.hil_switch import update_through_switched_cut

    if flashed_bench.target.power_switch() is None:
        pytest.skip(f"{flashed_bench.target.kind}: no power switch (give the board file a power: section)")
    evidence.scenario.update(scenario=f"power switched off: {moment}")
    update_through_switched_cut(
        flashed_bench, apps["16k"], evidence, transport=transport, moment=moment, previous=apps["64k"]
    )
