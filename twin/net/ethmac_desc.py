"""The ETH DMA's descriptor engines: transmit and receive lists in RAM (RM0410 §42.6.7-8).

Both directions handle normal (4-word) and enhanced (8-word, DMABMR.EDE) descriptors in
ring mode (next = this + descriptor size + DMABMR.DSL words; TER/RER wraps to the list
address) and chained mode (TCH/RCH: word 3 is the next descriptor; the end-of-ring bit
still wins). All accesses go through the bus-master port: a descriptor or buffer the DMA
cannot reach raises :class:`DmaBusFault` (the DMA then sets FBES and stops that engine).

Transmit: a frame runs from the descriptor with FS to the one with LS, over any number of
descriptors, each with up to two buffers (TBS1/TBS2; a size of 0 skips the buffer).
Intermediate descriptors are handed back (OWN cleared) as the DMA goes; the status goes
into the LS descriptor: IHE/IPE from checksum insertion (CIC of the FS descriptor,
store-and-forward only), what the MAC reports (NC/LCA without carrier in half duplex,
JT for an over-long frame, VF), ES as their summary. TS is raised when that descriptor
has IC. A descriptor the DMA does not own suspends the process (TBUS); in the middle of a
frame the DMA keeps the frame and waits (store-and-forward) or aborts it with an
underflow (UF, TUS; threshold mode). A frame flushed by DMAOMR.FTF or a stop gets FF.

Receive: a frame fills the buffers of as many descriptors as it needs (an unaligned
buffer address loses the bytes before it, RM0410). Closed descriptors carry FS on the
first, LS and the status on the last, and FL (the frame length; in intermediate
descriptors, the bytes so far). When the next descriptor is not the DMA's in the middle
of a frame the frame is cut there with DE (and LS). After each frame the DMA fetches the
next descriptor at once and suspends (RBUS) when it is the CPU's. RS is raised unless
the last descriptor has DIC. Enhanced descriptors get the extended status in RDES4.

Owns: walking the lists and the frame being assembled for transmission.
Must not touch: registers other than the DMA's (it works on an ``EthDma``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.device import BusError
from twin.net.ethmac_coe import insert_checksums

if TYPE_CHECKING:
    from twin.net.ethmac_dma import EthDma

OWN = 1 << 31
# TDES0
T_IC, T_LS, T_FS, T_TER, T_TCH = 1 << 30, 1 << 29, 1 << 28, 1 << 21, 1 << 20
T_ES, T_FF, T_UF = 1 << 15, 1 << 13, 1 << 1
T_ERRORS = 0x17F06  # IHE, JT, FF, IPE, LCA, NC, LCO, EC, ED, UF
T_CONTROL = 0x7FFC0000  # bits the DMA leaves as the CPU wrote them (OWN cleared)
# RDES0 / RDES1
R_ES, R_DE, R_FS, R_LS, R_ESA = 1 << 15, 1 << 14, 1 << 9, 1 << 8, 1 << 0
R_DIC, R_RER, R_RCH = 1 << 31, 1 << 15, 1 << 14

TS, TUS, RS, ETS = 1 << 0, 1 << 5, 1 << 6, 1 << 10
MAX_FRAME = 16384  # the DMA stops gathering beyond this (the MAC cuts at 2048 or 16384)
MAX_STEPS = 65536  # descriptors per run: a guard, since every step hands one back


class DmaBusFault(Exception):
    """A DMA access the bus refused.

    ``ebs`` is DMASR.EBS: bit 0 transmit DMA, bit 1 read transfer, bit 2 descriptor access.
    """

    def __init__(self, ebs: int, what: str) -> None:
        super().__init__(what)
        self.ebs = ebs


class _Engine:
    def __init__(self, dma: EthDma) -> None:
        self.dma = dma
        self.frames = 0

    def _read(self, address: int, length: int, ebs: int) -> bytes:
        try:
            return self.dma.port_of().read(address, length)
        except BusError as e:
            raise DmaBusFault(ebs, str(e)) from None

    def _write(self, address: int, data: bytes, ebs: int) -> None:
        try:
            self.dma.port_of().write(address, data)
        except BusError as e:
            raise DmaBusFault(ebs, str(e)) from None

    def _words(self, address: int, ebs: int) -> list[int]:
        raw = self._read(address, 16, ebs)
        return [int.from_bytes(raw[i : i + 4], "little") for i in range(0, 16, 4)]

    def _next(self, address: int, wrap: bool, chained: bool, word3: int, base: int) -> int:
        if wrap:
            return base
        if chained:
            return word3 & ~3
        return (address + (32 if self.dma.enhanced else 16) + self.dma.skip_bytes) & 0xFFFFFFFF


class TxEngine(_Engine):
    """The transmit list walker."""

    EBS_DESC_READ, EBS_DESC_WRITE, EBS_DATA_READ = 0b111, 0b101, 0b011

    def reset(self) -> None:
        self.frame: bytearray | None = None
        self.first_w0 = 0
        self.last: tuple[int, int] | None = None  # (address, TDES0) of the frame's last closed descriptor
        self.frames = 0

    def run(self) -> None:
        """Process owned descriptors until one is the CPU's (then suspend)."""
        d = self.dma
        for _ in range(MAX_STEPS):
            address = d.tx_cur
            d.chtdr = address
            w = self._words(address, self.EBS_DESC_READ)
            if not w[0] & OWN:
                self._suspend()
                return
            if self.frame is None:
                if not w[0] & T_FS:
                    d.warn_once("nofs", f"TX descriptor 0x{address:08X} starts a frame without FS")
                self.frame, self.first_w0 = bytearray(), w[0]
            self._gather(w)
            if w[0] & T_LS:
                self._finish(address, w[0])
            else:
                self._write(address, (w[0] & ~OWN).to_bytes(4, "little"), self.EBS_DESC_WRITE)
                self.last = (address, w[0] & ~OWN)
            d.tx_cur = self._next(address, bool(w[0] & T_TER), bool(w[0] & T_TCH), w[3], d.tdlar)
        d.warn_once("txsteps", f"TX: more than {MAX_STEPS} descriptors in one poll; suspended")
        self._suspend()

    def _gather(self, w: list[int]) -> None:
        assert self.frame is not None
        chained = bool(w[0] & T_TCH)
        for address, size in ((w[2], w[1] & 0x1FFF), (w[3], 0 if chained else w[1] >> 16 & 0x1FFF)):
            if size and len(self.frame) <= MAX_FRAME:
                self.dma.chtbar = address
                self.frame += self._read(address, size, self.EBS_DATA_READ)

    def _finish(self, address: int, w0: int) -> None:
        d = self.dma
        assert self.frame is not None
        frame, first = self.frame, self.first_w0
        self.frame, self.last = None, None
        status = 0
        cic = first >> 22 & 3
        if cic and frame and d.omr & (1 << 21):  # TSF: insertion needs the whole frame in the FIFO
            status |= insert_checksums(frame, cic)
        elif cic and frame:
            d.warn_once("cic", "TX checksum insertion needs DMAOMR.TSF (store and forward); bypassed")
        if frame:
            status |= d.send(bytes(frame), first)
        else:
            d.warn_once("empty", f"TX frame of 0 bytes (descriptor 0x{address:08X}): nothing sent")
        if status & T_ERRORS:
            status |= T_ES
        self._write(address, ((w0 & T_CONTROL) | status).to_bytes(4, "little"), self.EBS_DESC_WRITE)
        self.frames += 1
        bits = ETS | (TS if w0 & T_IC else 0) | (1 << 3 if status & (1 << 14) else 0)  # TJTS
        d.set_status(bits)

    def _suspend(self) -> None:
        d = self.dma
        if self.frame is not None and not d.omr & (1 << 21):
            d.log("TX underflow: the next descriptor of a frame is not the DMA's (threshold mode)")
            self._abort(T_UF)
            d.set_status(TUS)
        d.tps = 6
        d.set_status(1 << 2)  # TBUS

    def flush(self) -> None:
        """DMAOMR.FTF or a stop: a frame half gathered is dropped (FF)."""
        if self.frame is not None:
            self._abort(T_FF)

    def _abort(self, bit: int) -> None:
        self.frame = None
        if self.last is not None:
            address, w0 = self.last
            self.last = None
            try:
                self._write(address, (w0 | bit | T_ES).to_bytes(4, "little"), self.EBS_DESC_WRITE)
            except DmaBusFault as fault:
                self.dma.fatal(fault)


