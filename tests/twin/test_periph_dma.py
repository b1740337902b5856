"""DMA2 (RM0410 ch. 8): registers, flags, directions, FIFO/direct, circular, double buffer,
bus errors, clock gate, request lines. Register values are RM0410's bit layouts written out."""

from __future__ import annotations

from twin.device import BusError
from twin.periph.dma import Dma2
from twin.periph.rcc import Rcc
from twin.testing import RAM_BASE, RamPort, ServicesDouble

S0, S2, S3 = 0x10, 0x10 + 2 * 0x18, 0x10 + 3 * 0x18
CR, NDTR, PAR, M0AR, M1AR, FCR = 0, 4, 8, 0xC, 0x10, 0x14
FAKE_DR = 0x4001300C  # SPI1_DR


class FakePeriph:
    """A data register at FAKE_DR: reads pop ``rx``, writes append to ``tx``."""

    def __init__(self) -> None:
        self.rx: list[int] = []
        self.tx: list[tuple[int, int]] = []
        self.dma: Dma2 | None = None


class IoPort(RamPort):
    def __init__(self, ram: bytearray, periph: FakePeriph) -> None:
        super().__init__(ram)
        self.periph = periph

    def read_io(self, address: int, size: int) -> int:
        if address == FAKE_DR:
            value = self.periph.rx.pop(0)
            if not self.periph.rx and self.periph.dma is not None:
                self.periph.dma.request("SPI1_RX", False)  # RXNE dropped: request line low
            return value
        if RAM_BASE <= address < RAM_BASE + len(self.ram):
            return int.from_bytes(self.read(address, size), "little")
        raise BusError(f"0x{address:08X}")

    def write_io(self, address: int, size: int, value: int) -> None:
        if address != FAKE_DR:
            raise BusError(f"0x{address:08X}")
        self.periph.tx.append((size, value))


def make(clock_on: bool = True):
    sv = ServicesDouble()
    periph = FakePeriph()
    sv._port = IoPort(sv.ram, periph)
    rcc = Rcc()
    dma = Dma2()
    sv.add(rcc, dma)
    periph.dma = dma
    if clock_on:
        rcc.write(0x30, 4, rcc.read(0x30, 4) | 1 << 22)  # RCC_AHB1ENR.DMA2EN
    return sv, dma, periph


def test_reset_values_and_layout():
    _sv, dma, _ = make()
    assert dma.base == 0x40026400
    for s in range(8):
        base = 0x10 + s * 0x18
        assert dma.read(base + CR, 4) == 0
        assert dma.read(base + FCR, 4) == 0x00000021  # FS=100 (empty), FTH=01
    assert dma.read(0x00, 4) == 0 and dma.read(0x04, 4) == 0


def test_clock_gate_reads_zero_and_ignores_writes():
    sv, dma, _ = make(clock_on=False)
    dma.write(S0 + NDTR, 4, 16)
    assert dma.read(S0 + FCR, 4) == 0
    sv.devices["rcc"].write(0x30, 4, 1 << 22)
    assert dma.read(S0 + NDTR, 4) == 0


def test_memory_to_memory_fifo_word_copy_tcif_htif_irq():
    sv, dma, _ = make()
    src, dst = RAM_BASE + 0x100, RAM_BASE + 0x200
    sv.ram[0x100:0x120] = bytes(range(32))
    dma.write(S0 + PAR, 4, src)
    dma.write(S0 + M0AR, 4, dst)
    dma.write(S0 + NDTR, 4, 8)
    dma.write(S0 + FCR, 4, 0x00000007)  # DMDIS, FTH = full
    # DIR=10 (M2M), PINC, MINC, PSIZE=MSIZE=10 (word), TCIE, HTIE, EN
    dma.write(S0 + CR, 4, 0x00005699 | 0x80 | 0x400 | 0x200)
    assert bytes(sv.ram[0x200:0x220]) == bytes(range(32))
    assert dma.read(S0 + CR, 4) & 1 == 0  # EN cleared at the end
    assert dma.read(S0 + NDTR, 4) == 0
    assert dma.read(0x00, 4) == 0x30  # LISR: TCIF0 | HTIF0
    assert sv.irqs[56] is True  # DMA2_Stream0
    dma.write(0x08, 4, 0x3D)  # LIFCR: CTCIF0 CHTIF0 CTEIF0 CDMEIF0 CFEIF0
    assert dma.read(0x00, 4) == 0
    assert sv.irqs[56] is False


def test_m2m_packing_bytes_to_words():
    sv, dma, _ = make()
    sv.ram[0x100:0x108] = b"ABCDEFGH"
    dma.write(S0 + PAR, 4, RAM_BASE + 0x100)
    dma.write(S0 + M0AR, 4, RAM_BASE + 0x300)
    dma.write(S0 + NDTR, 4, 8)  # items of PSIZE (bytes)
    dma.write(S0 + FCR, 4, 0x07)
    # M2M, PINC, MINC, PSIZE=byte, MSIZE=word, EN
    dma.write(S0 + CR, 4, (2 << 6) | (1 << 9) | (1 << 10) | (2 << 13) | 1)
    assert bytes(sv.ram[0x300:0x308]) == b"ABCDEFGH"


