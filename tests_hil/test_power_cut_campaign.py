"""A bounded power-cut campaign over a 16 KiB update (``-m campaign``; docs/power-cut-campaign.md).

The update's flash operations are counted by a dry run, then power is cut before and in the
middle of the first and last operation of every class, every erase, every program at a
sector boundary, every write of the bootloader's own record and after the last operation;
a few more points sampled with the seed, and two seeded multi-cut runs. After each cut the
board must run a verified application or ask again and complete the update; a point where
it does neither fails phase ``boot`` naming the operation. The seed is random unless
``OTA_RIG_CAMPAIGN_SEED`` is set; it is in the failure and the report's notes. ≈ 15 s on
the twin (each point that asks again re-downloads the update). The full campaign is
``rig campaign power-cut``.

:func:`test_power_cut_campaign_on_the_board` is the real board's way (``--board nucleo
--allow-destructive`` with a ``power:`` switch in the board file; on the twin its power
through the control port): the dry run on a twin of the same binaries, then a few operations
reached with the probe's DWT watchpoints and cut with the switch (rig/campaign_lab.py; slower
and approximate). Its points: after the last operation, every erase, the last operation of
each class (the boot record's last word among them).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

#: single-cut points in all (the ~33 covered ones of a 16 KiB update + a sampled few)
POINTS = 36
MULTI = 2


def _seed() -> int:
    """``OTA_RIG_CAMPAIGN_SEED``, else a random one (named in the failure and the report)."""
    env_seed = os.environ.get("OTA_RIG_CAMPAIGN_SEED")
    return int(env_seed) if env_seed else random.SystemRandom().randrange(1 << 32)


@pytest.mark.campaign
@pytest.mark.destructive
@pytest.mark.twin_only
@pytest.mark.transport("eth")
def test_power_cut_campaign(flashed_bench, apps, transport, evidence) -> None:
    from rig.campaign import Settings, cut_all, prepared
    from rig.campaign_report import write_reports

    seed = _seed()
    bench = flashed_bench
    out = bench.artifacts / "campaign"
    s = Settings(
        bootloader=bench.bootloader.path,
        image=apps["16k"].path,
        old=apps["64k"].path,
        seed=seed,
        points=POINTS,
        multi=MULTI,
        transport=transport,
        out_dir=out,
    )
    evidence.scenario.update(
        scenario=f"power-cut campaign (seed {seed})", transport=transport, image_size=16384
    )
    lines: list[str] = []
    with prepared(bench, s, lines.append, flash=False) as board:
        camp = cut_all(board, s, seed, lines.append, progress=False)
    write_reports(camp, out)
    evidence.notes += [*lines, f"campaign report: {out / 'campaign.html'}"]
    assert len(camp.results) >= POINTS + MULTI - 2
    classes = {o.op_class for o in camp.ops}
    assert {"erase:scratch", "program:scratch", "erase:app_slot", "program:app_slot"} <= classes
    if camp.bricked:
        first = camp.bricked[0]
        raise bench._fail(
            evidence,
            "boot",
            f"power-cut campaign (seed {seed}, replay with OTA_RIG_CAMPAIGN_SEED={seed}): "
            f"{len(camp.bricked)} of {len(camp.results)} points bricked the board; first: bricked at "
            f"op {first.op} ({first.mode}) {first.kind} 0x{first.address:08X}+{first.length} "
            f"[{first.region}]: {first.detail}; "
            + "; ".join(f"op {b.op} {b.mode} {b.kind} 0x{b.address:08X}" for b in camp.bricked[1:10]),
            hint="see campaign.html in the test's artifacts: the flash diffs and console of each point",
        )


#: operations × moments of the real-board campaign (each a real update and power cycle)
BOARD_POINTS = 6


@pytest.mark.campaign
@pytest.mark.destructive
@pytest.mark.transport("eth")
def test_power_cut_campaign_on_the_board(flashed_bench, apps, transport, evidence) -> None:
    from rig.campaign import Settings
    from rig.campaign_lab import campaign_on, twin_dry_run
    from rig.campaign_report import write_reports

    bench = flashed_bench
    switch = bench.target.power_switch()
    if switch is None:
        pytest.skip("the board file has no power: switch (uhubctl or command): docs/lab.md §7")
    seed = _seed()
    out = bench.artifacts / "campaign-board"
    s = Settings(
        bootloader=bench.bootloader.path,
        image=apps["16k"].path,
        old=apps["64k"].path,
        seed=seed,
        points=BOARD_POINTS,
        transport=transport,
        board_file=Path(bench.spec.source),
        out_dir=out,
    )
    evidence.scenario.update(
        scenario=f"power-cut campaign on the board (seed {seed}, {switch.name})",
        transport=transport,
        image_size=16384,
    )
    lines: list[str] = []
    ops = twin_dry_run(s, lines.append)
    camp = campaign_on(bench, switch, s, ops, seed, ["halted"], lines.append, flash=False, progress=False)
    write_reports(camp, out)
    evidence.notes += [*lines, f"campaign report: {out / 'campaign.html'}"]
    assert len(camp.results) == BOARD_POINTS
    unreached = [r for r in camp.results if r.outcome == "not-reached"]
    if camp.bricked or unreached:
        bad = (camp.bricked + unreached)[0]
        raise bench._fail(
            evidence,
            "boot",
            f"power-cut campaign on the board (seed {seed}): {len(camp.bricked)} bricked, "
            f"{len(unreached)} not reached of {len(camp.results)}; first: {bad.outcome} at op {bad.op} "
            f"({bad.mode}) {bad.kind} 0x{bad.address:08X} [{bad.region}]: {bad.detail}",
            hint="see campaign.html in the test's artifacts",
        )
