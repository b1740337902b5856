"""The ETH DMA's registers, status and process states (+0x1000, RM0410 §42.6 and §42.8.5).

* DMABMR (reset 0x00020101; SR, bit 0, is the MAC-wide soft reset: the device's),
  DMATPDR/DMARPDR poll demands (any value; they resume a suspended process), DMARDLAR /
  DMATDLAR (low two bits read 0; a new list address is taken at the next start, else the
  process goes on where it stopped), DMAOMR (SR/ST start and stop the processes, FTF
  flushes the transmit FIFO and reads back 0), DMAIER, DMAMFBOCR (cleared on read),
  DMARSWTR, DMACHTDR/CHRDR/CHTBAR/CHRBAR (what the engines last used).
* DMASR: status bits 16:0 are write-1-to-clear; NIS/AIS are sticky summaries, set while
  a status bit of their group with its DMAIER enable is set; TPS (20-22) and RPS (17-19)
  show the process states; EBS (23-25) the last fatal bus error; MMCS/PMTS/TSTS (27-29)
  mirror the MAC's interrupt status. IRQ 61 is high while (NIS and NISE) or (AIS and AISE)
  or a MAC interrupt is pending.
* Receive FIFO (2 KiB, as on the F7): frames wait there while the receive process is
  stopped, or suspended with DMAOMR.DFRF set; one that does not fit overflows
  (DMAMFBOCR.MFA, DMASR.ROS). Suspended without DFRF the DMA flushes the frame instead
  (DMAMFBOCR.MFC). A fatal bus error (FBES) stops the failing engine until the next MAC
  soft or RCC reset.

The descriptor walking is in ``twin.net.ethmac_desc``. Processing is instantaneous: a
poll demand or an arriving frame runs the engine to completion inside the access.

Owns: the DMA registers, the process states, the receive FIFO.
Must not touch: MAC registers (it asks the MAC through ``tx_ready``/``send``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twin.device import BusMaster
from twin.net.ethmac_desc import DmaBusFault, RxEngine, TxEngine

BMR, TPDR, RPDR, RDLAR, TDLAR, SR, OMR, IER, MFBOCR, RSWTR = range(0, 0x28, 4)
CHTDR, CHRDR, CHTBAR, CHRBAR = 0x48, 0x4C, 0x50, 0x54
BMR_RESET = 0x00020100  # without SR: the device shows the pending reset in bit 0

TS, TPSS, TBUS, TJTS, ROS, TUS, RS, RBUS = (1 << n for n in range(8))
RPSS, RWTS, ETS, FBES, ERS, AIS, NIS = 1 << 8, 1 << 9, 1 << 10, 1 << 13, 1 << 14, 1 << 15, 1 << 16
NORMAL = TS | TBUS | RS | ERS
ABNORMAL = TPSS | TJTS | ROS | TUS | RBUS | RPSS | RWTS | ETS | FBES
W1C = NORMAL | ABNORMAL | AIS | NIS
NISE, AISE = 1 << 16, 1 << 15

OMR_SR, OMR_ST, OMR_FTF, OMR_TSF, OMR_DFRF = 1 << 1, 1 << 13, 1 << 20, 1 << 21, 1 << 24
OMR_WRITABLE = 0x0731E0DE

# process states (DMASR.TPS / RPS)
T_STOPPED, T_WAITING, T_SUSPENDED = 0, 2, 6
R_STOPPED, R_WAITING, R_SUSPENDED = 0, 3, 4

RX_FIFO_BYTES = 2048


class EthDma:
    """DMA registers + the two processes.

    Args:
        port_of: returns the bus-master port (DMA accesses; the MPU does not apply).
        tx_ready: True while the MAC transmitter takes frames (MACCR.TE, clocks).
        send: ``send(frame, tdes0_of_first_descriptor) -> TDES0 status bits``.
        irq_changed: called after anything that may change the interrupt line.
        log: the device's log function.
    """

    def __init__(
        self,
        port_of: Callable[[], BusMaster],
        tx_ready: Callable[[], bool],
        send: Callable[[bytes, int], int],
        irq_changed: Callable[[], None],
        log: Callable[[str], None],
    ) -> None:
        self.port_of = port_of
        self.tx_ready = tx_ready
        self.send = send
        self.irq_changed = irq_changed
        self.log = log
        self.mac_irq_bits = lambda: 0  # DMASR bits 29:27 from the MAC (set by the device)
        self.tx = TxEngine(self)
        self.rx = RxEngine(self)
        self.reset()

    def reset(self) -> None:
        self.bmr = BMR_RESET
        self.rdlar = self.tdlar = 0
        self.status = 0
        self.omr = 0
        self.ier = 0
        self.mfc = self.mfa = 0
        self.mfc_over = self.mfa_over = False
        self.rswtr = 0
        self.chtdr = self.chrdr = self.chtbar = self.chrbar = 0
        self.tps, self.rps = T_STOPPED, R_STOPPED
        self.ebs = 0
        self.tx_cur = self.rx_cur = 0
        self.tdlar_new = self.rdlar_new = True
        self.tx_dead = self.rx_dead = False
        self.fifo: deque[tuple[bytes, int, int]] = deque()
        self.fifo_bytes = 0
        self.tx.reset()
        self._warned: set[str] = set()

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` the first time ``key`` happens."""
        if key not in self._warned:
            self._warned.add(key)
            self.log(message)

    # ------------------------------------------------------------------ descriptors
    @property
    def enhanced(self) -> bool:
        """DMABMR.EDE: 8-word descriptors."""
        return bool(self.bmr & (1 << 7))

    @property
    def skip_bytes(self) -> int:
        """Ring-mode gap between descriptors (DMABMR.DSL words)."""
        return (self.bmr >> 2 & 0x1F) * 4

    # ------------------------------------------------------------------ status and IRQ
    def set_status(self, bits: int) -> None:
        """Raise DMASR status ``bits``; the summaries follow the enables."""
        self.status |= bits
        self._summaries()

    def _summaries(self) -> None:
        """NIS/AIS: set while an enabled status bit of their group is set; cleared only by
        writing 1 (so clearing the summary first and the cause later leaves it set)."""
        if self.status & NORMAL & self.ier:
            self.status |= NIS
        if self.status & ABNORMAL & self.ier:
            self.status |= AIS
        self.irq_changed()

    def irq_level(self) -> bool:
        """The ETH interrupt line (IRQ 61)."""
        st, ier = self.status, self.ier
        return bool((st & NIS and ier & NISE) or (st & AIS and ier & AISE) or self.mac_irq_bits())

    def fatal(self, fault: DmaBusFault) -> None:
        """A bus error on a descriptor or buffer: FBES, EBS, the engine stops for good."""
        self.ebs = fault.ebs
        if fault.ebs & 1:
            self.tx_dead, self.tps = True, T_STOPPED
        else:
            self.rx_dead, self.rps = True, R_STOPPED
        self.log(
            f"DMA fatal bus error (FBES): {fault}; the {'transmit' if fault.ebs & 1 else 'receive'} DMA stops until a reset"
        )
        self.set_status(FBES)

    # ------------------------------------------------------------------ registers
    def read(self, offset: int) -> int | None:
        """Value of DMA register ``offset`` (from +0x1000), None when not a register."""
        if offset == SR:
            return self.status | self.rps << 17 | self.tps << 20 | self.ebs << 23 | self.mac_irq_bits()
        if offset == MFBOCR:
            value = self.mfc | self.mfc_over << 16 | self.mfa << 17 | self.mfa_over << 28
            self.mfc = self.mfa = 0
            self.mfc_over = self.mfa_over = False
            return value
        simple = {
            BMR: self.bmr,
            TPDR: 0,
            RPDR: 0,
            RDLAR: self.rdlar,
            TDLAR: self.tdlar,
            OMR: self.omr,
            IER: self.ier,
            RSWTR: self.rswtr,
            CHTDR: self.chtdr,
            CHRDR: self.chrdr,
            CHTBAR: self.chtbar,
            CHRBAR: self.chrbar,
        }
        return simple.get(offset)

    def write(self, offset: int, value: int) -> bool:
        """Store to DMA register ``offset``; False when not a register. (DMABMR.SR, the
        soft reset, is the device's.)"""
        if offset == BMR:
            self.bmr = value & 0x07FFFFFE
        elif offset == TPDR:
            self.tx_poll()
        elif offset == RPDR:
            self.rx_poll()
        elif offset in (RDLAR, TDLAR):
            self._list_address(offset, value & ~3)
        elif offset == SR:
            self.status &= ~(value & W1C)
            self._summaries()
        elif offset == OMR:
            self._write_omr(value)
        elif offset == IER:
            self.ier = value & 0x1E7FF
            self._summaries()
        elif offset == RSWTR:
            self.rswtr = value & 0xFF
        elif offset in (MFBOCR, CHTDR, CHRDR, CHTBAR, CHRBAR):
            pass  # read-only
        else:
            return False
        return True

    def _list_address(self, offset: int, value: int) -> None:
        running = self.rps if offset == RDLAR else self.tps
        if running:
            self.warn_once(
                f"dlar{offset}",
                f"DMA{'RDLAR' if offset == RDLAR else 'TDLAR'} written while the process runs: "
                "taken at the next start (RM0410: write it only while stopped)",
            )
        if offset == RDLAR:
            self.rdlar, self.rdlar_new = value, True
        else:
            self.tdlar, self.tdlar_new = value, True

    def _write_omr(self, value: int) -> None:
        old, self.omr = self.omr, value & OMR_WRITABLE & ~OMR_FTF
        if value & OMR_FTF:
            self.tx.flush()
        if (old ^ self.omr) & OMR_ST:
            self._start_tx() if self.omr & OMR_ST else self._stop_tx()
        if (old ^ self.omr) & OMR_SR:
            self._start_rx() if self.omr & OMR_SR else self._stop_rx()

    # ------------------------------------------------------------------ transmit process
    def _start_tx(self) -> None:
        if self.tx_dead:
            return
        if self.tdlar_new:
            self.tx_cur, self.tdlar_new = self.tdlar, False
        self.tps = T_WAITING
        self.tx_run()

    def _stop_tx(self) -> None:
        if self.tps != T_STOPPED:
            self.tx.flush()
            self.tps = T_STOPPED
            self.set_status(TPSS)

    def tx_poll(self) -> None:
        """DMATPDR written: a suspended (or waiting) transmit process looks again."""
        if self.tps in (T_SUSPENDED, T_WAITING):
            self.tps = T_WAITING
            self.tx_run()

    def tx_run(self) -> None:
        """Send what the descriptors hold (the MAC transmitter must be on)."""
        if self.tx_dead or self.tps == T_STOPPED:
            return
        if not self.tx_ready():
            self.tps = T_WAITING  # the frame waits for the MAC transmitter
            return
        try:
            self.tx.run()
        except DmaBusFault as fault:
            self.fatal(fault)

    # ------------------------------------------------------------------ receive process
    def _start_rx(self) -> None:
        if self.rx_dead:
            return
        if self.rdlar_new:
            self.rx_cur, self.rdlar_new = self.rdlar, False
        self.rps = R_WAITING
        self.rx_poll()

    def _stop_rx(self) -> None:
        if self.rps != R_STOPPED:
            self.rps = R_STOPPED
            self.set_status(RPSS)

    def rx_poll(self) -> None:
        """Start or DMARPDR: fetch the current descriptor again; deliver waiting frames."""
        if self.rx_dead or self.rps == R_STOPPED:
            return
        try:
            owned = self.rx.current_owned()
        except DmaBusFault as fault:
            self.fatal(fault)
            return
        if not owned:
            self.rx_suspend()
            return
        self.rps = R_WAITING
        while self.fifo and self.rps == R_WAITING:
            frame = self.fifo.popleft()
            self.fifo_bytes -= len(frame[0])
            self._deliver(frame)

    def rx_suspend(self) -> None:
        """The next receive descriptor is the CPU's: suspend (RBUS only when the process
        was running)."""
        if self.rps != R_SUSPENDED:
            self.rps = R_SUSPENDED
            self.set_status(RBUS)

    def rx_frame(self, data: bytes, rdes0: int, rdes4: int) -> None:
        """A frame from the MAC (after its filters) for the receive DMA."""
        frame = (data, rdes0, rdes4)
        if self.rx_dead:
            return
        if self.rps == R_STOPPED or self.fifo:
            self._to_fifo(frame)
            if self.rps != R_STOPPED:
                self.rx_poll()
            return
        if self.rps == R_SUSPENDED:
            self.rx_poll()  # a frame arriving resumes the process (refetch)
        if self.rps == R_SUSPENDED:
            if self.omr & OMR_DFRF:
                self._to_fifo(frame)
            else:
                self._missed()
            return
        self._deliver(frame)

    def _deliver(self, frame: tuple[bytes, int, int]) -> None:
        try:
            delivered = self.rx.receive(*frame)
        except DmaBusFault as fault:
            self.fatal(fault)
            return
        if not delivered:
            self.rx_suspend()
            if self.omr & OMR_DFRF:
                self._to_fifo(frame, front=True)
            else:
                self._missed()

    def _missed(self) -> None:
        """Flushed for want of a descriptor: DMAMFBOCR.MFC."""
        if self.mfc == 0xFFFF:
            self.mfc_over = True
        self.mfc = (self.mfc + 1) & 0xFFFF

    def _to_fifo(self, frame: tuple[bytes, int, int], front: bool = False) -> None:
        size = len(frame[0])
        if self.fifo_bytes + size > RX_FIFO_BYTES:
            if self.mfa == 0x7FF:
                self.mfa_over = True
            self.mfa = (self.mfa + 1) & 0x7FF
            self.set_status(ROS)
            return
        self.fifo_bytes += size
        self.fifo.appendleft(frame) if front else self.fifo.append(frame)

    def snapshot(self) -> dict[str, Any]:
        """State for the control interface."""
        return {
            "tps": self.tps,
            "rps": self.rps,
            "dmasr": self.read(SR),
            "tx_descriptor": self.tx_cur,
            "rx_descriptor": self.rx_cur,
            "rx_fifo_frames": len(self.fifo),
            "tx_dead": self.tx_dead,
            "rx_dead": self.rx_dead,
            "frames_sent": self.tx.frames,
            "frames_received": self.rx.frames,
        }
