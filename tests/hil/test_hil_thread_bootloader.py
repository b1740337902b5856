"""Proof that the board file is enough (issue 15): a second bootloader, independent of the
reference one, passes the HIL suite from its board file alone, and its broken variants (the
thread's bugs) are caught.

``firmware/thread_bootloader/`` is written the way the forum thread's author wrote his: the
thread's exact protocol (no terminators, ACK after the n-th byte, no CRC), an update asked for
by a marker in RTC_BKP0R or the user button held at reset, the application at 0x08100000, its
own flash routines and jump sequence, Ethernet only. ``boards/thread-bootloader.yaml``
describes it; no code in ``rig/`` or ``fixtures/`` knows it exists (checked here too).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_hil_variants import run_suite

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"
BOARD = REPO / "boards" / "thread-bootloader.yaml"


def suite(
    tmp_path: Path,
    bootloader: str,
    selection: str | None,
    *extra: str,
    timeout: float = 1800,
    files: tuple[str, ...] = (),
) -> list[tuple[str, str]]:
    path = BUILD / f"{bootloader}.bin"
    assert path.is_file(), f"{path} missing: run make -C firmware"
    args = ["--board-file", str(BOARD), *extra]
    return run_suite(tmp_path, path, selection, "eth", extra=args, timeout=timeout, files=files)


def test_no_rig_code_knows_the_thread_bootloader() -> None:
    """Its name, its app base, its marker appear in no module of the rig or the plugin: what
    the rig knows about it is the board file."""
    needles = re.compile(r"thread[-_]bootloader|0x0810_?0000|B007B007|TB_", re.I)
    hits = [
        f"{p.relative_to(REPO)}:{n}"
        for top in ("rig", "fixtures")
        for p in sorted((REPO / top).rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if needles.search(line)
    ]
    assert not hits, hits


#: the suite in four parts of about a minute each (alone), so that parallel workers share it;
#: every scenario file of tests_hil is in exactly one part (checked below)
SHARDS = {
    "policies": ("test_link_policies.py",),
    "edges": ("test_edge_sizes.py", "test_bootloader.py", "test_power_switch.py"),
    "power-cuts": ("test_power_cut_campaign.py", "test_power_cut.py"),
    "updates": ("test_ota_update.py", "test_boot_decision.py", "test_consecutive_updates.py"),
}


def test_the_parts_cover_the_suite() -> None:
    files = sorted(p.name for p in (REPO / "tests_hil").glob("test_*.py"))
    parts = sorted(f for shard in SHARDS.values() for f in shard)
    assert parts == files, f"tests_hil's files {files} against the parts' {parts}"


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a part: ~1 min alone, a few beside other workers
@pytest.mark.parametrize("part", SHARDS)
def test_thread_bootloader_passes_the_suite(tmp_path: Path, part: str) -> None:
    """Every scenario but the slow ones (the 512 KiB image, ten updates), over Ethernet; what
    is skipped is what the board file says: no WiFi, no CRC in the protocol."""
    junit_failures = suite(
        tmp_path, "thread-bootloader", None, "-m", "not slow", timeout=1100, files=SHARDS[part]
    )
    assert not junit_failures, junit_failures


@pytest.mark.slow
def test_the_button_asks_too(tmp_path: Path) -> None:
    """The same bootloader asked by the user button B1 held through the reset (the twin
    drives PC13), with another board file: nothing else changes."""
    text = BOARD.read_text()
    start = text.index("update:\n")
    end = text.index("\n\n", start)
    board = tmp_path / "thread-button.yaml"
    board.write_text(text[:start] + "update:\n  method: button\n  pin: PC13\n  install: ota" + text[end:])
    path = BUILD / "thread-bootloader.bin"
    failures = run_suite(
        tmp_path, path, "bootloader_boots or (update and 16k)", "eth", extra=["--board-file", str(board)]
    )
    assert not failures, failures


CASES = [
    # the thread's socket_cb: one message per receive; TCP glues FILE_SIZE and OTA_UPDATE
    (
        "thread-bootloader-chunk-start",
        "segmentation and glued",
        "test_segmentation_does_not_matter",
        "transfer",
        (),
    ),
    # the thread's "// EraseSectors5and6();": the copy programs over the old app
    (
        "thread-bootloader-no-app-erase",
        "update and 300k",
        "test_update_jumps_into_new_app",
        "copy",
        ("never_erased",),
    ),
]


@pytest.mark.slow
@pytest.mark.parametrize("variant, selection, function, phase, words", CASES, ids=[c[0] for c in CASES])
def test_its_broken_variants_are_caught(
    tmp_path: Path, variant: str, selection: str, function: str, phase: str, words: tuple[str, ...]
) -> None:
    failures = suite(tmp_path, variant, selection)
    mine = [m for name, m in failures if name.split("[")[0] == function]
    assert mine, f"{variant}: {function} did not fail; failures: {[n for n, _ in failures]}"
    text = "\n".join(mine)
    assert f"[{phase}]" in text, text[:3000]
    for word in words:
        assert word in text, text[:3000]
