"""``console:``: the U(S)ART the board's console is on, in the board file, checked there,
handed to the twin as ``--console-uart`` (rig.targets.twin.board_args), and the hint the rig
gives when the console stays silent: which U(S)ART the firmware drives, from the registers
(rig/console_hint.py, read here from a register map; the addresses and bits are RM0410's,
written out) and what the twin's log says (rig/hil_failure.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from rig.backup import boot_check
from rig.board import ConsoleSpec, default_board_path, parse_board
from rig.console import Console
from rig.console_hint import console_mismatch
from rig.errors import ConfigError, ConsoleError, PhaseFailure, ProbeError
from rig.evidence import Evidence
from rig.hil import Bench
from rig.hil_failure import (
    console_said,
    console_silence_hint,
    eth_said,
    no_connection_hint,
    twin_said,
    wiring_said,
)
from rig.probe import Probe
from rig.targets.base import Target
from rig.targets.twin import board_args

RCC_APB1ENR, RCC_APB2ENR = 0x40023840, 0x40023844
USART1, USART3, UART4, USART6 = 0x40011000, 0x40004800, 0x40004C00, 0x40011400
BRR = 0x0C
UE_TE = 0x9  # CR1: UE (bit 0) | TE (bit 3)
#: the NUCLEO's console set up as the reference firmware does: USART3EN, UE | TE | RE, 115200 at 16 MHz
AHB1ENR, GPIOD, GPIOG = 0x40023830, 0x40020C00, 0x40021800
#: PD8/PD9 in alternate function 7 (MODER 10b, AFRH 7): the NUCLEO's VCP pins routed to USART3
PD8_PD9_AF7 = {GPIOD: 0xA << 16, GPIOD + 0x24: 0x77}
CONSOLE_ON_USART3 = {
    RCC_APB1ENR: 1 << 18,
    USART3: UE_TE | 0x4,
    USART3 + BRR: 0x8B,
    AHB1ENR: 1 << 3,
    **PD8_PD9_AF7,
}
#: a custom board's firmware logging on USART6 (USART6EN in APB2ENR, bit 5) and nothing on USART3
CONSOLE_ON_USART6 = {
    RCC_APB2ENR: 1 << 5,
    USART6: UE_TE,
    USART6 + BRR: 0x8B,
    AHB1ENR: 1 << 6,
    GPIOG: 2 << 28 | 2 << 18,  # PG14, PG9 alternate function
    GPIOG + 0x24: 8 << 24 | 8 << 4,  # AF8
}
TWIN_LINE = (
    '[twin   812 ms] usart6: USART6 transmitted 24 bytes ("BL 1.4 boot...") with nothing on its pins: the '
    "console (the PTY) is USART3; is the firmware's console on USART6? (board file: console: {uart: 6})"
)


def regs(table: dict[int, int]):
    """``read32`` of a register map (unlisted registers read 0, as after reset)."""
    return lambda address: table.get(address, 0)


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(default_board_path().read_text())


def _with(raw: dict[str, Any], console: Any) -> Any:
    doc = copy.deepcopy(raw)
    doc["console"] = console
    return parse_board(yaml.safe_dump(doc))


# --------------------------------------------------------------------------- the board file


def test_no_console_is_usart3_and_adds_no_twin_option(raw: dict[str, Any]) -> None:
    spec = parse_board(yaml.safe_dump(raw))
    assert spec.console == ConsoleSpec(3) and spec.console.name == "USART3" and not spec.console.given
    assert "--console-uart" not in board_args(spec)


@pytest.mark.parametrize(
    "uart,name", [(1, "USART1"), (2, "USART2"), (4, "UART4"), (6, "USART6"), (8, "UART8")]
)
def test_a_console_reaches_the_twin(raw: dict[str, Any], uart: int, name: str) -> None:
    spec = _with(raw, {"uart": uart})
    assert spec.console.uart == uart and spec.console.name == name and spec.console.twin_arg() == str(uart)
    args = board_args(spec)
    assert args[args.index("--console-uart") + 1] == str(uart)


def test_an_empty_console_is_usart3_said_to_the_twin(raw: dict[str, Any]) -> None:
    spec = _with(raw, {})
    assert spec.console.uart == 3 and spec.console.given
    args = board_args(spec)
    assert args[args.index("--console-uart") + 1] == "3"


@pytest.mark.parametrize(
    "console,key,text",
    [
        ({"uart": 9}, "console.uart", "1..8"),
        ({"uart": 0}, "console.uart", "1..8"),
        ({"uart": "USART6"}, "console.uart", "USART6"),
        ({"uart": True}, "console.uart", "True"),
        ({"usart": 6}, "console.usart", "unknown key"),
        (6, "console", "a mapping"),
        ({"uart": 7, "tx": "PE8"}, "console", "tx without rx and af"),
        ({"uart": 7, "tx": "PE8", "rx": "PE8", "af": 8}, "console", "tx and rx are both PE8"),
        ({"uart": 7, "tx": "PE8", "rx": "PE7", "af": 16}, "console.af", "0..15"),
        ({"uart": 7, "tx": "PE18", "rx": "PE7", "af": 8}, "console.tx", "PA0..PK15"),
    ],
)
def test_a_bad_console_names_the_key(raw: dict[str, Any], console: Any, key: str, text: str) -> None:
    with pytest.raises(ConfigError) as err:
        _with(raw, console)
    assert err.value.key_path == key and text in str(err.value)


def test_the_console_pins_reach_the_twin_and_the_hint(raw: dict[str, Any]) -> None:
    spec = _with(raw, {"uart": 7, "tx": "pe8", "rx": "PE7", "af": 8})
    assert spec.console.pins == ("PE8", "PE7", 8) and spec.console.tx_pin == ("E", 8, 8)
    args = board_args(spec)
    assert args[args.index("--console-pins") + 1] == "tx=PE8,rx=PE7,af=8"
    assert "--console-pins" not in board_args(_with(raw, {"uart": 6}))
    assert _with(raw, {"uart": 6}).console.tx_pin is None  # the NUCLEO's, known to the hint


# --------------------------------------------------------------------------- the registers


def test_the_console_set_up_to_transmit_says_nothing() -> None:
    assert console_mismatch(regs(CONSOLE_ON_USART3), 3) is None
    assert console_mismatch(regs(CONSOLE_ON_USART6), 6) is None
    # another U(S)ART transmitting as well (a second port) is no mismatch
    both = {**CONSOLE_ON_USART3, **CONSOLE_ON_USART6, AHB1ENR: 1 << 3 | 1 << 6}  # GPIOD and GPIOG clocked
    assert console_mismatch(regs(both), 3) is None


def test_another_uart_transmitting_names_it_and_the_key() -> None:
    said = console_mismatch(regs(CONSOLE_ON_USART6), 3)
    assert said == (
        "USART6 is set up to transmit (clock on, CR1.UE and TE, BRR 0x8B) but the board file's "
        "console is USART3: is the firmware's console on USART6? (board file: console: {uart: 6})"
    )
    uart4 = {RCC_APB1ENR: 1 << 19, UART4: UE_TE, UART4 + BRR: 0x1A1}
    said = console_mismatch(regs(uart4), 6)
    assert said is not None and said.startswith("UART4 is set up") and "console is USART6" in said
    assert "BRR 0x1A1" in said and "console: {uart: 4}" in said


def test_two_other_uarts_transmitting_name_both() -> None:
    usart1 = {USART1: UE_TE, USART1 + BRR: 0x45}
    table = {**CONSOLE_ON_USART6, **usart1, RCC_APB2ENR: (1 << 4) | (1 << 5)}
    said = console_mismatch(regs(table), 3)
    assert said is not None and "USART1 and USART6 are set up to transmit" in said
    assert "console: {uart: 1} or console: {uart: 6}" in said


def test_an_instance_needs_clock_ue_and_te_to_count() -> None:
    # USART6 configured but its clock off: its registers are not even read, nothing transmits
    said = console_mismatch(regs({USART6: UE_TE, USART6 + BRR: 0x8B}), 3)
    assert said is not None and "USART6" not in said
    # USART6 clocked, enabled, but its transmitter off
    assert "USART6" not in (console_mismatch(regs({**CONSOLE_ON_USART6, USART6: 0x1}), 3) or "")


@pytest.mark.parametrize(
    "table,missing",
    [
        ({}, "its clock is off (RCC_APB1ENR.USART3EN, bit 18, is 0)"),
        ({RCC_APB1ENR: 1 << 18, USART3: 0x8}, "CR1.UE is clear (CR1 0x8)"),
        ({RCC_APB1ENR: 1 << 18, USART3: 0x1}, "CR1.TE is clear (CR1 0x1)"),
        ({RCC_APB1ENR: 1 << 18, USART3: 0x4}, "CR1.UE and TE are clear (CR1 0x4)"),
    ],
)
def test_the_console_not_set_up_says_what_is_missing(table: dict[int, int], missing: str) -> None:
    said = console_mismatch(regs(table), 3)
    assert (
        said
        == f"the board file's console USART3 is not set up to transmit (and no other U(S)ART is): {missing}"
    )


def test_the_apb2_instances_name_their_register() -> None:
    said = console_mismatch(regs({}), 6)
    assert said is not None and "USART6" in said and "RCC_APB2ENR.USART6EN, bit 5" in said


# --------------------------------------------------------------------------- the twin's log


class FakeTwin:
    """A target with a log (the twin's ``log_tail``)."""

    def __init__(self, *lines: str) -> None:
        self.lines = lines

    def log_tail(self, n: int) -> str:
        return "\n".join(self.lines[-n:])


def test_the_twin_s_last_word_on_the_console() -> None:
    older = TWIN_LINE.replace("USART6", "UART7").replace("uart: 6", "uart: 7")
    twin = FakeTwin(older, "[twin 900 ms] boot", TWIN_LINE, "[twin 950 ms] other")
    assert console_said(twin) == TWIN_LINE.split("] usart6: ", 1)[1]  # without the stamp and device name
    assert console_said(FakeTwin("[twin 1 ms] nothing")) is None
    assert console_said(object()) is None  # a real board has no log


def test_wiring_said_still_reads_the_winc_lines() -> None:
    line = "[twin 5 ms] SPI3 clocked 4 frames with nothing on it: is yours on SPI3? (board file: winc.spi: 3)"
    twin = FakeTwin(line, TWIN_LINE)
    assert wiring_said(twin) == line.split("] ", 1)[1]
    assert console_said(twin) is not None and "USART6" in (console_said(twin) or "")
    assert twin_said(twin, "no such marker") is None


def test_the_twin_s_last_warning_on_the_ethernet_mac_leaves_link_news_out() -> None:
    warning = (
        "[twin 40 ms] ethmac: RMII transmit (TX_EN, TXD0, TXD1) pin(s) PB13 not in alternate function 11: "
        "on the board no frames pass there"
    )
    twin = FakeTwin(warning, "[twin 200 ms] ethmac: PHY: link up, 100 Mbit/s full duplex", TWIN_LINE)
    assert eth_said(twin) == warning.split("] ethmac: ", 1)[1]
    assert eth_said(FakeTwin("[twin 200 ms] ethmac: PHY: link up, 100 Mbit/s full duplex")) is None
    assert eth_said(object()) is None
    hint = no_connection_hint(cast(Probe, FakeProbe({})), "eth", twin)
    assert hint == f"; the twin says: {eth_said(twin)}"  # the MAC never clocked: the registers say nothing


class FakeProbe:
    """The probe calls the hint and the steps under test make: register reads from a map."""

    def __init__(self, table: dict[int, int] | None = None) -> None:
        self.table = table

    def read32(self, address: int) -> int:
        if self.table is None:
            raise ProbeError("the probe went away")
        return self.table.get(address, 0)

    def resume(self) -> None:
        pass

    def reset(self) -> None:
        pass


def test_the_silence_hint_joins_registers_and_log() -> None:
    probe, twin = cast(Probe, FakeProbe(CONSOLE_ON_USART6)), FakeTwin(TWIN_LINE)
    hint = console_silence_hint(probe, twin, 3)
    assert hint.startswith("; USART6 is set up to transmit") and "; the twin says: USART6 transmitted" in hint
    assert console_silence_hint(cast(Probe, FakeProbe(CONSOLE_ON_USART3)), None, 3) == ""
    # a probe error is caught: the log alone still speaks
    assert console_silence_hint(cast(Probe, FakeProbe()), twin, 3).startswith("; the twin says: USART6")
    assert console_silence_hint(cast(Probe, FakeProbe()), None, 3) == ""
    # a console that showed something works: its U(S)ART is not the question
    assert console_silence_hint(probe, twin, 3, heard="BL: no valid app\r\n") == ""
    assert console_silence_hint(probe, twin, 3, heard="\r\n").startswith("; USART6 is set up")


# --------------------------------------------------------------------------- where the rig gives up


class SilentConsole:
    """A console that showed a line before the rig's mark and nothing after it."""

    EARLIER = "BL 1.4 boot\n"

    def mark(self) -> int:
        return len(self.EARLIER)

    def text(self, since: int = 0) -> str:
        return self.EARLIER[since:]

    def expect(self, pattern: str, **_: Any) -> Any:
        raise ConsoleError(f"nothing matched /{pattern}/; last lines:\n(nothing)")

    def send(self, text: str) -> None:
        raise AssertionError("nothing is sent after a wait that failed")


def _bench(
    tmp_path: Path, raw: dict[str, Any], table: dict[int, int], doc: dict[str, Any] | None = None
) -> Bench:
    spec = parse_board(yaml.safe_dump({**copy.deepcopy(raw), **(doc or {})}))
    probe, twin = cast(Probe, FakeProbe(table)), cast(Target, FakeTwin(TWIN_LINE))
    return Bench(spec, twin, probe, cast(Console, SilentConsole()), tmp_path)


def test_expect_app_says_which_uart_the_firmware_drives(tmp_path: Path, raw: dict[str, Any]) -> None:
    bench = _bench(tmp_path, raw, CONSOLE_ON_USART6)
    ev = Evidence()
    with pytest.raises(PhaseFailure) as err:
        bench.expect_app(ev, "APP READY")
    assert err.value.phase == "app" and ev.message is not None
    assert "nothing matched /APP READY/" in ev.message
    assert "; USART6 is set up to transmit" in ev.message and "(board file: console: {uart: 6})" in ev.message
    assert "; the twin says: USART6 transmitted 24 bytes" in ev.message
    # the board file says USART6: the registers agree, only the (older) log line is left
    bench = _bench(tmp_path, raw, CONSOLE_ON_USART6, {"console": {"uart": 6}})
    with pytest.raises(PhaseFailure) as err:
        bench.expect_app(Evidence(), "APP READY")
    assert "is set up to transmit" not in str(err.value)


def test_update_after_says_which_uart_the_firmware_drives(tmp_path: Path, raw: dict[str, Any]) -> None:
    update = {"method": "console", "line": "update {transport}", "after": "BL> ", "wait_ms": 100}
    bench = _bench(tmp_path, raw, {}, {"update": update})
    bench.trigger.request(bench, "eth")
    with pytest.raises(PhaseFailure) as err:
        bench.trigger.after_reset(bench)
    message = str(err.value)
    assert err.value.phase == "boot" and "never printed what update.after waits for" in message
    assert "; the board file's console USART3 is not set up to transmit" in message
    assert "its clock is off" in message and "; the twin says: USART6" in message


def test_boot_check_says_which_uart_the_firmware_drives() -> None:
    console = SilentConsole()
    check = boot_check(cast(Probe, FakeProbe(CONSOLE_ON_USART6)), console, banner="BL: ", timeout=0)
    assert not check.ok and "; USART6 is set up to transmit" in check.summary()
    ok = boot_check(cast(Probe, FakeProbe(CONSOLE_ON_USART6)), console, banner="BL: ", console_uart=6)
    assert not ok.ok and ok.hint == ""


def test_a_console_that_transmits_on_an_unrouted_pin_is_named() -> None:
    """USART3 set up to transmit while PD8 is not in AF7 (the NUCLEO's VCP pin): nothing
    reaches the ST-LINK, on the board as on the twin."""
    from rig.console_hint import console_mismatch

    cases = {
        "an input, not alternate function 7": {**CONSOLE_ON_USART3, GPIOD: 0, GPIOD + 0x24: 0},
        "in alternate function 8, not alternate function 7": {**CONSOLE_ON_USART3, GPIOD + 0x24: 0x88},
        "not clocked (RCC_AHB1ENR.GPIODEN is 0)": {**CONSOLE_ON_USART3, AHB1ENR: 0},
    }
    for said, table in cases.items():
        text = console_mismatch(regs(table), 3)
        assert text is not None and "USART3 is set up to transmit but its TX pin PD8 is " + said in text, text
        assert "(set PD8 to AF7, GPIO_AF7_USART3)" in text
    assert console_mismatch(regs(CONSOLE_ON_USART3), 3) is None
    assert console_mismatch(regs(CONSOLE_ON_USART6), 6) is None
    text = console_mismatch(regs({**CONSOLE_ON_USART6, GPIOG + 0x24: 7 << 24}), 6)
    assert text is not None and "PG14 is in alternate function 7, not alternate function 8" in text


def test_the_board_files_tx_pin_is_the_one_checked() -> None:
    """UART7 on PE8 (AF8) as the board file says: its pin, not a table's, is read."""
    uart7 = {RCC_APB1ENR: 1 << 30, 0x40007800: UE_TE, AHB1ENR: 1 << 4}
    gpioe = 0x40021000
    routed = {**uart7, gpioe: 2 << 16, gpioe + 0x24: 8}
    assert console_mismatch(regs(routed), 7, ("E", 8, 8)) is None
    assert console_mismatch(regs(uart7), 7) is None  # no pin known: not checked
    text = console_mismatch(regs({**routed, gpioe + 0x24: 7}), 7, ("E", 8, 8))
    assert (
        text is not None
        and "UART7 is set up to transmit but its TX pin PE8 is in alternate function 7" in text
    )
    assert "(set PE8 to AF8, GPIO_AF8_UART7)" in text


# ------------------------------------------------------------------ baud rate (rig/console_hint.py)


def _uart_regs(cr1: int, brr: int, cfgr: int = 0, pll: int = 0, dckcfgr2: int = 0) -> dict[int, int]:
    """USART3 clocked and enabled (UE, TE) with ``cr1``/``brr``; the clock tree's registers."""
    return {
        0x40023840: 1 << 18,  # RCC_APB1ENR.USART3EN
        0x40004800: cr1,
        0x4000480C: brr,
        0x40023800: 1 << 25 if pll else 0x83,  # PLLRDY
        0x40023804: pll,
        0x40023808: cfgr,
        0x40023890: dckcfgr2,
    }


def test_baud_rate_from_the_clock_tree_and_brr() -> None:
    from rig.console_hint import baud_mismatch

    read = lambda regs: lambda a: regs.get(a, 0)  # noqa: E731
    assert baud_mismatch(read(_uart_regs(0x0D, 139)), 3, 115200) is None  # HSI 16 MHz / 139
    pll44 = 8 | (88 << 6) | (1 << 16)  # HSI / 8 x 88 / 4 = 44 MHz
    text = baud_mismatch(read(_uart_regs(0x0D, 139, cfgr=0x0A, pll=pll44)), 3, 115200)
    assert text is not None and text.startswith("USART3 sends at 316546 baud (PCLK1 44 MHz")
    assert "the host's line is 115200" in text and "HAL_RCC_DeInit" in text
    assert baud_mismatch(read(_uart_regs(0x0D, 382, cfgr=0x0A, pll=pll44)), 3, 115200) is None  # right BRR
    # APB1 / 4 at 216 MHz (ST's clock tree): 54 MHz / 469 = 115 138
    pll216 = 8 | (216 << 6)
    assert baud_mismatch(read(_uart_regs(0x0D, 469, cfgr=0x0A | 5 << 10, pll=pll216)), 3, 115200) is None
    # OVER8 with BRR 0x113 at 16 MHz: USARTDIV 0x116 = 278, 2 x 16 MHz / 278 = 115 107
    assert baud_mismatch(read(_uart_regs(0x800D, 0x113)), 3, 115200) is None
    # USART3SEL = HSI while PCLK1 is 44 MHz: the HSI's 16 MHz / 139 is right
    assert (
        baud_mismatch(read(_uart_regs(0x0D, 139, cfgr=0x0A, pll=pll44, dckcfgr2=2 << 4)), 3, 115200) is None
    )
    assert baud_mismatch(read(_uart_regs(0x0C, 139, cfgr=0x0A, pll=pll44)), 3, 115200) is None  # UE clear


def test_hse_hz_reaches_the_twin_only_when_not_the_nucleo_s(raw: dict[str, Any]) -> None:
    assert parse_board(yaml.safe_dump(raw)).hse_hz == 8_000_000
    assert "--hse-hz" not in board_args(parse_board(yaml.safe_dump(raw)))
    doc = copy.deepcopy(raw)
    doc["hse_hz"] = 25_000_000
    args = board_args(parse_board(yaml.safe_dump(doc)))
    assert args[args.index("--hse-hz") + 1] == "25000000"
    doc["hse_hz"] = 80_000_000
    with pytest.raises(ConfigError, match="hse_hz"):
        parse_board(yaml.safe_dump(doc))


def test_the_twin_s_console_rate_comes_from_the_board_file(raw: dict[str, Any]) -> None:
    assert parse_board(yaml.safe_dump(raw)).targets["twin"].baudrate == 115200
    doc = copy.deepcopy(raw)
    doc["targets"]["twin"]["baudrate"] = 921600
    assert parse_board(yaml.safe_dump(doc)).targets["twin"].baudrate == 921600
