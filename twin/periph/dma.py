"""DMA2 controller (0x4002_6400, RM0410 chapter 8): 8 streams, channel selection, FIFO.

Modelled: LISR/HISR, LIFCR/HIFCR, per stream SxCR/SxNDTR/SxPAR/SxM0AR/SxM1AR/SxFCR;
peripheral-to-memory, memory-to-peripheral and memory-to-memory; PSIZE/MSIZE with the
FIFO's packing (direct mode: MSIZE is taken as PSIZE), PINC/MINC/PINCOS; circular and
double-buffer mode (CT toggles, the other target is used next); the flags TCIF, HTIF,
TEIF, FEIF (an MBURST/FTH combination RM0410 forbids, at EN: the stream stays off), and
the stream interrupts (IRQ 56..60, 68..70). EN clears when a normal transfer ends or on an
error. Writes to SxCR (but EN), SxNDTR, SxPAR, SxM0AR and SxFCR are ignored while EN is
set (SxM0AR/SxM1AR: the target not in use stays writable in double-buffer mode). The
clock gate is RCC_AHB1ENR.DMA2EN (bit 22).

Data moves through the bus-master port (``services.bus_master()``): memory with
``read``/``write``, a peripheral register at SxPAR with ``read_io``/``write_io`` (one
access of PSIZE; the machine's port dispatches to the device). A :class:`BusError` of
the port sets TEIF and disables the stream, as a bus error does on the chip.

Timing: a transfer happens at once, when the request arrives (memory-to-memory: at EN,
all items). Burst beats, arbitration delays and the FIFO's over/underrun (FEIF at run
time, DMEIF) cannot happen in this model and are never flagged. PFCTRL (peripheral flow
control, SDMMC only) is logged and treated as DMA flow control.

The request interface for peripherals (SPI1 and others): a peripheral drives a named DMA
request line, level-sensitive, with ``services.device("dma2").request(line, active)``
(``KeyError`` from ``services.device`` if the board has no DMA2: the peripheral then does
nothing). Lines are named as in RM0410's DMA2 request mapping table, e.g. "SPI1_RX"
(raised while SPI_CR2.RXDMAEN and RXNE) and "SPI1_TX" (while TXDMAEN, SPE and TXE). An
enabled stream whose CHSEL selects the line transfers one item per serviced request
while the line stays high; the peripheral lowers it from inside the DMA's register
access (a DR read empties the FIFO). Requests raised while the DMA is transferring are
served after the current item, highest priority first (PL, then the lower stream).

Owns: DMA2's registers, streams and request lines. Must not touch: the machine beyond its
Services (memory only through the bus-master port).
"""

from __future__ import annotations

from twin.device import BusError, Device, ResetKind, merge_word
from twin.periph.base import ClockGate

BASE = 0x40026400
LISR, HISR, LIFCR, HIFCR = 0x00, 0x04, 0x08, 0x0C
STREAM0, STREAM_STRIDE = 0x10, 0x18
CR, NDTR, PAR, M0AR, M1AR, FCR = 0x00, 0x04, 0x08, 0x0C, 0x10, 0x14
FCR_RESET = 0x00000021

EN, DMEIE, TEIE, HTIE, TCIE, PFCTRL = 1 << 0, 1 << 1, 1 << 2, 1 << 3, 1 << 4, 1 << 5
CIRC, PINC, MINC, PINCOS, DBM, CT = 1 << 8, 1 << 9, 1 << 10, 1 << 15, 1 << 18, 1 << 19
FCR_DMDIS, FCR_FEIE = 1 << 2, 1 << 7
P2M, M2P, M2M = 0, 1, 2

# flag bits inside a stream's 6-bit group of LISR/HISR
FEIF, DMEIF, TEIF, HTIF, TCIF = 1 << 0, 1 << 2, 1 << 3, 1 << 4, 1 << 5
#: bit position of stream (x & 3)'s flag group in LISR (streams 0-3) / HISR (4-7)
GROUP_SHIFT = (0, 6, 16, 22)
#: NVIC lines of DMA2_Stream0..7 (STM32F767 vector table)
IRQS = (56, 57, 58, 59, 60, 68, 69, 70)
#: RCC_AHB1ENR.DMA2EN
CLOCK = (0x30, 22)

#: DMA2 request mapping (RM0410 table "DMA2 request mapping"): line → [(stream, channel)]
REQUESTS: dict[str, list[tuple[int, int]]] = {
    "SPI1_RX": [(0, 3), (2, 3)],
    "SPI1_TX": [(3, 3), (5, 3)],
}

SIZES = (1, 2, 4, 4)
#: items served per call before the rest waits for a scheduled continuation (a request
#: that never drops, e.g. a circular stream on an always-empty TX register, must not
#: starve the CPU); the continuation comes after as many core cycles as items served
BATCH = 1024  # PSIZE/MSIZE encodings (0b11 reserved: treated as word)


