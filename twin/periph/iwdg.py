"""Independent watchdog (0x4000_3000) on virtual time; LSI = 32 kHz.

Owns: the IWDG's registers and countdown. Must not touch: the machine beyond its Services
(a timeout is ``request_reset``).
"""

from __future__ import annotations

from twin.device import Device, merge_word
from twin.periph.base import StoppedTime

KR, PR, RLR, SR, WINR = 0x00, 0x04, 0x08, 0x0C, 0x10
LSI_HZ = 32_000
DBG_IWDG_STOP = 1 << 12


class Iwdg(Device):
    """IWDG: 0xCCCC starts, 0x5555 unlocks PR/RLR/WINR, 0xAAAA reloads; expiry resets the chip.

    The counter runs on virtual time, integrated here from core cycles across clock changes
    (``clock_changed`` from the RCC), so it does not jump when SYSCLK changes. Virtual time
    stands still while the core is halted or locked up, but the LSI does not: the machine
    reports those states (``core_stopped``) and the IWDG then counts wall time
    (:class:`StoppedTime`), checked by ``stopped_tick`` — except in a debug halt with
    DBGMCU_APB1_FZ.DBG_IWDG_STOP set, where it is frozen as on the chip.
    """

    name, base, size = "iwdg", 0x40003000, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.handle: object | None = None
        self.expiries = 0
        self.stopped = StoppedTime(self, DBG_IWDG_STOP, in_stop=True)
        self.reset("power")

    def reset(self, kind: str) -> None:
        self._cancel()
        self._rebase(None)
        self.running = False
        self.unlocked = False
        self.pr = 0
        self.rlr = 0xFFF
        self.winr = 0xFFF
        self.counter_at_start = 0xFFF
        self.start_ns = 0

    def _force_lsi(self) -> None:
        """Starting the IWDG forces the LSI on: RCC_CSR.LSIRDY reads 1 (RM0410)."""
        try:
            rcc = self.services.device("rcc") if self.services is not None else None
        except KeyError:
            rcc = None
        if rcc is not None and hasattr(rcc, "force_lsi"):
            rcc.force_lsi()

    # -------------------------------------------------------------- time
    def _rebase(self, hz: int | None) -> None:
        """Fold elapsed cycles into the ns base at the old clock, then switch to ``hz``."""
        if self.services is None:
            self._ns_base, self._cyc_base, self._hz = 0, 0, hz or 16_000_000
            return
        now = self.services.now_cycles()
        if hasattr(self, "_hz"):
            self._ns_base = self._virtual_ns()
        else:
            self._ns_base = 0
        self._cyc_base = now
        self._hz = hz or self.services.core_hz

    def _virtual_ns(self) -> int:
        assert self.services is not None
        return self._ns_base + (self.services.now_cycles() - self._cyc_base) * 1_000_000_000 // self._hz

    def _now_ns(self) -> int:
        """The LSI's time: virtual time plus the wall time it ran while the core was stopped."""
        return self._virtual_ns() + int(self.stopped.seconds() * 1e9)

    def attach(self, services) -> None:
        super().attach(services)
        self._rebase(None)

    def _tick_ns(self) -> int:
        return (4 << self.pr) * 1_000_000_000 // LSI_HZ

    def counter(self) -> int:
        """Current down-counter value."""
        if not self.running:
            return self.rlr
        assert self.services is not None
        elapsed = (self._now_ns() - self.start_ns) // self._tick_ns()
        return max(self.counter_at_start - elapsed, 0)

    def _reload(self, value: int | None = None) -> None:
        assert self.services is not None
        self.counter_at_start = self.rlr if value is None else value
        self.start_ns = self._now_ns()
        self._arm()

    def _cancel(self) -> None:
        if self.handle is not None and self.services is not None:
            self.services.cancel(self.handle)
        self.handle = None

    def _arm(self) -> None:
        """Schedule a check at the expected expiry (re-checked, since the clock may change)."""
        self._cancel()
        if not self.running or self.services is None:
            return
        left_ns = (self.counter_at_start + 1) * self._tick_ns() - (self._now_ns() - self.start_ns)
        cycles = max(1, left_ns * self._hz // 1_000_000_000)
        self.handle = self.services.schedule(cycles, self._check)

    def _expired(self) -> bool:
        return self._now_ns() - self.start_ns >= (self.counter_at_start + 1) * self._tick_ns()

    def _expire(self) -> None:
        assert self.services is not None
        self.expiries += 1
        where = {
            "halt": " (core halted: DBGMCU_APB1_FZ.DBG_IWDG_STOP is clear)",
            "lockup": " (core locked up)",
        }.get(self.stopped.state or "", "")
        self.services.log(f"counter reached 0{where} → system reset")
        self.services.request_reset("system", "iwdg")
        self.running = False

    def _check(self) -> None:
        self.handle = None
        if self._expired():
            self._expire()
        else:
            self._arm()

    def clock_changed(self, hz: int) -> None:
        """The core clock changed (RCC listener): rebase time, re-time the expiry check."""
        self._rebase(hz)
        self._arm()

    def core_stopped(self, state: str | None) -> None:
        """Machine hook: the core is running (None), in debug halt or locked up; also called
        again when the DBGMCU freeze bits change."""
        self.stopped.update(state)
        if state is None:
            self._arm()  # back on virtual time: re-time the expiry event

    def stopped_tick(self) -> float | None:
        """Machine hook, polled while the core is stopped: expire if the wall time ran the
        counter out; otherwise return the seconds until it would (None: not counting)."""
        if not self.running or not self.stopped.counting:
            return None
        if self._expired():
            self._expire()
            return None
        left_ns = (self.counter_at_start + 1) * self._tick_ns() - (self._now_ns() - self.start_ns)
        return left_ns / 1e9

    # -------------------------------------------------------------- registers
    def read(self, offset: int, size: int) -> int:
        value = {KR: 0, PR: self.pr, RLR: self.rlr, SR: 0, WINR: self.winr}.get(offset & ~3)
        if value is None:
            self.unmodelled(offset & ~3, "read")
            return 0
        return (value >> (8 * (offset & 3))) & ((1 << (8 * size)) - 1)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if aligned == KR:
            key = merge_word(0, offset, size, value) & 0xFFFF
            if key == 0xCCCC:
                if not self.running:
                    self.running = True
                    self._reload()
                    self._force_lsi()
            elif key == 0xAAAA:
                if self.running:
                    self._reload()
                self.unlocked = False
            elif key == 0x5555:
                self.unlocked = True
            else:
                self.unlocked = False
        elif aligned in (PR, RLR, WINR):
            if not self.unlocked:
                return  # write-protected: ignored
            if aligned == PR:
                self.pr = value & 7 if value & 7 < 7 else 6
                if self.running:
                    self._reload(self.counter())
            elif aligned == RLR:
                self.rlr = value & 0xFFF
            else:
                self.winr = value & 0xFFF
                if self.running:
                    self._reload()  # writing WINR reloads the counter
        elif aligned != SR:
            self.unmodelled(aligned, "write")

    def snapshot(self) -> dict[str, object]:
        return {
            "running": self.running,
            "pr": self.pr,
            "rlr": self.rlr,
            "counter": self.counter() if self.services else self.rlr,
            "expiries": self.expiries,
            "counting_while_stopped": self.stopped.counting,
        }
