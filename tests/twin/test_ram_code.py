"""Code in RAM: written behind the CPU (debugger, DMA), it runs as written, and writes to
RAM that never held code leave translated code alone.

Writable memory is mapped without EXEC; unicorn's first fetch on a page reports it
(Protection.code_pages), and only those pages drop translated code when something other
than the CPU writes them (twin/stores.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from twin_core_util import build

from twin.board import Board, BoardOptions
from twin.loader import Chunk

RESULT, FUNC = 0x20000100, 0x20004000

#: the flash program calls the function at FUNC again and again and stores what it returns
CALLER = f"""
    .thumb_func
    .global reset
reset:
    ldr r1, ={RESULT:#x}
    ldr r4, ={FUNC + 1:#x}
loop:
    blx r4
    str r0, [r1]
    b loop
"""


def _func(value: int) -> bytes:
    """``movs r0, #value; bx lr``"""
    return bytes([value, 0x20, 0x70, 0x47])


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    b = Board(BoardOptions(pty=False, idle="skip"))
    try:
        _, binf = build(tmp_path, CALLER)
        b.power_on([Chunk(0x08000000, binf.read_bytes(), str(binf))])
        with b.machine.host() as m:
            m.bus_write(FUNC, _func(1))
        yield b
    finally:
        b.close()


def _result(board: Board) -> int:
    with board.machine.host() as m:
        return int.from_bytes(m.bus_read(RESULT, 4), "little")


def _wait_result(board: Board, want: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _result(board) == want:
            return
        time.sleep(0.005)
    raise AssertionError(f"RAM function returned {_result(board)}, not {want}")


def test_fetch_from_ram_records_the_page_and_runs(board: Board) -> None:
    m = board.machine
    m.start()
    _wait_result(board, 1)
    assert FUNC in m.protection.code_pages
    assert all(0x20000000 <= p < 0x20080000 for p in m.protection.code_pages)


@pytest.mark.parametrize("writer", ["debugger", "dma"])
def test_code_rewritten_behind_the_cpu_runs_new(board: Board, writer: str) -> None:
    m = board.machine
    m.start()
    _wait_result(board, 1)
    with m.host() as mm:
        if writer == "debugger":
            mm.bus_write(FUNC, _func(2))
        else:  # a DMA stream writing the same bytes through the bus-master port
            mm.bus.master_port.write(FUNC, _func(2))
            mm.stores.flush_dirty()
    _wait_result(board, 2)


def test_writes_to_data_pages_drop_no_code(board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    m = board.machine
    m.start()
    _wait_result(board, 1)
    flushed: list[tuple[int, int]] = []
    stores = m.stores
    real = stores.flush_code_cache
    monkeypatch.setattr(
        stores, "flush_code_cache", lambda lo=0, hi=0xFFFFFFFF: (flushed.append((lo, hi)), real(lo, hi))
    )
    with m.host() as mm:
        mm.bus.master_port.write(0x20010000, bytes(1500))  # an Ethernet frame's buffer
        mm.stores.flush_dirty()
        assert flushed == []
        mm.bus.master_port.write(FUNC + 0x200, b"\x00\x00")  # same 1 KiB page as code
        mm.stores.flush_dirty()
    assert flushed and flushed[0][0] <= FUNC + 0x200 < flushed[0][1]
