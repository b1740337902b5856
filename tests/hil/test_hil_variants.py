"""The rig earns its keep: `pytest tests_hil` must fail for every broken bootloader variant
of firmware/ (one per bug of the forum thread, and the edge classes of issue 22), in the
right scenario and phase with the right diagnosis, and pass for the correct bootloader.

Each case runs the real HIL suite in a subprocess (its own twin) on a selection of
scenarios that exposes the bug, and reads the failures from its JUnit XML. Every scenario
of the suite must be the one that catches at least one variant (no scenario that never
fails anything), and every variant firmware/ builds must have a case.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "firmware" / "build"


@dataclass(frozen=True)
class Case:
    """A broken variant, the scenario of tests_hil that must catch it, and how."""

    variant: str
    scenario: str  #: "file::test function" of tests_hil that must fail
    selection: str  #: pytest -k selecting that scenario (and little else)
    transport: str
    phase: str  #: the phase its failure must name
    words: tuple[str, ...] = ()  #: what the failure must say
    #: the case waits out one of the rig's timeouts before it fails (the board neither asks
    #: again nor starts an app after a power cut); such cases run first, so their waits overlap other tests'
    #: work instead of ending `make test` with idle cores
    waits: bool = False

    @property
    def id(self) -> str:
        return f"{self.variant}-{self.scenario.split('::')[1].removeprefix('test_')}"


UPDATE = "test_ota_update.py::test_update_jumps_into_new_app"
EDGE = "test_edge_sizes.py::test_edge_size_update"
CASES = [
    Case("erase-first-sector-only", UPDATE, "update and 300k", "eth", "copy", ("never_erased", "sector 6")),
    Case("no-app-erase", UPDATE, "update and 300k", "eth", "copy", ("never_erased",)),
    Case(
        "no-app-erase",
        "test_consecutive_updates.py::test_ten_consecutive_updates",
        "consecutive",
        "eth",
        "copy",
        ("never_erased",),
    ),
    Case(
        "token-at-chunk-start",
        "test_link_policies.py::test_segmentation_does_not_matter",
        "segmentation and glued",
        "eth",
        "transfer",
    ),
    Case("nul-past-buffer", UPDATE, "update and 300k", "wifi", "transfer", ("flash",)),
    Case("malloc-whole-image", UPDATE, "update and 512k", "eth", "transfer"),
    Case("entry-from-stack", UPDATE, "update and 16k", "eth", "jump", ("never reached",)),
    Case("jump-from-irq", UPDATE, "update and 16k", "eth", "jump", ("thread_mode",)),
    Case("irq-left-enabled", UPDATE, "update and 16k", "eth", "jump", ("nvic_enabled",)),
    # SPI RX by DMA into a cached buffer, never invalidated (issue 17; the thread's WiFi-only corruption)
    Case("dma-rx-no-invalidate", UPDATE, "update and 16k", "wifi", "transfer", ("stale_cache_lines",)),
    # Ethernet DMA descriptors and frames in cacheable SRAM, D-cache on, no clean/invalidate:
    # the MAC never sees a frame to send (the classic STM32F7 Ethernet hang with the cache on)
    Case(
        "eth-dcache-no-maintenance",
        "test_bootloader.py::test_bootloader_boots_from_reset_and_asks_for_update",
        "bootloader_boots",
        "eth",
        "boot",
        ("never asked for an update", "probably the D-cache"),
    ),
    Case("no-vtor", UPDATE, "update and 16k", "eth", "jump", ("vtor: expected 0x08040000",)),
    Case("mpu-left-on", UPDATE, "update and 16k", "eth", "jump", ("mpu",)),
    Case("primask-left-set", UPDATE, "update and 16k", "eth", "jump", ("primask",)),
    Case(
        "crc-wrong-area",
        "test_boot_decision.py::test_damaged_app_is_never_entered",
        "damaged and middle",
        "eth",
        "jump",
        ("damaged", "which is the CRC of scratch", "instead of the app slot"),
    ),
    Case(
        "size-unparsed",
        "test_link_policies.py::test_faulty_link_keeps_old_app",
        "faulty_link and wrong-size",
        "eth",
        "transfer",
        ("acknowledged a faulty transfer",),
    ),
    Case("iwdg-left-on", UPDATE, "update and 16k", "eth", "app", ("restarted",)),
    # issue 22: classes that hide at the edges
    Case(
        "sector-count-on-boundary",
        EDGE,
        "edge_size_update and 1-sector and not minus and not plus",
        "eth",
        "transfer",
        ("nack: flash", "never_erased", "sector 10"),
    ),
    Case(
        "crc-tail-ignored",
        EDGE,
        "edge_size_update and minus",
        "eth",
        "transfer",
        ("of the first 262 140 of 262 143 bytes: it ignores the last 3 bytes", "holds the image exactly"),
    ),
    Case(
        "crc-tail-ignored",
        "test_edge_sizes.py::test_one_byte_image",
        "one_byte",
        "eth",
        "transfer",
        ("it ignores the last 1 byte",),
    ),
    Case(
        "size-check-after-erase",
        "test_edge_sizes.py::test_oversize_refused_before_erasing",
        "oversize",
        "eth",
        "write",
        ("NACK:too_large", "before anything is erased"),
    ),
    Case(
        "writes-own-sector",
        "test_bootloader.py::test_bootloader_boots_from_reset_and_asks_for_update",
        "bootloader_boots",
        "eth",
        "write",
        ("outside the OTA-writable regions changed (bootloader", "sector(s) 3"),
    ),
    Case(
        "writes-own-sector",
        UPDATE,
        "update and 16k",
        "eth",
        "write",
        ("outside the OTA-writable regions changed (bootloader", "sector(s) 3"),
    ),
    Case(
        "config-magic-only",
        "test_power_cut.py::test_power_cut_then_recovery",
        "power_cut and config-write",
        "eth",
        "boot",
        ("did not complete a new update", "not a valid record"),
        waits=True,
    ),
    # issue 15: the power switch cuts at a moment of the update (on the twin: its own power)
    Case(
        "no-app-erase",
        "test_power_switch.py::test_power_switched_off_during_update",
        "power_switched and install",
        "eth",
        "copy",
        ("never_erased",),
        waits=True,
    ),
    # issue 15: the settings survive a power cut only if the bootloader never erases them
    Case(
        "erases-settings-at-start",
        "test_power_cut.py::test_power_cut_then_recovery",
        "power_cut and scratch-program",
        "eth",
        "write",
        ("the preserved region config", "preserve: append", "config record in force"),
    ),
    # issue 19: the power-cut campaign finds the one operation that bricks the board (the
    # record written before the copy's last word, trusted at boot): op 8203 of the 16 KiB update
    Case(
        "record-before-last-word",
        "test_power_cut_campaign.py::test_power_cut_campaign",
        "campaign and not on_the_board",
        "eth",
        "boot",
        ("bricked at op 8203", "program 0x08043FFC+4 [app_slot]", "slot read back is not the new image"),
    ),
    # the real board's way (DWT watchpoint, then the switch): halted right after the boot
    # record's last word, before the app's last word is written
    Case(
        "record-before-last-word",
        "test_power_cut_campaign.py::test_power_cut_campaign_on_the_board",
        "campaign_on_the_board",
        "eth",
        "boot",
        ("1 bricked", "[config]", "halted at PC=0x", "slot read back is not the new image"),
    ),
]


# not a thread line (issue 18 review, twin/usage_checks.py): a struct copy through a pointer
# into the receive buffer: LDRD off a word boundary, UsageFault UNALIGNED on a Cortex-M7; the
# WINC driver's chunks leave data at odd offsets, so it crashes mid-transfer; the rig ends the
# session at once and names the fault and the instruction
CASES.append(
    Case(
        "doubleword-source",
        UPDATE,
        "update and 300k",
        "wifi",
        "transfer",
        ("core stopped in a fault handler", "UFSR.UNALIGNED", "the faulting instruction is at 0x080"),
    )
)

# not a thread line: CCR.UNALIGN_TRP set by the start-up in code built with GCC's default
# -munaligned-access (twin/usage_checks.py); the board crashes before it connects, and the
# rig stops waiting at once and names the bit and the build flag
CASES.append(
    Case(
        "unalign-trap",
        UPDATE,
        "update and 16k",
        "eth",
        "boot",
        (
            "fault handler before it connected",
            "UFSR.UNALIGNED",
            "CCR.UNALIGN_TRP is set",
            "-mno-unaligned-access",
        ),
    )
)

# not a thread line: FLASH_ACR written by assignment after the clock went up ("ART and
# prefetch on"), its LATENCY 0 again at 44 MHz (twin/clock_limits.py faults the next fetch, as
# the board's core reads flash too fast); the rig stops waiting and reads the clock tree
# (rig/clock_hint.py)
CASES.append(
    Case(
        "acr-overwritten",
        UPDATE,
        "update and 16k",
        "eth",
        "boot",
        (
            "fault handler before it connected",
            "BFSR.IBUSERR",
            "the faulting instruction is at 0x080",
            "FLASH_ACR.LATENCY is 0 wait state(s) at HCLK 44 MHz",
            "FLASH_LATENCY_1",
        ),
    )
)

# not a thread line: SYSCLK left on the PLL at the jump (no HAL_RCC_DeInit); the jump
# contract's clocks item (the app's board layer then runs its UART at 2.75 times the host's
# baud rate: garbage on the console, twin/line_rate.py)
CASES.append(
    Case(
        "pll-left-on",
        UPDATE,
        "update and 16k",
        "eth",
        "jump",
        ("clocks: expected SYSCLK = HSI, PLL off, got SYSCLK = PLL, PLL on", "HAL_RCC_DeInit"),
    )
)

#: the cases in the order they run: those that wait out a timeout first (stable)
ORDERED = sorted(CASES, key=lambda c: not c.waits)


def run_suite(
    tmp_path: Path,
    bootloader: Path,
    selection: str | None,
    transport: str,
    *,
    extra: Sequence[str] = (),
    timeout: float = 900,
    files: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """Run tests_hil on the twin (``selection``: a ``-k`` expression, None for every test;
    ``extra``: more pytest arguments, e.g. ``--board-file``; ``files``: only these scenario
    files of tests_hil, default all); return (test name, failure message) for each failed
    test."""
    junit = tmp_path / "junit.xml"
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *([str(REPO / "tests_hil" / f) for f in files] or [str(REPO / "tests_hil")]),
        "-q",
        "-p",
        "no:cacheprovider",
        "--board",
        "twin",
        "--transport",
        transport,
        "--bootloader",
        str(bootloader),
        *(["-k", selection] if selection else []),
        *extra,
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
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
    assert junit.exists(), f"the HIL suite did not run:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    root = ET.parse(junit).getroot()
    cases = list(root.iter("testcase"))
    assert cases, f"no HIL test was selected by -k {selection!r}:\n{proc.stdout[-2000:]}"
    assert proc.returncode in (0, 1), f"the HIL run ended with {proc.returncode}:\n{proc.stdout[-3000:]}"
    failed = []
    for case in cases:
        for tag in ("failure", "error"):
            for node in case.findall(tag):
                failed.append((case.get("name", "?"), (node.get("message") or "") + "\n" + (node.text or "")))
    return failed


@pytest.mark.slow
@pytest.mark.parametrize("case", ORDERED, ids=[c.id for c in ORDERED])
def test_suite_fails_broken_variant(case: Case, tmp_path: Path) -> None:
    bootloader = BUILD / f"bootloader-{case.variant}.bin"
    assert bootloader.is_file(), f"{bootloader} missing: run make -C firmware"
    failures = run_suite(tmp_path, bootloader, case.selection, case.transport)
    assert failures, (
        f"tests_hil passed with the broken bootloader {case.variant!r} (selection {case.selection!r})"
    )
    function = case.scenario.split("::")[1]
    mine = [m for name, m in failures if name.split("[")[0] == function]
    assert mine, f"{case.variant}: {function} did not fail; failed: {[n for n, _ in failures]}"
    messages = "\n".join(mine)
    assert f"[{case.phase}]" in messages, (
        f"{case.variant}: expected a [{case.phase}] failure, got:\n{messages[:3000]}"
    )
    for word in case.words:
        assert word in messages, f"{case.variant}: failure does not mention {word!r}:\n{messages[:3000]}"


def test_suite_passes_correct_bootloader(tmp_path: Path) -> None:
    """The control: the scenarios the quick cases use pass with the correct bootloader."""
    selection = "(update and 16k) or bootloader_boots or oversize or one_byte or (damaged and middle)"
    failures = run_suite(tmp_path, BUILD / "bootloader.bin", selection, "eth")
    assert not failures, failures


def test_suite_passes_correct_bootloader_with_spi_dma_and_dcache(tmp_path: Path) -> None:
    """The control of the cache variants: the correct bootloader built with SPI on DMA2 and
    the D-cache on (its stack, heap and RX buffer in cacheable SRAM, write-back
    write-allocate) updates over WiFi and jumps."""
    bootloader = BUILD / "bootloader-spi-dma.bin"
    assert bootloader.is_file(), f"{bootloader} missing: run make -C firmware"
    failures = run_suite(tmp_path, bootloader, "update and 16k", "wifi")
    assert not failures, failures


def test_suite_passes_correct_bootloader_with_eth_dma_in_cached_sram(tmp_path: Path) -> None:
    """The control of eth-dcache-no-maintenance: the correct bootloader with its Ethernet DMA
    descriptors and frames in cacheable SRAM and the D-cache on for the whole update (cleaned
    and invalidated as the DMA needs) updates over Ethernet and jumps. Without the D-cache
    model's ITSTATE fix (twin/dcache_hooks.c) lwIP crashed here on unicorn 2.1.4."""
    bootloader = BUILD / "bootloader-eth-dcache.bin"
    assert bootloader.is_file(), f"{bootloader} missing: run make -C firmware"
    failures = run_suite(tmp_path, bootloader, "update and 16k", "eth")
    assert not failures, failures


