"""ETH MAC registers, clocks/resets, MDIO and the LAN8742A, with values from RM0410 §42.8
and the LAN8742A datasheet written out (never imported from the model)."""

from __future__ import annotations

import pytest
from ethmac_harness import (
    DMABMR,
    DMAIER,
    DMAMFBOCR,
    DMAOMR,
    DMARDLAR,
    DMASR,
    DMATDLAR,
    ETH,
    MACCR,
    MACMIIAR,
    MACMIIDR,
    Rig,
)

from twin.periph import Rcc, Syscfg
from twin.periph.gpio import all_ports

RESET_VALUES = {
    # MAC (RM0410 §42.8.2)
    0x000: 0x00008000,  # MACCR
    0x004: 0,  # MACFFR
    0x008: 0,  # MACHTHR
    0x00C: 0,  # MACHTLR
    0x010: 0,  # MACMIIAR
    0x014: 0,  # MACMIIDR
    0x018: 0,  # MACFCR
    0x01C: 0,  # MACVLANTR
    0x02C: 0,  # MACPMTCSR
    0x034: 0,  # MACDBGR
    0x038: 0,  # MACSR
    0x03C: 0,  # MACIMR
    0x040: 0x8000FFFF,  # MACA0HR
    0x044: 0xFFFFFFFF,  # MACA0LR
    0x048: 0x0000FFFF,  # MACA1HR
    0x04C: 0xFFFFFFFF,
    0x050: 0x0000FFFF,
    0x054: 0xFFFFFFFF,
    0x058: 0x0000FFFF,
    0x05C: 0xFFFFFFFF,
    # MMC (§42.8.3)
    0x100: 0,
    0x104: 0,
    0x108: 0,
    0x10C: 0,
    0x110: 0,
    0x14C: 0,
    0x150: 0,
    0x168: 0,
    0x194: 0,
    0x198: 0,
    0x1C4: 0,
    # PTP (§42.8.4)
    0x700: 0x00002000,
    0x704: 0,
    0x708: 0,
    0x70C: 0,
    0x710: 0,
    0x714: 0,
    0x718: 0,
    0x71C: 0,
    0x720: 0,
    0x728: 0,
    0x72C: 0,
    # DMA (§42.8.5), SR already completed in a rig without RCC/SYSCFG models
    0x1000: 0x00020100,
    0x1004: 0,
    0x1008: 0,
    0x100C: 0,
    0x1010: 0,
    0x1014: 0,
    0x1018: 0,
    0x101C: 0,
    0x1020: 0,
    0x1024: 0,
    0x1048: 0,
    0x104C: 0,
    0x1050: 0,
    0x1054: 0,
}


def test_reset_values() -> None:
    rig = Rig()
    got = {off: rig.r(ETH + off) for off in RESET_VALUES}
    assert got == RESET_VALUES


def test_garbage_writes_keep_reserved_bits_and_never_raise() -> None:
    rig = Rig()
    for off in [*RESET_VALUES, 0x060, 0x200, 0x800, 0x1028, 0x1100, 0x13FC]:
        for value in (0xFFFFFFFF, 0xA5A5A5A5, 0):
            if off == 0x1000:
                continue  # the soft reset: below
            rig.w(ETH + off, value)
            rig.r(ETH + off)
    rig.s.advance_ns(1_000_000_000)
    rig.s.run_posted()
    rig.w(MACCR, 0xFFFFFFFF)
    assert rig.r(MACCR) == 0x02CF7EFC | 0x8000  # reserved bits read 0, bit 15 reads 1
    rig.w(ETH + 0x40, 0)
    assert rig.r(ETH + 0x40) == 0x80000000  # MACA0HR.MO always 1
    rig.w(ETH + 0x48, 0xFFFFFFFF)
    assert rig.r(ETH + 0x48) == 0xFF00FFFF  # MACA1HR: AE, SA, MBC, address


def _board_parts() -> list[object]:
    return [Rcc(), Syscfg(), *all_ports()]


def _rmii_ready(rig: Rig, tx_rx_clocks: bool = True, rmii: bool = True, pa1: bool = True) -> None:
    """What HAL_ETH_MspInit/HAL_ETH_Init do before the MAC reset."""
    rcc = 0x40023800
    enr = 1 << 0 | 1 << 1 | 1 << 2 | 1 << 6 | 1 << 25  # GPIOA/B/C/G, ETHMACEN
    if tx_rx_clocks:
        enr |= 1 << 26 | 1 << 27
    rig.s.devices["rcc"].write(0x30, 4, enr)
    rig.s.devices["rcc"].write(0x44, 4, 1 << 14)  # SYSCFGEN
    if pa1:
        gpioa = rig.s.devices["gpioa"]
        gpioa.write(0x00, 4, 0xA8000000 | 0b10 << 2)  # PA1 alternate function
        gpioa.write(0x20, 4, 11 << 4)  # AF11
    if rmii:
        rig.s.devices["syscfg"].write(0x04, 4, 1 << 23)
    assert rcc


