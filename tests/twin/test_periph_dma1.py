"""DMA1 (RM0410 ch. 8) and USART3's DMA requests (RM0410 "USART continuous communication
using DMA"): DMA1's own address, clock gate and stream interrupts, its request mapping for
USART3 (stream 1 channel 4 RX; stream 3 channel 4 and stream 4 channel 7 TX), no
memory-to-memory; USART3 raising its request lines from TXE/RXNE and CR3.DMAT/DMAR, and
CR3.EIE's overrun interrupt. Values are RM0410's, written out."""

from __future__ import annotations

from twin.device import BusError
from twin.periph.dma import Dma1
from twin.periph.rcc import Rcc
from twin.testing import RAM_BASE, RamPort, ServicesDouble
from twin.usart import Usart

USART3 = 0x40004800
CR1, CR3, BRR, ISR, ICR, RDR, TDR = 0x00, 0x08, 0x0C, 0x1C, 0x20, 0x24, 0x28
UE_RE_TE = 0x0D
CR3_EIE, CR3_DMAR, CR3_DMAT = 1, 1 << 6, 1 << 7
ISR_ORE, ISR_RXNE, ISR_TC = 1 << 3, 1 << 5, 1 << 6
LISR, HISR, LIFCR = 0x00, 0x04, 0x08
CR, NDTR, PAR, M0AR, FCR = 0, 4, 8, 0xC, 0x14
EN, TCIE, HTIE, DIR_M2P, DIR_M2M, MINC = 1, 1 << 4, 1 << 3, 1 << 6, 2 << 6, 1 << 10


def S(n: int) -> int:
    return 0x10 + n * 0x18


def CHSEL(c: int) -> int:
    return c << 25


class UsartPort(RamPort):
    """RAM, and USART3's registers for the DMA's peripheral side."""

    def __init__(self, ram: bytearray, usart: Usart) -> None:
        super().__init__(ram)
        self.usart = usart

    def read_io(self, address: int, size: int) -> int:
        if USART3 <= address < USART3 + 0x400:
            return self.usart.read(address - USART3, size)
        return int.from_bytes(self.read(address, size), "little")

    def write_io(self, address: int, size: int, value: int) -> None:
        if not USART3 <= address < USART3 + 0x400:
            raise BusError(f"0x{address:08X}")
        self.usart.write(address - USART3, size, value)


def make(clock_on: bool = True):
    sv = ServicesDouble()
    u = Usart(pty=False)
    sv._port = UsartPort(sv.ram, u)
    rcc, dma = Rcc(), Dma1()
    sv.add(rcc, dma, u)
    rcc.write(0x40, 4, rcc.read(0x40, 4) | 1 << 18)  # RCC_APB1ENR.USART3EN
    if clock_on:
        rcc.write(0x30, 4, rcc.read(0x30, 4) | 1 << 21)  # RCC_AHB1ENR.DMA1EN
    u.write(BRR, 4, 139)
    u.write(CR1, 4, UE_RE_TE)
    return sv, dma, u


def _stream(dma: Dma1, n: int, ch: int, cr: int, ndtr: int, par: int, mem: int) -> None:
    dma.write(S(n) + PAR, 4, par)
    dma.write(S(n) + M0AR, 4, mem)
    dma.write(S(n) + NDTR, 4, ndtr)
    dma.write(S(n) + CR, 4, CHSEL(ch) | cr)
    dma.write(S(n) + CR, 4, CHSEL(ch) | cr | EN)


def test_dma1_address_clock_gate_and_stream_interrupts() -> None:
    sv, dma, _ = make(clock_on=False)
    assert (dma.name, dma.base) == ("dma1", 0x40026000)
    dma.write(S(0) + NDTR, 4, 16)
    assert dma.read(S(0) + FCR, 4) == 0  # clock off: reads 0, writes ignored
    sv.devices["rcc"].write(0x30, 4, 1 << 22)  # DMA2EN is not DMA1's clock
    assert dma.read(S(0) + FCR, 4) == 0
    sv.devices["rcc"].write(0x30, 4, 1 << 21)
    assert dma.read(S(0) + FCR, 4) == 0x21 and dma.read(S(0) + NDTR, 4) == 0
    assert [s.irq for s in dma.streams] == [11, 12, 13, 14, 15, 16, 17, 47]


