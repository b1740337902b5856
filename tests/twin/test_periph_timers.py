"""IWDG, RNG and basic timers on virtual time."""

from __future__ import annotations

from twin.periph import Iwdg, Rcc, Rng, all_devices
from twin.periph.timers import basic_timers
from twin.testing import ServicesDouble

HZ = 16_000_000


def _iwdg() -> tuple[ServicesDouble, Iwdg]:
    s = ServicesDouble()
    iw = Iwdg()
    s.add(iw)
    return s, iw


def test_iwdg_reset_values_and_protection() -> None:
    _, iw = _iwdg()
    assert (iw.read(0x04, 4), iw.read(0x08, 4), iw.read(0x0C, 4), iw.read(0x10, 4)) == (0, 0xFFF, 0, 0xFFF)
    iw.write(0x08, 4, 10)  # locked: ignored
    assert iw.read(0x08, 4) == 0xFFF
    iw.write(0x00, 4, 0x5555)
    iw.write(0x08, 4, 10)
    assert iw.read(0x08, 4) == 10


def test_iwdg_expires_after_prescaled_reload_and_resets() -> None:
    s, iw = _iwdg()
    iw.write(0x00, 4, 0xCCCC)
    iw.write(0x00, 4, 0x5555)
    iw.write(0x04, 4, 0)  # /4 → 125 µs per tick
    iw.write(0x08, 4, 79)  # 80 ticks = 10 ms
    iw.write(0x00, 4, 0xAAAA)
    ten_ms = HZ // 100
    s.advance(ten_ms - 20000)
    assert s.resets == []
    assert 0 < iw.counter() < 79
    s.advance(19000)
    assert s.resets == []
    s.advance(2000)
    assert s.resets == [("system", "iwdg")]