def test_clock_gate_and_rcc_reset() -> None:
    rig = Rig(_board_parts())
    rig.w(MACCR, 1 << 3)
    assert rig.r(MACCR) == 0  # ETHMACEN off: reads 0, writes ignored
    assert any("RCC_AHB1ENR bit 25" in line for line in rig.s.logs)
    _rmii_ready(rig)
    rig.w(MACCR, 1 << 3)
    assert rig.r(MACCR) == 0x8008
    rcc = rig.s.devices["rcc"]
    rcc.write(0x10, 4, 1 << 25)  # AHB1RSTR.ETHMACRST: held in reset
    assert rig.r(MACCR) == 0
    rcc.write(0x10, 4, 0)
    assert rig.r(MACCR) == 0x8000  # back at its reset value


@pytest.mark.parametrize(
    "missing",
    [{"tx_rx_clocks": False}, {"rmii": False}, {"pa1": False}],
    ids=["no-txrx-clock", "mii", "no-pa1"],
)
def test_soft_reset_needs_the_rmii_clocks(missing: dict[str, bool]) -> None:
    rig = Rig(_board_parts())
    _rmii_ready(rig, **missing)
    assert rig.r(DMABMR) == 0x00020101  # SR still set from reset
    rig.w(DMABMR, 1)
    for _ in range(3):
        assert rig.r(DMABMR) & 1 == 1
    assert rig.s.poll_waits >= 1  # the firmware's polling skips ahead
    assert any("cannot complete" in line for line in rig.s.logs)
    _rmii_ready(rig)
    assert rig.r(DMABMR) == 0x00020100


def test_soft_reset_restores_every_register_and_ignores_writes_meanwhile() -> None:
    rig = Rig(_board_parts())
    _rmii_ready(rig, rmii=False)
    rig.s.devices["syscfg"].write(0x04, 4, 1 << 23)
    rig.w(MACCR, 0x0C00)
    rig.w(DMATDLAR, 0x20000100)
    rig.w(DMAIER, 0x1FFFF)
    rig.s.devices["syscfg"].write(0x04, 4, 0)  # MII: the reset cannot complete
    rig.w(DMABMR, 1)
    rig.w(MACCR, 0x0808)  # ignored while SR = 1
    assert (rig.r(MACCR), rig.r(DMATDLAR), rig.r(DMAIER)) == (0x8000, 0, 0)
    rig.s.devices["syscfg"].write(0x04, 4, 1 << 23)
    assert rig.r(DMABMR) == 0x00020100
    rig.w(MACCR, 0x0808)
    assert rig.r(MACCR) == 0x8808


def test_soft_reset_started_by_a_debugger_completes_while_halted() -> None:
    rig = Rig()
    rig.mac.core_stopped("halt")
    rig.w(DMABMR, 1)
    assert rig.r(DMABMR) & 1 == 0  # the MAC's clocks run in a halt


# ------------------------------------------------------------------ MDIO and the PHY
def test_mdio_busy_for_64_mdc_periods_then_data() -> None:
    rig = Rig()
    rig.w(MACMIIAR, 0 << 11 | 2 << 6 | 0b010 << 2 | 1)  # PHY 0, PHYID1, HCLK/16
    assert rig.r(MACMIIAR) & 1 == 1
    assert rig.s.poll_waits == 1
    rig.s.advance(64 * 16 - 2)
    assert rig.r(MACMIIAR) & 1 == 1
    rig.s.advance(2)
    assert rig.r(MACMIIAR) & 1 == 0
    assert rig.r(MACMIIDR) == 0x0007
    rig.w(MACMIIAR, 0 << 11 | 3 << 6 | 0b100 << 2 | 1)  # PHYID2, HCLK/102
    rig.s.advance(64 * 102 - 1)
    assert rig.r(MACMIIAR) & 1 == 1
    rig.s.advance(1)
    assert rig.r(MACMIIDR) == 0xC130


