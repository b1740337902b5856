"""Which cut points a power-cut campaign visits (rig/campaign_points.py), without a board."""

from __future__ import annotations

import pytest

from rig.board import load_board
from rig.campaign_points import MID, Op, covered, multi_cuts, ops_from_columns, plan

SCRATCH, APP, CONFIG = 0x08180000, 0x08040000, 0x08020040


@pytest.fixture(scope="module")
def layout():
    return load_board(None).active_layout


def _update(n_words: int = 300) -> dict:
    """An update's operations as the twin's flash.ops columns: scratch erase + programs,
    app erase + copy, a 10-word config record (like the reference bootloader's)."""
    kind, addr, length = ["erase"], [SCRATCH], [256 * 1024]
    kind += ["program"] * n_words
    addr += [SCRATCH + 4 * i for i in range(n_words)]
    kind += ["erase"]
    addr += [APP]
    kind += ["program"] * n_words
    addr += [APP + 4 * i for i in range(n_words)]
    kind += ["program"] * 10
    addr += [CONFIG + 4 * i for i in range(10)]
    length += [4] * n_words + [256 * 1024] + [4] * (n_words + 10)
    return {"first": 0, "kind": kind, "address": addr, "length": length}


def test_ops_are_tagged_with_their_region(layout) -> None:
    ops = ops_from_columns(_update(), layout)
    assert [o.op_class for o in ops[:2]] == ["erase:scratch", "program:scratch"]
    assert ops[-1].op_class == "program:config" and ops[-1].index == len(ops) - 1
    assert {o.op_class for o in ops} == {
        "erase:scratch",
        "program:scratch",
        "erase:app_slot",
        "program:app_slot",
        "program:config",
    }


def test_every_class_boundary_and_erase_is_covered_before_and_interrupted(layout) -> None:
    ops = ops_from_columns(_update(), layout)
    points = covered(ops, layout, preserved=["config"])
    keys = {p.key for p in points}
    assert (len(ops), "before") in keys  # after the last operation, before the reset
    for o in ops:
        if o.kind == "erase" or o.region == "config":
            assert {(o.index, "before"), (o.index, MID[o.kind])} <= keys
    by_class: dict[str, list[Op]] = {}
    for o in ops:
        by_class.setdefault(o.op_class, []).append(o)
    for members in by_class.values():
        for o in (members[0], members[-1]):
            assert {(o.index, "before"), (o.index, MID[o.kind])} <= keys
    # the sector boundaries: first word of the scratch and of the app sector
    assert (1, "torn") in keys and (302, "torn") in keys
    assert (150, "torn") not in keys  # a program in the middle is left to the sample


def test_sample_is_seeded_bounded_and_replayable(layout) -> None:
    ops = ops_from_columns(_update(), layout)
    a, space = plan(ops, layout, seed=5, points=200)
    b, _ = plan(ops, layout, seed=5, points=200)
    c, _ = plan(ops, layout, seed=6, points=200)
    assert space == 2 * len(ops) + 1
    assert len(a) == 200 and a == b and a != c
    assert {p.key for p in covered(ops, layout)} <= {p.key for p in a}
    assert all(0 <= p.op <= len(ops) for p in a)
    few, _ = plan(ops, layout, seed=5, points=3)  # never fewer than the covered points
    assert len(few) == len(covered(ops, layout))


def test_exhaustive_takes_the_whole_space(layout) -> None:
    ops = ops_from_columns(_update(50), layout)
    points, space = plan(ops, layout, seed=1, points=10, exhaustive=True)
    assert len(points) == space == 2 * len(ops) + 1
    assert len({p.key for p in points}) == space


def test_multi_cuts_are_seeded(layout) -> None:
    ops = ops_from_columns(_update(), layout)
    a = multi_cuts(ops, seed=9, runs=4)
    assert a == multi_cuts(ops, seed=9, runs=4) and a != multi_cuts(ops, seed=10, runs=4)
    assert all(len(m.then) == 2 and all(1 <= n <= len(ops) for n, _ in m.then) for m in a)
    assert multi_cuts(ops, seed=9, runs=0) == []


def test_reports_json_and_html_matrix(layout, tmp_path) -> None:
    import json

    from rig.campaign import Campaign
    from rig.campaign_report import write_reports
    from rig.campaign_run import PointResult

    ops = ops_from_columns(_update(20), layout)
    camp = Campaign({"bootloader": "bl.bin", "image": "new.bin", "old": "old.bin"}, 42, ops, 2 * len(ops) + 1)
    camp.results = [
        PointResult(
            0, "before", "first of erase:scratch", "re-asked", 2.0, "erase", SCRATCH, 4096, "scratch"
        ),
        PointResult(len(ops), "before", "after the last operation", "recovered-new", 0.1),
        PointResult(
            5,
            "torn",
            "sampled",
            "bricked",
            0.2,
            "program",
            APP + 16,
            4,
            "app_slot",
            detail="<b>banner</b>",
            diagnosis={"vs_new": {"ok": False, "summary": "4 bytes differ"}},
            console="APP v1 <script>",
        ),
    ]
    camp.seconds = 2.3
    js, html = write_reports(camp, tmp_path)
    doc = json.loads(js.read_text())
    assert doc["seed"] == 42 and doc["counts"] == {
        "recovered-old": 0,
        "recovered-new": 1,
        "re-asked": 1,
        "bricked": 1,
    }
    assert doc["bricked"][0]["address"] == f"0x{APP + 16:08X}"
    page = html.read_text()
    assert "Operation index × outcome" in page and "4 bytes differ" in page
    assert "<script>" not in page and "&lt;b&gt;banner" in page  # device text escaped
    assert page.count('class="o-bricked"') == 1
