"""The ETH MAC's frame path between the DMA and the RMII pins (RM0410 §42.5).

Receive (a frame from the cable, FCS included, on the CPU thread): the frame reaches the
MAC only if the PHY passes frames (link up, not isolated/powered down/looping back), the
RMII receive pins (PA7, PC4, PC5 as AF11) are set up and the MAC's speed (MACCR.FES)
matches the PHY's; a speed mismatch garbles the frame, which then counts as a CRC error.
With MACCR.RE set it then goes through:

* runts (< 64 bytes) are dropped unless good and DMAOMR.FUGF; a wrong FCS counts in
  MMCRFCECR and gives CE; the FIFO drops such a frame unless DMAOMR.FEF, or in threshold
  mode (DMAOMR.RSF off) once it passed the threshold (RTC) on its way to the DMA;
* the destination filter (MACFFR: PM, RA, broadcast/BFD, multicast PAM/HM, unicast HU,
  HPF, DAIF, perfect match on MACA0 and enabled MACA1-3 with their byte masks, the 64-bit
  hash of MACHTHR/HTLR) and control frames per MACFFR.PCF;
* FCS stripping for type frames (MACCR.CSTF) and pad + FCS stripping for length frames
  (MACCR.APCS); the receive watchdog cuts frames over 2048 bytes (16384 with MACCR.WD)
  with RWT;
* the receive checksum offload (MACCR.IPCO), whose errors drop the frame like an FCS
  error unless DMAOMR.DTCEFD;
* MMC counting, then the DMA.

Power-down (MACPMTCSR.PD) drops everything, waking on a magic packet when MPE is set
(MPR, MACSR.PMTS) or on any unicast passing the filter with GU and WFE.

Transmit (a frame from the DMA): VLAN frames get VF; short frames are padded to 60
bytes unless TDES0.DP (padding always appends the FCS), the FCS is appended unless
TDES0.DC; frames over 2048 bytes (16384 with MACCR.JD) are cut with JT. In half duplex
without carrier (no link; MACCR.CSD off) the frame gets NC and LCA. The frame then loops
back (MACCR.LM at the MAC, BCR loopback at the PHY) or goes on the wire if the PHY passes
frames, the RMII transmit pins (the NUCLEO's PG11, PG13, PB13, or those ``--eth-wiring`` gives:
twin/net/eth_wiring.py) are set up and the speeds match.

Owns: the frame rules above. Must not touch: DMA descriptors (it hands frames to ``EthDma``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twin.net.eth_wiring import EthWiring
from twin.net.ethmac_coe import ETHERTYPE_VLAN, check_rx, fcs, hash_index
from twin.periph.gpio import pin_function, pin_name

if TYPE_CHECKING:
    from twin.net.ethmac import EthMac

MACCR, MACFFR, MACHTHR, MACHTLR = 0x00, 0x04, 0x08, 0x0C
RCC_AHB1ENR, ETHMACTXEN, ETHMACRXEN = 0x30, 1 << 26, 1 << 27
SYSCFG_PMC, MII_RMII_SEL = 0x04, 1 << 23
MACA0HR = 0x40
RE, TE, APCS, IPCO, DM, LM, FES, CSD, JD, WD, CSTF = (
    1 << n for n in (2, 3, 7, 10, 11, 12, 14, 16, 22, 23, 25)
)
PM, HU, HM, DAIF, PAM, BFD, SAIF, SAF, HPF, RA = (1 << n for n in (0, 1, 2, 3, 4, 5, 8, 9, 10, 31))
OMR_FUGF, OMR_FEF, OMR_RSF, OMR_DTCEFD = 1 << 6, 1 << 7, 1 << 25, 1 << 26
# RDES0 status bits
R_AFM, R_ES, R_LE, R_VLAN, R_GIANT_IPHCE, R_FT, R_RWT, R_CE, R_PCE_ESA = (
    1 << n for n in (30, 15, 12, 10, 7, 5, 4, 1, 0)
)
# TDES0 status bits
T_JT, T_LCA, T_NC, T_VF = 1 << 14, 1 << 11, 1 << 10, 1 << 7
T_DC, T_DP = 1 << 27, 1 << 26
BROADCAST = b"\xff" * 6
PAUSE_DA = bytes.fromhex("0180c2000001")


class MacPath:
    """Frames through the MAC core (see the module docstring)."""

    def __init__(self, mac: EthMac, wiring: EthWiring | None = None) -> None:
        self.mac = mac
        #: the RMII pins by group (all AF11): the NUCLEO-F767ZI's, or the ``--eth-wiring``'s
        self.pins = (wiring or EthWiring()).groups()

    # ------------------------------------------------------------------ board wiring
    def pins_missing(self, group: str) -> list[str]:
        """Pins of ``group`` (a key of :attr:`pins`) not in alternate function 11 (none when
        the board has no GPIO models, as in unit tests)."""
        missing = []
        for port, pin in self.pins[group]:
            regs = getattr(self.mac.device(port), "regs", None)
            if regs is None:
                continue
            if pin_function(regs, pin) != (2, 11):
                missing.append(pin_name(port, pin))
        return missing

    def reset_blockers(self) -> list[str]:
        """Why a pending MAC reset cannot complete now (empty: it can): its TX/RX clocks,
        RMII selected, the PHY's REF_CLK on its pin."""
        mac, why = self.mac, []
        enr = mac._rcc_reg(RCC_AHB1ENR, ETHMACTXEN | ETHMACRXEN)
        if not enr & ETHMACTXEN or not enr & ETHMACRXEN:
            why.append("RCC_AHB1ENR.ETHMACTXEN/ETHMACRXEN off (no TX/RX clock)")
        syscfg = mac.device("syscfg")
        if syscfg is not None and not syscfg.regs.get(SYSCFG_PMC, 0) & MII_RMII_SEL:
            why.append("SYSCFG_PMC.MII_RMII_SEL is MII (the board's PHY drives RMII only: no TX_CLK)")
        if self.pins_missing("REF_CLK"):
            why.append("PA1 is not AF11 (the PHY's 50 MHz RMII REF_CLK does not reach the MAC)")
        return why

    def _pins_ok(self, group: str) -> bool:
        missing = self.pins_missing(group)
        if missing:
            self.mac.warn_once(
                f"pins {group}",
                f"RMII {group} pin(s) {', '.join(missing)} not in alternate function 11: "
                "on the board no frames pass there",
            )
        return not missing

    def _speed_ok(self) -> bool:
        phy = self.mac.phy
        fast = bool(self.mac.regs[MACCR] & FES)
        if fast == phy.speed100:
            return True
        self.mac.warn_once(
            "speed",
            f"MACCR.FES says {100 if fast else 10} Mbit/s, the PHY linked at "
            f"{100 if phy.speed100 else 10}: frames are garbled (set FES from PHYSCSR)",
        )
        return False

    # ------------------------------------------------------------------ receive
    def from_wire(self, frame: bytes) -> None:
        """A frame from the cable (CPU thread)."""
        m = self.mac
        if not m.data_path_clocked("rx") or not m.phy.passes_frames():
            return
        if not self._pins_ok("receive (CRS_DV, RXD0, RXD1)"):
            return
        if not self._speed_ok():
            m.mmc.count(0x194)  # RFCECR: what arrives is garbage
            return
        self.receive(frame)

    def receive(self, frame: bytes) -> None:
        """The MAC receiver's handling of ``frame`` (FCS included)."""
        m = self.mac
        cr = m.regs[MACCR]
        if not cr & RE:
            return
        body = frame[:-4]
        crc_ok = len(frame) > 4 and frame[-4:] == fcs(body)
        if m.pmt_asleep():
            m.pmt_frame(body, crc_ok and self._da_pass(body))
            return
        omr = m.dma.omr
        if len(frame) < 64 and not (crc_ok and omr & OMR_FUGF):
            return  # runt
        status = 0 if crc_ok else R_CE | R_ES
        if not crc_ok:
            m.mmc.count(0x194)  # RFCECR
            if self._fifo_drops(len(frame)):
                return
        passed = self._filter(body)
        if not passed and not m.regs[MACFFR] & RA:
            return
        status |= 0 if passed else R_AFM
        data, status, rdes4 = self._shape(frame, body, status)
        if data is None:
            return
        if crc_ok and not body[0] & 1 and passed:
            m.mmc.count(0x1C4)  # RGUFCR
        m.dma.rx_frame(data, status, rdes4)

    def _fifo_drops(self, length: int) -> bool:
        """Whether the receive FIFO drops a frame with an error: not with DMAOMR.FEF, and in
        threshold mode (RSF off) not once the frame passed the threshold (RTC: 64, 32, 96,
        128 bytes) on its way to the DMA."""
        omr = self.mac.dma.omr
        if omr & OMR_FEF:
            return False
        return bool(omr & OMR_RSF) or length <= (64, 32, 96, 128)[omr >> 3 & 3]

    def _shape(self, frame: bytes, body: bytes, status: int) -> tuple[bytes | None, int, int]:
        """Strip, cut and checksum-check a frame; None when the COE drops it."""
        m = self.mac
        cr, omr = m.regs[MACCR], m.dma.omr
        etype = int.from_bytes(body[12:14], "big") if len(body) >= 14 else 0
        data = frame
        if etype >= 0x600 and cr & CSTF:
            data = body
        elif etype < 0x600:
            payload = len(body) - 14
            if etype > payload or (etype >= 46 and etype != payload):
                status |= R_LE
            if cr & APCS:
                data = body[: 14 + min(etype, payload)]
        if etype == ETHERTYPE_VLAN:
            status |= R_VLAN
        limit = 16384 if cr & WD else 2048
        if len(data) > limit:
            data = data[:limit]
            status |= R_RWT | R_ES
            m.dma.set_status(1 << 9)  # RWTS
        rdes4 = 0
        if cr & IPCO:
            status, rdes4, drop = self._coe(body, status)
            if drop and not omr & OMR_DTCEFD and self._fifo_drops(len(frame)):
                return None, 0, 0
        else:
            status |= R_FT if etype >= 0x600 else 0
            giant = 1522 if etype == ETHERTYPE_VLAN else 1518
            if len(frame) > giant:
                status |= R_GIANT_IPHCE | R_ES
        return data, status, rdes4

    def _coe(self, body: bytes, status: int) -> tuple[int, int, bool]:
        """RDES0 bits, RDES4 and "has a checksum error" from the receive COE."""
        check = check_rx(body)
        enhanced = self.mac.dma.enhanced
        if check.ip_version == 0:
            if check.frame_type and not enhanced:
                status |= R_GIANT_IPHCE | R_PCE_ESA  # a type frame neither IPv4 nor IPv6
            elif check.frame_type:
                status |= R_FT
            return status, 0, False
        rdes4 = check.payload_type
        rdes4 |= (1 << 3 if check.header_error else 0) | (1 << 4 if check.payload_error else 0)
        rdes4 |= (1 << 5 if check.bypassed else 0) | (1 << 6 if check.ip_version == 4 else 1 << 7)
        if enhanced:
            status |= R_FT | R_PCE_ESA | (R_GIANT_IPHCE if check.header_error else 0)
        elif check.bypassed and not check.header_error:
            status |= R_PCE_ESA  # IP, payload not checked
        else:
            status |= R_FT | (R_GIANT_IPHCE if check.header_error else 0)
            status |= R_PCE_ESA if check.payload_error else 0
        return status, rdes4, check.header_error or check.payload_error

    # ------------------------------------------------------------------ address filter
    def _filter(self, body: bytes) -> bool:
        """Destination address (and control frame) filtering."""
        if len(body) < 14:
            return False
        if body[:6] == PAUSE_DA or body[12:14] == b"\x88\x08":
            pcf = self.mac.regs[MACFFR] >> 6 & 3
            return pcf == 2 or (pcf == 3 and self._da_pass(body))
        return self._da_pass(body)

    def _da_pass(self, body: bytes) -> bool:
        ffr = self.mac.regs[MACFFR]
        da = body[:6]
        if ffr & PM:
            return True
        if da == BROADCAST:
            return not ffr & BFD
        if da[0] & 1 and ffr & PAM:
            return True
        hashed = bool(ffr & (HM if da[0] & 1 else HU))
        perfect = self._perfect(da)
        if hashed:
            idx = hash_index(da)
            table = self.mac.regs[MACHTHR if idx & 0x20 else MACHTLR]
            ok = bool(table >> (idx & 0x1F) & 1) or (bool(ffr & HPF) and perfect)
        else:
            ok = perfect
        return ok != bool(ffr & DAIF)

    def _perfect(self, da: bytes) -> bool:
        regs = self.mac.regs
        for n in range(4):
            high, low = regs[MACA0HR + 8 * n], regs[MACA0HR + 4 + 8 * n]
            if n and (not high >> 31 & 1 or high >> 30 & 1):  # AE off, or a source address
                continue
            addr = low.to_bytes(4, "little") + (high & 0xFFFF).to_bytes(2, "little")
            masked = (high >> 24 & 0x3F) if n else 0  # MBC: bit 24+k masks byte k
            if all(masked >> k & 1 or da[k] == addr[k] for k in range(6)):
                return True
        return False

    # ------------------------------------------------------------------ transmit
    def send(self, frame: bytes, first_w0: int) -> int:
        """Transmit ``frame`` (no FCS) as TDES0 ``first_w0`` says; returns TDES0 status bits."""
        m = self.mac
        cr = m.regs[MACCR]
        status = T_VF if frame[12:14] == ETHERTYPE_VLAN.to_bytes(2, "big") else 0
        with_fcs = not first_w0 & T_DC
        if len(frame) < 60 and not first_w0 & T_DP:
            frame, with_fcs = frame + bytes(60 - len(frame)), True
        limit = 16384 if cr & JD else 2048
        if len(frame) > limit:
            frame, status = frame[:limit], status | T_JT
        wire = frame + fcs(frame) if with_fcs else frame
        phy = m.phy
        if not cr & DM and not cr & CSD and not (phy.passes_frames() or phy.loopback or cr & LM):
            return status | T_NC | T_LCA  # half duplex: no carrier, nothing sent
        if not status & T_JT:
            m.mmc.count(0x168)  # TGFCR
        self._deliver(wire)
        return status

    def _deliver(self, wire: bytes) -> None:
        m = self.mac
        if m.regs[MACCR] & LM:
            self.receive(wire)  # MAC loopback: never reaches the pins
        elif m.phy.loopback:
            self.receive(wire)
        elif not m.phy.passes_frames():
            m.warn_once("nolink", "frames sent while the PHY has no link are lost")
        elif self._pins_ok("transmit (TX_EN, TXD0, TXD1)") and self._speed_ok():
            m.to_wire(wire)

    def pause_frame(self) -> None:
        """MACFCR.FCB in full duplex: send a PAUSE frame with MACFCR.PT."""
        m = self.mac
        if not m.regs[MACCR] & TE or not m.data_path_clocked("tx"):
            return
        sa = m.regs[MACA0HR + 4].to_bytes(4, "little") + (m.regs[MACA0HR] & 0xFFFF).to_bytes(2, "little")
        pt = m.regs[0x18] >> 16
        body = PAUSE_DA + sa + b"\x88\x08\x00\x01" + pt.to_bytes(2, "big")
        self.send(body, 0)