def test_mdio_read_started_by_a_probe_completes_in_a_halt() -> None:
    rig = Rig()
    t = [100.0]
    rig.mac.timers.wall = lambda: t[0]
    rig.mac.core_stopped("halt")
    rig.w(MACMIIAR, 0 << 11 | 2 << 6 | 0b100 << 2 | 1)
    assert rig.mac.stopped_tick() is not None
    assert rig.r(MACMIIAR) & 1 == 1
    t[0] += 0.001
    left = rig.mac.stopped_tick()  # MDIO done; the PHY's auto-negotiation goes on in wall time
    assert rig.r(MACMIIAR) & 1 == 0 and rig.r(MACMIIDR) == 0x0007
    assert left is not None and 0.19 < left < 0.2
    t[0] += 0.2
    assert rig.mac.stopped_tick() is None
    assert rig.mac.phy.link


def test_phy_scan_answers_only_at_address_0() -> None:
    rig = Rig()
    found = [addr for addr in range(32) if rig.mdio(18, phy=addr) & 0x1F == addr]
    assert found == [0, 31]  # ST's scan stops at 0; 31 "matches" only because nobody answers (0xFFFF)
    assert rig.mdio(18, phy=5) == 0xFFFF
    assert rig.mdio(18) == 0x00E0  # MODE = 111, PHYAD = 0


def test_phy_registers_and_auto_negotiation() -> None:
    rig = Rig()
    assert rig.mdio(0) == 0x3100  # BCR: 100 Mbit/s, AN enabled, full duplex
    assert rig.mdio(1) == 0x7809  # BSR: abilities, link down, AN not done
    assert rig.mdio(4) == 0x01E1  # ANAR
    assert rig.mdio(31) & 0x1000 == 0  # PHYSCSR: AUTODONE clear
    rig.s.advance_ns(190_000_000)
    assert rig.mdio(31) & 0x1000 == 0
    rig.link_up_now()
    assert rig.mdio(1) == 0x7829  # latched-low link still 0 on the first read
    assert rig.mdio(1) == 0x782D  # link up, AN complete
    assert rig.mdio(31) == 0x1058  # AUTODONE, 100BASE-TX full duplex, 4B5B
    assert rig.mdio(5) == 0x45E1  # ANLPAR
    assert rig.mdio(6) == 0x0003  # ANER: partner AN able, page received ...
    assert rig.mdio(6) == 0x0001  # ... which is latched high
    assert rig.mdio(29) == 0x004A  # ISFR: AN complete, LP ack, page received
    assert rig.mdio(29) == 0  # cleared on read


def test_anar_limits_the_result_and_soft_reset_restarts() -> None:
    rig = Rig()
    rig.link_up_now()
    rig.mdio(4, write=0x0061)  # advertise 10BASE-T only
    rig.mdio(0, write=0x1200)  # AN enable + restart
    rig.mdio(1)
    assert rig.mdio(1) & 0x0004 == 0
    rig.link_up_now()
    assert rig.mdio(31) == 0x1054  # 10BASE-T full duplex
    rig.mdio(0, write=0x8000)  # soft reset: self-clearing, registers back to defaults
    assert rig.mdio(0) == 0x3100
    assert rig.mdio(4) == 0x01E1
    assert rig.mdio(31) & 0x1000 == 0
    rig.link_up_now()
    assert rig.mdio(31) == 0x1058


def test_cable_unplug_and_replug() -> None:
    rig = Rig()
    rig.link_up_now()
    rig.mdio(1)
    rig.mdio(29)
    rig.net.set_link(False)
    rig.s.run_posted()
    assert rig.mdio(1) & 0x0004 == 0
    assert rig.mdio(29) & 0x0010  # ISFR link down
    assert rig.mdio(17) & 0x0002 == 0  # MCSR.ENERGYON
    rig.net.set_link(True)
    rig.s.run_posted()
    assert rig.mdio(29) & 0x0080  # ENERGYON
    rig.link_up_now()
    rig.mdio(1)
    assert rig.mdio(1) & 0x0024 == 0x0024


def test_forced_mode_without_auto_negotiation() -> None:
    rig = Rig()
    rig.mdio(0, write=0x0000)  # AN off, 10 Mbit/s, half duplex
    rig.s.advance_ns(5_000_000)
    rig.mdio(1)
    assert rig.mdio(1) & 0x0024 == 0x0004  # link, no AN complete
    assert rig.mdio(31) == 0x0044  # 10BASE-T half duplex


def test_system_reset_resets_the_phy_but_rcc_mac_reset_does_not() -> None:
    rig = Rig()
    rig.link_up_now()
    rig.mdio(4, write=0x0061)
    rig.mac.reset("system")  # RCC_AHB1RSTR.ETHMACRST edge: MAC only
    assert rig.mdio(4) == 0x0061
    rig.mac.reset("system")
    rig.mac.reset_cause("system", "pin")  # NRST: also the PHY's nRST
    assert rig.mdio(4) == 0x01E1