def test_iwdg_refresh_keeps_it_alive() -> None:
    s, iw = _iwdg()
    iw.write(0x00, 4, 0xCCCC)
    iw.write(0x00, 4, 0x5555)
    iw.write(0x08, 4, 79)
    iw.write(0x00, 4, 0xAAAA)
    for _ in range(20):
        s.advance(HZ // 200)  # 5 ms
        iw.write(0x00, 4, 0xAAAA)
    assert s.resets == []


def test_iwdg_timeout_is_in_time_not_cycles_across_clock_changes() -> None:
    for new_hz in (4_000_000, 216_000_000):
        s, iw = _iwdg()
        iw.write(0x00, 4, 0xCCCC)  # 4/32 kHz * 4096 = 512 ms
        s.advance(HZ // 10)  # 100 ms at 16 MHz
        s.set_core_hz(new_hz)
        iw.clock_changed(new_hz)
        s.advance(new_hz * 400 // 1000)  # +400 ms: 500 ms in total
        assert s.resets == [], new_hz
        assert 90 <= iw.counter() <= 96  # 4095 - 500 ms / 125 us
        s.advance(new_hz * 20 // 1000)  # +20 ms: 520 ms
        assert s.resets == [("system", "iwdg")], new_hz


class _Dbg:
    """The DBGMCU registers the watchdogs and timers read (APB1_FZ, APB2_FZ), settable by the test."""

    name, base, size = "dbgmcu", 0xE0042000, 0x10

    def __init__(self, apb1_fz: int = 0, apb2_fz: int = 0) -> None:
        self.apb1_fz, self.apb2_fz = apb1_fz, apb2_fz

    def attach(self, s):
        pass

    def reset(self, k):
        pass


class _Wall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _iwdg_started(apb1_fz: int) -> tuple[ServicesDouble, Iwdg, _Wall]:
    s, iw = _iwdg()
    s.devices["dbgmcu"] = _Dbg(apb1_fz)  # type: ignore[assignment]
    wall = _Wall()
    iw.stopped.wall = wall
    iw.write(0x00, 4, 0xCCCC)  # 4096 ticks of 125 µs = 512 ms
    return s, iw, wall


def test_iwdg_keeps_counting_on_wall_time_while_halted_without_the_freeze_bit() -> None:
    s, iw, wall = _iwdg_started(apb1_fz=0)
    s.advance(HZ // 10)  # 100 ms of running
    iw.core_stopped("halt")
    wall.t += 0.3  # 300 ms halted
    left = iw.stopped_tick()
    assert s.resets == [] and left is not None and 0.10 < left < 0.12
    assert 890 <= iw.counter() <= 896  # 4095 - 400 ms / 125 µs
    wall.t += 0.12
    assert iw.stopped_tick() is None
    assert s.resets == [("system", "iwdg")]
    assert iw.expiries == 1


def test_iwdg_frozen_while_halted_when_dbgmcu_says_so() -> None:
    s, iw, wall = _iwdg_started(apb1_fz=1 << 12)  # DBG_IWDG_STOP
    s.advance(HZ // 10)
    iw.core_stopped("halt")
    before = iw.counter()
    wall.t += 5.0  # far past the timeout
    assert iw.stopped_tick() is None and iw.counter() == before
    assert s.resets == []
    iw.core_stopped(None)  # resumed: 412 ms left
    s.advance(HZ * 400 // 1000)
    assert s.resets == []
    s.advance(HZ * 20 // 1000)
    assert s.resets == [("system", "iwdg")]


def test_iwdg_freeze_bit_set_during_a_halt_stops_the_count_there() -> None:
    s, iw, wall = _iwdg_started(apb1_fz=0)
    iw.core_stopped("halt")
    wall.t += 0.2
    s.devices["dbgmcu"].apb1_fz = 1 << 12  # the debugger sets it now
    iw.core_stopped("halt")  # (the machine re-sends the state)
    counted = iw.counter()
    assert 2490 <= counted <= 2500  # 4095 - 200 ms / 125 µs
    wall.t += 10.0
    assert iw.counter() == counted and iw.stopped_tick() is None and s.resets == []


def test_iwdg_counts_through_a_lockup_even_with_the_freeze_bit() -> None:
    s, iw, wall = _iwdg_started(apb1_fz=1 << 12)  # freeze applies to debug halt only
    iw.core_stopped("lockup")
    wall.t += 0.6
    iw.stopped_tick()
    assert s.resets == [("system", "iwdg")]
    assert any("locked up" in line for line in s.logs)


def test_wwdg_resets_during_a_halt_unless_frozen() -> None:
    from twin.periph.wwdg import Wwdg

    for apb1_fz, expect in ((0, [("system", "wwdg")]), (1 << 11, [])):
        s = ServicesDouble()
        s.devices["dbgmcu"] = _Dbg(apb1_fz)  # type: ignore[assignment]
        wd = Wwdg()
        s.add(wd)
        wall = _Wall()
        wd.stopped.wall = wall
        wd.write(0x04, 4, 0x7F)  # window wide open, /1
        wd.write(0x00, 4, 0xFF)  # WDGA, T = 0x7F: 64 ticks of 4096 cycles
        wd.core_stopped("halt")
        wall.t += 64 * 4096 / HZ + 0.01  # a little longer than the timeout
        wd.stopped_tick()
        assert s.resets == expect, apb1_fz


def test_rng_deterministic_and_gated_by_rngen() -> None:
    a, b = Rng(), Rng()  # no RCC model: always clocked
    ServicesDouble().add(a)
    ServicesDouble().add(b)
    assert a.read(0x04, 4) == 0 and a.read(0x08, 4) == 0
    a.write(0x00, 4, 4)
    b.write(0x00, 4, 4)
    seq_a = [a.read(0x08, 4) for _ in range(50)]
    assert seq_a == [b.read(0x08, 4) for _ in range(50)]
    assert len(set(seq_a)) == 50
    assert a.read(0x04, 4) & 1


def test_tim6_update_interrupt_period() -> None:
    s = ServicesDouble()
    rcc = Rcc()
    tim6, tim7 = basic_timers()
    s.add(rcc, tim6, tim7)
    rcc.write(0x40, 4, (1 << 4) | (1 << 5))  # TIM6EN, TIM7EN
    tim6.write(0x28, 4, 15)  # PSC: 16 MHz / 16 = 1 MHz
    tim6.write(0x2C, 4, 999)  # 1 ms
    tim6.write(0x14, 4, 1)  # UG loads PSC (sets UIF)
    tim6.write(0x10, 4, 0)
    tim6.write(0x0C, 4, 1)  # UIE
    tim6.write(0x00, 4, 1)  # CEN
    s.advance(16_000 - 10)
    assert not tim6.read(0x10, 4) & 1
    assert 990 <= tim6.read(0x24, 4) <= 999
    s.advance(20)
    assert tim6.read(0x10, 4) & 1
    assert s.irq_calls[-1] == (54, True)
    tim6.write(0x10, 4, 0)
    assert s.irq_calls[-1] == (54, False)


def test_all_devices_survive_garbage_writes() -> None:
    s = ServicesDouble()
    devs = all_devices()
    s.add(*devs)
    for d in devs:
        for off in range(0, min(d.size, 0x100), 2):
            d.write(off, 2, 0xA5A5)
            d.read(off, 4 if off % 4 == 0 else 2)
            d.write(off & ~3, 4, 0xFFFFFFFF)
            d.read(off & ~3, 1)
    s.advance(10_000_000)  # nothing may raise on callbacks


def _wwdg():
    from twin.periph import Wwdg

    s = ServicesDouble()
    rcc, w = Rcc(), Wwdg()
    s.add(rcc, w)
    rcc.write(0x40, 4, 1 << 11)  # WWDGEN
    return s, w


def test_wwdg_reset_values_and_t6_reset() -> None:
    s, w = _wwdg()
    assert (w.read(0x00, 4), w.read(0x04, 4), w.read(0x08, 4)) == (0x7F, 0x7F, 0)
    w.write(0x00, 4, 0x80 | 0x7F)  # WDGA, T=0x7F; tick = 4096 cycles
    s.advance(4096 * 0x3F + 10)
    assert w.read(0x00, 4) & 0x7F == 0x40 and s.resets == []
    s.advance(4096)
    assert s.resets == [("system", "wwdg")]


def test_wwdg_early_wakeup_interrupt_and_window() -> None:
    s, w = _wwdg()
    w.write(0x04, 4, (1 << 9) | 0x50)  # EWI, window 0x50
    w.write(0x00, 4, 0x80 | 0x45)
    s.advance(4096 * 5 + 1)
    assert w.read(0x08, 4) == 1 and (0, True) in s.irq_calls
    w.write(0x08, 4, 0)
    assert s.irq_calls[-1] == (0, False)
    w.write(0x00, 4, 0x80 | 0x7F)  # counter 0x40 <= window: ok
    assert s.resets == []
    w.write(0x00, 4, 0x80 | 0x7F)  # counter 0x7F > window 0x50
    assert s.resets == [("system", "wwdg")]


def test_rng_interrupt_line_follows_ie_and_rngen() -> None:
    s = ServicesDouble()
    r = Rng()
    s.add(r)
    r.write(0x00, 4, 0x8)  # IE without RNGEN
    assert s.irq_calls[-1] == (80, False)
    r.write(0x00, 4, 0xC)
    assert s.irq_calls[-1] == (80, True)


def _tims_1ms(apb1_fz: int, cr1: int = 1):
    """TIM6 and TIM7 at 1 MHz with a 1 ms period, started; a hand-moved wall clock."""
    s = ServicesDouble()
    rcc = Rcc()
    tims = basic_timers()
    s.add(rcc, *tims)
    s.devices["dbgmcu"] = _Dbg(apb1_fz)  # type: ignore[assignment]
    rcc.write(0x40, 4, (1 << 4) | (1 << 5))
    wall = _Wall()
    for t in tims:
        t.stopped.wall = wall
        t.write(0x28, 4, 15)  # 1 MHz
        t.write(0x2C, 4, 999)  # 1 ms
        t.write(0x14, 4, 1)
        t.write(0x10, 4, 0)
        t.write(0x0C, 4, 1)
        t.write(0x00, 4, cr1)
    return s, tims, wall


def test_basic_timers_count_wall_time_during_a_halt_unless_frozen() -> None:
    s, (tim6, tim7), wall = _tims_1ms(apb1_fz=1 << 4)  # DBG_TIM6_STOP only
    s.advance(16_000 * 3 // 10)  # 0.3 ms of running
    for t in (tim6, tim7):
        t.core_stopped("halt")
    wall.t += 0.0025  # 2.5 ms halted
    assert tim6.stopped_tick() is None  # frozen
    assert 299 <= tim6.read(0x24, 4) <= 301 and not tim6.read(0x10, 4) & 1
    left = tim7.stopped_tick()  # counting: overflowed twice
    assert tim7.read(0x10, 4) & 1 and (55, True) in s.irq_calls
    assert 795 <= tim7.read(0x24, 4) <= 805  # 0.3 + 2.5 ms → 0.8 ms into a period
    assert left is not None and 0.00019 < left < 0.00021
    assert (54, True) not in s.irq_calls
    for t in (tim6, tim7):
        t.core_stopped(None)  # resume: back on virtual time
    tim7.write(0x10, 4, 0)
    s.advance(16_000 * 2 // 10 + 16)  # 0.2 ms later both see an update
    assert tim7.read(0x10, 4) & 1
    assert 499 <= tim6.read(0x24, 4) <= 501 and not tim6.read(0x10, 4) & 1


def test_basic_timer_counts_through_a_lockup_and_one_pulse_stops() -> None:
    _s, (tim6, _), wall = _tims_1ms(apb1_fz=1 << 4, cr1=0x9)  # CEN + OPM, freeze set
    tim6.core_stopped("lockup")  # the freeze bit is for halts only
    wall.t += 0.005
    assert tim6.stopped_tick() is None  # OPM: stopped at the update
    assert tim6.read(0x10, 4) & 1 and not tim6.read(0x00, 4) & 1
    assert tim6.read(0x24, 4) == 0


def test_starting_the_iwdg_forces_the_lsi_on_until_reset() -> None:
    """RM0410: once the IWDG is started the LSI is forced on, so RCC_CSR.LSIRDY (bit 1) reads 1
    whatever LSION says (the rig tells "no IWDG can be running" from LSIRDY = 0)."""
    s = ServicesDouble()
    rcc, iw = Rcc(), Iwdg()
    s.add(rcc)
    s.add(iw)
    csr = 0x74
    assert rcc.read(csr, 4) & 0x3 == 0  # LSI off after reset
    iw.write(0x00, 4, 0x5555)  # only unlocking: not started
    assert rcc.read(csr, 4) & 0x2 == 0
    iw.write(0x00, 4, 0xCCCC)
    assert rcc.read(csr, 4) & 0x3 == 0x2  # LSIRDY without LSION
    rcc.write(csr, 4, 0)  # LSION = 0 cannot stop it
    assert rcc.read(csr, 4) & 0x2 == 0x2
    for dev in (rcc, iw):
        dev.reset("system")
    assert rcc.read(csr, 4) & 0x2 == 0


def _rng_with_rcc() -> tuple[ServicesDouble, Rcc, Rng]:
    s = ServicesDouble()
    rcc, r = Rcc(), Rng()
    s.add(rcc, r)
    rcc.write(0x34, 4, 1 << 6)  # RCC_AHB2ENR.RNGEN
    return s, rcc, r


def test_rng_without_its_48_mhz_clock_never_has_data() -> None:
    """On the HSI alone (the PLL off) the RNG has no kernel clock: DRDY never sets on the
    board (the reference firmware seeded lwIP from it before starting the PLL)."""
    s, rcc, r = _rng_with_rcc()
    r.write(0x00, 4, 4)
    assert (r.read(0x04, 4), r.read(0x08, 4), r.read(0x04, 4)) == (0, 0, 0)
    assert sum("48 MHz clock" in line for line in s.logs) == 1
    rcc.write(0x04, 4, 8 | (192 << 6) | (1 << 16) | (8 << 24))  # HSI / 8 x 192: VCO 384, Q 8 = 48 MHz
    rcc.write(0x00, 4, rcc.read(0x00, 4) | 1 << 24)  # PLLON (locks at once)
    assert rcc.pll48_hz() == 48_000_000
    assert r.read(0x04, 4) == 1 and r.read(0x08, 4) != 0


def test_rng_under_hclk_over_16_is_a_clock_error() -> None:
    """PLLSAI's P as the 48 MHz source (CK48MSEL) at 12.5 MHz with HCLK 216 MHz: CECS and
    CEIS, no data; CED = 1 turns the detection off; CEIS stays until written 0."""
    s, rcc, r = _rng_with_rcc()
    rcc.write(0x04, 4, 8 | (216 << 6) | (9 << 24))  # HSI / 8 x 216 / 2 = 216 MHz
    rcc.write(0x88, 4, (50 << 6) | (3 << 16) | (4 << 24))  # PLLSAI: x 50 / 8 = 12.5 MHz
    rcc.write(0x90, 4, 1 << 27)  # CK48MSEL: PLLSAI P
    rcc.write(0x00, 4, rcc.read(0x00, 4) | 1 << 24 | 1 << 28)  # PLLON, PLLSAION
    rcc.write(0x08, 4, 2)  # SW = PLL
    assert rcc.hclk_hz() == 216_000_000 and rcc.pll48_hz() == 12_500_000
    r.write(0x00, 4, 4)
    assert r.read(0x04, 4) == 0x22 and r.read(0x08, 4) == 0  # CECS | CEIS
    assert any("under HCLK / 16" in line for line in s.logs)
    r.write(0x00, 4, 4 | 1 << 5)  # CED: no clock error detection
    assert r.read(0x04, 4) == 0x21  # DRDY, CEIS still set
    r.write(0x04, 4, 0)
    assert r.read(0x04, 4) == 1 and r.read(0x08, 4) != 0
