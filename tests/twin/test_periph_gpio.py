"""GPIO, SYSCFG and EXTI: reset values, BSRR/ODR/IDR, LEDs, button → EXTI15_10 line."""

from __future__ import annotations

import itertools

from twin.periph import Exti, Syscfg, all_devices, led_states, press_button
from twin.periph.gpio import all_ports
from twin.testing import ServicesDouble


def _board() -> ServicesDouble:
    s = ServicesDouble()
    s.add(*all_ports(), Syscfg(), Exti())
    return s


def test_reset_values_of_debug_ports() -> None:
    s = _board()
    assert s.device("gpioa").read(0x00, 4) == 0xA8000000
    assert s.device("gpiob").read(0x00, 4) == 0x00000280
    assert s.device("gpioc").read(0x00, 4) == 0
    assert s.device("gpioa").read(0x0C, 4) == 0x64000000


def test_leds_follow_bsrr_and_odr() -> None:
    s = _board()
    b = s.device("gpiob")
    b.write(0x00, 4, (1 << 0) | (1 << 14) | (1 << 28))  # PB0, PB7, PB14 outputs
    assert led_states(s.device) == {"ld1": False, "ld2": False, "ld3": False}
    b.write(0x18, 4, (1 << 0) | (1 << 14))
    assert led_states(s.device) == {"ld1": True, "ld2": False, "ld3": True}
    b.write(0x18, 4, (1 << 16) | (1 << 7))  # reset PB0, set PB7
    assert led_states(s.device) == {"ld1": False, "ld2": True, "ld3": True}
    b.write(0x18, 4, (1 << 14) | (1 << 30))  # set and reset PB14: set wins
    assert b.output_level(14)
    b.write(0x1A, 2, 1 << 14)  # half-word store to the reset half
    assert not b.output_level(14)
    assert b.read(0x14, 4) == 1 << 7
    assert b.read(0x10, 4) & (1 << 7)  # IDR reflects the output


def test_output_level_false_for_inputs() -> None:
    s = _board()
    b = s.device("gpiob")
    b.write(0x14, 4, 1)
    assert not b.output_level(0)  # still an input


def test_input_pulls_and_external_drive() -> None:
    s = _board()
    d = s.device("gpiod")
    assert not d.input_level(3)
    d.write(0x0C, 4, 1 << 6)  # PD3 pull-up
    assert d.read(0x10, 4) & (1 << 3)
    d.drive_input(3, False)
    assert not d.read(0x10, 4) & (1 << 3)
    d.drive_input(3, None)
    assert d.read(0x10, 4) & (1 << 3)


def test_button_press_raises_exti13_on_rising_edge() -> None:
    s = _board()
    syscfg, exti = s.device("syscfg"), s.device("exti")
    syscfg.write(0x14, 4, 2 << 4)  # EXTICR4: EXTI13 ← port C
    exti.write(0x08, 4, 1 << 13)  # RTSR
    exti.write(0x00, 4, 1 << 13)  # IMR
    assert not s.device("gpioc").input_level(13)  # board pull-down: released = 0
    press_button(s.device, True)
    assert s.device("gpioc").read(0x10, 4) & (1 << 13)
    assert exti.read(0x14, 4) == 1 << 13
    assert s.irq_calls[-1] == (40, True)
    exti.write(0x14, 4, 1 << 13)  # clear PR
    assert s.irq_calls[-1] == (40, False)
    press_button(s.device, False)  # falling edge: not selected
    assert exti.read(0x14, 4) == 0


def test_exti_ignores_pins_of_unselected_ports() -> None:
    s = _board()
    exti = s.device("exti")
    exti.write(0x08, 4, 1 << 1)
    exti.write(0x00, 4, 1 << 1)
    s.device("gpiob").drive_input(1, True)  # EXTICR1 selects port A
    assert exti.read(0x14, 4) == 0
    s.device("syscfg").write(0x08, 4, 1 << 4)  # EXTI1 ← port B (WINC IRQN)
    s.device("gpiob").drive_input(1, False)
    exti.write(0x0C, 4, 1 << 1)  # falling edge
    s.device("gpiob").drive_input(1, True)
    s.device("gpiob").drive_input(1, False)
    assert exti.read(0x14, 4) == 1 << 1
    assert (7, True) in s.irq_calls


def test_exti_software_interrupt_and_masking() -> None:
    s = _board()
    exti = s.device("exti")
    exti.write(0x10, 4, 1 << 6)  # SWIER line 6 (masked)
    assert exti.read(0x14, 4) == 1 << 6
    assert (23, True) not in s.irq_calls
    exti.write(0x00, 4, 1 << 6)  # unmask → EXTI9_5 asserted
    assert s.irq_calls[-1] == (23, True)
    exti.write(0x14, 4, 1 << 6)
    assert s.irq_calls[-1] == (23, False)
    assert exti.read(0x10, 4) == 0


def test_gpio_lock_sequence() -> None:
    s = _board()
    g = s.device("gpiog")
    g.write(0x00, 4, 1)  # PG0 output
    for v in ((1 << 16) | 1, 1, (1 << 16) | 1):
        g.write(0x1C, 4, v)
    assert g.read(0x1C, 4) == (1 << 16) | 1
    g.write(0x00, 4, 0)
    assert g.read(0x00, 4) & 3 == 1  # locked
    g.write(0x00, 4, 1 << 2)
    assert g.read(0x00, 4) == 1 | (1 << 2)  # PG1 still free


def test_listener_sees_output_changes() -> None:
    s = _board()
    seen = []
    a = s.device("gpioa")
    a.add_listener(lambda pin, level: seen.append((pin, level)))
    a.write(0x00, 4, 0xA8000000 | (1 << 8))  # PA4 output
    a.write(0x18, 4, 1 << 4)
    a.write(0x18, 4, 1 << 20)
    assert seen == [(4, True), (4, False)]


def test_all_devices_fresh_and_non_overlapping() -> None:
    first, second = all_devices(), all_devices()
    assert {d.name for d in first} >= {
        "rcc",
        "pwr",
        "exti",
        "syscfg",
        "crc",
        "iwdg",
        "rng",
        *(f"gpio{c}" for c in "abcdefghijk"),
    }
    assert all(a is not b for a, b in zip(first, second, strict=False))
    spans = sorted((d.base, d.base + d.size) for d in first)
    assert all(prev[1] <= nxt[0] for prev, nxt in itertools.pairwise(spans))


def test_syscfg_compensation_cell_ready_follows_power_down_bit() -> None:
    s = _board()
    sc = s.device("syscfg")
    assert sc.read(0x20, 4) == 0
    sc.write(0x20, 4, 1)
    assert sc.read(0x20, 4) == 0x101
    sc.write(0x20, 4, 0)
    assert sc.read(0x20, 4) == 0
