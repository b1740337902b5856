"""The real-board campaign's plan and watches (rig/campaign_lab_points.py,
rig/campaign_locate.py), without a board; the run itself: tests/rig/test_campaign_lab.py."""

from __future__ import annotations

import pytest

from rig.board import load_board
from rig.campaign_lab import parse_offsets
from rig.campaign_lab_points import lab_plan
from rig.campaign_locate import Watch, watches_for
from rig.campaign_points import Op, ops_from_columns
from rig.errors import ConfigError

SCRATCH, APP, CONFIG = 0x08180000, 0x08040000, 0x08020040
ENTRY = APP + 0x3D9


@pytest.fixture(scope="module")
def layout():
    return load_board(None).active_layout


def _ops(layout, n: int = 50) -> list[Op]:
    kind = ["erase"] + ["program"] * n + ["erase"] + ["program"] * n + ["program"] * 4
    addr = [SCRATCH] + [SCRATCH + 4 * i for i in range(n)] + [APP] + [APP + 4 * i for i in range(n)]
    addr += [CONFIG + 4 * i for i in range(4)]
    length = [256 * 1024] + [4] * n + [256 * 1024] + [4] * (n + 4)
    return ops_from_columns({"first": 0, "kind": kind, "address": addr, "length": length}, layout)


def test_a_program_is_reached_by_a_watchpoint_on_its_word(layout) -> None:
    ops = _ops(layout)
    assert watches_for(ops, 5, ENTRY) == [Watch("store", SCRATCH + 16, 4, 1)]


def test_a_word_programmed_again_is_reached_at_its_nth_store(layout) -> None:
    ops = _ops(layout)
    again = Op(len(ops), "program", SCRATCH + 16, 4, "scratch")  # the same word a second time
    assert watches_for([*ops, again], len(ops), ENTRY) == [Watch("store", SCRATCH + 16, 4, 2)]


def test_an_erase_is_the_kth_start_after_the_closest_program(layout) -> None:
    ops = _ops(layout)
    first, second = 0, 51  # the scratch erase (nothing before it), the app erase
    assert watches_for(ops, first, ENTRY) == [Watch("start", nth=1)]
    assert watches_for(ops, second, ENTRY) == [Watch("store", SCRATCH + 4 * 49, 4, 1), Watch("start", nth=1)]
    two = [*ops[:51], Op(51, "erase", APP + 0x40000, 256 * 1024, "app_slot"), *ops[51:]]
    assert watches_for(two, 52, ENTRY)[-1] == Watch("start", nth=2)  # the second erase in a row


def test_after_the_last_operation_is_the_new_apps_entry(layout) -> None:
    ops = _ops(layout)
    assert watches_for(ops, len(ops), ENTRY) == [Watch("entry", ENTRY & ~1, 2, 1)]


def test_the_plan_starts_with_what_matters_and_samples_the_rest(layout) -> None:
    ops = _ops(layout)
    points, space = lab_plan(ops, layout, seed=3, points=20, offsets=["halted", "+0ms"], preserved=["config"])
    assert space == (len(ops) + 1) * 2 and len(points) == 20
    order = list(dict.fromkeys(p.op for p in points))
    assert order[:3] == [len(ops), 0, 51]  # after the last, then every erase
    assert {p.mode for p in points} == {"halted", "+0ms"}
    assert "every erase" in points[2].why
    again, _ = lab_plan(ops, layout, seed=3, points=20, offsets=["halted", "+0ms"], preserved=["config"])
    assert again == points  # replayable with the seed
    other, _ = lab_plan(ops, layout, seed=4, points=40, offsets=["halted"], preserved=[])
    assert len(other) == 40 and len({p.op for p in other}) == 40
    few, _ = lab_plan(ops, layout, seed=3, points=2, offsets=["halted"])
    assert [p.op for p in few] == [len(ops), 0]  # the cap keeps the most important first


def test_cut_moments_parse_and_a_bad_one_names_the_form() -> None:
    assert parse_offsets("halted, 0,250ms") == ["halted", "+0ms", "+250ms"]
    with pytest.raises(ConfigError, match="halted"):
        parse_offsets("soon")
    with pytest.raises(ConfigError):
        parse_offsets(" , ")
