"""When the app's reset handler is never reached, the jump failure names what the bootloader
left behind that explains it (an interrupt taken before the app's first instruction)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from rig.board import default_board_path, load_board
from rig.console import Console
from rig.hil import Bench
from rig.hil_evidence import left_over_state
from rig.image import Image
from rig.jump import NVIC_ISER0, NVIC_ISPR0, SYST_CSR, VTOR
from rig.probe import Probe
from rig.targets.base import Target

APP = 0x08040000


class RegsProbe:
    def __init__(self, core: dict[str, int], words: dict[int, int]) -> None:
        self.core, self.words = core, words

    def registers(self, names: list[str]) -> dict[str, int]:
        return {n: self.core.get(n, 0) for n in names}

    def read32(self, address: int) -> int:
        return self.words.get(address, 0)


def _bench(tmp_path: Path, core: dict[str, int], words: dict[int, int]) -> Bench:
    probe = cast(Probe, RegsProbe(core, words))
    return Bench(load_board(default_board_path()), cast(Target, None), probe, cast(Console, None), tmp_path)


def _app() -> Image:
    vectors = (0x20080000).to_bytes(4, "little") + (APP + 0x3D9).to_bytes(4, "little")
    return Image(vectors + b"\x00" * 1024, APP)


def test_an_irq_left_enabled_and_taken_is_named(tmp_path: Path) -> None:
    core = {"xpsr": 0x01000000 | (16 + 7), "pc": APP + 0x704, "msp": 0x2007FFE0}
    words = {VTOR: APP, NVIC_ISER0: 1 << 7, NVIC_ISPR0: 0, SYST_CSR: 0b111}
    text = "; ".join(left_over_state(_bench(tmp_path, core, words), _app()))
    assert "exception 23 (IRQ 7)" in text
    assert "nvic_enabled IRQ 7" in text and "systick ENABLE=1 TICKINT=1" in text
    assert "vtor" not in text and " pc " not in text  # what holds, and the core's own position, are left out


def test_a_clean_hand_over_adds_nothing(tmp_path: Path) -> None:
    core = {"xpsr": 0x01000000, "pc": APP + 0x500}
    assert left_over_state(_bench(tmp_path, core, {VTOR: APP}), _app()) == []


def test_a_probe_that_cannot_read_more_adds_nothing(tmp_path: Path) -> None:
    class Dead(RegsProbe):
        def read32(self, address: int) -> int:
            raise OSError("probe gone")

    bench = Bench(
        load_board(default_board_path()),
        cast(Target, None),
        cast(Probe, Dead({}, {})),
        cast(Console, None),
        tmp_path,
    )
    assert left_over_state(bench, _app()) == []
