"""DMA1 and DMA2 controllers (0x4002_6000, 0x4002_6400, RM0410 chapter 8): 8 streams each,
channel selection, FIFO. The two are one model with their own address, clock gate, stream
interrupts and request mapping (:class:`Dma1`, :class:`Dma2`); only DMA2 does
memory-to-memory (RM0410 ch. 8: a DMA1 stream set to it is logged and moves nothing).

Modelled: LISR/HISR, LIFCR/HIFCR, per stream SxCR/SxNDTR/SxPAR/SxM0AR/SxM1AR/SxFCR;
peripheral-to-memory, memory-to-peripheral and memory-to-memory; PSIZE/MSIZE with the
FIFO's packing (direct mode: MSIZE is taken as PSIZE), PINC/MINC/PINCOS; circular and
double-buffer mode (CT toggles, the other target is used next); the flags TCIF, HTIF,
TEIF, FEIF (an MBURST/FTH combination RM0410 forbids, at EN: the stream stays off), and
the stream interrupts (DMA2: IRQ 56..60, 68..70; DMA1: 11..17, 47). EN clears when a normal transfer ends or on an
error. Writes to SxCR (but EN), SxNDTR, SxPAR, SxM0AR and SxFCR are ignored while EN is
set (SxM0AR/SxM1AR: the target not in use stays writable in double-buffer mode). The
clock gates are RCC_AHB1ENR.DMA1EN/DMA2EN (bits 21, 22).

Data moves through the bus-master port (``services.bus_master()``): memory with
``read``/``write``, a peripheral register at SxPAR with ``read_io``/``write_io`` (one
access of PSIZE; the machine's port dispatches to the device). A :class:`BusError` of
the port sets TEIF and disables the stream, as a bus error does on the chip.

Timing: a transfer happens at once, when the request arrives (memory-to-memory: at EN,
all items). Burst beats, arbitration delays and the FIFO's over/underrun (FEIF at run
time, DMEIF) cannot happen in this model and are never flagged. PFCTRL (peripheral flow
control, SDMMC only) is logged and treated as DMA flow control. A request that stays high
is served BATCH items at a time, the next batch BATCH cycles later; a LISR/HISR read
while a normal transfer waits for its next batch is a poll wait (``services.poll_wait``:
the read stalls to that batch instead of the firmware spinning through the gap).

The request interface for peripherals (SPI1, USART3): a peripheral drives a named DMA
request line, level-sensitive, with ``services.device("dma2").request(line, active)``
(``KeyError`` from ``services.device`` if the board has no such DMA: the peripheral then
does nothing). Lines are named as in RM0410's request mapping tables, e.g. DMA2's
"SPI1_RX" (raised while SPI_CR2.RXDMAEN and RXNE) and "SPI1_TX" (while TXDMAEN, SPE and
TXE), DMA1's "USART3_RX" (CR3.DMAR and RXNE) and "USART3_TX" (CR3.DMAT and TXE). An
enabled stream whose CHSEL selects the line transfers one item per serviced request
while the line stays high; the peripheral lowers it from inside the DMA's register
access (a DR read empties the FIFO). Requests raised while the DMA is transferring are
served after the current item, highest priority first (PL, then the lower stream).
A full-duplex peripheral (SPI1) may register its RX/TX pair (:meth:`DmaController.duplex`): its
streams then move blocks with the same outcome as items (twin/periph/dma_duplex.py).

Owns: the DMA controllers' registers, streams and request lines. Must not touch: the machine beyond its
Services (memory only through the bus-master port).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from twin.device import BusError, Device, ResetKind, merge_word
from twin.periph.base import ClockGate
from twin.periph.dma_duplex import DuplexPair, duplex_segment
from twin.periph.dma_requests import DMA1_REQUESTS, DMA2_REQUESTS
from twin.periph.dma_stream import (
    CIRC,
    CT,
    DBM,
    EN,
    FCR_DMDIS,
    FEIF,
    HTIF,
    M2M,
    M2P,
    MINC,
    P2M,
    PFCTRL,
    PINC,
    PINCOS,
    TCIF,
    TEIF,
    Stream,
    burst_config_valid,
)

LISR, HISR, LIFCR, HIFCR = 0x00, 0x04, 0x08, 0x0C
STREAM0, STREAM_STRIDE = 0x10, 0x18
CR, NDTR, PAR, M0AR, M1AR, FCR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
#: bit position of stream (x & 3)'s flag group in LISR (streams 0-3) / HISR (4-7)
GROUP_SHIFT = (0, 6, 16, 22)


def lines_of(requests: dict[str, list[tuple[int, int]]]) -> dict[tuple[int, int], tuple[str, ...]]:
    """(stream, channel) → the request lines it answers, from line → [(stream, channel)]."""
    out: dict[tuple[int, int], tuple[str, ...]] = {}
    for line, targets in requests.items():
        for t in targets:
            out[t] = (*out.get(t, ()), line)
    return out


#: items served per call before the rest waits for a scheduled continuation (a request
#: that never drops, e.g. a circular stream on an always-empty TX register, must not
#: starve the CPU); the continuation comes after as many core cycles as items served
BATCH = 1024


class DmaController(Device):
    """A DMA controller with its eight streams; peripherals drive request lines (see the
    module doc). Subclasses give the address, clock gate, interrupts and request mapping."""

    name = "dma"
    base = 0
    size = 0x400
    #: RCC register offset and bit of the controller's clock enable
    CLOCK = (0x30, 0)
    #: NVIC lines of Stream0..7
    IRQS: tuple[int, ...] = ()
    #: request mapping (RM0410): line → [(stream, channel)]
    REQUESTS: ClassVar[dict[str, list[tuple[int, int]]]] = {}
    #: whether the controller does memory-to-memory (DMA2 only)
    M2M = True

    def __init__(self) -> None:
        super().__init__()
        self.lines_of = lines_of(self.REQUESTS)
        self.streams = [Stream(i, self.IRQS[i]) for i in range(8)]
        self.lines: dict[str, bool] = {}
        self.gate = ClockGate(self, *self.CLOCK)
        self._busy = False
        self._later: object | None = None
        self.pairs: list[DuplexPair] = []

    def reset(self, kind: str) -> None:
        if kind == ResetKind.CORE:
            return
        for s in self.streams:
            if s.irq_level:
                self._set_irq(s, False)
            s.reset()
        self.lines = {}
        if self._later is not None and self.services is not None:
            self.services.cancel(self._later)
        self._later = None

    # ------------------------------------------------------------------ registers
    def read(self, offset: int, size: int) -> int:
        if not self.gate.enabled():
            return 0
        aligned = offset & ~3
        if self._later is not None and aligned in (LISR, HISR) and self._transfer_pending():
            # polling the flags while a transfer waits for its next batch: only that batch
            # changes them (the read stalls to it, or the slice jumps there)
            poll_wait = getattr(self.services, "poll_wait", None)
            if poll_wait is not None:
                poll_wait(self._later)
        value = self._read_reg(aligned)
        return (value >> ((offset & 3) * 8)) & ((1 << (size * 8)) - 1)

    def _transfer_pending(self) -> bool:
        """A normal (not circular, not double-buffer) transfer is being served."""
        return any(s.cr & EN and not s.cr & (CIRC | DBM) and self.requested(s) for s in self.streams)

    def _read_reg(self, offset: int) -> int:
        if offset in (LISR, HISR):
            first = 0 if offset == LISR else 4
            value = 0
            for k in range(4):
                value |= self.streams[first + k].flags << GROUP_SHIFT[k]
            return value
        if offset in (LIFCR, HIFCR):
            return 0
        s, reg = self._stream_reg(offset)
        if s is None:
            self.unmodelled(offset, "read")
            return 0
        if reg == CR:
            return s.cr
        if reg == NDTR:
            return s.ndtr
        if reg == PAR:
            return s.par
        if reg == M0AR:
            return s.m0ar
        if reg == M1AR:
            return s.m1ar
        return (s.fcr & ~(7 << 3)) | s.fifo_status()

    def write(self, offset: int, size: int, value: int) -> None:
        if not self.gate.enabled():
            return
        aligned = offset & ~3
        if size != 4:
            value = merge_word(
                self._read_reg(aligned) if aligned not in (LIFCR, HIFCR) else 0, offset, size, value
            )
        if aligned in (LIFCR, HIFCR):
            first = 0 if aligned == LIFCR else 4
            for k in range(4):
                s = self.streams[first + k]
                clear = (value >> GROUP_SHIFT[k]) & 0x3D
                if clear & s.flags:
                    s.flags &= ~clear
                    self._update_irq(s)
            return
        if aligned in (LISR, HISR):
            return  # read-only
        s, reg = self._stream_reg(aligned)
        if s is None:
            self.unmodelled(aligned, "write")
            return
        if reg == CR:
            self._write_cr(s, value)
        elif reg == M0AR and not (s.enabled and not (s.cr & DBM and s.cr & CT)):
            s.m0ar = value
        elif reg == M1AR and not (s.enabled and s.cr & DBM and s.cr & CT):
            s.m1ar = value
        elif s.enabled:
            return  # SxNDTR, SxPAR, SxFCR are locked while EN = 1
        elif reg == NDTR:
            s.ndtr = value & 0xFFFF
        elif reg == PAR:
            s.par = value
        elif reg == FCR:
            s.fcr = (s.fcr & (7 << 3)) | (value & 0x87)

    def _stream_reg(self, offset: int) -> tuple[Stream | None, int]:
        if offset < STREAM0 or offset >= STREAM0 + 8 * STREAM_STRIDE:
            return None, 0
        idx, reg = divmod(offset - STREAM0, STREAM_STRIDE)
        return self.streams[idx], reg

    def _write_cr(self, s: Stream, value: int) -> None:
        if s.enabled:
            if not value & EN:  # software disable: the stream stops, TCIF as on the chip
                s.cr &= ~EN
                s.flags |= TCIF
                self._flush_fifo(s)
                self._update_irq(s)
            return
        s.cr = value & 0x1FEFFFFF
        if not value & EN:
            return
        if s.cr & PFCTRL:
            self._log_once(s, "PFCTRL (peripheral flow control) is not modelled: DMA flow control used")
        if s.direction == M2M and self.M2M and (s.cr & (CIRC | DBM) or not s.fcr & FCR_DMDIS):
            # RM0410: circular and direct modes are not allowed in memory-to-memory mode
            self._log_once(s, "memory-to-memory needs FIFO mode, without circular/double-buffer")
        mburst = (s.cr >> 23) & 3
        if s.fcr & FCR_DMDIS and not burst_config_valid(s.msize, mburst, s.fcr & 3):
            s.cr &= ~EN
            s.flags |= FEIF
            self._update_irq(s)
            return
        s.start()
        if s.ndtr == 0:
            s.cr &= ~EN  # nothing to do (the chip ends at once)
            s.flags |= TCIF
            self._update_irq(s)
            return
        if s.direction == M2M and not self.M2M:
            self._log_once(s, "memory-to-memory is DMA2's only (RM0410 ch. 8): nothing is moved")
        elif s.direction == M2M:
            self._run_m2m(s)
        else:
            self._service()

    def _log_once(self, s: Stream, msg: str) -> None:
        key = 0x1000 + s.index * 8 + hash(msg) % 8
        if key not in self._warned and self.services is not None:
            self._warned.add(key)
            self.services.log(f"stream {s.index}: {msg}")

    # ------------------------------------------------------------------ requests
    def request(self, line: str, active: bool) -> None:
        """A peripheral drives DMA request ``line`` (see the module doc)."""
        if self.lines.get(line, False) == bool(active):
            return
        self.lines[line] = bool(active)
        if active:
            self._service()

    def duplex(
        self,
        rx_line: str,
        tx_line: str,
        address: int,
        exchange: Callable[[bytes], bytes | None],
        unread: Callable[[bytes], None],
    ) -> None:
        """A full-duplex peripheral registers its data register at ``address``: a TX item
        written there makes the RX item of ``rx_line`` at once (SPI). ``exchange(tx)``
        clocks a block out and returns what came in, as TX/RX item pairs would (None: not
        now, items then); ``unread(rx)`` hands back frames no RX item took."""
        self.pairs = [p for p in self.pairs if (p.rx_line, p.tx_line) != (rx_line, tx_line)]
        self.pairs.append(DuplexPair(rx_line, tx_line, address, exchange, unread))

    def line_serves(self, line: str, s: Stream) -> bool:
        """Whether stream ``s`` (enabled or not) answers request ``line``."""
        return s.direction != M2M and line in self.lines_of.get((s.index, s.channel), ())

    def requested(self, s: Stream) -> bool:
        """An enabled peripheral stream whose request line is high."""
        if not s.cr & EN or s.direction == M2M:
            return False
        lines = self.lines
        return any(lines.get(line, False) for line in self.lines_of.get((s.index, s.channel), ()))

    def _service(self) -> None:
        if self._busy or not self.gate.enabled():
            return
        self._busy = True
        try:
            budget = BATCH
            while budget > 0:
                best = None
                for s in self.streams:
                    if (
                        s.cr & EN
                        and self.requested(s)
                        and (best is None or (s.priority, -s.index) > (best.priority, -best.index))
                    ):
                        best = s
                if best is None:
                    return
                done = duplex_segment(self, best, budget) if self.pairs else 0
                if not done:
                    self._one_item(best)
                    done = 1
                budget -= done
            if self._later is None and self.services is not None:
                self._later = self.services.schedule(BATCH, self._continue)
        finally:
            self._busy = False

    def _continue(self) -> None:
        self._later = None
        self._service()

    # ------------------------------------------------------------------ transfers
    def port(self):
        """The bus-master port (memory, and peripherals at SxPAR)."""
        return self.services.bus_master()  # type: ignore[union-attr]

    def _pread(self, address: int, size: int) -> bytes:
        port = self.port()
        read_io = getattr(port, "read_io", None)
        if read_io is None:
            return port.read(address, size)
        return read_io(address, size).to_bytes(size, "little")

    def _pwrite(self, address: int, data: bytes) -> None:
        port = self.port()
        write_io = getattr(port, "write_io", None)
        if write_io is None:
            port.write(address, data)
        else:
            write_io(address, len(data), int.from_bytes(data, "little"))

    def _pstep(self, s: Stream) -> int:
        if not s.cr & PINC:
            return 0
        return 4 if s.cr & PINCOS else s.psize

    def _one_item(self, s: Stream) -> None:
        """One peripheral-side item (PSIZE) of a P2M or M2P transfer."""
        psize, msize = s.psize, s.msize
        try:
            if s.direction == P2M:
                s.fifo += self._pread(s.pptr, psize)
                s.pptr += self._pstep(s)
                while len(s.fifo) >= msize:
                    self._mem_write(s, bytes(s.fifo[:msize]))
                    del s.fifo[:msize]
            else:
                while len(s.fifo) < psize:
                    s.fifo += self.port().read(s.mptr, msize)
                    s.mptr += msize if s.cr & MINC else 0
                data = bytes(s.fifo[:psize])
                del s.fifo[:psize]
                self._pwrite(s.pptr, data)
                s.pptr += self._pstep(s)
        except BusError as exc:
            self.transfer_error(s, exc)
            return
        self.count(s)

    def _mem_write(self, s: Stream, data: bytes) -> None:
        self.port().write(s.mptr, data)
        if s.cr & MINC:
            s.mptr += len(data)

    def _run_m2m(self, s: Stream) -> None:
        """Memory-to-memory: source SxPAR, destination SxM0AR, all items at once."""
        psize, msize = s.psize, s.msize
        try:
            while s.enabled and s.ndtr:
                s.fifo += self.port().read(s.pptr, psize)
                s.pptr += self._pstep(s)
                while len(s.fifo) >= msize:
                    self._mem_write(s, bytes(s.fifo[:msize]))
                    del s.fifo[:msize]
                self.count(s)
        except BusError as exc:
            self.transfer_error(s, exc)

    def count(self, s: Stream, n: int = 1) -> None:
        """``n`` items done (never past the end of the transfer): NDTR, HTIF, TCIF, reload."""
        before = s.ndtr
        s.ndtr -= n
        if s.start_ndtr > 1 and s.ndtr <= s.start_ndtr // 2 < before:
            s.flags |= HTIF
        if s.ndtr == 0:
            self._flush_fifo(s)
            s.flags |= TCIF
            if s.cr & DBM:
                s.cr ^= CT
                s.ndtr = s.start_ndtr
                s.pptr = s.par
                s.mptr = s.memory_target()
            elif s.cr & CIRC:
                s.ndtr = s.start_ndtr
                s.pptr = s.par
                s.mptr = s.m0ar
            else:
                s.cr &= ~EN
        self._update_irq(s)

    def _flush_fifo(self, s: Stream) -> None:
        """End of a transfer: bytes left in the FIFO (P2M packing) go to memory."""
        if s.direction == M2P or not s.fifo:
            s.fifo = bytearray()
            return
        data, s.fifo = bytes(s.fifo), bytearray()
        try:
            self.port().write(s.mptr, data)
            s.mptr += len(data) if s.cr & MINC else 0
        except BusError as exc:
            self.transfer_error(s, exc)

    def transfer_error(self, s: Stream, exc: BusError) -> None:
        """A bus error of the port: TEIF, the stream stops."""
        s.flags |= TEIF
        s.cr &= ~EN
        s.fifo = bytearray()
        if self.services is not None:
            self.services.log(f"stream {s.index}: transfer error, stream disabled ({exc})")
        self._update_irq(s)

    # ------------------------------------------------------------------ interrupts
    def _update_irq(self, s: Stream) -> None:
        level = s.irq_wanted()
        if level != s.irq_level:
            self._set_irq(s, level)

    def _set_irq(self, s: Stream, level: bool) -> None:
        s.irq_level = level
        if self.services is not None:
            self.services.set_irq(s.irq, level)

    def snapshot(self) -> dict[str, object]:
        return {
            f"s{s.index}": {"cr": s.cr, "ndtr": s.ndtr, "par": s.par, "m0ar": s.m0ar, "flags": s.flags}
            for s in self.streams
            if s.cr or s.flags
        }


class Dma2(DmaController):
    """DMA2 (0x4002_6400): SPI1/4/5/6's and USART1/6's requests, memory-to-memory."""

    name = "dma2"
    base = 0x40026400
    CLOCK = (0x30, 22)  # RCC_AHB1ENR.DMA2EN
    IRQS = (56, 57, 58, 59, 60, 68, 69, 70)  # DMA2_Stream0..7
    #: RM0410 table "DMA2 request mapping", the lines a twin peripheral drives
    REQUESTS: ClassVar[dict[str, list[tuple[int, int]]]] = DMA2_REQUESTS


class Dma1(DmaController):
    """DMA1 (0x4002_6000): USART2/3's and UART4/5/7/8's requests (USART3: the ST-LINK virtual
    COM port), SPI2/3's; no memory-to-memory."""

    name = "dma1"
    base = 0x40026000
    CLOCK = (0x30, 21)  # RCC_AHB1ENR.DMA1EN
    IRQS = (11, 12, 13, 14, 15, 16, 17, 47)  # DMA1_Stream0..7
    #: RM0410 table "DMA1 request mapping", the lines a twin peripheral drives (ST's
    #: USART_Communication_TxRx_DMA: TX on stream 3 channel 4, RX on stream 1 channel 4)
    REQUESTS: ClassVar[dict[str, list[tuple[int, int]]]] = DMA1_REQUESTS
    M2M = False
