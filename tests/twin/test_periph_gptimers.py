"""The time base of the general-purpose and advanced timers (TIM1-5, TIM8-14): where they are
(RM0410's memory map, vector table, RCC and DBGMCU bits), their clocks, 32-bit counters,
TIM1/TIM8's repetition counter and the update lines two timers share."""

from __future__ import annotations

from test_periph_timers import _Dbg, _Wall

from twin.periph import Rcc, all_devices
from twin.periph.timers import all_timers
from twin.testing import ServicesDouble

CR1, DIER, SR, EGR, CNT, PSC, ARR, RCR = 0x00, 0x0C, 0x10, 0x14, 0x24, 0x28, 0x2C, 0x30
APB1ENR, APB2ENR, CFGR = 0x40, 0x44, 0x08


def _setup(cfgr: int = 0, apb2_fz: int = 0):
    s = ServicesDouble()  # 16 MHz core
    rcc = Rcc()
    tims = {t.name: t for t in all_timers()}
    s.add(rcc, *tims.values())
    s.devices["dbgmcu"] = _Dbg(apb2_fz=apb2_fz)  # type: ignore[assignment]
    rcc.write(CFGR, 4, cfgr)
    rcc.write(APB1ENR, 4, 0x1FF)  # TIM2-7, TIM12-14
    rcc.write(APB2ENR, 4, 0x70003)  # TIM1, TIM8, TIM9-11
    return s, tims


def _start(t, psc: int, arr: int, rcr: int | None = None) -> None:
    t.write(PSC, 4, psc)
    t.write(ARR, 4, arr)
    if rcr is not None:
        t.write(RCR, 4, rcr)
    t.write(EGR, 4, 1)  # UG: PSC (and RCR) loaded, UIF set
    t.write(SR, 4, 0)
    t.write(DIER, 4, 1)
    t.write(CR1, 4, 1)


def test_the_timers_are_where_rm0410_puts_them() -> None:
    tims = {t.name: t for t in all_timers()}
    assert {n: (t.base, t.irq) for n, t in tims.items()} == {
        "tim2": (0x40000000, 28),
        "tim3": (0x40000400, 29),
        "tim4": (0x40000800, 30),
        "tim5": (0x40000C00, 50),
        "tim6": (0x40001000, 54),
        "tim7": (0x40001400, 55),
        "tim12": (0x40001800, 43),
        "tim13": (0x40001C00, 44),
        "tim14": (0x40002000, 45),
        "tim1": (0x40010000, 25),
        "tim8": (0x40010400, 44),
        "tim9": (0x40014000, 24),
        "tim10": (0x40014400, 25),
        "tim11": (0x40014800, 26),
    }
    assert tims["tim2"].read(ARR, 4) == tims["tim5"].read(ARR, 4) == 0xFFFFFFFF  # reset values
    assert tims["tim3"].read(ARR, 4) == tims["tim1"].read(ARR, 4) == 0xFFFF
    assert {d.name for d in all_devices()} >= set(tims)


def test_an_apb1_timer_counts_at_twice_pclk1_and_raises_its_update_interrupt() -> None:
    s, tims = _setup(cfgr=0b101 << 10)  # PPRE1 /4: PCLK1 4 MHz, TIM3 at 8 MHz
    tim3 = tims["tim3"]
    _start(tim3, psc=7, arr=999)  # 1 MHz, 1 ms
    s.advance(16_000 - 160)  # just under 1 ms of the 16 MHz core
    assert not tim3.read(SR, 4) & 1 and 985 <= tim3.read(CNT, 4) <= 999
    s.advance(320)
    assert tim3.read(SR, 4) & 1 and s.irqs[29]
    tim3.write(SR, 4, 0)
    assert not s.irqs[29]


def test_an_apb2_timer_is_gated_by_apb2enr_and_counts_from_pclk2() -> None:
    s, tims = _setup(cfgr=0b100 << 13)  # PPRE2 /2: PCLK2 8 MHz, TIM1 at 16 MHz
    rcc = s.devices["rcc"]
    rcc.write(APB2ENR, 4, 0)
    tim1 = tims["tim1"]
    tim1.write(ARR, 4, 1234)
    assert tim1.read(ARR, 4) == 0  # clock off: writes ignored, reads 0
    rcc.write(APB2ENR, 4, 1)
    _start(tim1, psc=15, arr=99)  # 1 MHz, 100 us
    s.advance(1_600 + 16)
    assert tim1.read(SR, 4) & 1 and s.irqs[25]


def test_tim2_counts_on_32_bits() -> None:
    s, tims = _setup()
    tim2 = tims["tim2"]
    tim2.write(ARR, 4, 0xFFFFFFFF)
    tim2.write(CNT, 4, 0xFFFFFF00)
    tim2.write(CR1, 4, 1)
    s.advance(0x80)
    assert tim2.read(CNT, 4) == 0xFFFFFF80
    tims["tim3"].write(CNT, 4, 0x12345)
    assert tims["tim3"].read(CNT, 4) == 0x2345  # 16 bits


