"""Host-side unit tests of the bootloader's portable OTA logic.

``make -C firmware host-test`` builds firmware/tests/host/test_ota.c against the real
bootloader/ota.c and config.c with the host gcc (ASan + UBSan), once for the correct
build and once per logic-level variant. The correct build must pass every case; each
variant must fail the cases its forum-thread bug predicts while still passing controls
that show it otherwise works.
"""

from __future__ import annotations

import re
import subprocess

import pytest
from fw_build import BUILD, make

# variant -> (cases that must FAIL, control cases that must PASS)
EXPECT = {
    "token-at-chunk-start": (
        {"byte_by_byte", "glued_stream", "done_glued_to_data", "random_segmentation"},
        {"clean_chunks", "full_chunks", "config_record"},
    ),
    "nul-past-buffer": ({"full_chunks", "glued_stream"}, {"clean_chunks", "byte_by_byte"}),
    "erase-first-sector-only": (
        {"second_update_large", "exact_erase"},
        {"second_update_small", "large_300k", "large_512k"},
    ),
    "no-app-erase": ({"second_update_small", "second_update_large"}, {"large_512k", "random_segmentation"}),
    "malloc-whole-image": ({"large_512k"}, {"large_300k", "random_segmentation", "too_large"}),
    "crc-wrong-area": ({"copy_fault"}, {"random_segmentation", "second_update_large", "crc_mismatch"}),
    "size-unparsed": ({"missing_size", "bad_sizes"}, {"clean_chunks", "full_chunks", "too_large"}),
    "sector-count-on-boundary": (
        {"boundary_sizes"},
        {"exact_erase", "second_update_large", "large_512k", "byte_by_byte", "config_record"},
    ),
    "size-check-after-erase": ({"too_large"}, {"clean_chunks", "large_512k", "second_update_large"}),
    "config-magic-only": (
        {"config_record", "config_log"},
        {"clean_chunks", "large_300k", "second_update_small"},
    ),
    "erases-settings-at-start": ({"settings_kept"}, {"clean_chunks", "large_300k", "config_log"}),
}


@pytest.fixture(scope="module")
def host_build() -> None:
    """Build every host test binary once."""
    make("host-test", timeout=900)


def run_cases(binary: str) -> tuple[dict[str, str], str]:
    """Run one host test binary; return ({case: "PASS"|"FAIL"}, full output)."""
    proc = subprocess.run([str(BUILD / "host" / binary)], capture_output=True, text=True, timeout=600)
    results = {m.group(2): m.group(1) for m in re.finditer(r"^(PASS|FAIL) (\w+)", proc.stdout, re.M)}
    assert "SUMMARY" in proc.stdout, f"{binary} crashed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return results, proc.stdout


def test_correct_logic_passes_everything(host_build: None) -> None:
    results, out = run_cases("test_ota")
    assert len(results) >= 20, out
    failed = [k for k, v in results.items() if v != "PASS"]
    assert not failed, out


@pytest.mark.parametrize("variant", sorted(EXPECT))
def test_variant_fails_where_its_bug_predicts(host_build: None, variant: str) -> None:
    must_fail, must_pass = EXPECT[variant]
    results, out = run_cases(f"test_ota-{variant}")
    wrongly_passing = sorted(c for c in must_fail if results.get(c) != "FAIL")
    wrongly_failing = sorted(c for c in must_pass if results.get(c) != "PASS")
    assert not wrongly_passing, f"{variant} should break {wrongly_passing}:\n{out}"
    assert not wrongly_failing, f"{variant} should still pass controls {wrongly_failing}:\n{out}"


@pytest.mark.parametrize("binary", ["test_winc", "test_winc-nocrc"])
def test_winc_driver_against_fake_module(host_build: None, binary: str) -> None:
    """drivers/winc_*.c against a fake WINC3400 (firmware/tests/host/test_winc.c): framing
    and CRC byte vectors, CRC negotiation (kept on / negotiated off), recovery, the boot
    handshake and every HIF exchange up to a received TCP payload."""
    results, out = run_cases(binary)
    assert len(results) >= 15, out
    failed = [k for k, v in results.items() if v != "PASS"]
    assert not failed, out
