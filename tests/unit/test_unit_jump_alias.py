"""VTOR through either view of the flash (issue 15: 7): an app whose vector table is reached
through the ITCM alias (VTOR 0x0024xxxx, valid on the STM32F7) holds the ``vtor`` item, and
the row names the view it saw; an alias address of another place still fails."""

from __future__ import annotations

import struct

import pytest

from rig.board import JumpContract, load_board
from rig.image import Image
from rig.jump import JumpState, check_jump

APP = 0x08040000
ITCM_APP = 0x00240000
SP = 0x20080000
ENTRY = APP + 0x1C9


@pytest.fixture(scope="module")
def image() -> Image:
    return Image(struct.pack("<II", SP, ENTRY) + bytes(1024), APP)


def _state(vtor: int) -> JumpState:
    return JumpState(vtor=vtor, msp=SP, pc=ENTRY & ~1, xpsr=1 << 24, lr=0xFFFFFFFF)


def test_vtor_through_the_itcm_alias_holds_and_is_named(image: Image) -> None:
    spec = load_board()
    verdict = check_jump(_state(ITCM_APP), image, spec.contract, APP, board=spec)
    row = verdict.row("vtor")
    assert row.ok and verdict.ok, verdict.summary()
    assert row.actual == "0x00240000 = 0x08040000 through flash_itcm (alias of flash)"
    assert "0x08040000" in row.expected and "0x00240000" in row.expected  # both views are named
    assert verdict.vtor_view == "flash_itcm"


def test_vtor_through_the_axim_bus_is_named_too(image: Image) -> None:
    spec = load_board()
    verdict = check_jump(_state(APP), image, spec.contract, APP, board=spec)
    assert verdict.row("vtor").ok and verdict.row("vtor").actual == "0x08040000 through flash"
    assert verdict.vtor_view == "flash"


@pytest.mark.parametrize(
    "vtor, view",
    [
        (0x00200000, "flash_itcm"),  # the bootloader's table through the alias
        (0x08000000, "flash"),  # ... and through AXIM
        (0x20000000, "dtcm"),  # a table copied to RAM is not the app's table in flash
        (0x00240200, "flash_itcm"),  # inside the app, not its base
    ],
)
def test_other_tables_fail_whichever_view(image: Image, vtor: int, view: str) -> None:
    spec = load_board()
    verdict = check_jump(_state(vtor), image, spec.contract, APP, board=spec)
    row = verdict.row("vtor")
    assert not row.ok and [r.name for r in verdict.failures] == ["vtor"]
    assert f"0x{vtor:08X}" in row.actual and view in row.actual
    assert verdict.vtor_view == view


def test_without_a_board_only_the_app_base_is_accepted(image: Image) -> None:
    # no memory map to translate with: the alias cannot be recognised (the old behaviour)
    verdict = check_jump(_state(ITCM_APP), image, JumpContract.all_enabled(), APP)
    assert not verdict.row("vtor").ok and verdict.vtor_view is None
