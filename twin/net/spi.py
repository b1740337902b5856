"""STM32F7 SPI (SPI1..SPI6, :data:`INSTANCES`) in master mode, with a pluggable slave.

Modelled: CR1/CR2/SR/DR/CRCPR and the 32-bit RX/TX FIFOs with data packing (a 16-bit
DR access moves two 8-bit frames), FRXTH (RXNE at 8 or 16 bits), FRLVL/FTLVL, OVR
(RX FIFO full: the new frame is lost; cleared by reading DR then SR), MODF (SSM=1 with
SSI=0 in master mode clears MSTR and SPE), LSBFIRST (the slave sees bit-reversed bytes),
RXNEIE/TXEIE/ERRIE on the instance's IRQ (SPI1: 35). Its RCC clock enable (:data:`CLOCKS`) gates the configuration: with the clock off, CR1/CR2
writes are lost (logged once with the fix), so the SPI never runs, as on the chip (where
every access is lost; status reads are not gated here, for speed). Frames are exchanged with
the slave the moment they are written (no baud-rate timing), so BSY always reads 0 and TXE 1. Not modelled: CRC
calculation, I2S, slave mode.

DMA requests (CR2.RXDMAEN/TXDMAEN) drive the request lines "SPIn_RX" (RXDMAEN and RXNE)
and "SPIn_TX" (TXDMAEN with SPE and MSTR set: TXE is always 1 here, and a frame written
while disabled would be dropped) of the instance's DMA controller (SPI2/SPI3: DMA1, the
others DMA2) through ``services.device(...).request`` (twin/periph/dma.py documents the
interface); nothing happens on a board without it. DR is registered with the DMA as a
full-duplex pair: with both lines served, the DMA moves
blocks through :meth:`Stm32Spi.dma_exchange` (the slave's ``exchange_block`` when it has
one) where single items would give the same result (twin/periph/dma_duplex.py).

Owns: one SPI's registers and FIFOs. Must not touch: the slave's protocol (it exchanges bytes
with it) or the machine beyond its Services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twin.device import Device, ResetKind
from twin.periph.base import ClockGate

SPI1_BASE = 0x40013000
SPI1_IRQ = 35
#: SPIn → (base, NVIC line, DMA controller) (RM0410 memory map, STM32F767 vector table)
INSTANCES: dict[int, tuple[int, int, str]] = {
    1: (SPI1_BASE, SPI1_IRQ, "dma2"),
    2: (0x40003800, 36, "dma1"),
    3: (0x40003C00, 51, "dma1"),
    4: (0x40013400, 84, "dma2"),
    5: (0x40015000, 85, "dma2"),
    6: (0x40015400, 86, "dma2"),
}
#: SPIn's clock enable (RCC register offset, bit): APB2ENR for SPI1/4/5/6, APB1ENR for SPI2/3
CLOCKS: dict[int, tuple[int, int]] = {
    1: (0x44, 12),
    2: (0x40, 14),
    3: (0x40, 15),
    4: (0x44, 13),
    5: (0x44, 20),
    6: (0x44, 21),
}

CR1, CR2, SR, DR, CRCPR, RXCRCR, TXCRCR, I2SCFGR, I2SPR = (
    0x00,
    0x04,
    0x08,
    0x0C,
    0x10,
    0x14,
    0x18,
    0x1C,
    0x20,
)

CR1_CPHA, CR1_CPOL, CR1_MSTR, CR1_SPE, CR1_LSBFIRST = 1 << 0, 1 << 1, 1 << 2, 1 << 6, 1 << 7
CR1_SSI, CR1_SSM = 1 << 8, 1 << 9
CR2_RXDMAEN, CR2_TXDMAEN = 1 << 0, 1 << 1
CR2_ERRIE, CR2_RXNEIE, CR2_TXEIE, CR2_FRXTH = 1 << 5, 1 << 6, 1 << 7, 1 << 12
CR2_DS_SHIFT = 8
SR_RXNE, SR_TXE, SR_MODF, SR_OVR, SR_BSY = 1 << 0, 1 << 1, 1 << 5, 1 << 6, 1 << 7
CR2_RESET = 0x0700
_ENABLED_MASTER = CR1_SPE | CR1_MSTR
FIFO_BYTES = 4


class SpiSlave(Protocol):
    """A device on the SPI bus (it decides itself whether its chip-select is active).
    It may also have ``exchange_block(mosi: bytes) -> bytes`` and ``exchange2(first,
    second) -> int`` (the MISO bytes, first in the low byte): the same as one
    :meth:`exchange` per byte, in order."""

    def exchange(self, mosi: int) -> int:
        """Clock one byte: receive ``mosi``, return the byte driven on MISO."""


def _reverse8(b: int) -> int:
    return int(f"{b:08b}"[::-1], 2)


_REV = bytes(_reverse8(i) for i in range(256))


class Stm32Spi(Device):
    """SPIn master with FIFOs; every written frame is exchanged with ``slave`` at once."""

    name = "spi1"
    base = SPI1_BASE
    size = 0x400

    def __init__(
        self, slave: SpiSlave | None = None, irq: int | None = None, number: int = 1, unwired: str = ""
    ) -> None:
        super().__init__()
        base, default_irq, self.dma_name = INSTANCES[number]
        self.name, self.base, self.number = f"spi{number}", base, number
        irq = default_irq if irq is None else irq
        self.gate = ClockGate(self, *CLOCKS[number])
        #: with no slave: where the module is instead, said once frames go nowhere
        self.unwired = unwired
        self._unwired_frames = 0
        self.slave = slave
        self._pair = hasattr(slave, "exchange2")  # two frames per call (16-bit DR accesses)
        #: called after every CR1 write (twin/net/spi_pins.py checks the SCK rate)
        self.cr1_listener: Callable[[], None] | None = None
        self.irq = irq
        self._irq_level = False
        self._reset_regs()

    def _reset_regs(self) -> None:
        self.cr1 = 0
        self.cr2 = CR2_RESET
        self.crcpr = 7
        self.rx = bytearray()
        self.ovr = False
        self.modf = False
        self._ovr_armed = False
        self.frames = 0
        self.overruns = 0
        self._dma_levels = (False, False)
        self._dma: object | None = None
        self._cache_cr2()
        self._refresh_fast()

    def _refresh_fast(self) -> None:
        """The polled 16-bit DR fast paths' condition, kept current (CR1/CR2 writes, IRQ
        level changes): no interrupt or DMA line can move, an enabled MSB-first master."""
        quiet = not (self._ie or self._irq_level or self.cr2 & 3)
        cr1 = self.cr1
        self._quiet = quiet
        self._fast16 = bool(
            quiet and self._pair and cr1 & _ENABLED_MASTER == _ENABLED_MASTER and not cr1 & CR1_LSBFIRST
        )

    def _cache_cr2(self) -> None:
        ds = (self.cr2 >> CR2_DS_SHIFT) & 0xF
        self._ds8 = max(ds, 3) + 1 <= 8
        # RXNE: FIFO level >= 8 bits with FRXTH=1, >= 16 bits with FRXTH=0 or 16-bit frames
        self._need = 1 if (self.cr2 & CR2_FRXTH and self._ds8) else 2
        self._ie = self.cr2 & (CR2_RXNEIE | CR2_TXEIE | CR2_ERRIE)
        # SR by RX FIFO level (TXE, RXNE, FRLVL), OVR and MODF added when set
        need = self._need
        self._sr_at = tuple(
            SR_TXE | (SR_RXNE if n >= need else 0) | (min(n, 3) << 9) for n in range(FIFO_BYTES + 1)
        )

    def set_slave(self, slave: SpiSlave | None) -> None:
        """Put ``slave`` on the bus instead of the one there (twin/net/spi_pins.py swaps the
        module and the stand-in for its unrouted pins)."""
        self.slave = slave
        self._pair = hasattr(slave, "exchange2")
        self._refresh_fast()

    def attach(self, services: object) -> None:
        super().attach(services)  # type: ignore[arg-type]
        if hasattr(self.slave, "attach"):
            self.slave.attach(services)  # type: ignore[union-attr]

    def reset(self, kind: str) -> None:
        if kind != ResetKind.CORE:
            self._reset_regs()
            self._update_irq()
            self._update_dma()
        if hasattr(self.slave, "mcu_reset"):
            self.slave.mcu_reset(kind)  # type: ignore[union-attr]

    # ---------------------------------------------------------------- registers
    def _ds_bits(self) -> int:
        ds = (self.cr2 >> CR2_DS_SHIFT) & 0xF
        return max(ds, 3) + 1

    def _sr(self) -> int:
        sr = self._sr_at[len(self.rx)]
        if self.ovr:
            sr |= SR_OVR
        if self.modf:
            sr |= SR_MODF
        return sr

    def read(self, offset: int, size: int) -> int:
        if offset == SR and not self._ovr_armed:
            if self.ovr or self.modf:
                return self._sr()
            return self._sr_at[len(self.rx)]
        if offset == DR:
            rx = self.rx
            if size == 2 and len(rx) >= 2 and self._quiet and not self.ovr:
                value = rx[0] | (rx[1] << 8)  # the polled 16-bit read: no flag, IRQ or DMA line moves
                del rx[:2]
                return value
            return self._read_dr(size)
        if offset == CR1:
            return self.cr1
        if offset == CR2:
            return self.cr2
        if offset == SR:
            value = self._sr()
            if self._ovr_armed:  # OVR clears on a DR read followed by an SR read
                self.ovr = False
                self._ovr_armed = False
                self._update_irq()
            return value
        if offset == DR:
            return self._read_dr(size)
        if offset == CRCPR:
            return self.crcpr
        if offset in (RXCRCR, TXCRCR, I2SCFGR, I2SPR):
            return 0
        self.unmodelled(offset, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == DR:
            if size == 2 and self._fast16 and len(self.rx) <= FIFO_BYTES - 2:
                # the polled 16-bit write: two frames through the slave in one call
                miso = self.slave.exchange2(value & 0xFF, (value >> 8) & 0xFF)  # type: ignore[union-attr]
                self.rx += (miso & 0xFFFF).to_bytes(2, "little")
                self.frames += 2
                return
            self._write_dr(size, value)
            if self._ie or self._irq_level:
                self._update_irq()
            if self.cr2 & 3:
                self._update_dma()
            return
        if offset in (CR1, CR2) and not self.gate.enabled():
            return  # its RCC clock is off: the write is lost, the SPI never runs (logged once)
        if offset == CR1:
            self.cr1 = value & 0xFFFF
            self.modf = False
            if self.cr1 & CR1_MSTR and self.cr1 & CR1_SSM and not self.cr1 & CR1_SSI:
                # Master with internal NSS low: mode fault, the hardware drops MSTR and SPE.
                self.modf = True
                self.cr1 &= ~(CR1_MSTR | CR1_SPE)
                self._log("MODF: master with SSM=1 and SSI=0 (set SSI with SSM)")
            if self.cr1 & CR1_SPE and self.cr1 & (CR1_CPOL | CR1_CPHA):
                self.unmodelled(0x100, "SPI mode other than 0 (the module samples in mode 0)")
            if self.cr1_listener is not None:
                self.cr1_listener()
        elif offset == CR2:
            self.cr2 = value & 0x7FFF
            if ((self.cr2 >> CR2_DS_SHIFT) & 0xF) < 3:
                self.cr2 = (self.cr2 & ~(0xF << CR2_DS_SHIFT)) | CR2_RESET  # not allowed → 8-bit
            self._cache_cr2()
        elif offset == SR:
            pass  # flags are cleared by sequences, not writes (CRCERR w0c not modelled)
        elif offset == DR:
            self._write_dr(size, value)
        elif offset == CRCPR:
            self.crcpr = value & 0xFFFF
        elif offset in (RXCRCR, TXCRCR, I2SCFGR, I2SPR):
            pass
        else:
            self.unmodelled(offset, "write")
        self._update_irq()
        self._update_dma()
        self._refresh_fast()

    def _log(self, msg: str) -> None:
        if self.services is not None:
            self.services.log(msg)  # the machine's log names the device ("spi1: ...")

    # ---------------------------------------------------------------- data path
    def _write_dr(self, size: int, value: int) -> None:
        cr1 = self.cr1
        if not (cr1 & CR1_SPE and cr1 & CR1_MSTR):
            return  # disabled: the TX FIFO is not clocked out; the model drops the write
        two = size > 1 or not self._ds8
        rx = self.rx
        if cr1 & CR1_LSBFIRST or self.slave is None or len(rx) > FIFO_BYTES - 2:
            self._clock(value & 0xFF)  # bit order, no slave, or a frame may overrun
            if two:
                self._clock((value >> 8) & 0xFF)
            return
        exchange = self.slave.exchange
        rx.append(exchange(value & 0xFF) & 0xFF)
        if two:
            rx.append(exchange((value >> 8) & 0xFF) & 0xFF)
            self.frames += 2
        else:
            self.frames += 1

    def _clock(self, mosi: int) -> None:
        lsb = self.cr1 & CR1_LSBFIRST
        out = _REV[mosi] if lsb else mosi
        if self.slave is not None:
            miso = self.slave.exchange(out)
        else:
            miso = 0xFF
            self._nothing_wired()
        if lsb:
            miso = _REV[miso]
        self.frames += 1
        self._receive(miso)

    def _nothing_wired(self) -> None:
        """Frames clocked on an SPI nothing is wired to: said once, with where the module is."""
        self._unwired_frames += 1
        if self._unwired_frames == 16 and self.unwired:
            n = self.number
            self._log(
                f"16 frames clocked with nothing wired to SPI{n} (MISO reads 0xFF); {self.unwired}: "
                f"is yours on SPI{n}? python -m twin --winc-wiring spi={n} (board file: winc.spi: {n})"
            )

    def _receive(self, miso: int) -> None:
        """A frame came in: into the RX FIFO, or lost with OVR when it is full."""
        if len(self.rx) >= FIFO_BYTES:
            if not self.ovr:
                self.overruns += 1
                if self.overruns in (1, 10, 100) or self.overruns % 1000 == 0:
                    self._log(
                        f"OVR: RX FIFO full, received byte lost (read DR before sending more, or clear "
                        f"OVR after a send-only burst); {self.overruns} overrun(s) so far"
                    )
            self.ovr = True
            return
        self.rx.append(miso & 0xFF)

    def _read_dr(self, size: int) -> int:
        if self.ovr:
            self._ovr_armed = True
        if not self.rx:
            return 0
        rx = self.rx
        if size == 1 and self._ds8:
            value = rx[0]
            del rx[0]
        else:
            value = rx[0] | ((rx[1] << 8) if len(rx) > 1 else 0)
            del rx[:2]
        if self._ie or self._irq_level:
            self._update_irq()
        if self.cr2 & 3:
            self._update_dma()
        return value

    def _update_irq(self) -> None:
        if not self._ie and not self._irq_level:
            return
        sr = self._sr()
        level = bool(
            (self.cr2 & CR2_RXNEIE and sr & SR_RXNE)
            or (self.cr2 & CR2_TXEIE and sr & SR_TXE and self.cr1 & CR1_SPE)
            or (self.cr2 & CR2_ERRIE and sr & (SR_OVR | SR_MODF))
        )
        if level != self._irq_level and self.services is not None:
            self._irq_level = level
            self._refresh_fast()
            self.services.set_irq(self.irq, level)

    def _update_dma(self) -> None:
        """Drive the DMA's SPIn_RX/SPIn_TX request lines from RXNE/TXE and CR2's DMA enables."""
        cr2 = self.cr2
        rx = bool(cr2 & CR2_RXDMAEN and len(self.rx) >= self._need)
        tx = bool(cr2 & CR2_TXDMAEN and self.cr1 & CR1_SPE and self.cr1 & CR1_MSTR)
        old = self._dma_levels
        if (rx, tx) == old or self.services is None:
            return
        self._dma_levels = (rx, tx)
        dma = self._dma
        if dma is None:
            try:
                dma = self._dma = self.services.device(self.dma_name)
            except KeyError:
                return
            if hasattr(dma, "duplex"):
                dma.duplex(
                    self._line("RX"), self._line("TX"), self.base + DR, self.dma_exchange, self.dma_unread
                )
        if rx != old[0]:
            dma.request(self._line("RX"), rx)  # type: ignore[attr-defined]
        if tx != old[1]:
            dma.request(self._line("TX"), tx)  # type: ignore[attr-defined]

    def _line(self, way: str) -> str:
        return f"SPI{self.number}_{way}"

    def dma_exchange(self, data: bytes) -> bytes | None:
        """DMA2 serving both request lines (twin/periph/dma_duplex.py): ``data`` clocked out
        frame by frame, each frame read back by an RX item at once; returns what came in.
        None (nothing done) where items would differ: not 8-bit frames with FRXTH = 1, the
        RX FIFO not empty or OVR set, SPI interrupts enabled, not both DMA enables, not an
        enabled master."""
        cr1 = self.cr1
        if (
            not (cr1 & CR1_SPE and cr1 & CR1_MSTR)
            or self._need != 1
            or self.rx
            or self.ovr
            or self._ie
            or self._irq_level
            or self.cr2 & 3 != 3
        ):
            return None
        lsb = cr1 & CR1_LSBFIRST
        out = data.translate(_REV) if lsb else data
        slave = self.slave
        if slave is None:
            got = b"\xff" * len(out)
        elif hasattr(slave, "exchange_block"):
            got = slave.exchange_block(out)
        else:
            got = bytes(slave.exchange(b) & 0xFF for b in out)
        self.frames += len(out)
        return got.translate(_REV) if lsb else got

    def dma_unread(self, got: bytes) -> None:
        """Frames of a :meth:`dma_exchange` that no RX item took (the RX stream stopped):
        into the RX FIFO as they came in (then OVR)."""
        for miso in got:
            self._receive(miso)
        self._update_irq()
        self._update_dma()

    def snapshot(self) -> dict[str, object]:
        return {
            "cr1": self.cr1,
            "cr2": self.cr2,
            "sr": self._sr(),
            "frames": self.frames,
            "overruns": self.overruns,
        }
