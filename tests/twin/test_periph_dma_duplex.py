"""DMA2 serving SPI1's RX/TX stream pair in blocks (twin/periph/dma_duplex.py) against the
same scenarios served item by item: memory, every stream register and flag, the SPI's
FIFO/OVR/counters, the bytes the slave saw, interrupt lines and scheduled batches must be
identical, and the block path must actually have run where it applies."""

from __future__ import annotations

import pytest

from twin.device import BusError
from twin.net.spi import Stm32Spi
from twin.periph.dma import Dma2
from twin.periph.rcc import Rcc
from twin.testing import RAM_BASE, RamPort, ServicesDouble

S = [0x10 + i * 0x18 for i in range(8)]
CR, NDTR, PAR, M0AR, M1AR, FCR = 0, 4, 8, 0xC, 0x10, 0x14
DR = 0x4001300C
P2M_BYTE = 3 << 25  # CHSEL=3, P2M, PSIZE=MSIZE=byte
M2P_BYTE = (3 << 25) | (1 << 6)
MINC, CIRC, DBM, TCIE, HTIE, EN = 1 << 10, 1 << 8, 1 << 18, 1 << 4, 1 << 3, 1


class Slave:
    """A deterministic slave: MISO depends on every MOSI byte so far."""

    def __init__(self) -> None:
        self.seen = bytearray()
        self.state = 0x5A
        self.blocks = 0

    def exchange(self, mosi: int) -> int:
        self.seen.append(mosi)
        self.state = (self.state * 73 + mosi + 11) & 0xFF
        return self.state

    def exchange_block(self, mosi: bytes) -> bytes:
        self.blocks += 1
        return bytes(self.exchange(b) for b in mosi)


class Port(RamPort):
    """RAM, plus SPI1's registers at their address for the DMA's peripheral port."""

    def __init__(self, ram: bytearray, spi: Stm32Spi) -> None:
        super().__init__(ram)
        self.spi = spi

    def read_io(self, address: int, size: int) -> int:
        if self.spi.base <= address < self.spi.base + self.spi.size:
            return self.spi.read(address - self.spi.base, size)
        return int.from_bytes(self.read(address, size), "little")

    def write_io(self, address: int, size: int, value: int) -> None:
        if not self.spi.base <= address < self.spi.base + self.spi.size:
            raise BusError(f"0x{address:08X}")
        self.spi.write(address - self.spi.base, size, value)


def run(setup, blocks: bool, advance: int = 0, ram_size: int = 0x80000, cr2: int = 0x1703):
    """Build SPI1 + DMA2, run ``setup(dma, spi, ram)`` and the SPI's DMA enables."""
    sv = ServicesDouble(ram_size=ram_size)
    slave = Slave()
    spi, dma, rcc = Stm32Spi(slave), Dma2(), Rcc()
    if not blocks:
        dma.duplex = lambda *a, **k: None  # type: ignore[method-assign]
    sv._port = Port(sv.ram, spi)
    sv.add(rcc, dma, spi)
    rcc.write(0x30, 4, rcc.read(0x30, 4) | 1 << 22)
    rcc.write(0x44, 4, rcc.read(0x44, 4) | 1 << 12)  # RCC_APB2ENR.SPI1EN
    for i in range(len(sv.ram)):
        sv.ram[i] = (i * 7 + 3) & 0xFF
    spi.write(0x00, 4, 0x0304)  # CR1: MSTR, SSM, SSI
    spi.write(0x04, 4, 0x1701)  # CR2: FRXTH, DS=8 bit, RXDMAEN
    cr1 = setup(dma, spi, sv.ram)
    spi.write(0x00, 4, cr1 or 0x0344)  # SPE
    spi.write(0x04, 4, cr2)  # TXDMAEN (and RXDMAEN, FRXTH, DS=8 bit)
    events = []
    while advance > 0 and sv.next_event() is not None:
        step = sv.next_event() - sv.cycles
        events.append(step)
        sv.advance(step)
        advance -= 1
    state = {
        "ram": bytes(sv.ram),
        "regs": [dma.read(off, 4) for off in range(0, 0xD0, 4)],
        "streams": [(s.mptr, s.pptr, bytes(s.fifo), s.start_ndtr) for s in dma.streams],
        "spi": (bytes(spi.rx), spi.ovr, spi.frames, spi.overruns, spi.read(0x08, 4)),
        "seen": bytes(slave.seen),
        "irqs": dict(sv.irqs),
        "events": events,
        "pending": sv.next_event() is not None,
    }
    return state, slave.blocks


def both(setup, advance=0, ram_size=0x80000, expect_blocks=True, cr2=0x1703):
    items, _ = run(setup, False, advance, ram_size, cr2)
    blocks, used = run(setup, True, advance, ram_size, cr2)
    for key in items:
        assert blocks[key] == items[key], key
    if expect_blocks is not None:
        assert bool(used) == expect_blocks
    return blocks


def stream(dma, n, par, m0, ndtr, cr, m1=None):
    dma.write(S[n] + PAR, 4, par)
    dma.write(S[n] + M0AR, 4, m0)
    if m1 is not None:
        dma.write(S[n] + M1AR, 4, m1)
    dma.write(S[n] + NDTR, 4, ndtr)
    dma.write(S[n] + CR, 4, cr)


