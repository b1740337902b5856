"""Independent watchdog (0x4000_3000) on virtual time; LSI = 32 kHz."""
from __future__ import annotations

from twin.device import Device, merge_word

KR, PR, RLR, SR, WINR = 0x00, 0x04, 0x08, 0x0C, 0x10
LSI_HZ = 32_000
DBG_IWDG_STOP = 1 << 12


class Iwdg(Device):
    """IWDG: 0xCCCC starts, 0x5555 unlocks PR/RLR/WINR, 0xAAAA reloads; expiry resets the chip.

    The counter runs on virtual time, integrated here from core cycles across clock changes
    (``clock_changed`` from the RCC), so it freezes whenever virtual time does and does not
    jump when SYSCLK changes. While the core is halted (``core_halted(True)`` from the machine)
    and DBGMCU_APB1_FZ.DBG_IWDG_STOP is set, the counter is frozen explicitly.
    """

    name, base, size = "iwdg", 0x40003000, 0x400

    def __init__(self) -> None:
        super().__init__()
        self.handle: object | None = None
        self.expiries = 0
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
        self.frozen_at: int | None = None     # counter value while frozen

    # -------------------------------------------------------------- time
    def _rebase(self, hz: int | None) -> None:
        """Fold elapsed cycles into the ns base at the old clock, then switch to ``hz``."""
        if self.services is None:
            self._ns_base, self._cyc_base, self._hz = 0, 0, hz or 16_000_000
            return
        now = self.services.now_cycles()
        if hasattr(self, "_hz"):
            self._ns_base = self._now_ns()
        else:
            self._ns_base = 0
        self._cyc_base = now
        self._hz = hz or self.services.core_hz

    def _now_ns(self) -> int:
        assert self.services is not None
        return self._ns_base + (self.services.now_cycles() - self._cyc_base) * 1_000_000_000 // self._hz

    def attach(self, services) -> None:  # noqa: ANN001 - Services
        super().attach(services)
        self._rebase(None)

    def _tick_ns(self) -> int:
        return (4 << self.pr) * 1_000_000_000 // LSI_HZ

    def counter(self) -> int:
        """Current down-counter value."""
        if not self.running:
            return self.rlr
        if self.frozen_at is not None:
            return self.frozen_at
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
        if not self.running or self.frozen_at is not None or self.services is None:
            return
        left_ns = (self.counter_at_start + 1) * self._tick_ns() - (self._now_ns() - self.start_ns)
        cycles = max(1, left_ns * self._hz // 1_000_000_000)
        self.handle = self.services.schedule(cycles, self._check)

    def _check(self) -> None:
        self.handle = None
        assert self.services is not None
        elapsed_ns = self._now_ns() - self.start_ns
        if elapsed_ns >= (self.counter_at_start + 1) * self._tick_ns():
            self.expiries += 1
            self.services.log("counter reached 0 → system reset")
            self.services.request_reset("system", "iwdg")
            self.running = False
        else:
            self._arm()

    def clock_changed(self, hz: int) -> None:
        """The core clock changed (RCC listener): rebase time, re-time the expiry check."""
        self._rebase(hz)
        self._arm()

    def core_halted(self, halted: bool) -> None:
        """The machine reports the core halting/resuming (for DBG_IWDG_STOP)."""
        if not self.running:
            return
        if halted and self._freeze_requested():
            self.frozen_at = self.counter()
            self._cancel()
        elif not halted and self.frozen_at is not None:
            value, self.frozen_at = self.frozen_at, None
            self._reload(value)

    def _freeze_requested(self) -> bool:
        try:
            dbg = self.services.device("dbgmcu") if self.services else None
        except KeyError:
            return False
        return bool(getattr(dbg, "apb1_fz", 0) & DBG_IWDG_STOP)

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
                return                        # write-protected: ignored
            if aligned == PR:
                self.pr = value & 7 if value & 7 < 7 else 6
                if self.running:
                    self._reload(self.counter())
            elif aligned == RLR:
                self.rlr = value & 0xFFF
            else:
                self.winr = value & 0xFFF
                if self.running:
                    self._reload()            # writing WINR reloads the counter
        elif aligned != SR:
            self.unmodelled(aligned, "write")

    def snapshot(self) -> dict[str, object]:
        return {"running": self.running, "pr": self.pr, "rlr": self.rlr,
                "counter": self.counter() if self.services else self.rlr,
                "expiries": self.expiries}