def test_usart3_tx_by_stream3_channel4_paces_at_the_baud_rate_and_ends_with_tc() -> None:
    sv, dma, u = make()
    sv.ram[0:5] = b"hello"
    _stream(dma, 3, 4, DIR_M2P | MINC | TCIE, 5, USART3 + TDR, RAM_BASE)
    assert u.tx_log == b""  # nothing before CR3.DMAT
    u.write(ICR, 4, ISR_TC)
    u.write(CR3, 4, CR3_DMAT)
    frame = u.frame_cycles()
    assert dma.read(S(3) + NDTR, 4) == 3  # TDR and the shift register took two bytes
    sv.advance(frame)
    assert bytes(u.tx_log) == b"h" and dma.read(S(3) + NDTR, 4) == 2
    sv.advance(2 * frame)
    assert dma.read(S(3) + NDTR, 4) == 0 and dma.read(LISR, 4) >> 22 & 0x20  # TCIF3
    assert sv.irqs.get(14)  # DMA1_Stream3
    assert not u.read(ISR, 4) & ISR_TC  # the last byte is still shifting out
    sv.advance(2 * frame)
    assert bytes(u.tx_log) == b"hello" and u.read(ISR, 4) & ISR_TC


def test_usart3_tx_on_stream4_channel7_and_not_on_a_wrong_channel() -> None:
    sv, dma, u = make()
    sv.ram[0:2] = b"ok"
    _stream(dma, 4, 4, DIR_M2P | MINC, 2, USART3 + TDR, RAM_BASE)  # channel 4 of stream 4: UART4_TX
    u.write(CR3, 4, CR3_DMAT)
    sv.advance(4 * u.frame_cycles())
    assert u.tx_log == b"" and dma.read(S(4) + NDTR, 4) == 2
    dma.write(S(4) + CR, 4, 0)
    _stream(dma, 4, 7, DIR_M2P | MINC, 2, USART3 + TDR, RAM_BASE)
    sv.advance(4 * u.frame_cycles())
    assert bytes(u.tx_log) == b"ok"


def test_usart3_rx_by_stream1_channel4_half_and_full_transfer() -> None:
    sv, dma, u = make()
    _stream(dma, 1, 4, MINC | TCIE | HTIE, 4, USART3 + RDR, RAM_BASE + 0x100)
    u.write(CR3, 4, CR3_DMAR | CR3_EIE)
    u.inject_rx(b"abcd")
    sv.advance(30 * u.frame_cycles())  # the VCP's latency, then one frame each
    assert bytes(sv.ram[0x100:0x104]) == b"abcd"
    assert dma.read(LISR, 4) >> 6 & 0x30 == 0x30  # TCIF1, HTIF1
    assert not u.read(ISR, 4) & (ISR_RXNE | ISR_ORE)  # each byte taken from RDR at once
    assert sv.irqs.get(12) and not sv.irqs.get(39)


def test_rx_with_no_stream_serving_overruns_and_eie_interrupts() -> None:
    sv, _dma, u = make()
    u.write(CR3, 4, CR3_DMAR)
    u.inject_rx(b"xy")
    sv.advance(30 * u.frame_cycles())
    assert u.read(ISR, 4) & (ISR_RXNE | ISR_ORE) == ISR_RXNE | ISR_ORE
    assert not sv.irqs.get(39)  # no EIE: no interrupt (RXNEIE is off)
    u.write(CR3, 4, CR3_DMAR | CR3_EIE)
    assert sv.irqs.get(39)
    u.write(ICR, 4, ISR_ORE)
    assert not sv.irqs.get(39)


def test_memory_to_memory_is_not_dma1s() -> None:
    sv, dma, _ = make()
    sv.ram[0:8] = bytes(range(8))
    dma.write(S(0) + FCR, 4, 1 << 2)  # FIFO mode, as memory-to-memory needs on DMA2
    _stream(dma, 0, 0, DIR_M2M | MINC | (1 << 9), 8, RAM_BASE, RAM_BASE + 0x40)
    assert bytes(sv.ram[0x40:0x48]) == bytes(8) and dma.read(S(0) + NDTR, 4) == 8
    assert any("memory-to-memory" in line for line in sv.logs)
