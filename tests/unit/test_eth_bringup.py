"""rig/eth_bringup.py: why an Ethernet MAC never came up, from the registers a probe reads (a
register map here; addresses and bits are RM0410's, written out)."""

from __future__ import annotations

from rig.board_wiring import EthSpec
from rig.eth_bringup import bringup_mismatch

RCC_AHB1ENR, RCC_APB2ENR, RCC_PLLCFGR, RCC_CFGR = 0x40023830, 0x40023844, 0x40023804, 0x40023808
SYSCFG_PMC = 0x40013804
MACCR, MACMIIAR, DMABMR, DMAOMR = 0x40028000, 0x40028010, 0x40029000, 0x40029018
GPIOA, GPIOB, GPIOC, GPIOG = 0x40020000, 0x40020400, 0x40020800, 0x40021800
MODER, AFRL, AFRH = 0x00, 0x20, 0x24
ETH_CLOCKS = 7 << 25
PORTS_ACG = 1 << 0 | 1 << 1 | 1 << 2 | 1 << 6  # GPIOA, B, C, G clocked


def af11(pins: list[int]) -> dict[int, int]:
    """MODER and AFRL/AFRH of one port with ``pins`` in alternate function 11."""
    moder = sum(2 << 2 * p for p in pins)
    afrl = sum(11 << 4 * p for p in pins if p < 8)
    afrh = sum(11 << 4 * (p - 8) for p in pins if p >= 8)
    return {MODER: moder, AFRL: afrl, AFRH: afrh}


def at(port: int, regs: dict[int, int]) -> dict[int, int]:
    return {port + off: v for off, v in regs.items()}


#: the NUCLEO-F767ZI's Ethernet as the reference bootloader leaves it running: clocks, RMII,
#: the nine pins in AF11, reset done, MDC = 44 MHz / 26 (CR 3), MAC and DMA started
NUCLEO_RUNNING = {
    RCC_AHB1ENR: ETH_CLOCKS | PORTS_ACG,
    RCC_APB2ENR: 1 << 14,
    SYSCFG_PMC: 1 << 23,
    **at(GPIOA, af11([1, 2, 7])),
    **at(GPIOB, af11([13])),
    **at(GPIOC, af11([1, 4, 5])),
    **at(GPIOG, af11([11, 13])),
    MACMIIAR: 3 << 2,
    MACCR: 1 << 3 | 1 << 2,
    DMAOMR: 1 << 13 | 1 << 1,
}


def read(table: dict[int, int]):
    return lambda address: table.get(address, 0)


def test_a_running_nucleo_mac_or_one_never_clocked_says_nothing() -> None:
    assert bringup_mismatch(read(NUCLEO_RUNNING)) is None
    assert bringup_mismatch(read({})) is None


def test_the_mac_without_its_tx_rx_clocks() -> None:
    said = bringup_mismatch(read({**NUCLEO_RUNNING, RCC_AHB1ENR: 1 << 25 | 1 << 27 | PORTS_ACG}))
    assert said is not None and "not its ETHMACTXEN" in said and "__HAL_RCC_ETHMACTX_CLK_ENABLE()" in said


def test_rmii_not_selected_or_syscfg_not_clocked() -> None:
    said = bringup_mismatch(read({**NUCLEO_RUNNING, SYSCFG_PMC: 0}))
    assert said is not None and "SYSCFG_PMC.MII_RMII_SEL is MII" in said
    said = bringup_mismatch(read({**NUCLEO_RUNNING, RCC_APB2ENR: 0}))
    assert said is not None and "SYSCFG's clock is off (RCC_APB2ENR.SYSCFGEN)" in said
    assert "__HAL_RCC_SYSCFG_CLK_ENABLE()" in said


def test_an_rmii_signal_whose_wired_pin_is_not_in_af11_names_it_and_the_key() -> None:
    table = {**NUCLEO_RUNNING, **at(GPIOG, af11([13]))}  # PG11 (TX_EN) left an input
    said = bringup_mismatch(read(table))
    assert said is not None and "TX_EN (PG11 is an input)" in said and "PB11" not in said, said
    assert "GPIO_AF11_ETH" in said and "TXD0" not in said
    assert "board file: eth.tx_en if your board wires it elsewhere" in said
    no_g = {**NUCLEO_RUNNING, RCC_AHB1ENR: ETH_CLOCKS | 0b111}  # GPIOG never clocked
    said = bringup_mismatch(read(no_g))
    assert said is not None and "TX_EN (PG11: GPIOG's clock is off)" in said, said
    assert "TXD0 (PG13: GPIOG's clock is off)" in said and "TXD1" not in said
    assert "eth.tx_en/txd0 if your board wires them elsewhere" in said