def test_full_duplex_block_matches_items():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x1000, 300, P2M_BYTE | MINC | TCIE | HTIE | EN)
        stream(dma, 3, DR, RAM_BASE + 0x100, 300, M2P_BYTE | MINC | TCIE | EN)

    st = both(setup)
    assert st["regs"][0] == (0x30 << 16) | (0x30 << 22)  # TCIF/HTIF of streams 2 and 3
    assert st["irqs"][58] and st["irqs"][59]


def test_sink_and_fill_without_minc():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x2000, 64, P2M_BYTE | TCIE | EN)
        stream(dma, 3, DR, RAM_BASE + 0x10, 64, M2P_BYTE | EN)

    both(setup)


def test_longer_than_a_batch_continues_in_the_same_steps():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x4000, 3000, P2M_BYTE | MINC | EN)
        stream(dma, 3, DR, RAM_BASE + 0x100, 3000, M2P_BYTE | MINC | EN)

    st = both(setup, advance=10)
    assert st["events"] == [1024, 1024, 1024, 1024, 1024]


def test_circular_rx_wraps_and_tx_runs_on_into_overrun():
    def setup(dma, spi, ram):
        stream(dma, 0, DR, RAM_BASE + 0x3000, 10, P2M_BYTE | MINC | CIRC | HTIE | TCIE | EN)
        stream(dma, 5, DR, RAM_BASE + 0x200, 37, M2P_BYTE | MINC | TCIE | EN)

    st = both(setup)
    assert st["regs"][0] & 0x30  # stream 0 TCIF/HTIF


def test_double_buffer_rx_switches_targets():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x3000, 16, P2M_BYTE | MINC | DBM | TCIE | EN, m1=RAM_BASE + 0x3100)
        stream(dma, 3, DR, RAM_BASE + 0x200, 50, M2P_BYTE | MINC | EN)

    both(setup)


def test_tx_winning_arbitration_overruns_item_by_item():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x3000, 20, P2M_BYTE | MINC | EN)
        stream(dma, 3, DR, RAM_BASE + 0x200, 20, M2P_BYTE | MINC | (3 << 16) | EN)  # PL very high

    st = both(setup, expect_blocks=False)
    assert st["spi"][1]  # OVR


def test_overlapping_source_and_destination_go_item_by_item():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x201, 40, P2M_BYTE | MINC | EN)
        stream(dma, 3, DR, RAM_BASE + 0x200, 40, M2P_BYTE | MINC | EN)

    both(setup, expect_blocks=None)  # until the last pair, which no longer overlaps


def test_rx_destination_running_out_of_ram_stops_with_teif_and_fifo_overrun():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x1000 - 5, 12, P2M_BYTE | MINC | (1 << 2) | EN)  # TEIE
        stream(dma, 3, DR, RAM_BASE + 0x100, 12, M2P_BYTE | MINC | EN)

    st = both(setup, ram_size=0x1000)
    assert st["regs"][0] & (0x08 << 16)  # TEIF2
    assert st["spi"][1] and len(st["spi"][0]) == 4  # FIFO full, OVR


def test_lsb_first_and_interrupts_on():
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x1000, 20, P2M_BYTE | MINC | EN)
        stream(dma, 3, DR, RAM_BASE + 0x100, 20, M2P_BYTE | MINC | EN)
        return 0x03C4  # SPE, LSBFIRST

    both(setup)


@pytest.mark.parametrize("cr2", [0x0703, 0x1743])  # FRXTH=0 (RXNE at 16 bits); RXNEIE on
def test_states_the_block_path_refuses(cr2):
    def setup(dma, spi, ram):
        stream(dma, 2, DR, RAM_BASE + 0x1000, 20, P2M_BYTE | MINC | EN)
        stream(dma, 3, DR, RAM_BASE + 0x100, 20, M2P_BYTE | MINC | EN)

    both(setup, expect_blocks=False, cr2=cr2)


def test_flags_polled_between_batches_are_a_poll_wait():
    sv = ServicesDouble()
    spi, dma, rcc = Stm32Spi(Slave()), Dma2(), Rcc()
    sv._port = Port(sv.ram, spi)
    sv.add(rcc, dma, spi)
    rcc.write(0x30, 4, rcc.read(0x30, 4) | 1 << 22)
    rcc.write(0x44, 4, rcc.read(0x44, 4) | 1 << 12)  # RCC_APB2ENR.SPI1EN
    spi.write(0x00, 4, 0x0304)
    spi.write(0x04, 4, 0x1701)
    stream(dma, 2, DR, RAM_BASE + 0x4000, 3000, P2M_BYTE | MINC | EN)
    stream(dma, 3, DR, RAM_BASE + 0x100, 3000, M2P_BYTE | MINC | EN)
    dma.read(0x00, 4)
    assert sv.poll_waits == 0  # nothing pending yet
    spi.write(0x00, 4, 0x0344)
    spi.write(0x04, 4, 0x1703)
    assert dma.read(S[2] + NDTR, 4) == 3000 - 512
    dma.read(0x00, 4)  # LISR while the next batch is scheduled
    assert sv.poll_waits == 1
    sv.advance(10 * 1024)
    assert dma.read(0x00, 4) & (0x20 << 16) and sv.poll_waits == 1  # done: no wait
