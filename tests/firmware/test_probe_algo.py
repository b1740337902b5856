"""The rig's on-target routines (issue 18), the CRC-32 and the flash writer: ``make -C firmware
probe-algo`` rebuilds exactly the blobs the rig ships (rig/algo/*.bin, package data), and each is
position-independent: no relocation in its object, so it runs wherever the rig loads it."""

from __future__ import annotations

import subprocess

import pytest
from fw_build import BUILD, REPO, make

ROUTINES = ["crc32", "flashprog"]


@pytest.mark.parametrize("name", ROUTINES)
def test_the_build_reproduces_the_shipped_blob(name: str) -> None:
    make("probe-algo")
    built = (BUILD / "probe_algo" / f"{name}.bin").read_bytes()
    shipped = (REPO / "rig" / "algo" / f"{name}.bin").read_bytes()
    assert built == shipped, (
        f"firmware/probe_algo/{name}.S changed: copy firmware/build/probe_algo/{name}.bin to "
        f"rig/algo/{name}.bin (and run tests/rig/test_flash_verify.py)"
    )


@pytest.mark.parametrize("name", ROUTINES)
def test_the_routine_has_no_relocations(name: str) -> None:
    make("probe-algo")
    obj = BUILD / "probe_algo" / f"{name}.o"
    out = subprocess.run(
        ["arm-none-eabi-objdump", "-r", str(obj)], capture_output=True, text=True, check=True
    ).stdout
    assert "RELOCATION RECORDS" not in out, out