class RxEngine(_Engine):
    """The receive list walker."""

    EBS_DESC_READ, EBS_DESC_WRITE, EBS_DATA_WRITE = 0b110, 0b100, 0b000

    def current_owned(self) -> bool:
        """Fetch the current descriptor: is it the DMA's?"""
        self.dma.chrdr = self.dma.rx_cur
        return bool(self._words(self.dma.rx_cur, self.EBS_DESC_READ)[0] & OWN)

    def receive(self, data: bytes, status: int, rdes4: int) -> bool:
        """Write one frame into the list; False (nothing written) when the current
        descriptor is the CPU's. ``status`` holds the MAC's RDES0 bits."""
        d = self.dma
        address = d.rx_cur
        d.chrdr = address
        w = self._words(address, self.EBS_DESC_READ)
        if not w[0] & OWN:
            return False
        pos, first = 0, True
        for _ in range(MAX_STEPS):
            pos = self._fill(w, data, pos)
            if pos >= len(data):
                self._close(address, w, first, len(data), R_LS | status, rdes4)
                self._advance(address, w)
                self._prefetch()
                return True
            nxt = self._after(address, w)
            d.chrdr = nxt
            wn = self._words(nxt, self.EBS_DESC_READ)
            if not wn[0] & OWN or nxt == address:  # no room for the rest: cut the frame here
                d.warn_once("de", "RX frame cut (DE): the next descriptor is not the DMA's")
                self._close(address, w, first, pos, R_LS | R_DE | R_ES | (status & ~R_ESA), None)
                self._advance(address, w)
                d.rx_suspend()
                return True
            self._close(address, w, first, pos, 0, None)
            address, w, first = nxt, wn, False
        d.warn_once("rxsteps", f"RX: a frame needed more than {MAX_STEPS} descriptors")
        return True

    def _fill(self, w: list[int], data: bytes, pos: int) -> int:
        chained = bool(w[1] & R_RCH)
        for address, size in ((w[2], w[1] & 0x1FFF), (w[3], 0 if chained else w[1] >> 16 & 0x1FFF)):
            room = size - (address & 3)
            if room <= 0 or pos >= len(data):
                continue
            chunk = data[pos : pos + room]
            self.dma.chrbar = address
            self._write(address, chunk, self.EBS_DATA_WRITE)
            pos += len(chunk)
        return pos

    def _close(
        self, address: int, w: list[int], first: bool, length: int, bits: int, rdes4: int | None
    ) -> None:
        w0 = (length & 0x3FFF) << 16 | (R_FS if first else 0) | bits
        self._write(address, w0.to_bytes(4, "little"), self.EBS_DESC_WRITE)
        if rdes4 is not None and self.dma.enhanced and bits & R_ESA:
            self._write(address + 16, rdes4.to_bytes(4, "little"), self.EBS_DESC_WRITE)

    def _after(self, address: int, w: list[int]) -> int:
        return self._next(address, bool(w[1] & R_RER), bool(w[1] & R_RCH), w[3], self.dma.rdlar)

    def _advance(self, address: int, w: list[int]) -> None:
        self.dma.rx_cur = self._after(address, w)
        self.frames += 1
        if not w[1] & R_DIC:
            self.dma.set_status(RS)

    def _prefetch(self) -> None:
        """After a frame the DMA fetches the next descriptor; the CPU's → suspended (RBUS)."""
        if not self.current_owned():
            self.dma.rx_suspend()
