"""Control `power.cut {"after_ms": T}`: a power cut at a virtual time (a relay pulse)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from rig.targets.twin import start_twin

REPO = Path(__file__).resolve().parents[2]


def _power_resets(t) -> list:
    return [r for r in t.control("status")["resets"] if r["kind"] == "power"]


def test_timed_power_cut_fires_once_and_can_be_cancelled(tmp_path: Path) -> None:
    # a running firmware: virtual time only advances while the core runs
    boot = REPO / "firmware" / "build" / "bootloader.bin"
    t = start_twin(extra_args=["--load", f"{boot}@0x08000000"], log_path=tmp_path / "twin.log")
    try:
        before = len(_power_resets(t))
        armed = t.control("power.cut", after_ms=50)
        assert armed["armed"] is True
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_power_resets(t)) == before:
            time.sleep(0.05)
        after = _power_resets(t)
        assert len(after) == before + 1, "the armed power cut did not happen"
        cut = t.control("flash")["cuts"][-1]
        assert cut["kind"] == "time" and cut["time_ns"] >= armed["at_ns"]
        # armed and cancelled: nothing happens. Armed and cancelled with the core halted
        # (virtual time stands still): a firmware that waits lets virtual time run far ahead
        # of wall time, so 100 ms of it can pass between two control calls (CI stop 30).
        t.control("halt")
        rearmed = t.control("power.cut", after_ms=100)
        t.control("power.cut", cancel=True)
        t.control("resume")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and t.control("status")["time_ns"] < rearmed["at_ns"] + 50e6:
            time.sleep(0.05)
        assert t.control("status")["time_ns"] >= rearmed["at_ns"] + 50e6, "virtual time did not run"
        assert len(_power_resets(t)) == before + 1
    finally:
        t.stop()


# --- a relay cut while the flash controller erases (datasheet timing) -------------------
FLASH_KEYR, FLASH_SR, FLASH_CR = 0x40023C04, 0x40023C0C, 0x40023C10
CR_SER, CR_STRT, PSIZE_X32, BSY = 1 << 1, 1 << 16, 2 << 8, 1 << 16
SECTOR5, SECTOR5_SIZE = 0x08040000, 256 * 1024  # datasheet timing: ~2 s to erase


def _erasing_twin(tmp_path: Path):
    boot = REPO / "firmware" / "build" / "bootloader.bin"
    app = REPO / "firmware" / "build" / "app-v2-300k.bin"
    return start_twin(
        extra_args=["--load", f"{boot}@0x08000000", "--load", f"{app}@{SECTOR5:#x}", "--timing", "datasheet"],
        log_path=tmp_path / "twin.log",
    )


def _start_erase(p) -> None:
    """Sector 5's erase started by the debugger (core halted), as firmware would."""
    p.write32(FLASH_KEYR, 0x45670123)
    p.write32(FLASH_KEYR, 0xCDEF89AB)
    p.write32(FLASH_CR, PSIZE_X32 | CR_SER | (5 << 3))
    p.write32(FLASH_CR, PSIZE_X32 | CR_SER | (5 << 3) | CR_STRT)
    assert p.read32(FLASH_SR) & BSY, "the erase should be running"


def test_power_cut_mid_erase_leaves_the_sector_part_erased(tmp_path: Path) -> None:
    from rig.probe import Probe

    app = (REPO / "firmware" / "build" / "app-v2-300k.bin").read_bytes()[:SECTOR5_SIZE]
    t = _erasing_twin(tmp_path)
    try:
        with Probe(t.probe_uid) as p:
            p.halt()
            _start_erase(p)
            p.resume()  # virtual time runs with the core: the erase goes on
            before = len(_power_resets(t))
            t.control("power.cut", after_ms=500)  # about a quarter of the ~2 s erase
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(_power_resets(t)) == before:
                time.sleep(0.05)
            assert len(_power_resets(t)) == before + 1, "the armed power cut did not happen"
            p.reconnect()
            sector = p.read(SECTOR5, SECTOR5_SIZE)
        said = re.search(
            r"interrupted after [0-9.]+%: (\d+) bytes erased", (tmp_path / "twin.log").read_text()
        )
        assert said, "the twin did not log the interrupted erase"
        done = int(said.group(1))
        # the front of the sector erased (in proportion to the virtual time), the rest the old bytes
        assert 0 < done < SECTOR5_SIZE and done % 4 == 0
        assert sector[:done] == b"\xff" * done
        assert sector[done:] == app[done:]
        assert app[:done] != b"\xff" * done  # it was not erased before
    finally:
        t.stop()


def test_power_cut_now_works_while_the_core_is_halted(tmp_path: Path) -> None:
    """A relay does not wait for the debugger: cut at once with the core halted mid-erase
    (the twin's virtual time stands still while halted: nothing of the erase done yet)."""
    from rig.probe import Probe

    t = _erasing_twin(tmp_path)
    try:
        with Probe(t.probe_uid) as p:
            old = p.read(SECTOR5, 4096)
            p.halt()
            _start_erase(p)
            before = len(_power_resets(t))
            t.control("power.cut", after_ms=0)
            assert len(_power_resets(t)) == before + 1, "the cut waited for the core to run"
            p.reconnect()
            assert p.read(SECTOR5, 4096) == old
            assert not p.read32(FLASH_SR) & BSY
    finally:
        t.stop()
