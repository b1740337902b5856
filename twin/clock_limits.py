"""The clock configuration against the STM32F767's limits, checked whenever firmware (or a
debugger) changes it: the things that run on the twin, whose unicorn core runs at any clock,
and misbehave on the board.

* **Flash wait states.** At 2.7-3.6 V (a NUCLEO's 3.3 V) flash needs one wait state per
  30 MHz of HCLK (RM0410 §3.3.2, table "Number of wait states according to CPU clock (HCLK)
  frequency": 0 WS up to 30 MHz ... 7 WS up to 216 MHz). With fewer in FLASH_ACR.LATENCY the
  core reads wrong instructions and data from flash: on the board a crash at once, or now and
  then. The twin makes it certain: the store that makes HCLK outrun LATENCY (RCC_CFGR's switch
  to the PLL, a smaller HPRE, LATENCY lowered) is followed by a BusFault on the next
  instruction fetch (CFSR.IBUSERR; a HardFault where BusFault is not enabled), and the log
  says why once. Code running from RAM at that moment has the fault too (the twin does not
  follow the next flash fetch; the board would fault there). A debugger's write only logs.
* **Voltage scale, over-drive, bus clocks, PLL ranges** (DS11532 "General operating
  conditions", RM0410 RCC_PLLCFGR): HCLK up to 144 MHz in scale 3, 168 in scale 2 (180 with
  over-drive), 180 in scale 1 (216 with over-drive); APB1 up to 45 MHz (54 with over-drive),
  APB2 up to 90 MHz (108); the PLL's input (HSI or HSE / PLLM) 0.95-2.1 MHz and its VCO
  (input x PLLN) 100-432 MHz while it runs. Outside them the board often runs anyway, out of
  specification (it may fail hot, cold or on another chip): logged once each per boot if
  still so 1 ms of board time after the change (ST's LL code divides the APB clocks a few
  instructions after the switch), nothing else.

HAL_RCC_ClockConfig raises LATENCY before raising the clock and lowers it after, so HAL code
never trips the first check; ST's SystemClock_Config turns over-drive on before 216 MHz.

Owns: the limits and which were reported since the last reset. Must not touch: the registers
(it reads RCC, PWR and FLASH through their models, told of changes by their listeners).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: HCLK per flash wait state at 2.7-3.6 V (RM0410 §3.3.2)
HZ_PER_WAIT_STATE = 30_000_000
#: the highest HCLK per voltage scale (PWR_CR1.VOS: 3 = scale 1, 2 = scale 2, 1 = scale 3),
#: without and with over-drive (DS11532)
HCLK_MAX = {3: (180_000_000, 216_000_000), 2: (168_000_000, 180_000_000), 1: (144_000_000, 144_000_000)}
APB1_MAX = (45_000_000, 54_000_000)
APB2_MAX = (90_000_000, 108_000_000)
#: the PLL's input after PLLM, and its VCO (RM0410 RCC_PLLCFGR)
VCO_IN = (950_000, 2_100_000)
VCO_OUT = (100_000_000, 432_000_000)
CR_PLLON = 1 << 24
PLLCFGR = 0x04
#: board time the clocks may stay over a limit other than the wait states unreported (ms)
SETTLE_MS = 1


def wait_states_needed(hclk_hz: int) -> int:
    """The fewest FLASH_ACR.LATENCY wait states for ``hclk_hz`` at 2.7-3.6 V."""
    return max(0, (hclk_hz - 1) // HZ_PER_WAIT_STATE)


def _mhz(hz: int) -> str:
    return f"{hz / 1e6:g} MHz"


class ClockLimits:
    """The checks of one board. ``rcc``, ``pwr``, ``flash``: the models (twin/periph/rcc.py,
    twin/periph/pwr.py, twin/flash.py); ``services``: the twin's log, time and scheduler
    (twin/services.py); ``fault(kind, detail, text) -> bool``: fault the core after the
    store being handled (False for a debugger's access)."""

    def __init__(
        self, rcc: Any, pwr: Any, flash: Any, services: Any, fault: Callable[[str, object, str], bool]
    ) -> None:
        self.rcc, self.pwr, self.flash = rcc, pwr, flash
        self._services, self._fault = services, fault
        self.too_slow = False  #: flash has fewer wait states than HCLK needs
        self.reported: set[str] = set()  #: the out-of-specification findings logged since reset
        self._settle: object | None = None  #: the scheduled look at the other limits
        rcc.config_listeners.append(self.changed)
        pwr.config_listeners.append(self.changed)
        flash.config_listeners.append(self.changed)

    def changed(self, why: str = "write") -> None:
        """RCC, PWR or FLASH_ACR changed (``why``: "write"), or the chip reset ("reset").

        The wait states are checked at once (a fetch follows). The other limits are looked at
        SETTLE_MS of board time later, if still exceeded then: ST's LL SystemClock_Config
        switches SYSCLK to the PLL before it divides the APB clocks, which is over their
        limits for a few instructions and harms nothing."""
        if why == "reset":
            self.too_slow = False
            self.reported.clear()
            self._settle = None  # (a reset cancels every scheduled event)
            return
        self._wait_states()
        if self._settle is None and self.out_of_spec():
            delay = max(1, self._services.core_hz * SETTLE_MS // 1000)
            self._settle = self._services.schedule(delay, self._look)

    def _look(self) -> None:
        self._settle = None
        for key, text in self.out_of_spec():
            if key not in self.reported:
                self.reported.add(key)
                self._services.log(text)

    def _wait_states(self) -> None:
        hclk, latency = self.rcc.hclk_hz(), self.flash.acr & 0xF
        need = wait_states_needed(hclk)
        was, self.too_slow = self.too_slow, latency < need
        if not self.too_slow or was:
            return
        faulted = self._fault(
            "bus", (0, "instr"), f"flash read with too few wait states ({latency} < {need})"
        )
        who = "the twin faults" if faulted else "a debugger's write: the twin would fault"
        self._services.log(
            f"HCLK is {_mhz(hclk)} with FLASH_ACR.LATENCY = {latency} wait state(s): flash needs {need} "
            f"at 2.7-3.6 V (one per 30 MHz, RM0410 §3.3.2), so on the board the core reads wrong "
            "instructions and data from flash (a crash at once, or now and then); "
            f"{who} the next fetch (BusFault IBUSERR, a HardFault if BusFault is off). Set LATENCY before "
            f"raising the clock: HAL_RCC_ClockConfig(&clk, FLASH_LATENCY_{min(need, 15)}), or "
            f"FLASH->ACR = (FLASH->ACR & ~0xF) | {need} and read it back"
        )

    def out_of_spec(self) -> list[tuple[str, str]]:
        """(key, sentence) for each limit the clocks are over now."""
        od = bool(self.pwr.overdrive)
        hclk = self.rcc.hclk_hz()
        with_od = "with" if od else "without"
        out = self._hclk(hclk, od)
        for bus, hz, limits in ((1, self.rcc.pclk1_hz(), APB1_MAX), (2, self.rcc.pclk2_hz(), APB2_MAX)):
            if hz > limits[od]:
                div = next((d for d in (2, 4, 8, 16) if hclk // d <= limits[od]), 16)
                text = (
                    f"APB{bus} (PCLK{bus}) is {_mhz(hz)}, above the {_mhz(limits[od])} the F767 allows "
                    f"{with_od} over-drive (DS11532): its peripherals run out of specification; divide "
                    f"it (RCC_CFGR.PPRE{bus}: APB{bus}CLKDivider = RCC_HCLK_DIV{div})"
                )
                out.append((f"apb{bus}", text))
        return out + self._pll()

    def _hclk(self, hclk: int, od: bool) -> list[tuple[str, str]]:
        vos = self.pwr.vos
        scale = {3: 1, 2: 2, 1: 3}.get(vos)
        top = HCLK_MAX[vos][od] if scale else HCLK_MAX[1][0]
        if hclk <= top:
            return []
        fix = []
        if scale != 1:
            fix.append("voltage scale 1 (__HAL_PWR_VOLTAGESCALING_CONFIG(PWR_REGULATOR_VOLTAGE_SCALE1))")
        if not od and hclk <= HCLK_MAX[3][1]:
            fix.append("over-drive on (HAL_PWREx_EnableOverDrive) before SYSCLK goes up")
        where = f"voltage scale {scale}" if scale else "PWR_CR1.VOS = 0 (reserved: scale 3)"
        text = (
            f"HCLK is {_mhz(hclk)}, above the {_mhz(top)} {where} allows {'with' if od else 'without'} "
            f"over-drive (DS11532): the board runs out of specification; {' and '.join(fix) or 'lower SYSCLK'}"
        )
        return [("hclk", text)]

    def _pll(self) -> list[tuple[str, str]]:
        rcc = self.rcc
        if not rcc.regs[0] & CR_PLLON:
            return []
        cfg = rcc.regs[PLLCFGR]
        m, n = cfg & 0x3F, (cfg >> 6) & 0x1FF
        src = rcc.pll_source_hz()
        if m < 2 or n < 2:
            return []  # RM0410: invalid values; the twin's PLL gives no clock then
        vin, out = src / m, src / m * n
        found = []
        if not VCO_IN[0] <= vin <= VCO_IN[1]:
            text = (
                f"the PLL's input is {_mhz(int(vin))} ({_mhz(src)} / PLLM {m}), outside 0.95-2.1 MHz "
                "(RM0410 RCC_PLLCFGR; 2 MHz recommended): the PLL may not lock or may jitter on the board"
            )
            found.append(("vco_in", text))
        if not VCO_OUT[0] <= out <= VCO_OUT[1]:
            text = (
                f"the PLL's VCO runs at {_mhz(int(out))} (input x PLLN {n}), outside 100-432 MHz "
                "(RM0410 RCC_PLLCFGR): the PLL may not lock on the board"
            )
            found.append(("vco_out", text))
        return found