def hil_scenarios() -> set[str]:
    """Every test function of tests_hil, as "file::function" (collected, no board needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    args = ["-m", "pytest", str(REPO / "tests_hil"), "--collect-only", "-q", "-p", "no:cacheprovider"]
    proc = subprocess.run(
        [sys.executable, *args, "-o", "addopts="],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ids = [line for line in proc.stdout.splitlines() if line.startswith("tests_hil/")]
    return {i.split("[")[0].removeprefix("tests_hil/") for i in ids}


def test_every_scenario_catches_some_variant() -> None:
    """No scenario of the suite that never fails anything: each is the one that must catch
    at least one broken variant above (and the slow test above checks that it does)."""
    scenarios = hil_scenarios()
    assert scenarios, "no scenario collected"
    covered = {c.scenario for c in CASES}
    assert not covered - scenarios, f"cases name scenarios that do not exist: {sorted(covered - scenarios)}"
    assert not scenarios - covered, f"scenarios no broken variant is caught by: {sorted(scenarios - covered)}"
    built = {c.variant for c in CASES}
    assert built == makefile_variants(), f"variants without a case: {sorted(makefile_variants() - built)}"


def makefile_variants() -> set[str]:
    """The broken variants firmware/Makefile builds (its ``VARIANTS :=`` list, and
    ``CACHE_VARIANTS :=``: the ones built with SPI on DMA and the D-cache on)."""
    text = (REPO / "firmware" / "Makefile").read_text().replace("\\\n", " ")
    m = re.search(r"^VARIANTS\s*:=(.*)$", text, re.M)
    assert m, "no VARIANTS := line in firmware/Makefile"
    cache = re.search(r"^CACHE_VARIANTS\s*:=(.*)$", text, re.M)
    return set(m.group(1).split()) | set(cache.group(1).split() if cache else ())
