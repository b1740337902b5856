"""The rig's on-target CRC-32 routine (issue 18): ``make -C firmware probe-algo`` rebuilds
exactly the blob the rig ships (rig/algo/crc32.bin, package data), and that blob is
position-independent: no relocation in its object, so it runs wherever the rig loads it."""

from __future__ import annotations

import subprocess

from fw_build import BUILD, REPO, make


def test_the_build_reproduces_the_shipped_blob() -> None:
    make("probe-algo")
    built = (BUILD / "probe_algo" / "crc32.bin").read_bytes()
    shipped = (REPO / "rig" / "algo" / "crc32.bin").read_bytes()
    assert built == shipped, (
        "firmware/probe_algo/crc32.S changed: copy firmware/build/probe_algo/crc32.bin to "
        "rig/algo/crc32.bin (and run tests/rig/test_flash_verify.py)"
    )


def test_the_routine_has_no_relocations() -> None:
    make("probe-algo")
    obj = BUILD / "probe_algo" / "crc32.o"
    out = subprocess.run(
        ["arm-none-eabi-objdump", "-r", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    assert "RELOCATION RECORDS" not in out, out
