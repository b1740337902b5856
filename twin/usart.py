"""An STM32F7 U(S)ART; the console's (USART3: the ST-LINK virtual COM port) on a pseudo-terminal.

The firmware side is an STM32F7 USART (CR1/CR2/CR3/BRR/ISR/ICR/RQR/RDR/TDR); the host side
is the slave end of a PTY in raw mode, which pyserial opens like /dev/ttyACM0. Bytes move
at the configured baud rate in virtual time (10 bit times per frame). A reader thread posts
received bytes to the CPU thread; received bytes are delivered one frame apart (a burst on
a quiet line after the VCP's 1 ms USB latency), a byte arriving while RXNE is still set is
lost with ORE (unless CR3.OVRDIS).

DMA (RM0410 "USART continuous communication using DMA"): CR3.DMAT drives DMA1's request
line "USART3_TX" while TXE is set, CR3.DMAR drives "USART3_RX" while RXNE is set
(twin/periph/dma.py serves them, through TDR/RDR like the CPU); CR3.EIE then raises the
interrupt on an overrun. Nothing happens on a board without DMA1.

The RCC enable bit (USART3: RCC_APB1ENR.USART3EN) gates the configuration: with the clock
off, CR1/CR2/CR3/BRR writes are lost (logged once with the fix), so the USART never
transmits, as on the chip (status reads are not gated here). Bit times follow the kernel
clock RCC_DCKCFGR2 selects for the instance (PCLK1/PCLK2, SYSCLK, HSI or LSE). The eight
instances and the console's choice are twin/uarts.py; one without a PTY keeps what it sends
in ``tx_log`` and hands each byte to ``on_tx``.

Owns: USART3's registers, the PTY and its reader thread. Must not touch: the machine
beyond its Services (received bytes are posted to the CPU thread).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import tty
from collections import deque
from collections.abc import Callable

from twin.device import Device, merge_word, sub_word
from twin.line_rate import HostLine
from twin.periph.base import ClockGate
from twin.usart_clock import kernel_hz

CR1_UE, CR1_RE, CR1_TE = 1, 4, 8
CR1_IDLEIE, CR1_RXNEIE, CR1_TCIE, CR1_TXEIE = 16, 32, 64, 128
CR3_EIE, CR3_DMAR, CR3_DMAT, CR3_OVRDIS = 1, 1 << 6, 1 << 7, 1 << 12
#: RXNE spin detection (see ``Usart._rx_spin``): this many empty ISR reads, each within
#: RX_SPIN_GAP cycles of the previous one, mean the firmware is waiting for input
RX_SPIN_POLLS, RX_SPIN_GAP = 8, 2000
ISR_ORE, ISR_IDLE, ISR_RXNE, ISR_TC, ISR_TXE = 8, 16, 32, 64, 128
#: host -> board latency of the ST-LINK virtual COM port (USB full-speed frames), virtual ms
VCP_LATENCY_MS = 1
ISR_TEACK, ISR_REACK = 1 << 21, 1 << 22
USART3_IRQ = 39


class Usart(Device):
    """An STM32F7 USART whose line is a PTY.

    Args:
        name: device name ("usart3").
        base: register base (0x40004800).
        irq: NVIC line (39).
        pty: open a PTY (False: bytes only go to ``tx_log`` and ``on_tx``).
        clock: RCC enable register offset and bit (APB1ENR bit 18).
        apb: the APB bus whose PCLK clocks it (1 or 2).
        dma: the DMA controller its requests go to ("dma1").
        kernel_select: position of its 2-bit clock selection in RCC_DCKCFGR2.
    """

    def __init__(
        self,
        name: str = "usart3",
        base: int = 0x40004800,
        irq: int = USART3_IRQ,
        pty: bool = True,
        *,
        clock: tuple[int, int] = (0x40, 18),
        apb: int = 1,
        dma: str = "dma1",
        kernel_select: int = 4,
    ) -> None:
        super().__init__()
        self.name, self.base, self.size = name, base, 0x400
        self.irq = irq
        self.gate = ClockGate(self, *clock)
        self.apb, self.kernel_select = apb, kernel_select
        self.on_tx: Callable[[int], None] | None = None  # each byte that left the transmitter
        #: whether the TX / RX pin the host's line is wired to is routed to this USART now
        #: (None: always; twin/uarts.py's ConsolePins for the console)
        self.tx_pin_ok: Callable[[], bool] | None = None
        self.rx_pin_ok: Callable[[], bool] | None = None
        self.tx_log = bytearray()  # everything transmitted (bounded)
        self._pending = bytearray()  # transmitted, not yet written to the PTY (_emit)
        self.rx_dropped = 0
        self.tx_dropped = 0
        self.master_fd: int | None = None
        self.slave_fd: int | None = None
        self.slave_path = ""
        if pty:
            self.master_fd, self.slave_fd = os.openpty()
            tty.setraw(self.slave_fd)
            self.line = HostLine(self.slave_fd, name, lambda m: self.services and self.services.log(m))
            os.set_blocking(self.master_fd, False)
            self.slave_path = os.ttyname(self.slave_fd)
        self._rxq: deque[int] = deque()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._irq_level = False
        self._dma_levels = (False, False)  # the (RX, TX) request lines as last driven
        self.dma_name = dma
        self._tx_busy = False
        self._rx_handle: object | None = None
        self._tx_handle: object | None = None
        self._empty_polls = 0  # consecutive ISR reads with nothing to receive
        self._last_poll = 0
        self._regs_reset()

    def _regs_reset(self) -> None:
        self.cr1 = self.cr2 = self.cr3 = 0
        self.brr = 0
        self.gtpr = self.rtor = 0
        self.isr = ISR_TC | ISR_TXE
        self.rdr = 0
        self.tdr: int | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the PTY reader thread."""
        if self.master_fd is not None and self._reader is None:
            self._reader = threading.Thread(target=self._read_loop, name=f"twin-{self.name}", daemon=True)
            self._reader.start()

    def close(self) -> None:
        """Stop the reader and close the PTY."""
        self._flush_pty()
        self._stop.set()
        if self._reader is not None:
            self._reader.join(2)
            self._reader = None
        for fd in (self.master_fd, self.slave_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master_fd = self.slave_fd = None

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            fd = self.master_fd
            if fd is None:
                return
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(fd, 4096)
            except OSError as e:
                if e.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                if e.errno == errno.EIO:  # no slave opener at the moment
                    self._stop.wait(0.05)
                    continue
                return
            if data and self.services is not None:
                self.services.post(lambda d=data: self.inject_rx(d))

    # ------------------------------------------------------------------ timing
    def frame_cycles(self) -> int:
        """Core cycles per 10-bit frame at the configured BRR and the kernel clock."""
        brr = self.brr or 139
        if self.cr1 & (1 << 15):  # OVER8
            brr = ((brr & ~0xF) | ((brr & 7) << 1)) // 2 or 1
        if self.services is None:
            return 10 * brr
        core = self.services.core_hz
        kernel = kernel_hz(self.services, self.apb, self.kernel_select) or core
        return max(1, 10 * brr * core // kernel)

    def baud(self) -> int:
        """Configured baud rate (0 when BRR is not set)."""
        if not self.brr or self.services is None:
            return 0
        return self.services.core_hz * 10 // self.frame_cycles()

    # ------------------------------------------------------------------ registers
    def read(self, offset: int, size: int) -> int:
        return sub_word(self._read_word(offset & ~3), offset, size)

    def _read_word(self, offset: int) -> int:
        if offset == 0x00:
            return self.cr1
        if offset == 0x04:
            return self.cr2
        if offset == 0x08:
            return self.cr3
        if offset == 0x0C:
            return self.brr
        if offset == 0x10:
            return self.gtpr
        if offset == 0x14:
            return self.rtor
        if offset == 0x1C:
            if self._tx_busy and not self.isr & ISR_TC and self.services is not None:
                # polling TXE/TC while a frame shifts out: nothing changes before the
                # scheduled end of frame, so skip there instead of spinning
                pw = getattr(self.services, "poll_wait", None)
                if pw is not None and (not self.isr & ISR_TXE or self.tdr is None):
                    pw(self._tx_handle)
            elif not self.isr & ISR_RXNE and not self._rxq and self.services is not None:
                self._rx_spin()
            else:
                self._empty_polls = 0
            return self.isr
        if offset == 0x24:
            val = self.rdr
            self.isr &= ~ISR_RXNE
            self._update_irq()
            return val
        if offset in (0x18, 0x20, 0x28):
            return 0
        self.unmodelled(offset, "read")
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if aligned <= 0x0C and not self.gate.enabled():
            return  # CR1/CR2/CR3/BRR with the clock off: lost (logged once)
        if size != 4 and aligned not in (0x18, 0x20, 0x28):
            value = merge_word(self._read_word(aligned), offset, size, value)
        if aligned == 0x00:
            self._write_cr1(value)
        elif aligned == 0x04:
            self.cr2 = value
        elif aligned == 0x08:
            self.cr3 = value
            self._update_irq()
        elif aligned == 0x0C:
            self.brr = value & 0xFFFF
        elif aligned == 0x10:
            self.gtpr = value & 0xFFFF
        elif aligned == 0x14:
            self.rtor = value
        elif aligned == 0x18:
            if value & (1 << 3):  # RXFRQ
                self.isr &= ~ISR_RXNE
            self._update_irq()
        elif aligned == 0x20:
            self.isr &= ~(value & 0x0012_0B5F)
            self._update_irq()
        elif aligned == 0x28:
            self._write_tdr(value & 0x1FF)
        else:
            self.unmodelled(offset, "write")

    def _write_cr1(self, value: int) -> None:
        self.cr1 = value
        en = value & CR1_UE
        self.isr = (
            (self.isr & ~(ISR_TEACK | ISR_REACK))
            | (ISR_TEACK if en and value & CR1_TE else 0)
            | (ISR_REACK if en and value & CR1_RE else 0)
        )
        if en and value & CR1_RE and self._rxq:
            self._schedule_rx()
        self._update_irq()

    def _write_tdr(self, value: int) -> None:
        if not (self.cr1 & CR1_UE and self.cr1 & CR1_TE):
            return
        self.isr &= ~ISR_TC
        if not self._tx_busy:
            self._shift_out(value)
        else:
            self.tdr = value
            self.isr &= ~ISR_TXE
        self._update_irq()

    def _shift_out(self, value: int) -> None:
        self._tx_busy = True
        self.isr |= ISR_TXE
        if self.services is None:
            self._tx_done(value)
            return
        self._tx_handle = self.services.schedule(self.frame_cycles(), lambda: self._tx_done(value))

    def _tx_done(self, value: int) -> None:
        self._tx_handle = None
        self._emit(value & 0xFF)
        self._tx_busy = False
        if self.tdr is not None:
            nxt, self.tdr = self.tdr, None
            self._shift_out(nxt)
        else:
            self.isr |= ISR_TC | ISR_TXE
            self._flush_pty()
        self._update_irq()

    def _emit(self, byte: int) -> None:
        self.tx_log.append(byte)
        if len(self.tx_log) > 1 << 20:
            del self.tx_log[: 1 << 19]
        if self.on_tx is not None:
            self.on_tx(byte)
        if self.master_fd is not None and (self.tx_pin_ok is None or self.tx_pin_ok()):
            # one write per line or burst instead of per character (a syscall and a wake-up
            # of the reader each): flushed at a newline, at 256 bytes, and whenever the
            # transmitter falls idle (_tx_done with nothing queued), so the host never
            # waits for bytes of a line the firmware has finished sending
            self._pending.append(byte)
            if byte == 0x0A or len(self._pending) >= 256:
                self._flush_pty()

    def _flush_pty(self) -> None:
        """Hand the bytes sent so far to the PTY."""
        if self._pending and self.master_fd is not None:
            data, self._pending = bytes(self._pending), bytearray()
            try:
                os.write(self.master_fd, self.line.to_host(data, self.baud()))
            except OSError:
                self.tx_dropped += len(data)

    # ------------------------------------------------------------------ receive
    def inject_rx(self, data: bytes) -> None:
        """Bytes the host wrote (CPU thread). A burst that finds the line quiet starts
        VCP_LATENCY_MS after now: on a NUCLEO they cross USB and the ST-LINK's bridge,
        whose latency is at least a USB frame (1 ms); a host answering a line the instant
        it appears (the twin's virtual time may stand still while the host reacts) would
        otherwise hit a firmware still sending the line's end (a lost byte, ORE)."""
        fresh = self._rx_handle is None and not self._rxq
        self._rxq.extend(self.line.from_host(data, self.baud()) if self.slave_fd is not None else data)
        if len(self._rxq) > 1 << 16:
            for _ in range(len(self._rxq) - (1 << 16)):
                self._rxq.popleft()
                self.rx_dropped += 1
        if fresh and self._rxq and self.services is not None:
            latency = self.services.core_hz * VCP_LATENCY_MS // 1000
            self._rx_handle = self.services.schedule(latency + self.frame_cycles(), self._rx_frame)
            return
        self._schedule_rx()

    def _schedule_rx(self) -> None:
        if self._rx_handle is None and self._rxq and self.services is not None:
            self._rx_handle = self.services.schedule(self.frame_cycles(), self._rx_frame)

    def _rx_frame(self) -> None:
        self._rx_handle = None
        if not self._rxq:
            return
        byte = self._rxq.popleft()
        if not (self.cr1 & CR1_UE and self.cr1 & CR1_RE):
            self.rx_dropped += 1
        elif self.rx_pin_ok is not None and not self.rx_pin_ok():
            self.rx_dropped += 1  # the host's line ends at a pin not routed to the USART
        elif self.isr & ISR_RXNE:
            if not self.cr3 & CR3_OVRDIS:
                self.isr |= ISR_ORE
            self.rx_dropped += 1
        else:
            self.rdr = byte
            self.isr |= ISR_RXNE
        if not self._rxq:
            self.isr |= ISR_IDLE
        self._update_irq()
        self._schedule_rx()

    def _rx_spin(self) -> None:
        """The firmware reads ISR with nothing received and nothing on the way. Read again
        and again within a few thousand cycles, that is a wait for the host (a getc loop):
        let the machine idle at wall pace until input is posted (``idle_wait``), so
        firmware timeouts and watchdogs keep wall time and the host CPU is spared. A single
        poll inside a busy loop does not count. The gap is in executed cycles
        (``busy_cycles``): after a wait the same loop waits again at its second poll (a loop
        left at the first one, its timeout over, does not wait)."""
        svc = self.services
        now = svc.busy_cycles() if hasattr(svc, "busy_cycles") else svc.now_cycles()
        if now - self._last_poll <= RX_SPIN_GAP:
            self._empty_polls += 1
        else:
            self._empty_polls = 1
        self._last_poll = now
        if self._empty_polls >= RX_SPIN_POLLS:
            self._empty_polls = RX_SPIN_POLLS - 2  # after the wait: two polls in a row wait again
            idle = getattr(svc, "idle_wait", None)
            if idle is not None:
                idle()

    def _update_irq(self) -> None:
        cr1, isr = self.cr1, self.isr
        level = bool(
            (cr1 & CR1_RXNEIE and isr & (ISR_RXNE | ISR_ORE))
            or (cr1 & CR1_TXEIE and isr & ISR_TXE)
            or (cr1 & CR1_TCIE and isr & ISR_TC)
            or (cr1 & CR1_IDLEIE and isr & ISR_IDLE)
            or (self.cr3 & CR3_EIE and self.cr3 & CR3_DMAR and isr & ISR_ORE)
        )
        if level != self._irq_level and self.services is not None:
            self._irq_level = level
            self.services.set_irq(self.irq, level)
        self._update_dma()

    def _update_dma(self) -> None:
        """Drive the DMA request lines (USART3: DMA1's USART3_RX/USART3_TX) from RXNE/TXE
        and CR3.DMAR/DMAT."""
        cr1, cr3, isr = self.cr1, self.cr3, self.isr
        on = cr1 & CR1_UE
        rx = bool(on and cr3 & CR3_DMAR and isr & ISR_RXNE)
        tx = bool(on and cr1 & CR1_TE and cr3 & CR3_DMAT and isr & ISR_TXE)
        old = self._dma_levels
        if (rx, tx) == old or self.services is None:
            return
        self._dma_levels = (rx, tx)
        try:
            dma = self.services.device(self.dma_name)
        except KeyError:
            return
        prefix = self.name.upper()
        if rx != old[0]:
            dma.request(f"{prefix}_RX", rx)  # type: ignore[attr-defined]
        if tx != old[1]:
            dma.request(f"{prefix}_TX", tx)  # type: ignore[attr-defined]

    def reset(self, kind: str) -> None:
        self._flush_pty()  # what left the pin before the reset reaches the host
        if self.services is not None:
            for h in (self._rx_handle, self._tx_handle):
                if h is not None:
                    self.services.cancel(h)
        self._rx_handle = self._tx_handle = None
        self._tx_busy = False
        self._rxq.clear()
        self._regs_reset()
        if self._irq_level and self.services is not None:
            self.services.set_irq(self.irq, False)
        self._irq_level = False
        self._update_dma()  # the registers' reset values drop the request lines

    def snapshot(self) -> dict[str, object]:
        return {
            "pty": self.slave_path,
            "cr1": self.cr1,
            "brr": self.brr,
            "isr": self.isr,
            "baud": self.baud(),
            "tx_bytes": len(self.tx_log),
            "rx_dropped": self.rx_dropped,
        }
