"""Does the application restart after its banner? Watched in the board's own time.

A bootloader that leaves a watchdog running (the forum thread's "Is in your code used IWDG or
WWDG?") makes the app restart about one watchdog period after the jump. The rig used to watch
a fixed 2.5 s of wall time for the banner again; this module watches the board instead:

- the window is *board* time: DWT_CYCCNT read through the probe (the rig enables it if the
  app did not), at the core clock the RCC registers give (SYSCLK from SWS and the PLL, HSE =
  the NUCLEO's 8 MHz from the ST-LINK unless the board file gives ``hse_hz``), so a slow host or a twin behind wall time changes
  nothing; a core that sleeps (CYCCNT stops) is bounded by a wall-clock cap;
- its length is what the watchdog that could fire needs: the IWDG's period from its PR and
  RLR registers at the slowest LSI of the datasheet (17 kHz) plus a margin, at most the
  caller's ``settle`` (an IWDG nobody configured: 4 x 4096 / 17 kHz = 0.96 s); when the LSI
  is not running (RCC_CSR.LSIRDY = 0) no IWDG can be, and the margin alone is watched (the
  WWDG's longest period, ~80 ms at 50 MHz PCLK1, fits in it);
- a restart is seen at once: DHCSR.S_RESET_ST (sticky, set by any reset of the core since the
  last read, which was the rig's resume of the app) or the banner on the console again.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from rig.clock_hint import NUCLEO_HSE_HZ, RCC_CFGR, RCC_PLLCFGR, hclk
from rig.console import Console
from rig.probe import Probe
from rig.probe_errors import DHCSR, DHCSR_S_RESET_ST

DEMCR, DEMCR_TRCENA = 0xE000EDFC, 1 << 24
DWT_CTRL, DWT_CYCCNT = 0xE0001000, 0xE0001004
CYCCNTENA, NOCYCCNT = 1 << 0, 1 << 25
RCC_CSR, CSR_LSIRDY = 0x40023874, 1 << 1
IWDG_PR, IWDG_RLR = 0x40003004, 0x40003008
LSI_MIN_HZ = 17_000  #: DS11532: the LSI runs at 17..47 kHz
MARGIN = 0.25  #: seconds of board time after the slowest watchdog period
POLL = 0.05


@dataclass
class Watch:
    """The outcome of one window."""

    window: float  #: seconds of board time watched for (or of wall time, ``clock="wall"``)
    board_seconds: float  #: board time that passed
    wall_seconds: float
    restarted: str | None = None  #: how the restart showed, None if the app kept running
    clock: str = "board"


def core_hz(probe: Probe, hse_hz: int = NUCLEO_HSE_HZ) -> int:
    """The core clock (HCLK) from the RCC registers (rig/clock_hint.py; ``hse_hz``: the board
    file's); 0 if the PLL settings make no sense."""
    return hclk(probe.read32(RCC_PLLCFGR), probe.read32(RCC_CFGR), hse_hz)[0]


def watchdog_window(probe: Probe, cap: float) -> float:
    """Board seconds within which an IWDG configured as its registers say fires for sure;
    only :data:`MARGIN` when no IWDG can be running: a started IWDG (or the hardware
    watchdog option) forces the LSI on, so RCC_CSR.LSIRDY = 0 means none runs (RM0410,
    independent watchdog: "the LSI oscillator is forced ON and cannot be disabled")."""
    if not probe.read32(RCC_CSR) & CSR_LSIRDY:
        return min(cap, MARGIN)
    pr, rlr = probe.read32(IWDG_PR) & 7, probe.read32(IWDG_RLR) & 0xFFF
    return min(cap, (4 << min(pr, 6)) * (rlr + 1) / LSI_MIN_HZ + MARGIN)


def _start_cyccnt(probe: Probe) -> bool:
    """Make DWT_CYCCNT count (TRCENA, CYCCNTENA); False if this core has none."""
    ctrl = probe.read32(DWT_CTRL)
    if ctrl & NOCYCCNT:
        return False
    demcr = probe.read32(DEMCR)
    if not demcr & DEMCR_TRCENA:
        probe.write32(DEMCR, demcr | DEMCR_TRCENA)
    if not ctrl & CYCCNTENA:
        probe.write32(DWT_CTRL, ctrl | CYCCNTENA)
    return True


def watch_restart(
    probe: Probe, console: Console, pattern: str, since: int, settle: float, hse_hz: int = NUCLEO_HSE_HZ
) -> Watch:
    """Watch the running app for a restart for the board time a watchdog needs (at most
    ``settle`` board seconds); the console is searched for ``pattern`` from ``since`` on.
    Without a cycle counter or a known clock: ``settle`` s of wall time, as before."""
    t0 = time.monotonic()
    hz = core_hz(probe, hse_hz)
    counting = hz > 0 and _start_cyccnt(probe)
    window = watchdog_window(probe, settle) if counting else settle
    watch = Watch(window, 0.0, 0.0, clock="board" if counting else "wall")
    wall_cap = 3 * window + 2.0  # a sleeping core's CYCCNT stands still
    last = probe.read32(DWT_CYCCNT) if counting else 0
    cycles = 0
    while True:
        if probe.read32(DHCSR) & DHCSR_S_RESET_ST:
            watch.restarted = "the core was reset (DHCSR.S_RESET_ST)"
        elif re.search(pattern, console.text(since)):
            watch.restarted = "its banner came again"
        wall = time.monotonic() - t0
        if counting:
            now = probe.read32(DWT_CYCCNT)
            cycles += (now - last) & 0xFFFFFFFF
            last = now
        watch.board_seconds = cycles / hz if counting else wall
        watch.wall_seconds = wall
        if watch.restarted or watch.board_seconds >= window or wall >= wall_cap:
            return watch
        time.sleep(POLL)
