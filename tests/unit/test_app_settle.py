"""The "does the app restart" window in board time (issue 18, rig/app_settle.py): the core
clock from the RCC registers, the window from the IWDG's settings at the slowest LSI, board
time from DWT_CYCCNT (wrapping), and a restart seen by DHCSR.S_RESET_ST or the banner again.
A register-level stand-in for the probe: the HIL suite runs the same code on the twin
(tests/hil/test_hil_variants.py: iwdg-left-on still fails in phase app, "restarted")."""

from __future__ import annotations

import pytest

from rig import app_settle as s
from rig.probe_errors import DHCSR, DHCSR_S_RESET_ST


class FakeProbe:
    """Registers by address; CYCCNT advances ``step`` cycles per read; a reset at read ``n``."""

    def __init__(self, regs: dict[int, int], *, step: int = 0, reset_at: int | None = None) -> None:
        self.regs = {s.DWT_CTRL: 0, s.DEMCR: 0, s.DWT_CYCCNT: 0, DHCSR: 0, **regs}
        self.step, self.reset_at, self.dhcsr_reads = step, reset_at, 0

    def read32(self, address: int) -> int:
        if address == s.DWT_CYCCNT:
            self.regs[address] = (self.regs[address] + self.step) & 0xFFFFFFFF
        if address == DHCSR:
            self.dhcsr_reads += 1
            if self.reset_at is not None and self.dhcsr_reads >= self.reset_at:
                return DHCSR_S_RESET_ST
        return self.regs.get(address, 0)

    def write32(self, address: int, value: int) -> None:
        self.regs[address] = value


class FakeConsole:
    def __init__(self, text: str = "") -> None:
        self.buf = text

    def text(self, since: int = 0) -> str:
        return self.buf[since:]


def test_core_clock_from_rcc() -> None:
    assert s.core_hz(FakeProbe({s.RCC_CFGR: 0})) == 16_000_000  # HSI after reset
    assert s.core_hz(FakeProbe({s.RCC_CFGR: 1 << 2})) == 8_000_000  # HSE
    pll = (1 << 22) | (432 << 6) | 8  # HSE / 8 * 432 / 2 = 216 MHz
    assert s.core_hz(FakeProbe({s.RCC_CFGR: 2 << 2, s.RCC_PLLCFGR: pll})) == 216_000_000
    assert s.core_hz(FakeProbe({s.RCC_CFGR: (2 << 2) | (8 << 4), s.RCC_PLLCFGR: pll})) == 108_000_000
    assert s.core_hz(FakeProbe({s.RCC_CFGR: 2 << 2, s.RCC_PLLCFGR: 0})) == 0  # nonsense PLL


LSI_ON = {s.RCC_CSR: s.CSR_LSIRDY}  # the LSI runs: an IWDG may (a started one forces it on)


def test_window_from_the_iwdg_settings() -> None:
    untouched = FakeProbe({s.IWDG_PR: 0, s.IWDG_RLR: 0xFFF, **LSI_ON})
    assert s.watchdog_window(untouched, 2.5) == pytest.approx(4 * 4096 / 17_000 + s.MARGIN)
    one_second = FakeProbe({s.IWDG_PR: 3, s.IWDG_RLR: 999, **LSI_ON})  # the iwdg-left-on variant
    assert s.watchdog_window(one_second, 2.5) == pytest.approx(32 * 1000 / 17_000 + s.MARGIN)
    longest = FakeProbe({s.IWDG_PR: 7, s.IWDG_RLR: 0xFFF, **LSI_ON})
    assert s.watchdog_window(longest, 2.5) == 2.5  # the caller's cap


def test_no_lsi_means_no_iwdg_so_only_the_margin_is_watched() -> None:
    lsi_off = FakeProbe({s.IWDG_PR: 7, s.IWDG_RLR: 0xFFF, s.RCC_CSR: 0})
    assert s.watchdog_window(lsi_off, 2.5) == s.MARGIN
    assert s.watchdog_window(lsi_off, 0.1) == 0.1


def test_a_running_app_is_watched_for_board_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s, "POLL", 0.0)
    # 16 MHz, 4 M cycles a read: 0.25 s of board time per poll, CYCCNT wrapping on the way
    probe = FakeProbe({s.IWDG_RLR: 0xFFF, s.DWT_CYCCNT: 0xFFFF0000, **LSI_ON}, step=4_000_000)
    w = s.watch_restart(probe, FakeConsole("APP v1 build x\n"), r"APP v1", 15, 2.5)
    assert w.restarted is None and w.clock == "board"
    assert w.window <= w.board_seconds < w.window + 0.3 and w.wall_seconds < 1.0
    assert probe.regs[s.DEMCR] & s.DEMCR_TRCENA and probe.regs[s.DWT_CTRL] & s.CYCCNTENA


def test_a_reset_or_the_banner_again_is_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s, "POLL", 0.0)
    probe = FakeProbe({s.IWDG_PR: 3, s.IWDG_RLR: 999, **LSI_ON}, step=1_000_000, reset_at=5)
    w = s.watch_restart(probe, FakeConsole("APP v1\n"), r"APP v1", 7, 2.5)
    assert w.restarted is not None and "S_RESET_ST" in w.restarted
    assert w.board_seconds < 1.0
    again = s.watch_restart(FakeProbe({}, step=1000), FakeConsole("APP v1\nAPP v1\n"), r"APP v1", 7, 2.5)
    assert again.restarted == "its banner came again"


def test_no_cycle_counter_means_wall_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(s, "POLL", 0.01)
    probe = FakeProbe({s.DWT_CTRL: s.NOCYCCNT})
    w = s.watch_restart(probe, FakeConsole(), r"APP", 0, 0.1)
    assert w.clock == "wall" and w.restarted is None and 0.1 <= w.wall_seconds < 1.0
