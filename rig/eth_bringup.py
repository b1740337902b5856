"""Why an Ethernet board's MAC never came up, as far as its registers tell, on a NUCLEO as
on the twin: read-only probe reads of the RCC, SYSCFG, the GPIO ports and the ETH MAC and
DMA (RM0410 §5 RCC, §7 SYSCFG_PMC, §42.8 Ethernet registers), after a session in which the
board never connected. One probable cause is named, the first of:

1. the MAC clocked (RCC_AHB1ENR.ETHMACEN) without its transmit or receive clock
   (ETHMACTXEN, ETHMACRXEN);
2. SYSCFG_PMC.MII_RMII_SEL left at MII, or SYSCFG's own clock off so that it could not be
   set: the NUCLEO's LAN8742A drives RMII only, and the MAC's software reset waits for a
   clock MII mode takes from a pin that has none;
3. an RMII signal whose pin, as the board file's ``eth:`` wires it (the NUCLEO's without
   it), is not in alternate function 11. The F767's RMII pins (its datasheet's alternate
   function table): REF_CLK PA1, MDIO PA2, MDC PC1, CRS_DV PA7, RXD0 PC4, RXD1 PC5, TX_EN
   PB11 or PG11, TXD0 PB12 or PG13, TXD1 PB13 or PG14 (the NUCLEO uses PG11, PG13, PB13;
   ``eth.tx_en``, ``eth.txd0``, ``eth.txd1`` name a board's). Only the wired pin counts:
   the other one in AF11 is named (firmware wired otherwise than the board file); a pin
   whose port is not clocked was never configured;
4. ETH_DMABMR.SR still set: the MAC's software reset never completed;
5. MDC over the LAN8742A's 2.5 MHz (HCLK / 42, 62, 16, 26 or 102 by MACMIIAR.CR);
6. the firmware's last MDIO access (MACMIIAR.PA) at another PHY address than the board
   file's ``eth.phy_address`` (the NUCLEO's: 0);
7. the MAC or its DMA not started now (MACCR.TE/RE, ETH_DMAOMR.ST/SR).

Nothing is said when the MAC was never clocked (a bootloader that never got to its
Ethernet). Only what the registers show at that moment.

Owns: nothing (pure reads). Must not touch: the board (no writes, no halt, no MDIO).
"""

from __future__ import annotations

from collections.abc import Callable

from rig import gpio_regs as gpio
from rig.board_spec import NUCLEO_HSE_HZ
from rig.board_wiring import RMII_FIXED_PINS, RMII_TX_CHOICES, EthSpec
from rig.clock_hint import F767_MAX_HZ, RCC_CFGR, RCC_PLLCFGR, hclk

RCC_AHB1ENR, RCC_APB2ENR = 0x40023830, 0x40023844
ETHMACEN, ETHMACTXEN, ETHMACRXEN = 1 << 25, 1 << 26, 1 << 27
SYSCFGEN = 1 << 14
SYSCFG_PMC, MII_RMII_SEL = 0x40013804, 1 << 23
ETH_MACCR, ETH_MACMIIAR = 0x40028000, 0x40028010
ETH_DMABMR, ETH_DMAOMR = 0x40029000, 0x40029018
MACCR_TE, MACCR_RE = 1 << 3, 1 << 2
DMABMR_SR = 1 << 0
DMAOMR_ST, DMAOMR_SR = 1 << 13, 1 << 1
#: MACMIIAR.CR → HCLK divider for MDC (RM0410 §42.8.1)
MDC_DIV = {0: 42, 1: 62, 2: 16, 3: 26, 4: 102}
#: the LAN8742A's fastest MDC (its datasheet; IEEE 802.3 clause 22 management)
MDC_MAX_HZ = 2_500_000
#: RMII signal → the F767 pins that carry it in alternate function 11 (the board file's
#: ``eth:`` says which one a board wires: :attr:`rig.board_wiring.EthSpec.rmii_pins`)
RMII_PINS = {**{k: (v,) for k, v in RMII_FIXED_PINS.items()}, **RMII_TX_CHOICES}
AF_ETH = 11
#: the transmit signals and their keys under the board file's ``eth:``
TX_KEYS = {"TX_EN": "tx_en", "TXD0": "txd0", "TXD1": "txd1"}


def bringup_mismatch(
    read32: Callable[[int], int], hse_hz: int = NUCLEO_HSE_HZ, eth: EthSpec | None = None
) -> str | None:
    """A sentence naming why the MAC did not come up, or None when the registers do not
    show it (see the module doc); ``eth``: the board file's wiring (None: the NUCLEO's)."""
    enr = read32(RCC_AHB1ENR)
    if not enr & ETHMACEN:
        return None
    if enr & (ETHMACTXEN | ETHMACRXEN) != ETHMACTXEN | ETHMACRXEN:
        off = " and ".join(
            n for n, b in (("ETHMACTXEN", ETHMACTXEN), ("ETHMACRXEN", ETHMACRXEN)) if not enr & b
        )
        return (
            f"the ETH MAC is clocked (RCC_AHB1ENR.ETHMACEN) but not its {off}: it neither sends nor "
            "receives (__HAL_RCC_ETHMACTX_CLK_ENABLE() and __HAL_RCC_ETHMACRX_CLK_ENABLE(), or "
            "__HAL_RCC_ETH_CLK_ENABLE())"
        )
    said = _rmii_select(read32) or _rmii_pins(read32, enr, eth or EthSpec())
    if said:
        return said
    if read32(ETH_DMABMR) & DMABMR_SR:
        return (
            "the MAC's software reset (ETH_DMABMR.SR) never completed: it needs the PHY's 50 MHz "
            "RMII REF_CLK on PA1 and RMII selected before it (HAL_ETH_Init times out with "
            "HAL_TIMEOUT)"
        )
    return _mdc(read32, hse_hz) or _phy_address(read32, eth or EthSpec()) or _not_started(read32)


