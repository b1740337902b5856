"""The Ethernet path's build: lwIP comes from the distribution's source package, never from
the repository, and the bootloader that links it still fits and keeps its DMA memory where
the Ethernet DMA needs it (firmware/README.md, section Ethernet)."""

from __future__ import annotations

import re
import subprocess

from fw_build import BUILD, FIRMWARE, REPO, make

LWIP = FIRMWARE / "third_party" / "lwip"


def test_lwip_is_the_fetched_2_1_source_and_not_committed() -> None:
    init = (LWIP / "src" / "include" / "lwip" / "init.h").read_text()
    major = re.search(r"#define LWIP_VERSION_MAJOR\s+(\d+)", init)
    minor = re.search(r"#define LWIP_VERSION_MINOR\s+(\d+)", init)
    assert major and minor and (major[1], minor[1]) == ("2", "1"), "scripts/fetch-lwip fetches lwIP 2.1"
    assert list(LWIP.glob("lwip_*.dsc")), "the tree comes from the distribution's source package"
    tracked = subprocess.run(
        ["git", "ls-files", "firmware/third_party"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert tracked == "", f"lwIP source is committed: {tracked.splitlines()[:5]}"


def test_missing_lwip_is_an_error_naming_the_setup(tmp_path) -> None:
    proc = subprocess.run(
        ["make", "-C", str(FIRMWARE), f"B={tmp_path}", f"LWIP_DIR={tmp_path}/none", "bootloader"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "scripts/setup" in proc.stderr and "lwip source package" in proc.stderr, proc.stderr


def test_bootloader_fits_and_its_dma_memory_is_in_the_dtcm() -> None:
    make("bootloader")
    size = (BUILD / "bootloader.bin").stat().st_size
    assert size <= 128 * 1024
    nm = subprocess.run(
        ["arm-none-eabi-nm", str(BUILD / "bootloader.elf")], capture_output=True, text=True, check=True
    ).stdout
    symbols = {
        line.split()[2]: int(line.split()[0], 16) for line in nm.splitlines() if len(line.split()) == 3
    }
    assert 0x2000_0000 <= symbols["_sdma_ram"] < symbols["_edma_ram"] <= 0x2002_0000
    for name in ("s_rx_desc", "s_tx_desc", "s_rx_buf", "s_tx_buf"):
        assert symbols["_sdma_ram"] <= symbols[name] < symbols["_edma_ram"], name
