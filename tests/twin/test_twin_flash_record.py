"""The flash-operation log and the replay onto a saved non-volatile state (twin/flash_record.py).

The replay must leave the flash exactly as a live power cut (``flash.cut``) at the same
operation does: both are compared byte for byte over a sequence with erases, programs on
erased and on old data, and an option-byte write.
"""

from __future__ import annotations

import random

import pytest
from test_twin_flash import CR, CR_PG, OPTCR, OPTKEY1, OPTKEY2, OPTKEYR, PSIZE32, Rig

from twin import flash_record

S1, S2, S3 = 0x08008000, 0x08010000, 0x08018000  # 32 KiB sectors 1..3


def _rig(seed: int = 7) -> Rig:
    rig = Rig()
    rnd = random.Random(seed)
    rig.m.flash_buf[0x8000:0x20000] = rnd.randbytes(0x18000)
    return rig


def _sequence(rig: Rig, stop_on_cut: bool) -> None:
    """Erase S1, 40 words into S1, 10 words over S2's old data, the option bytes, erase S3,
    5 words into S3 (the controller's ops 0..57)."""
    rnd = random.Random(11)
    steps: list[tuple] = [("erase", 1)]
    steps += [("program", S1 + 4 * i, rnd.getrandbits(32)) for i in range(40)]
    steps += [("program", S2 + 8 * i, rnd.getrandbits(32)) for i in range(10)]
    steps += [("options", 0xFFFFAAFC & ~(1 << 16))]
    steps += [("erase", 3)] + [("program", S3 + 4 * i, rnd.getrandbits(32)) for i in range(5)]
    for step in steps:
        if stop_on_cut and rig.fc.cuts:
            return
        rig.unlock()
        if step[0] == "erase":
            rig.erase_sector(step[1])
        elif step[0] == "program":
            rig.w32(CR, PSIZE32 | CR_PG)
            rig.store(step[1], step[2], 4)
        else:
            rig.w32(OPTKEYR, OPTKEY1)
            rig.w32(OPTKEYR, OPTKEY2)
            rig.w32(OPTCR, step[1] | 2)  # OPTSTRT


@pytest.fixture(scope="module")
def recorded() -> tuple[Rig, int]:
    rig = _rig()
    cmds = flash_record.commands(rig.fc)
    sid = cmds["snapshot.save"](rig.m, {})["id"]
    cmds["flash.record"](rig.m, {"on": True})
    _sequence(rig, stop_on_cut=False)
    cmds["flash.record"](rig.m, {"on": False})
    return rig, sid


def test_every_operation_is_recorded_in_order(recorded: tuple[Rig, int]) -> None:
    rig, _ = recorded
    page = flash_record.commands(rig.fc)["flash.ops"](rig.m, {"first": 0, "count": 100})
    assert page["count"] == 58 and not page["recording"]
    assert page["kind"][:2] == ["erase", "program"] and page["kind"][51] == "options"
    assert page["address"][0] == S1 and page["length"][0] == 0x8000
    assert page["address"][41] == S2 and page["length"][41] == 4
    assert page["kind"][52] == "erase" and page["address"][52] == S3


@pytest.mark.parametrize("op", [0, 1, 40, 41, 45, 51, 52, 53, 57])
@pytest.mark.parametrize("mode", ["before", "half", "torn"])
def test_replay_equals_a_live_cut(recorded: tuple[Rig, int], op: int, mode: str) -> None:
    rig, sid = recorded
    live = _rig()
    live.fc.arm_power_cut(nth=op + 1, mode="abort" if mode == "before" else mode)
    _sequence(live, stop_on_cut=True)
    assert live.fc.cuts and live.fc.cuts[-1]["op"] == live.fc.started
    done = flash_record.commands(rig.fc)["snapshot.restore"](rig.m, {"id": sid, "ops": op, "cut": mode})
    assert done["ops"] == op
    assert bytes(rig.m.flash_buf) == bytes(live.m.flash_buf)
    assert (rig.fc.ob_optcr, rig.fc.ob_optcr1) == (live.fc.ob_optcr, live.fc.ob_optcr1)
    assert rig.fc.cuts[-1]["replayed"] and rig.m.reset_history[-1]["kind"] == "power"


def test_after_the_last_operation_and_the_snapshot_itself(recorded: tuple[Rig, int]) -> None:
    rig, sid = recorded
    cmds = flash_record.commands(rig.fc)
    cmds["snapshot.restore"](rig.m, {"id": sid, "ops": 0})
    assert bytes(rig.m.flash_buf) == bytes(_rig().m.flash_buf)
    whole = _rig()
    _sequence(whole, stop_on_cut=False)
    cmds["snapshot.restore"](rig.m, {"id": sid, "ops": 58, "cut": "half"})
    assert bytes(rig.m.flash_buf) == bytes(whole.m.flash_buf)
    assert rig.fc.cuts[-1]["kind"] == "after-last"


def test_bad_requests(recorded: tuple[Rig, int]) -> None:
    rig, sid = recorded
    cmds = flash_record.commands(rig.fc)
    with pytest.raises(KeyError):
        cmds["snapshot.restore"](rig.m, {"id": 999})
    with pytest.raises(ValueError, match="ops must be"):
        cmds["snapshot.restore"](rig.m, {"id": sid, "ops": 59})
    with pytest.raises(ValueError, match="cut must be"):
        cmds["snapshot.restore"](rig.m, {"id": sid, "ops": 1, "cut": "melt"})
    extra = cmds["snapshot.save"](rig.m, {})["id"]
    assert cmds["snapshot.drop"](rig.m, {"id": extra})["held"] == [sid]
    with pytest.raises(KeyError):
        cmds["snapshot.drop"](rig.m, {"id": extra})


def test_a_live_cut_at_an_option_byte_write_keeps_the_old_ones() -> None:
    live = _rig()
    before = (live.fc.ob_optcr, live.fc.ob_optcr1)
    live.fc.arm_power_cut(nth=1, kind="options")
    _sequence(live, stop_on_cut=True)
    assert live.fc.cuts[-1]["kind"] == "options" and live.fc.cuts[-1]["op"] == 52
    assert (live.fc.ob_optcr, live.fc.ob_optcr1) == before
