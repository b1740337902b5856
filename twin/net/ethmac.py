"""The STM32F767's Ethernet MAC with DMA at 0x40028000 (IRQ 61) and the board's LAN8742A.

The register block of RM0410 §42.8 (0x40028000-0x400293FF): MAC +0x000, MMC +0x100
(``ethmac_mmc``), PTP +0x700 (``ethmac_mmc``), DMA +0x1000 (``ethmac_dma``, descriptors in
``ethmac_desc``). Frames cross ``ethmac_path`` to a :class:`twin.net.frames.FrameNetwork`
(the cable; FCS included both ways), the PHY is ``lan8742``. This module owns the device:

* Clocks and resets: registers answer only with RCC_AHB1ENR.ETHMACEN (else they read 0
  and ignore writes, logged once) and not while RCC_AHB1RSTR.ETHMACRST holds the MAC in
  reset (its rising edge resets the MAC). The data paths also need ETHMACTXEN/RXEN.
* DMABMR.SR, the soft reset of everything but the PHY: the registers return to their
  reset values at once, and SR (1 at reset too) clears when the MAC's clocks run: both
  ETHMACTXEN and ETHMACRXEN, the RMII reference clock on PA1 (AF11) and
  SYSCFG_PMC.MII_RMII_SEL = RMII at that moment (the NUCLEO's PHY only drives RMII; in
  MII mode TX_CLK is missing and SR stays set, as on the board). The completion is seen
  at the next access, also by a debugger while the core is halted. Writes while a
  software reset is pending are ignored.
* MDIO (MACMIIAR/MACMIIDR): an access takes 64 MDC periods, MDC = HCLK / (42, 62, 16,
  26, 102 by MACMIIAR.CR); MB reads 1 until then (reads of a busy MACMIIAR let the
  machine skip ahead), MACMIIDR holds the result. The delay runs on wall time while the
  core is stopped, so a probe's MDIO read completes. Without PA2/PC1 in AF11 nobody
  answers (0xFFFF). The PHY answers at its address (0).
* MAC registers at their reset values with their writable bits: MACCR (bit 15 reads 1),
  MACFFR, MACHTHR/HTLR, MACFCR (FCB sends a PAUSE frame in full duplex and clears),
  MACVLANTR, MACRWUFFR (eight words through a pointer), MACPMTCSR (PD, MPE, WFE, GU;
  MPR/WFR cleared on read; WFFRPR resets the pointer), MACDBGR (0: FIFOs always empty),
  MACSR (PMTS, MMC summaries), MACIMR, MACA0-3HR/LR (MACA0HR bit 31 reads 1).
* IRQ 61 follows ``EthDma.irq_level`` (DMA summaries, MMC and PMT interrupts).

Not modelled: MII mode, collisions and half-duplex timing, flow control on receive,
wake-up frame filters (only magic packets and global unicast wake), the ETH_WKUP line,
time stamps in descriptors, source address filtering, cache coherency (the twin has no
data cache), wire timing (frames leave and arrive instantly).

Owns: the device, its clock/reset state, MAC registers and MDIO.
Must not touch: the network beyond the FrameNetwork methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twin.device import BusMaster, Device, ResetKind, merge_word, peer, sub_word
from twin.net.eth_wiring import EthWiring
from twin.net.ethmac_dma import EthDma
from twin.net.ethmac_mmc import MmcPtp
from twin.net.ethmac_path import ETHMACRXEN, ETHMACTXEN, RCC_AHB1ENR, MacPath
from twin.net.ethmac_timers import StopAwareTimers
from twin.net.lan8742 import AUTONEG_NS, Lan8742
from twin.status_poll import StatusPoll

ETH_BASE, ETH_SIZE, ETH_IRQ = 0x40028000, 0x1400, 61
MACCR, MACFFR, MACHTHR, MACHTLR, MACMIIAR, MACMIIDR, MACFCR, MACVLANTR = range(0, 0x20, 4)
MACRWUFFR, MACPMTCSR, MACDBGR, MACSR, MACIMR = 0x28, 0x2C, 0x34, 0x38, 0x3C
MAC_RESET = {
    MACCR: 0x00008000,
    **dict.fromkeys((MACFFR, MACHTHR, MACHTLR, MACMIIAR, MACMIIDR, MACFCR, MACVLANTR), 0),
    **dict.fromkeys((MACRWUFFR, MACPMTCSR, MACDBGR, MACSR, MACIMR), 0),
    0x40: 0x8000FFFF,
    0x44: 0xFFFFFFFF,
    **{0x48 + 8 * n: 0x0000FFFF for n in range(3)},
    **{0x4C + 8 * n: 0xFFFFFFFF for n in range(3)},
}
MAC_WRITABLE = {
    MACCR: 0x02CF7EFC,
    MACFFR: 0x800007FF,
    MACMIIDR: 0xFFFF,
    MACFCR: 0xFFFF00BF,
    MACVLANTR: 0x1FFFF,
    MACIMR: 0x208,
    0x40: 0xFFFF,
    **{0x48 + 8 * n: 0xFF00FFFF for n in range(3)},
}
MB, MW = 1 << 0, 1 << 1
MDC_DIV = {0: 42, 1: 62, 2: 16, 3: 26, 4: 102}
PD, MPE, WFE, MPR, WFR, GU, WFFRPR = 1 << 0, 1 << 1, 1 << 2, 1 << 5, 1 << 6, 1 << 9, 1 << 31
DMA_OFF = 0x1000
RCC_AHB1RSTR, ETHMACEN = 0x10, 1 << 25
SPIN_READS, SPIN_GAP = 8, 2000


class FrameNetwork(Protocol):
    """The cable (``twin.net.frames.FrameNetwork``; restated so tests can pass a double)."""

    def attach(self, receive: Callable[[bytes], None]) -> None: ...

    def attach_link(self, on_link: Callable[[bool], None]) -> None: ...

    def transmit(self, frame: bytes) -> None: ...

    def link_up(self) -> bool: ...


class EthMac(Device):
    """ETH MAC + DMA + MMC + PTP registers, the LAN8742A behind MDIO, IRQ 61.

    Args:
        network: the cable (None: unplugged).
        autoneg_ns: the PHY's auto-negotiation time.
        wiring: the RMII transmit pins and the PHY's MDIO address (the NUCLEO's by default).
    """

    name, base, size = "ethmac", ETH_BASE, ETH_SIZE

    def __init__(
        self,
        network: FrameNetwork | None = None,
        autoneg_ns: int = AUTONEG_NS,
        wiring: EthWiring | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.timers = StopAwareTimers(lambda: self.services)
        self.phy = Lan8742(self.timers, self._log, autoneg_ns, address=(wiring or EthWiring()).phy)
        self.mmc = MmcPtp(lambda: self.services.now_cycles() if self.services else 0, self.irq_update)
        self.dma = EthDma(self._port, self._tx_ready, self._send, self.irq_update, self._log)
        self.dma.mac_irq_bits = self._mac_irq_bits
        self.path = MacPath(self, wiring)
        self._irq = False
        self._once: set[str] = set()
        self._devices: dict[str, Any] = {}
        self._spin = (0, 0)  # (empty DMASR reads in a row, cycle of the last)
        self._time_poll = StatusPoll(reads=1, tick=False)  # MDIO busy, reset pending
        self.frames_in = self.frames_out = 0
        self._mac_reset()
        self.reset_pending, self.soft_pending = True, False

    # ------------------------------------------------------------------ plumbing
    def _log(self, message: str) -> None:
        if self.services is not None:
            self.services.log(message)

    def warn_once(self, key: str, message: str) -> None:
        """Log ``message`` once per ``key`` (until the next MAC reset)."""
        if key not in self._once:
            self._once.add(key)
            self._log(message)

    def _port(self) -> BusMaster:
        assert self.services is not None
        return self.services.bus_master()

    def device(self, name: str) -> Any:
        """Another device of the board (cached once found; None when the board has none)."""
        dev = self._devices.get(name) or peer(self.services, name)
        if dev is not None:
            self._devices[name] = dev
        return dev

    def _rcc_reg(self, offset: int, default: int) -> int:
        rcc = self.device("rcc")
        return rcc.regs.get(offset, default) if rcc is not None and hasattr(rcc, "regs") else default

    def attach(self, services: Any) -> None:
        super().attach(services)
        if self.network is not None:
            self.network.attach(self._from_network)
            self.network.attach_link(self._link_from_network)

    def _from_network(self, frame: bytes) -> None:
        """Network thread: hand the frame to the CPU thread."""
        if self.services is not None:
            self.services.post(lambda: self._wire_in(frame))

    def _wire_in(self, frame: bytes) -> None:
        self.frames_in += 1
        self.path.from_wire(frame)

    def _link_from_network(self, up: bool) -> None:
        if self.services is not None:
            self.services.post(lambda: self.phy.set_cable(up))

    def to_wire(self, frame: bytes) -> None:
        """A frame leaves on the cable (FCS included)."""
        self.frames_out += 1
        if self.network is not None:
            self.network.transmit(frame)

    # ------------------------------------------------------------------ resets
    def _mac_reset(self) -> None:
        self.regs = dict(MAC_RESET)
        self.rwuff, self.rwuff_ptr = [0] * 8, 0
        self.pmts = False
        self._mdio: tuple[int, int, bool, int] | None = None
        self.timers.cancel("mdio")
        self.mmc.reset()
        self.dma.reset()
        self._once.clear()
        self.irq_update()

    def reset(self, kind: str) -> None:
        if kind == ResetKind.CORE:
            return
        self._mac_reset()
        self.reset_pending, self.soft_pending = True, False
        if kind == ResetKind.POWER:
            self._phy_reset()

    def reset_cause(self, kind: str, cause: str) -> None:
        """Machine reset: NRST also resets the PHY (its nRST is the board's NRST)."""
        if kind == ResetKind.SYSTEM:
            self._phy_reset()

    def _phy_reset(self) -> None:
        self.phy.cable = self.network.link_up() if self.network is not None else False
        self.phy.hard_reset()

    def _settle(self) -> None:
        """Complete a pending MAC reset if the MAC's clocks run now."""
        if not self.reset_pending:
            return
        why = self.path.reset_blockers()
        if not why:
            self.reset_pending = self.soft_pending = False
            return
        self.warn_once("reset", "MAC reset (DMABMR.SR) cannot complete: " + "; ".join(why))

    def data_path_clocked(self, direction: str) -> bool:
        """The MAC is out of reset and the ``direction`` ("tx"/"rx") clock is enabled."""
        if self.reset_pending or not self._clocked():
            return False
        return bool(self._rcc_reg(RCC_AHB1ENR, ~0) & (ETHMACTXEN if direction == "tx" else ETHMACRXEN))

    def _clocked(self) -> bool:
        if self._rcc_reg(RCC_AHB1RSTR, 0) & ETHMACEN:
            self.warn_once("held", "ethmac held in reset by RCC_AHB1RSTR.ETHMACRST: reads 0, writes ignored")
            return False
        if self._rcc_reg(RCC_AHB1ENR, ETHMACEN) & ETHMACEN:
            return True
        self.warn_once(
            "clock",
            "ethmac (0x40028000) accessed with its clock off: reads 0, writes ignored. "
            "Enable RCC_AHB1ENR bit 25 first (__HAL_RCC_ETHMAC_CLK_ENABLE)",
        )
        return False

    # ------------------------------------------------------------------ bus
    def read(self, offset: int, size: int) -> int:
        aligned = offset & ~3
        if not self._clocked():
            return 0
        self._settle()
        value = self._read_reg(aligned, peek=False)
        if value is None:
            self.unmodelled(aligned, "read")
            return 0
        return sub_word(value, offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        aligned = offset & ~3
        if not self._clocked():
            return
        self._settle()
        if self.soft_pending and aligned != DMA_OFF:
            self.warn_once("busy", "ethmac written during its software reset (DMABMR.SR = 1): ignored")
            return
        if size != 4:
            if aligned == DMA_OFF + 0x14:  # DMASR: clear only the bits written
                value = (value << 8 * (offset & 3)) & 0xFFFFFFFF
            else:
                value = merge_word(self._read_reg(aligned, peek=True) or 0, offset, size, value)
        if not self._write_reg(aligned, value):
            self.unmodelled(aligned, "write")

    def _read_reg(self, offset: int, peek: bool) -> int | None:
        if offset >= DMA_OFF:
            return self._read_dma(offset - DMA_OFF, peek)
        if offset >= 0x100:
            return self.mmc.read(offset, peek=peek)
        if offset == MACMIIAR and self._mdio is not None and not peek:
            self._skip_ahead(offset)
        if offset == MACRWUFFR and not peek:
            value, self.rwuff_ptr = self.rwuff[self.rwuff_ptr], (self.rwuff_ptr + 1) % 8
            return value
        if offset == MACPMTCSR and not peek:
            value = self.regs[MACPMTCSR]
            self.regs[MACPMTCSR] &= ~(MPR | WFR)
            self.pmts = False
            self.irq_update()
            return value
        if offset == MACSR:
            return (1 << 3 if self.pmts else 0) | self.mmc.macsr_bits()
        return self.regs.get(offset)

    def _read_dma(self, offset: int, peek: bool) -> int | None:
        if offset == 0x00:  # DMABMR: SR reads 1 while the reset is pending
            if self.reset_pending and not peek:
                self._skip_ahead(DMA_OFF)
            return self.dma.bmr | (1 if self.reset_pending else 0)
        if offset == 0x20 and peek:
            return 0
        if offset == 0x14 and not peek:
            self._dmasr_spin()
        return self.dma.read(offset)

    def _skip_ahead(self, offset: int) -> None:
        """The firmware polls a bit only time changes (MDIO busy, reset pending): jump to the
        next event at every other read (in MII mode the reset never ends: a HAL timeout must run)."""
        if self.services is not None:
            self._time_poll.read(self.services, offset, 1)

    def _dmasr_spin(self) -> None:
        """DMASR read again and again with nothing to report while the receive process
        waits: the firmware waits for the host, so the machine idles at wall pace (while the
        link negotiates nothing can come: it jumps to the next event instead)."""
        svc = self.services
        # the cable is in and the link still negotiating: nothing can arrive from the host
        # before the PHY's scheduled link-up (the receive process may not even run yet)
        negotiating = self.phy.cable and not self.phy.link and self.timers.pending("phy")
        if svc is None or self.dma.status & 0x41 or (self.dma.rps not in (3, 4) and not negotiating):
            self._spin = (0, 0)
            return
        # gap in executed cycles: after a host wait the same loop waits again at its 2nd read
        now = svc.busy_cycles() if hasattr(svc, "busy_cycles") else svc.now_cycles()
        count = self._spin[0] + 1 if now - self._spin[1] <= SPIN_GAP else 1
        self._spin = (count if count < SPIN_READS else SPIN_READS - 2, now)
        if count >= SPIN_READS:
            # negotiating: jump to the next event (a cable the host pulled: wall pace)
            wait = getattr(svc, "poll_wait" if negotiating else "idle_wait", None)
            if wait is not None:
                wait()

    def _write_reg(self, offset: int, value: int) -> bool:
        if offset >= DMA_OFF:
            if offset == DMA_OFF and value & 1:
                self._soft_reset()
                return True
            return self.dma.write(offset - DMA_OFF, value)
        if offset >= 0x100:
            ok = self.mmc.write(offset, value)
            self.irq_update()
            return ok
        if offset not in self.regs:
            return False
        handler = {
            MACCR: self._write_maccr,
            MACMIIAR: self._write_miiar,
            MACFCR: self._write_fcr,
            MACRWUFFR: self._write_rwuff,
            MACPMTCSR: self._write_pmtcsr,
            MACIMR: self._write_imr,
        }.get(offset)
        if handler is not None:
            handler(value)
        elif offset not in (MACDBGR, MACSR):
            mask = MAC_WRITABLE.get(offset, 0xFFFFFFFF)
            fixed = 0x80000000 if offset == 0x40 else 0
            self.regs[offset] = (value & mask) | fixed
        return True

    def _soft_reset(self) -> None:
        """DMABMR.SR set: every MAC/DMA register back to reset; SR clears when it can."""
        self._mac_reset()
        self.reset_pending = self.soft_pending = True

    def _write_maccr(self, value: int) -> None:
        old = self.regs[MACCR]
        self.regs[MACCR] = (value & MAC_WRITABLE[MACCR]) | 0x8000
        rcc = self.device("rcc")
        if value & 0xC and rcc is not None and hasattr(rcc, "hclk_hz") and rcc.hclk_hz() < 25_000_000:
            self.warn_once(
                "hclk",
                f"MAC enabled with HCLK at {rcc.hclk_hz() / 1e6:.0f} MHz: RM0410 asks for at least 25 MHz",
            )
        if (self.regs[MACCR] & ~old) & (1 << 3) and self.dma.tps == 2:  # TE on: a frame waits
            self.dma.tx_run()

    def _write_fcr(self, value: int) -> None:
        self.regs[MACFCR] = value & MAC_WRITABLE[MACFCR]
        if value & 1 and self.regs[MACCR] & (1 << 11):  # FCB in full duplex
            self.path.pause_frame()
            self.regs[MACFCR] &= ~1

    def _write_rwuff(self, value: int) -> None:
        self.rwuff[self.rwuff_ptr] = value
        self.rwuff_ptr = (self.rwuff_ptr + 1) % 8

    def _write_pmtcsr(self, value: int) -> None:
        if value & WFFRPR:
            self.rwuff_ptr = 0
        keep = self.regs[MACPMTCSR] & (MPR | WFR)
        self.regs[MACPMTCSR] = keep | (value & (PD | MPE | WFE | GU))

    def _write_imr(self, value: int) -> None:
        self.regs[MACIMR] = value & MAC_WRITABLE[MACIMR]
        self.irq_update()

    # ------------------------------------------------------------------ MDIO
    def _write_miiar(self, value: int) -> None:
        if self._mdio is not None:
            self.warn_once("mdiobusy", "MACMIIAR written while MB = 1 (MDIO busy): ignored")
            return
        self.regs[MACMIIAR] = value & 0xFFDF
        if not value & MB:
            return
        phy, reg, write = value >> 11 & 0x1F, value >> 6 & 0x1F, bool(value & MW)
        self._mdio = (phy, reg, write, self.regs[MACMIIDR] & 0xFFFF)
        self.timers.start("mdio", self._mdio_ns(value >> 2 & 7), self._mdio_done)

    def _mdio_ns(self, cr: int) -> int:
        """64 MDC periods (32-bit preamble + 32-bit frame) at MDC = HCLK / divider."""
        if cr not in MDC_DIV:
            self.warn_once("cr", f"MACMIIAR.CR = {cr} is reserved; the twin divides HCLK by 102")
        div = MDC_DIV.get(cr, 102)
        rcc = self.device("rcc")
        hclk = rcc.hclk_hz() if rcc is not None and hasattr(rcc, "hclk_hz") else self.services.core_hz
        if hclk / div > 2_500_000:
            self.warn_once(
                "mdc", f"MDC at {hclk / div / 1e6:.1f} MHz is above the LAN8742A's 2.5 MHz (MACMIIAR.CR)"
            )
        return 64 * div * 1_000_000_000 // max(hclk, 1)

    def _mdio_done(self) -> None:
        assert self._mdio is not None
        phy, reg, write, data = self._mdio
        self._mdio = None
        pins = not self.path.pins_missing("MDIO/MDC")
        if not pins:
            self.path._pins_ok("MDIO/MDC")  # log which pins
        if write and pins:
            self.phy.mdio_write(phy, reg, data)
        elif not write:
            self.regs[MACMIIDR] = self.phy.mdio_read(phy, reg) if pins else 0xFFFF
        self.regs[MACMIIAR] &= ~MB

    # ------------------------------------------------------------------ frames and IRQ
    def _tx_ready(self) -> bool:
        return bool(self.regs[MACCR] & (1 << 3)) and self.data_path_clocked("tx")

    def _send(self, frame: bytes, first_w0: int) -> int:
        return self.path.send(frame, first_w0)

    def pmt_asleep(self) -> bool:
        """MACPMTCSR.PD: the MAC only looks for wake-up frames."""
        return bool(self.regs[MACPMTCSR] & PD)

    def pmt_frame(self, body: bytes, unicast_match: bool) -> None:
        """A frame while powered down: a magic packet (MPE) or, with GU and WFE, a unicast
        frame passing the filter wakes the MAC (PD cleared, MPR/WFR, MACSR.PMTS)."""
        csr = self.regs[MACPMTCSR]
        addr = self.regs[0x44].to_bytes(4, "little") + (self.regs[0x40] & 0xFFFF).to_bytes(2, "little")
        woke = 0
        if csr & MPE and b"\xff" * 6 + addr * 16 in body:
            woke = MPR
        elif csr & WFE and csr & GU and unicast_match and not body[0] & 1:
            woke = WFR
        if woke:
            self.regs[MACPMTCSR] = (csr & ~PD) | woke
            self.pmts = True
            self.irq_update()

    def _mac_irq_bits(self) -> int:
        """DMASR bits 27 (MMCS) and 28 (PMTS) from the MAC's unmasked interrupts."""
        mmc = self.mmc.macsr_bits() & (1 << 4)
        pmt = self.pmts and not self.regs[MACIMR] & (1 << 3)
        return (1 << 27 if mmc else 0) | (1 << 28 if pmt else 0)

    def irq_update(self) -> None:
        """Drive IRQ 61 from the DMA summaries and the MAC interrupts."""
        level = self.dma.irq_level()
        if level != self._irq and self.services is not None:
            self._irq = level
            self.services.set_irq(ETH_IRQ, level)

    # ------------------------------------------------------------------ machine hooks
    def core_stopped(self, state: str | None) -> None:
        """The core stopped or runs again: MDIO and the PHY keep their own time."""
        self.timers.core_stopped(state)

    def stopped_tick(self) -> float | None:
        """While the core is stopped: finish what is due; seconds to the next."""
        return self.timers.stopped_tick()

    def snapshot(self) -> dict[str, object]:
        return {
            "reset_pending": self.reset_pending,
            "maccr": self.regs[MACCR],
            "frames_from_wire": self.frames_in,
            "frames_to_wire": self.frames_out,
            "dma": self.dma.snapshot(),
            "phy": self.phy.snapshot(),
        }
