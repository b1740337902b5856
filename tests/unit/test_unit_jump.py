"""The jump contract check: each item on a constructed state, collection through callables."""

from __future__ import annotations

import dataclasses
import json
import struct
from dataclasses import replace

import pytest

from rig.board import ContractItem, JumpContract, load_board
from rig.image import Image
from rig.jump import JumpState, check_jump

APP = 0x08040000
SP = 0x20080000
ENTRY = APP + 0x1C9


@pytest.fixture(scope="module")
def image() -> Image:
    return Image(struct.pack("<II", SP, ENTRY) + bytes(1024), APP)


def good_state() -> JumpState:
    return JumpState(vtor=APP, msp=SP, pc=ENTRY & ~1, xpsr=1 << 24, lr=0xFFFFFFFF)


def test_good_state_holds(image: Image) -> None:
    verdict = check_jump(good_state(), image, JumpContract.all_enabled())
    assert verdict.ok and verdict.failures == [] and "holds" in verdict.summary()


@pytest.mark.parametrize(
    "name,change",
    [
        ("vtor", {"vtor": 0x08000000}),
        ("msp", {"msp": 0x2007FF00}),
        ("pc", {"pc": APP + 0x400}),
        ("thumb", {"xpsr": 0}),
        ("thread_mode", {"xpsr": (1 << 24) | 23}),  # jumped from EXTI1's handler (IRQ 7 = exception 23)
        ("control", {"control": 0b10}),
        ("primask", {"primask": 1}),
        ("basepri", {"basepri": 0x40}),
        ("faultmask", {"faultmask": 1}),
        ("nvic_enabled", {"nvic_iser": [1 << 7, 0, 0, 0, 0, 0, 0, 0]}),
        ("nvic_pending", {"nvic_ispr": [0, 1 << 3, 0, 0, 0, 0, 0, 0]}),
        ("systick", {"systick_ctrl": 0b111}),
        ("pending_exceptions", {"icsr": 1 << 26}),
        ("mpu", {"mpu_ctrl": 1}),
        ("dcache", {"ccr": 1 << 16}),
        ("icache", {"ccr": 1 << 17}),
        ("faults", {"cfsr": 0x100}),
        ("clocks", {"rcc_cfgr": 0x0A, "rcc_cr": 0x03037C83}),  # SYSCLK = PLL, PLL on
        ("clocks", {"rcc_cr": 0x03037C83}),  # back on the HSI, the PLL left running
    ],
)
def test_each_item_fails_alone(image: Image, name: str, change: dict) -> None:
    verdict = check_jump(replace(good_state(), **change), image, JumpContract.all_enabled())
    assert [r.name for r in verdict.failures] == [name]
    row = verdict.row(name)
    assert not row.ok and row.expected != row.actual and row.reason


def test_nvic_text_names_irqs(image: Image) -> None:
    st = replace(good_state(), nvic_iser=[1 << 7, 1 << 3, 0, 0, 0, 0, 0, 0])
    row = check_jump(st, image, JumpContract.all_enabled()).row("nvic_enabled")
    assert row.actual == "IRQ 7, 35"


def test_disabled_item_does_not_fail(image: Image) -> None:
    spec = load_board()
    st = replace(good_state(), ccr=1 << 17)  # I-cache on: disabled in the board file
    verdict = check_jump(st, image, spec.contract)
    assert verdict.ok and verdict.row("icache").checked is False and not verdict.row("icache").ok
    st2 = replace(good_state(), vtor=0x08000000)
    v2 = check_jump(st2, image, spec.contract)
    assert not v2.ok and "bootloader" in v2.row("vtor").reason and "vtor" in v2.summary()
    off = JumpContract({"vtor": ContractItem("vtor", False, "off")})
    assert check_jump(st2, image, off).ok


def test_app_base_override(image: Image) -> None:
    st = replace(good_state(), vtor=0x00240000)  # VTOR on the ITCM alias
    assert check_jump(st, image, JumpContract.all_enabled(), app_base=0x00240000).ok


def test_collect_reads_every_register() -> None:
    mem = {0xE000ED08: APP, 0xE000E010: 5, 0xE000E100 + 4: 0x80, 0xE000ED94: 1}
    core = {"msp": SP, "pc": ENTRY & ~1, "xpsr": (1 << 24) | 3, "primask": 1}
    reads: list[int] = []

    def read_word(addr: int) -> int:
        reads.append(addr)
        return mem.get(addr, 0)

    st = JumpState.collect(lambda n: core.get(n, 0), read_word)
    assert st.vtor == APP and st.msp == SP and st.ipsr == 3 and st.primask == 1
    assert st.nvic_iser[1] == 0x80 and st.systick_ctrl == 5 and st.mpu_ctrl == 1
    assert {0xE000ED08, 0xE000ED04, 0xE000ED14, 0xE000ED28, 0xE000ED2C, 0xE000E010, 0xE000ED94} <= set(reads)
    assert set(range(0xE000E100, 0xE000E120, 4)) <= set(reads) and set(
        range(0xE000E200, 0xE000E220, 4)
    ) <= set(reads)
    fields = {r.field for r in JumpState.REGISTERS}
    assert fields == {f.name for f in dataclasses.fields(JumpState)}


def test_to_dict_json(image: Image) -> None:
    st = replace(good_state(), primask=1)
    doc = json.loads(
        json.dumps(
            {"state": st.to_dict(), "verdict": check_jump(st, image, JumpContract.all_enabled()).to_dict()}
        )
    )
    assert doc["state"]["ipsr"] == 0 and doc["verdict"]["ok"] is False
    assert {r["name"] for r in doc["verdict"]["rows"] if not r["ok"]} == {"primask"}


def test_clocks_row_names_the_source(image: Image) -> None:
    st = replace(good_state(), rcc_cfgr=0x0A, rcc_cr=0x03037C83)
    row = check_jump(st, image, load_board().contract).row("clocks")
    assert row.checked and row.actual == "SYSCLK = PLL, PLL on" and row.expected == "SYSCLK = HSI, PLL off"
    assert "HAL_RCC_DeInit" in row.reason
    words = {0x40023800: 0x7C83}
    reset = JumpState.collect(lambda name: 0, lambda a: words.get(a, 0))
    assert reset.rcc_cr == 0x7C83 and check_jump(reset, image, JumpContract.all_enabled()).row("clocks").ok