def test_peripheral_to_memory_direct_mode_on_request_stream2_channel3():
    sv, dma, periph = make()
    periph.rx = [0x11, 0x22, 0x33, 0x44]
    dma.write(S2 + PAR, 4, FAKE_DR)
    dma.write(S2 + M0AR, 4, RAM_BASE + 0x400)
    dma.write(S2 + NDTR, 4, 4)
    # CHSEL=3, MINC, P2M, byte, TCIE, EN
    dma.write(S2 + CR, 4, (3 << 25) | (1 << 10) | (1 << 4) | 1)
    assert sv.ram[0x400] == 0  # no request yet
    for _ in range(4):
        dma.request("SPI1_RX", True)
        dma.request("SPI1_RX", False)
    assert bytes(sv.ram[0x400:0x404]) == bytes([0x11, 0x22, 0x33, 0x44])
    assert dma.read(0x00, 4) == 0x30 << 16  # TCIF2 | HTIF2
    assert sv.irqs[58] is True


def test_wrong_channel_does_not_answer():
    _sv, dma, periph = make()
    periph.rx = [1]
    dma.write(S0 + PAR, 4, FAKE_DR)
    dma.write(S0 + M0AR, 4, RAM_BASE)
    dma.write(S0 + NDTR, 4, 1)
    dma.write(S0 + CR, 4, (4 << 25) | 1)  # channel 4: not SPI1_RX on stream 0
    dma.request("SPI1_RX", True)
    assert periph.rx == [1] and dma.read(S0 + NDTR, 4) == 1


def test_memory_to_peripheral_stream3_circular_reloads():
    sv, dma, periph = make()
    sv.ram[0:4] = b"\x01\x02\x03\x04"
    dma.write(S3 + PAR, 4, FAKE_DR)
    dma.write(S3 + M0AR, 4, RAM_BASE)
    dma.write(S3 + NDTR, 4, 2)
    # CHSEL=3, CIRC, MINC, DIR=01, EN
    dma.write(S3 + CR, 4, (3 << 25) | (1 << 8) | (1 << 10) | (1 << 6) | 1)
    dma.request("SPI1_TX", True)  # never dropped: served in batches, CPU not starved
    assert periph.tx[:3] == [(1, 1), (1, 2), (1, 1)]
    assert len(periph.tx) == 1024 and sv.next_event() is not None
    sv.advance(1024)
    assert len(periph.tx) == 2048
    dma.request("SPI1_TX", False)
    assert dma.read(S3 + CR, 4) & 1 == 1  # circular: still enabled
    assert dma.read(S3 + NDTR, 4) == 2
    assert dma.read(0x00, 4) >> 22 & 0x20  # TCIF3


def test_level_request_runs_until_dropped():
    sv, dma, periph = make()
    sv.ram[0:3] = b"xyz"
    dma.write(S3 + PAR, 4, FAKE_DR)
    dma.write(S3 + M0AR, 4, RAM_BASE)
    dma.write(S3 + NDTR, 4, 3)
    dma.request("SPI1_TX", True)  # TXE high before the stream is enabled
    dma.write(S3 + CR, 4, (3 << 25) | (1 << 10) | (1 << 6) | 1)
    assert [v for _, v in periph.tx] == list(b"xyz")
    assert dma.read(S3 + CR, 4) & 1 == 0


def test_double_buffer_toggles_ct():
    sv, dma, periph = make()
    dma.write(S0 + PAR, 4, FAKE_DR)
    dma.write(S0 + M0AR, 4, RAM_BASE + 0x10)
    dma.write(S0 + M1AR, 4, RAM_BASE + 0x20)
    dma.write(S0 + NDTR, 4, 2)
    dma.write(S0 + CR, 4, (3 << 25) | (1 << 18) | (1 << 10) | 1)  # DBM, MINC
    for v in (1, 2, 3, 4):
        periph.rx = [v]
        dma.request("SPI1_RX", True)
        if dma.read(S0 + NDTR, 4) == 2 and dma.read(S0 + CR, 4) >> 19 & 1:
            dma.write(S0 + M0AR, 4, RAM_BASE + 0x30)  # the idle target stays writable
    assert bytes(sv.ram[0x10:0x12]) == b"\x01\x02"
    assert bytes(sv.ram[0x20:0x22]) == b"\x03\x04"
    assert dma.read(S0 + CR, 4) >> 19 & 1 == 0  # CT back on memory 0
    assert dma.read(S0 + M0AR, 4) == RAM_BASE + 0x30