class Stream:
    """One stream's registers and its transfer state (current addresses, FIFO bytes)."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.irq = IRQS[index]
        self.reset()

    def reset(self) -> None:
        self.cr = 0
        self.ndtr = 0
        self.par = 0
        self.m0ar = 0
        self.m1ar = 0
        self.fcr = FCR_RESET
        self.flags = 0
        self.irq_level = False
        self.start_ndtr = 0
        self.pptr = 0
        self.mptr = 0
        self.fifo = bytearray()

    @property
    def enabled(self) -> bool:
        return bool(self.cr & EN)

    @property
    def channel(self) -> int:
        return (self.cr >> 25) & 0xF

    @property
    def direction(self) -> int:
        return (self.cr >> 6) & 3

    @property
    def psize(self) -> int:
        return SIZES[(self.cr >> 11) & 3]

    @property
    def msize(self) -> int:
        if not self.fcr & FCR_DMDIS:
            return self.psize  # direct mode
        return SIZES[(self.cr >> 13) & 3]

    @property
    def priority(self) -> int:
        return (self.cr >> 16) & 3

    def memory_target(self) -> int:
        return self.m1ar if self.cr & DBM and self.cr & CT else self.m0ar

    def start(self) -> None:
        """EN set: latch the transfer's start state."""
        self.start_ndtr = self.ndtr
        self.pptr = self.par
        self.mptr = self.memory_target()
        self.fifo = bytearray()

    def fifo_status(self) -> int:
        n = len(self.fifo)
        if n == 0:
            return 4 << 3  # FS = 100: empty
        return min(3, n * 4 // 16) << 3  # 000 <1/4, 001 <1/2, 010 <3/4, 011 <full

    def irq_wanted(self) -> bool:
        f, cr = self.flags, self.cr
        return bool(
            (f & TCIF and cr & TCIE)
            or (f & HTIF and cr & HTIE)
            or (f & TEIF and cr & TEIE)
            or (f & DMEIF and cr & DMEIE)
            or (f & FEIF and self.fcr & FCR_FEIE)
        )


def burst_config_valid(msize: int, mburst: int, fth: int) -> bool:
    """RM0410 "FIFO threshold configurations": a memory burst must fit the threshold level
    (FTH 0..3 = 1/4..full of 16 bytes) in whole bursts."""
    if mburst == 0:
        return True
    beats = (1, 4, 8, 16)[mburst]
    burst_bytes = beats * msize
    level = (fth + 1) * 4
    return burst_bytes <= level and level % burst_bytes == 0


class Dma2(Device):
    """DMA2 with its eight streams; peripherals drive request lines (see the module doc)."""

    name = "dma2"
    base = BASE
    size = 0x400

    def __init__(self) -> None:
        super().__init__()
        self.streams = [Stream(i) for i in range(8)]
        self.lines: dict[str, bool] = {}
        self.gate = ClockGate(self, *CLOCK)
        self._busy = False
        self._later: object | None = None

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
        value = self._read_reg(aligned)
        return (value >> ((offset & 3) * 8)) & ((1 << (size * 8)) - 1)

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
        if s.direction == M2M and (s.cr & (CIRC | DBM) or not s.fcr & FCR_DMDIS):
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
        if s.direction == M2M:
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

    def _requested(self, s: Stream) -> bool:
        if not s.enabled or s.direction == M2M:
            return False
        for line, targets in REQUESTS.items():
            if (s.index, s.channel) in targets and self.lines.get(line, False):
                return True
        return False

    def _service(self) -> None:
        if self._busy or not self.gate.enabled():
            return
        self._busy = True
        try:
            for _ in range(BATCH):
                ready = [s for s in self.streams if self._requested(s)]
                if not ready:
                    return
                s = max(ready, key=lambda st: (st.priority, -st.index))
                self._one_item(s)
            if self._later is None and self.services is not None:
                self._later = self.services.schedule(BATCH, self._continue)
        finally:
            self._busy = False

    def _continue(self) -> None:
        self._later = None
        self._service()

    # ------------------------------------------------------------------ transfers
    def _port(self):
        return self.services.bus_master()  # type: ignore[union-attr]

    def _pread(self, address: int, size: int) -> bytes:
        port = self._port()
        read_io = getattr(port, "read_io", None)
        if read_io is None:
            return port.read(address, size)
        return read_io(address, size).to_bytes(size, "little")

    def _pwrite(self, address: int, data: bytes) -> None:
        port = self._port()
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
                    s.fifo += self._port().read(s.mptr, msize)
                    s.mptr += msize if s.cr & MINC else 0
                data = bytes(s.fifo[:psize])
                del s.fifo[:psize]
                self._pwrite(s.pptr, data)
                s.pptr += self._pstep(s)
        except BusError as exc:
            self._transfer_error(s, exc)
            return
        self._count(s)

    def _mem_write(self, s: Stream, data: bytes) -> None:
        self._port().write(s.mptr, data)
        if s.cr & MINC:
            s.mptr += len(data)

    def _run_m2m(self, s: Stream) -> None:
        """Memory-to-memory: source SxPAR, destination SxM0AR, all items at once."""
        psize, msize = s.psize, s.msize
        try:
            while s.enabled and s.ndtr:
                s.fifo += self._port().read(s.pptr, psize)
                s.pptr += self._pstep(s)
                while len(s.fifo) >= msize:
                    self._mem_write(s, bytes(s.fifo[:msize]))
                    del s.fifo[:msize]
                self._count(s)
        except BusError as exc:
            self._transfer_error(s, exc)

    def _count(self, s: Stream) -> None:
        s.ndtr -= 1
        if s.ndtr == s.start_ndtr // 2 and s.start_ndtr > 1:
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
            self._port().write(s.mptr, data)
            s.mptr += len(data) if s.cr & MINC else 0
        except BusError as exc:
            self._transfer_error(s, exc)

    def _transfer_error(self, s: Stream, exc: BusError) -> None:
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
