"""The twin is assembled from every part or not at all: a missing exception model, peripheral
package or network is a crash naming the part, never a quieter twin that runs without it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import twin.periph
from twin.board import Board, BoardOptions, ExceptionModel

CPUID = 0xE000ED00  # ARMv7-M ARM B3.2.3 CPUID; Cortex-M7 r1p0 reads 0x411FC270
RCC_CR = 0x40023800  # RM0410 5.3.1 RCC_CR: reset value 0x0000XX83 (HSION, HSIRDY, HSITRIM=16)

#: a process that cannot import ``BLOCKED`` (as if the part were not installed), then builds a twin
_WITHOUT = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = sys.argv[1]

    class Missing(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == BLOCKED or name.startswith(BLOCKED + "."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Missing())
    from twin.board import Board, BoardOptions, ExceptionModel

    b = Board(BoardOptions(pty=False))
    print("ASSEMBLED")
    b.close()
    """
)


#: the module the board takes its exception model from (named by the model, so a rename of the
#: module does not silently drop it from this test)
EXCEPTION_MODULE = ExceptionModel.__module__


@pytest.mark.parametrize("part", [EXCEPTION_MODULE, "twin.periph", "twin.periph.commands", "twin.net"])
def test_a_missing_part_is_a_crash_naming_it(part: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT, part], capture_output=True, text=True, timeout=120, check=False
    )
    assert "ASSEMBLED" not in proc.stdout, f"a twin without {part} was built:\n{proc.stderr[-2000:]}"
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(("ImportError: ", "ModuleNotFoundError: ")) and part in last, proc.stderr[-2000:]
    if part == "twin.net":  # imported by the board alone: its message says what to do
        assert "the twin is incomplete" in last and "make setup" in last, last


def test_a_broken_part_is_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(twin.periph, "all_devices")
    with pytest.raises(AttributeError, match="all_devices"):
        Board(BoardOptions(pty=False))


def test_a_complete_twin_has_every_part() -> None:
    b = Board(BoardOptions(pty=False))
    try:
        m = b.machine
        assert int.from_bytes(m.bus_read(CPUID, 4), "little") == 0x411FC270  # exception model's SCB
        assert int.from_bytes(m.bus_read(RCC_CR, 4), "little") & 0xFF == 0x83  # RCC model, not storage
        b.start()  # registers every part's control commands
        assert b.control is not None
        answer = json.loads(b.control.handle_line(b'{"cmd": "commands"}'))
        assert {"leds", "button", "net.status", "flash", "flash.cut"} <= set(answer["commands"]), answer
    finally:
        b.close()
