"""The fast paths of the flash diff give what the full numpy path gives: two matching images
(one memcmp, no numpy), and ``rig diff`` on them without numpy or the board schema (a snapshot
of the board in the user's cache, :mod:`rig.diff_board`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rig.board import FlashLayout, load_board
from rig.cli import main
from rig.diff import analyze
from rig.image import padding_pattern

APP = 0x08040000


@pytest.fixture(scope="module")
def layout() -> FlashLayout:
    return load_board().active_layout


@pytest.mark.parametrize(("n_exp", "n_act"), [(300_000, 300_000), (300_000, 200_000), (200_000, 300_000)])
@pytest.mark.parametrize("with_layout", [True, False])
@pytest.mark.parametrize("kind", [bytes, bytearray])
def test_matching_bytes_give_the_numpy_result(
    layout: FlashLayout, n_exp: int, n_act: int, with_layout: bool, kind: type
) -> None:
    data = padding_pattern(0, max(n_exp, n_act), 5)
    exp, act = kind(data[:n_exp]), kind(data[:n_act])
    lay = layout if with_layout else None
    fast = analyze(exp, act, APP, lay)
    slow = analyze(np.frombuffer(exp, np.uint8), np.frombuffer(act, np.uint8), APP, lay)  # no fast path
    assert fast.to_dict() == slow.to_dict()
    assert fast.summary() == slow.summary() and fast.unexplained == slow.unexplained == 0
    assert fast.diff == slow.diff and fast.diff.ranges == slow.diff.ranges == ()


def test_one_differing_byte_takes_the_full_path(layout: FlashLayout) -> None:
    data = bytearray(padding_pattern(0, 100_000, 5))
    act = bytearray(data)
    act[99_999] ^= 0x10
    res = analyze(bytes(data), bytes(act), APP, layout)
    assert res.diff.differing == 1 and res.diff.ranges[0].address == APP + 99_999


def _rig_diff(args: list[str], cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; from rig.cli import main; rc = main(sys.argv[1:]); "
        "print('IMPORTED', sorted(m for m in ('numpy', 'pydantic', 'rig.board') if m in sys.modules), "
        "file=sys.stderr); sys.exit(rc)"
    )
    return subprocess.run(
        [sys.executable, "-c", code, "diff", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), **env},
    )


def test_rig_diff_on_matching_images_imports_no_numpy_nor_the_schema(tmp_path: Path) -> None:
    exp = padding_pattern(0, 64 * 1024, 2)
    (tmp_path / "e.bin").write_bytes(exp)
    (tmp_path / "a.bin").write_bytes(exp)
    args = [str(tmp_path / "e.bin"), str(tmp_path / "a.bin"), "--base", hex(APP), "--json"]
    cache = tmp_path / "cache"
    first = _rig_diff(args, cache)  # parses the board file, keeps its snapshot
    second = _rig_diff(args, cache)
    off = _rig_diff(args, cache, OTA_RIG_NO_CACHE="1")
    dual = _rig_diff([*args, "--bank-mode", "dual"], cache)
    dual_off = _rig_diff([*args, "--bank-mode", "dual"], cache, OTA_RIG_NO_CACHE="1")
    assert [p.returncode for p in (first, second, off, dual, dual_off)] == [0] * 5
    assert "'rig.board'" in first.stderr and "IMPORTED []" in second.stderr, second.stderr
    assert json.loads(first.stdout) == json.loads(second.stdout) == json.loads(off.stdout)
    assert json.loads(dual.stdout) == json.loads(dual_off.stdout)
    assert json.loads(dual.stdout)["bank_mode"] == "dual_bank" and "IMPORTED []" in dual.stderr
    assert list((cache / "ota-rig").glob("diff-board-*.json"))


def test_rig_diff_with_a_snapshot_still_checks_and_diagnoses(tmp_path: Path) -> None:
    exp = padding_pattern(0, 64 * 1024, 2)
    bad = bytearray(exp)
    bad[100:108] = b"OTA_DONE"
    for name, data in (("e.bin", exp), ("a.bin", exp), ("bad.bin", bytes(bad))):
        (tmp_path / name).write_bytes(data)
    cache = tmp_path / "cache"
    _rig_diff([str(tmp_path / "e.bin"), str(tmp_path / "a.bin"), "--base", hex(APP)], cache)
    diff = _rig_diff(
        [str(tmp_path / "e.bin"), str(tmp_path / "bad.bin"), "--base", hex(APP), "--json"], cache
    )
    assert diff.returncode == 1 and "foreign_text" in [
        d["kind"] for d in json.loads(diff.stdout)["diagnoses"]
    ]
    ram = _rig_diff([str(tmp_path / "e.bin"), str(tmp_path / "a.bin"), "--base", "0x20000000"], cache)
    off = _rig_diff(
        [str(tmp_path / "e.bin"), str(tmp_path / "a.bin"), "--base", "0x20000000"],
        cache,
        OTA_RIG_NO_CACHE="1",
    )
    assert ram.returncode == off.returncode == 2 and "not in flash" in ram.stderr
    assert ram.stderr.splitlines()[0] == off.stderr.splitlines()[0]


def test_a_changed_board_file_is_parsed_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    exp = padding_pattern(0, 4096, 2)
    (tmp_path / "e.bin").write_bytes(exp)
    board = tmp_path / "board.yaml"
    text = load_board().source and Path(load_board().source).read_text(encoding="utf-8")
    board.write_text(text, encoding="utf-8")
    args = [
        "diff",
        str(tmp_path / "e.bin"),
        str(tmp_path / "e.bin"),
        "--base",
        hex(APP),
        "--board",
        str(board),
    ]
    assert main(args) == 0
    board.write_text(text + "\nnot_a_key: 1\n", encoding="utf-8")
    assert main(args) == 2  # the snapshot of the old content is not used
