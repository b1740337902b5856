"""The rig earns its keep: `pytest tests_hil` must fail for every broken bootloader variant
of firmware/ (one per bug of the forum thread), in the right phase and with the right
diagnosis, and pass for the correct bootloader.

Each case runs the real HIL suite in a subprocess (its own twin) on a selection of
scenarios that exposes the bug, and reads the failures from its JUnit XML.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"

# variant -> (pytest -k selection, transport, expected phase, words the failure must contain)
CASES = {
    "erase-first-sector-only": ("update and 300k", "eth", "copy", ["never_erased", "sector 6"]),
    "no-app-erase": ("update and 300k", "eth", "copy", ["never_erased"]),
    "token-at-chunk-start": ("segmentation and glued", "eth", "transfer", []),
    "nul-past-buffer": ("update and 300k", "wifi", "transfer", ["flash"]),
    "malloc-whole-image": ("update and 512k", "eth", "transfer", []),
    "entry-from-stack": ("update and 16k", "eth", "jump", ["never reached"]),
    "jump-from-irq": ("update and 16k", "eth", "jump", ["thread_mode"]),
    "irq-left-enabled": ("update and 16k", "eth", "jump", ["nvic_enabled"]),
    "no-vtor": ("update and 16k", "eth", "jump", ["vtor: expected 0x08040000"]),
    "mpu-left-on": ("update and 16k", "eth", "jump", ["mpu"]),
    "primask-left-set": ("update and 16k", "eth", "jump", ["primask"]),
    "crc-wrong-area": ("damaged and middle", "eth", "jump", ["damaged"]),
    "size-unparsed": ("faulty_link and wrong-size", "eth", "transfer", ["acknowledged a faulty transfer"]),
    "iwdg-left-on": ("update and 16k", "eth", "app", ["restarted"]),
}


def run_suite(tmp_path: Path, bootloader: Path, selection: str, transport: str) -> list[tuple[str, str]]:
    """Run tests_hil on the twin; return (test name, failure message) for each failed test."""
    junit = tmp_path / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        str(REPO / "tests_hil"),
        "-q",
        "-p",
        "no:cacheprovider",
        "--board",
        "twin",
        "--transport",
        transport,
        "--bootloader",
        str(bootloader),
        "-k",
        selection,
        "--report-dir",
        str(tmp_path / "reports"),
        "--html",
        str(tmp_path / "report.html"),
        "--junitxml",
        str(junit),
        "-o",
        "addopts=",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=env)
    assert junit.exists(), f"the HIL suite did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert cases, f"no HIL test was selected by -k {selection!r}:\n{proc.stdout[-2000:]}"
    failed = []
    for case in cases:
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                failed.append((case.get("name", "?"), (node.get("message") or "") + "\n" + (node.text or "")))
    return failed


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(CASES))
def test_suite_fails_broken_variant(variant: str, tmp_path: Path) -> None:
    selection, transport, phase, words = CASES[variant]
    bootloader = BUILD / f"bootloader-{variant}.bin"
    assert bootloader.is_file(), f"{bootloader} missing: run make -C firmware"
    failures = run_suite(tmp_path, bootloader, selection, transport)
    assert failures, f"tests_hil passed with the broken bootloader {variant!r} (selection {selection!r})"
    messages = "\n".join(m for _, m in failures)
    assert f"[{phase}]" in messages, f"{variant}: expected a [{phase}] failure, got:\n{messages[:3000]}"
    for word in words:
        assert word in messages, f"{variant}: failure does not mention {word!r}:\n{messages[:3000]}"


def test_suite_passes_correct_bootloader(tmp_path: Path) -> None:
    failures = run_suite(tmp_path, BUILD / "bootloader.bin", "update and 16k", "eth")
    assert not failures, failures