def _rmii_select(read32: Callable[[int], int]) -> str | None:
    if not read32(RCC_APB2ENR) & SYSCFGEN:
        return (
            "SYSCFG's clock is off (RCC_APB2ENR.SYSCFGEN), so SYSCFG_PMC.MII_RMII_SEL could not be "
            "set: the MAC is in MII mode and the board's PHY drives RMII only "
            "(__HAL_RCC_SYSCFG_CLK_ENABLE() before HAL_ETH_Init)"
        )
    if not read32(SYSCFG_PMC) & MII_RMII_SEL:
        return (
            "SYSCFG_PMC.MII_RMII_SEL is MII: the board's PHY drives RMII only (set it before the MAC's "
            "reset: HAL_ETH_Init does with MediaInterface = HAL_ETH_RMII_MODE)"
        )
    return None


def _rmii_pins(read32: Callable[[int], int], enr: int, eth: EthSpec) -> str | None:
    """The RMII signals whose wired pin is not in AF11, what each pin is now and, for a
    transmit signal, whether the F767's other pin for it is in AF11 instead."""
    missing, keys = [], []
    for signal, name in eth.rmii_pins.items():
        state = _pin_state(read32, enr, name)
        if state is None:
            continue
        others = [p for p in RMII_PINS[signal] if p != name and _pin_state(read32, enr, p) is None]
        if others:
            state += f", while {others[0]}, the F767's other {signal} pin, is in alternate function 11"
        missing.append(f"{signal} ({state})")
        if signal in TX_KEYS:
            keys.append(TX_KEYS[signal])
    if not missing:
        return None
    where = ""
    if keys:
        them = "it" if len(keys) == 1 else "them"
        where = f"; board file: eth.{'/'.join(keys)} if your board wires {them} elsewhere"
    return (
        f"RMII signal(s) whose pin is not in alternate function 11: {', '.join(missing)}; on the board "
        f"no frames (or no MDIO) pass there (GPIO_AF11_ETH on each, as HAL_ETH_MspInit does{where})"
    )


def _pin_state(read32: Callable[[int], int], enr: int, name: str) -> str | None:
    """What pin ``name`` (``PG11``) is now, or None when it is in AF11."""
    port, pin = gpio.parse(name)
    if not enr >> port & 1:
        return f"{name}: GPIO{name[1]}'s clock is off"
    mode, af = gpio.mode(read32, port, pin), gpio.alternate(read32, port, pin)
    if (mode, af) == (2, AF_ETH):
        return None
    now = ("an input", "an output", f"alternate function {af}", "analog")[mode]
    return f"{name} is {now}"


def _mdc(read32: Callable[[int], int], hse_hz: int) -> str | None:
    hz, how = hclk(read32(RCC_PLLCFGR), read32(RCC_CFGR), hse_hz)
    cr = read32(ETH_MACMIIAR) >> 2 & 7
    div = MDC_DIV.get(cr)
    if div is None or hz > F767_MAX_HZ or hz // div <= MDC_MAX_HZ:
        return None  # (over 216 MHz: the board's HSE is not the one assumed)
    return (
        f"MDC runs at {hz / div / 1e6:.2g} MHz (HCLK {hz / 1e6:g} MHz from {how} / {div}, MACMIIAR.CR "
        f"{cr}): the LAN8742A is specified to 2.5 MHz, so its registers may read wrong (link never "
        "seen); set CR for HCLK (RM0410: CR 4 for 150-216 MHz, 1 for 100-150, 0 for 60-100, 3 for "
        "35-60, 2 for 20-35)"
    )


def _phy_address(read32: Callable[[int], int], eth: EthSpec) -> str | None:
    """The firmware's last MDIO access (MACMIIAR.PA, MR) went to another PHY address than
    the board's (an access to register 0 of address 0 looks like none: nothing said)."""
    miiar = read32(ETH_MACMIIAR)
    pa, mr = miiar >> 11 & 0x1F, miiar >> 6 & 0x1F
    if pa == eth.phy_address or not (pa or mr):
        return None
    return (
        f"the firmware's last MDIO access went to PHY address {pa} (MACMIIAR.PA, register {mr}) and "
        f"the board's PHY answers at {eth.phy_address} (its PHYAD strap; the NUCLEO's LAN8742A: 0): "
        "nobody answers there (registers read 0xFFFF, no link); set the driver's PHY address (HAL: "
        "PhyAddress / LAN8742 driver's DevAddr), or the board file's eth.phy_address if yours differs"
    )


def _not_started(read32: Callable[[int], int]) -> str | None:
    maccr, dmaomr = read32(ETH_MACCR), read32(ETH_DMAOMR)
    off = [
        name
        for name, on in (
            ("MACCR.TE", maccr & MACCR_TE),
            ("MACCR.RE", maccr & MACCR_RE),
            ("ETH_DMAOMR.ST", dmaomr & DMAOMR_ST),
            ("ETH_DMAOMR.SR", dmaomr & DMAOMR_SR),
        )
        if not on
    ]
    if not off:
        return None
    return (
        f"the MAC is set up but not running now ({', '.join(off)} clear): nothing is sent or "
        "received (HAL_ETH_Start, or a driver that stopped it after an error)"
    )