def test_bus_error_sets_teif_and_disables():
    sv, dma, _ = make()
    dma.write(S0 + PAR, 4, RAM_BASE)
    dma.write(S0 + M0AR, 4, 0x60000000)  # nothing there
    dma.write(S0 + NDTR, 4, 4)
    dma.write(S0 + FCR, 4, 0x07)
    dma.write(S0 + CR, 4, (2 << 6) | (1 << 10) | (1 << 9) | (1 << 2) | 1)  # M2M, TEIE
    assert dma.read(0x00, 4) & 0x08  # TEIF0
    assert dma.read(S0 + CR, 4) & 1 == 0
    assert sv.irqs[56] is True


def test_fifo_error_for_forbidden_burst_threshold():
    sv, dma, _ = make()
    dma.write(S0 + NDTR, 4, 4)
    dma.write(S0 + FCR, 4, 0x84)  # FEIE, DMDIS, FTH=1/4 (4 bytes)
    # MBURST=INCR4 with MSIZE=word: 16 bytes > 1/4 FIFO → forbidden
    dma.write(S0 + CR, 4, (1 << 23) | (2 << 13) | (2 << 11) | (2 << 6) | 1)
    assert dma.read(0x00, 4) & 0x01  # FEIF0
    assert dma.read(S0 + CR, 4) & 1 == 0
    assert sv.irqs[56] is True


def test_registers_locked_while_enabled_and_high_streams_irqs():
    sv, dma, _periph = make()
    s5 = 0x10 + 5 * 0x18
    dma.write(s5 + NDTR, 4, 5)
    dma.write(s5 + PAR, 4, FAKE_DR)
    dma.write(s5 + CR, 4, (3 << 25) | (1 << 6) | (1 << 4) | 1)
    dma.write(s5 + NDTR, 4, 9)
    dma.write(s5 + PAR, 4, 0)
    assert dma.read(s5 + NDTR, 4) == 5 and dma.read(s5 + PAR, 4) == FAKE_DR
    dma.write(s5 + CR, 4, 0)  # software disable → TCIF5
    assert dma.read(0x04, 4) == 0x20 << 6  # HISR: TCIF5
    assert sv.irqs[68] is True  # DMA2_Stream5
    dma.write(0x0C, 4, 0x20 << 6)  # HIFCR: CTCIF5
    assert dma.read(0x04, 4) == 0 and sv.irqs[68] is False


class SpiPort(RamPort):
    """Routes the DMA's peripheral port to SPI1's registers (as the machine's bus does)."""

    def __init__(self, ram: bytearray, spi) -> None:
        super().__init__(ram)
        self.spi = spi

    def read_io(self, address: int, size: int) -> int:
        return self.spi.read(address - self.spi.base, size)

    def write_io(self, address: int, size: int, value: int) -> None:
        self.spi.write(address - self.spi.base, size, value)


def test_spi1_full_duplex_through_streams_0_and_3():
    from twin.net.spi import Stm32Spi

    class Echo:
        def exchange(self, mosi: int) -> int:
            return mosi ^ 0xFF

    sv = ServicesDouble()
    spi, dma, rcc = Stm32Spi(Echo()), Dma2(), Rcc()
    sv._port = SpiPort(sv.ram, spi)
    sv.add(rcc, dma, spi)
    rcc.write(0x30, 4, rcc.read(0x30, 4) | 1 << 22)
    rcc.write(0x44, 4, rcc.read(0x44, 4) | 1 << 12)  # RCC_APB2ENR.SPI1EN
    sv.ram[0:8] = bytes(range(1, 9))
    spi.write(0x00, 4, 0x0304)  # CR1: MSTR, SSM, SSI
    spi.write(0x04, 4, 0x1701)  # CR2: FRXTH, DS=8 bit, RXDMAEN
    dma.write(S0 + PAR, 4, 0x4001300C)
    dma.write(S0 + M0AR, 4, RAM_BASE + 0x100)
    dma.write(S0 + NDTR, 4, 8)
    dma.write(S0 + CR, 4, 0x06000411)  # CHSEL=3, MINC, TCIE, EN (P2M)
    dma.write(S3 + PAR, 4, 0x4001300C)
    dma.write(S3 + M0AR, 4, RAM_BASE)
    dma.write(S3 + NDTR, 4, 8)
    dma.write(S3 + CR, 4, 0x06000451)  # CHSEL=3, MINC, DIR=M2P, TCIE, EN
    spi.write(0x00, 4, 0x0344)  # SPE
    spi.write(0x04, 4, 0x1703)  # TXDMAEN
    assert bytes(sv.ram[0x100:0x108]) == bytes(b ^ 0xFF for b in range(1, 9))
    assert dma.read(0x00, 4) == (0x30 | 0x30 << 22)  # TCIF/HTIF of streams 0 and 3
    assert sv.irqs[56] and sv.irqs[59]
    assert not spi.ovr