# ------------------------------------------------------------------ DMA status and IRQ
def test_dmasr_w1c_summaries_and_irq_61() -> None:
    rig = Rig()
    rig.w(DMAIER, 1 << 16 | 1 << 6)  # NISE, RIE
    rig.mac.dma.set_status(1 << 6)  # RS, as a received frame sets it
    assert rig.r(DMASR) & 0x1FFFF == 1 << 16 | 1 << 6
    assert rig.s.irqs[61] is True
    rig.w(DMASR, 1 << 6)  # clearing RS leaves the sticky NIS
    assert rig.r(DMASR) & 0x1FFFF == 1 << 16 and rig.s.irqs[61] is True
    rig.w(DMASR, 1 << 16)
    assert rig.r(DMASR) == 0 and rig.s.irqs[61] is False
    rig.mac.dma.set_status(1 << 7)  # RBUS, not enabled: no summary, no IRQ
    assert rig.r(DMASR) == 1 << 7 and rig.s.irqs[61] is False
    rig.w(DMAIER, 1 << 15 | 1 << 7)
    rig.mac.dma.set_status(1 << 7)
    assert rig.r(DMASR) == 1 << 15 | 1 << 7 and rig.s.irqs[61] is True
    rig.w(DMASR, 0x80, size=1)  # a byte write clears only RBUS
    assert rig.r(DMASR) == 1 << 15
    rig.mac.dma.set_status(1 << 7)
    rig.w(DMASR, 1 << 15)  # the summary first, its cause still set: it stays
    assert rig.r(DMASR) == 1 << 15 | 1 << 7
    rig.w(DMASR, 1 << 15 | 1 << 7)
    assert rig.r(DMASR) == 0 and rig.s.irqs[61] is False
    rig.w(DMAIER, 0)
    rig.mac.dma.set_status(1 << 0)  # TS while TIE is off ...
    rig.w(DMAIER, 1 << 16 | 1 << 0)  # ... enabling it later raises the summary and the IRQ
    assert rig.r(DMASR) == 1 << 16 | 1 << 0 and rig.s.irqs[61] is True


def test_dma_start_without_descriptors_suspends_with_buffer_unavailable() -> None:
    rig = Rig()
    rig.w(DMARDLAR, 0x20000000)  # zeroed RAM: every descriptor belongs to the CPU
    rig.w(DMATDLAR, 0x20000100)
    rig.w(MACCR, 1 << 3 | 1 << 2 | 1 << 14 | 1 << 11)
    rig.w(DMAOMR, 1 << 13 | 1 << 1 | 1 << 20)
    st = rig.r(DMASR)
    assert st >> 20 & 7 == 6 and st >> 17 & 7 == 4  # TX suspended, RX suspended
    assert st & (1 << 2 | 1 << 7) == 1 << 2 | 1 << 7  # TBUS, RBUS
    assert rig.r(DMAOMR) == 1 << 13 | 1 << 1  # FTF reads back 0
    rig.w(DMAOMR, 0)
    st = rig.r(DMASR)
    assert st >> 17 & 0x3F == 0 and st & (1 << 1 | 1 << 8) == 1 << 1 | 1 << 8  # stopped: TPSS, RPSS


def test_list_addresses_ignore_the_low_bits_and_mfbocr_clears_on_read() -> None:
    rig = Rig()
    rig.w(DMARDLAR, 0x20000007)
    assert rig.r(DMARDLAR) == 0x20000004
    rig.mac.dma.mfc = 3
    assert rig.r(DMAMFBOCR) == 3 and rig.r(DMAMFBOCR) == 0


def test_mmc_counters_reset_on_read_and_control() -> None:
    rig = Rig()
    mmc = rig.mac.mmc
    for _ in range(3):
        mmc.count(0x168)  # TGFCR
    assert rig.r(ETH + 0x168) == 3 and rig.r(ETH + 0x168) == 3
    rig.w(ETH + 0x100, 1 << 2)  # ROR
    assert rig.r(ETH + 0x168) == 3 and rig.r(ETH + 0x168) == 0
    mmc.count(0x194)
    rig.w(ETH + 0x100, 1 << 2 | 1)  # CR: counters to 0, self-clearing
    assert rig.r(ETH + 0x194) == 0 and rig.r(ETH + 0x100) == 1 << 2
    rig.w(ETH + 0x100, 1 << 5 | 1 << 4)  # preset to almost full
    assert rig.r(ETH + 0x1C4) == 0xFFFFFFF0
    for _ in range(15):
        mmc.count(0x1C4)
    assert rig.r(ETH + 0x104) == 1 << 17  # RGUFS at all ones
    assert rig.r(ETH + 0x38) & 0x30 == 0x30  # MACSR.MMCRS, MMCS
    assert rig.r(DMASR) & 1 << 27 and rig.s.irqs[61] is True
    rig.w(ETH + 0x10C, 1 << 17)  # masked
    assert rig.r(ETH + 0x38) == 0 and rig.s.irqs[61] is False