def test_tim1_repetition_counter_makes_an_update_every_rcr_plus_one_overflows() -> None:
    s, tims = _setup()
    tim1 = tims["tim1"]
    _start(tim1, psc=15, arr=99, rcr=2)  # overflow every 100 us at 1 MHz, update every 300 us
    s.advance(1_600 * 2 + 100)
    assert not tim1.read(SR, 4) & 1  # two overflows: no update yet
    s.advance(1_600)
    assert tim1.read(SR, 4) & 1
    tim1.write(SR, 4, 0)
    s.advance(1_600 * 2)
    assert not tim1.read(SR, 4) & 1
    s.advance(1_600)
    assert tim1.read(SR, 4) & 1


def test_tim1_and_tim10_share_their_update_line() -> None:
    s, tims = _setup()
    tim1, tim10 = tims["tim1"], tims["tim10"]
    _start(tim10, psc=15, arr=99)
    _start(tim1, psc=15, arr=199)
    s.advance(1_600 + 16)
    assert tim10.read(SR, 4) & 1 and s.irqs[25]
    tim1.write(SR, 4, 0)  # TIM1's handler clears its own flag: TIM10's keeps the line up
    assert s.irqs[25]
    tim10.write(SR, 4, 0)
    assert not s.irqs[25]


def test_an_apb2_timer_stops_in_a_halt_with_its_dbgmcu_apb2_bit() -> None:
    _s, tims = _setup(apb2_fz=1 << 0)  # DBG_TIM1_STOP
    wall = _Wall()
    tim1, tim8 = tims["tim1"], tims["tim8"]
    for t in (tim1, tim8):
        t.stopped.wall = wall
        _start(t, psc=15, arr=999)
        t.core_stopped("halt")
    wall.t += 0.0025
    assert tim1.stopped_tick() is None and not tim1.read(SR, 4) & 1  # frozen
    assert tim8.stopped_tick() is not None and tim8.read(SR, 4) & 1  # counted the wall time


def test_capture_compare_is_logged_once_and_its_registers_keep_what_is_written() -> None:
    s, tims = _setup()
    tim3 = tims["tim3"]
    tim3.write(0x18, 4, 0x0001)  # CCMR1: CC1 input
    tim3.write(0x20, 4, 0x0001)  # CCER: CC1E
    tim3.write(0x20, 4, 0x0003)
    assert tim3.read(0x18, 4) == 0x0001 and tim3.read(0x20, 4) == 0x0003
    assert sum("capture/compare" in line for line in s.logs) == 1


def test_rcc_rstr_bits_reset_the_timers() -> None:
    s, tims = _setup()
    rcc = s.devices["rcc"]
    tims["tim1"].write(ARR, 4, 123)
    tims["tim3"].write(ARR, 4, 456)
    rcc.write(0x24, 4, 1)  # APB2RSTR.TIM1RST
    rcc.write(0x24, 4, 0)
    rcc.write(0x20, 4, 1 << 1)  # APB1RSTR.TIM3RST
    rcc.write(0x20, 4, 0)
    assert tims["tim1"].read(ARR, 4) == tims["tim3"].read(ARR, 4) == 0xFFFF


def _tim5_capturing_lsi(s, tims, ccmr2: int = 0x0100, ccer: int = 0x1000):
    tim5 = tims["tim5"]
    tim5.write(0x50, 4, 1 << 6)  # TIM5_OR.TI4_RMP = LSI
    tim5.write(0x1C, 4, ccmr2)  # CC4S = TI4 (IC4PSC in bits 10-11)
    tim5.write(0x20, 4, ccer)  # CC4E (CC4P/CC4NP: edges)
    tim5.write(DIER, 4, 1 << 4)  # CC4IE
    tim5.write(CR1, 4, 1)
    return tim5


def test_tim5_channel_4_captures_the_lsi_as_st_calibrates_it() -> None:
    s, tims = _setup()  # TIM5 at 16 MHz: an LSI period (32 kHz) is 500 counts
    tim5 = _tim5_capturing_lsi(s, tims)
    s.advance(16_000_000 // 32_000 + 1)
    assert tim5.read(SR, 4) & (1 << 4) and s.irqs[50]
    first = tim5.read(0x40, 4)  # CCR4; reading it clears CC4IF
    assert not tim5.read(SR, 4) & (1 << 4) and not s.irqs[50]
    s.advance(16_000_000 // 32_000)
    assert tim5.read(0x40, 4) - first == 500  # ST's example: LSI = TIM5 clock / this
    s.advance(2 * 16_000_000 // 32_000)  # two captures, none read: overcapture
    assert tim5.read(SR, 4) & (1 << 12)
    assert not any("capture/compare" in line for line in s.logs)


def test_tim5_capture_prescaler_and_both_edges() -> None:
    s, tims = _setup()
    tim5 = _tim5_capturing_lsi(s, tims, ccmr2=0x0100 | (3 << 10), ccer=0xB000)  # /8, both edges
    s.advance(4 * 500 - 10)
    assert not tim5.read(SR, 4) & (1 << 4)
    s.advance(20)  # 8 edges = 4 LSI periods
    assert tim5.read(SR, 4) & (1 << 4)


def test_tim5_without_the_remap_captures_nothing() -> None:
    s, tims = _setup()
    tim5 = tims["tim5"]
    tim5.write(0x1C, 4, 0x0100)
    tim5.write(0x20, 4, 0x1000)
    tim5.write(CR1, 4, 1)
    s.advance(100_000)
    assert not tim5.read(SR, 4) & (1 << 4)