#: ST's EVAL/Discovery transmit pins (PB11, PB12, PG14) in AF11 on a NUCLEO's set-up, the
#: NUCLEO's PG11, PG13 left in AF11 too and PB13 an input
OTHER_TX = {**NUCLEO_RUNNING, **at(GPIOB, af11([11, 12])), **at(GPIOG, af11([11, 13, 14]))}


def test_a_board_file_with_other_tx_pins_checks_those_and_not_the_nucleos() -> None:
    other = EthSpec(tx_en="PB11", txd0="PB12", txd1="PG14")
    assert bringup_mismatch(read(OTHER_TX), eth=other) is None
    only_other = {**OTHER_TX, **at(GPIOG, af11([14]))}  # PG11, PG13 inputs: not this board's
    assert bringup_mismatch(read(only_other), eth=other) is None
    said = bringup_mismatch(read(NUCLEO_RUNNING), eth=other)  # the NUCLEO's pins, not the board's
    assert said is not None and "TX_EN (PB11 is an input, while PG11" in said, said
    other_pin = "while PB13, the F767's other TXD1 pin, is in alternate function 11"
    assert f"TXD1 (PG14 is an input, {other_pin})" in said
    assert "eth.tx_en/txd0/txd1 if your board wires them elsewhere" in said


def test_without_a_board_file_wiring_txd1_on_pg14_is_not_the_nucleos_pb13() -> None:
    said = bringup_mismatch(read(OTHER_TX))  # TXD1 on PG14, the NUCLEO's PB13 an input
    assert said is not None and "TXD1 (PB13 is an input, while PG14" in said, said
    assert "TX_EN" not in said and "TXD0" not in said
    assert said.endswith(
        "(GPIO_AF11_ETH on each, as HAL_ETH_MspInit does; board file: eth.txd1 if your board wires "
        "it elsewhere)"
    )
    assert bringup_mismatch(read(OTHER_TX), eth=EthSpec(txd1="PG14")) is None


def test_a_pin_in_another_alternate_function() -> None:
    table = {**NUCLEO_RUNNING, GPIOA + AFRL: NUCLEO_RUNNING[GPIOA + AFRL] & ~(0xF << 4) | 7 << 4}
    said = bringup_mismatch(read(table))
    assert said is not None and "REF_CLK (PA1 is alternate function 7)" in said, said
    assert "board file" not in said  # REF_CLK has one pin on the F767: no key to set


def test_a_reset_that_never_completed() -> None:
    said = bringup_mismatch(read({**NUCLEO_RUNNING, DMABMR: 1}))
    assert said is not None and "ETH_DMABMR.SR" in said and "REF_CLK on PA1" in said


def test_mdc_over_2_5_mhz_from_the_clock_tree() -> None:
    # 216 MHz (the PLL from the 8 MHz HSE / M 4 x N 216 / P 2) with CR 0 (HCLK / 42): 5.1 MHz
    pll = {RCC_PLLCFGR: 4 | 216 << 6 | 1 << 22, RCC_CFGR: 2 << 2}
    said = bringup_mismatch(read({**NUCLEO_RUNNING, **pll, MACMIIAR: 0}))
    assert said is not None and "MDC runs at 5.1 MHz" in said and "MACMIIAR.CR 0" in said, said
    assert "CR 4 for 150-216 MHz" in said
    assert bringup_mismatch(read({**NUCLEO_RUNNING, **pll, MACMIIAR: 4 << 2})) is None  # / 102
    # with a 25 MHz crystal the same PLL would be 675 MHz: not this board's HSE, nothing said
    assert bringup_mismatch(read({**NUCLEO_RUNNING, **pll, MACMIIAR: 0}), hse_hz=25_000_000) is None


def test_a_mac_set_up_but_not_started() -> None:
    said = bringup_mismatch(read({**NUCLEO_RUNNING, MACCR: 0, DMAOMR: 1 << 1}))
    assert said is not None and "MACCR.TE, MACCR.RE, ETH_DMAOMR.ST clear" in said and "HAL_ETH_Start" in said


def test_mdio_to_another_phy_address_than_the_boards() -> None:
    from rig.board_wiring import EthSpec

    to_1 = {**NUCLEO_RUNNING, MACMIIAR: 1 << 11 | 1 << 6 | 3 << 2}  # BSR of address 1
    said = bringup_mismatch(read(to_1))
    assert said is not None and "PHY address 1 (MACMIIAR.PA, register 1)" in said and "answers at 0" in said
    assert bringup_mismatch(read(to_1), eth=EthSpec(phy_address=1)) is None
    assert bringup_mismatch(read(NUCLEO_RUNNING), eth=EthSpec(phy_address=1)) is None  # no access seen