def test_ptp_time_runs_from_an_initial_value() -> None:
    rig = Rig()
    rig.w(ETH + 0x704, 20)  # 20 ns per HCLK cycle (coarse)
    rig.w(ETH + 0x710, 5)  # seconds
    rig.w(ETH + 0x714, 999_999_000)  # nanoseconds
    rig.w(ETH + 0x700, 1 << 9 | 1 << 0)  # digital rollover, TSE
    rig.w(ETH + 0x700, 1 << 9 | 1 << 2 | 1 << 0)  # TSSTI
    assert rig.r(ETH + 0x700) == 1 << 9 | 1 << 0  # TSSTI self-clears
    assert (rig.r(ETH + 0x708), rig.r(ETH + 0x70C)) == (5, 999_999_000)
    rig.s.advance(100)  # 100 cycles × 20 ns
    assert (rig.r(ETH + 0x708), rig.r(ETH + 0x70C)) == (6, 1000)


def test_dmasr_polled_while_negotiating_jumps_but_waiting_for_frames_idles() -> None:
    """A quiet DMASR read again and again: while the PHY negotiates (cable in, link not up)
    nothing can come from the host, so the machine jumps to the next event (poll wait); once
    the link is up and the receive process waits for frames it is a host wait (idle, wall
    pace), and so it is with the cable pulled by the host."""
    rig = Rig()
    for _ in range(10):
        rig.r(DMASR)
    assert rig.s.poll_waits >= 1 and rig.s.idle_waits == 0
    rig.link_up_now()
    rig.w(DMARDLAR, 0x20000000)  # CPU-owned descriptors: RX suspended, waiting
    rig.w(MACCR, 1 << 3 | 1 << 2 | 1 << 14 | 1 << 11)
    rig.w(DMAOMR, 1 << 1)
    rig.w(DMASR, 0x0001E7FF)  # clear every W1C status bit
    polls = rig.s.poll_waits
    for _ in range(10):
        rig.r(DMASR)
    assert rig.s.idle_waits >= 1 and rig.s.poll_waits == polls
    rig.net.set_link(False)  # the host pulls the cable: its plugging it back is a host event
    rig.s.run_posted()
    idles = rig.s.idle_waits
    for _ in range(10):
        rig.r(DMASR)
    assert rig.s.poll_waits == polls and rig.s.idle_waits > idles


def test_a_loop_that_polls_on_after_its_host_wait_waits_again_at_once() -> None:
    """The machine lets a firmware waiting for frames run again every 2 ms so it sees its
    own timeouts; its loop must wait again at its second DMASR read, not after another
    SPIN_READS reads (each a Python call: that was 8 loop turns per 2 ms of an idle
    bootloader). Time moved by executing code, not by the wait, still ends the spin."""
    from twin.net.ethmac import SPIN_GAP, SPIN_READS

    rig = Rig()
    rig.link_up_now()
    rig.w(DMARDLAR, 0x20000000)
    rig.w(MACCR, 1 << 3 | 1 << 2 | 1 << 14 | 1 << 11)
    rig.w(DMAOMR, 1 << 1)
    rig.w(DMASR, 0x0001E7FF)
    for _ in range(SPIN_READS):
        rig.r(DMASR)
    assert rig.s.idle_waits == 1
    rig.s.wait(rig.s.core_hz // 500)  # the host wait: 2 ms, nothing came
    rig.r(DMASR)
    assert rig.s.idle_waits == 1  # a loop that ends here (its timeout over) does not wait
    rig.r(DMASR)
    assert rig.s.idle_waits == 2  # the same loop: waits again at its second read
    rig.s.advance(SPIN_GAP + 1)  # the firmware computed something in between
    for _ in range(SPIN_READS - 1):
        rig.r(DMASR)
    assert rig.s.idle_waits == 2  # a new spin: SPIN_READS reads first
    rig.r(DMASR)
    assert rig.s.idle_waits == 3
