"""The NUCLEO-F767ZI's Ethernet PHY: a Microchip LAN8742A on MDIO address 0, RMII mode.

Modelled from the LAN8742A datasheet (DS00001989A) and IEEE 802.3 clause 22/28:

* Registers a driver reads: BCR 0, BSR 1 (link status latched low, read twice for the
  current state), PHYID1/2 2/3 = 0x0007/0xC130 (the LAN8742A; 0xC0F1 is the LAN8720's ID
  that Renode's board file uses), ANAR 4, ANLPAR 5, ANER 6 (page received latched high),
  MCSR 17 (ENERGYON), SMR 18 (MODE and PHYAD), SECR 26, CSIR 27, ISFR 29 (interrupt
  sources, cleared on read), IMR 30, PHYSCSR 31 (AUTODONE, resolved speed/duplex).
  Anything else reads 0 and ignores writes.
* Straps as on the board: MODE = 111 (all capable, auto-negotiation on), PHYAD = 0 (another
  board's address with ``--eth-wiring phy=N``).
* Soft reset (BCR bit 15) completes at once (the bit reads back 0) and, like nRST
  (tied to the board's NRST, so a system reset resets the PHY), restarts
  auto-negotiation; SMR keeps its value over a soft reset (NASR).
* Auto-negotiation completes ``autoneg_ns`` after it (re)starts with a cable plugged in
  (default 200 ms, about the clause-28 minimum: FLP bursts every 16 ms for the ability,
  acknowledge and complete-acknowledge rounds; real switches often take 1-3 s). The
  partner advertises 10/100 half/full duplex with symmetric pause; the result is the
  best common mode of ANAR and the partner. No common mode: the link never comes up.
  With auto-negotiation off, the forced BCR speed/duplex links after ``forced_ns``.
* The cable (``set_cable``) comes from the network's link state: unplugging drops the
  link, latches BSR low and sets ISFR link-down; plugging in sets ENERGYON and starts
  auto-negotiation, whose completion sets ISFR AN-complete (and page received, LP ack).
* Loopback (BCR 14), power down (BCR 11) and isolate (BCR 10) stop frames on the wire
  (:meth:`passes_frames`); loopback returns the MAC's frames to it.

Not modelled: nINT (the board uses that pin as the 50 MHz REFCLKO output, so IMR only
masks ISFR for readers), next pages, parallel detection, MMD registers 13/14, cable
diagnostics, WoL, the break-link timer of a renegotiation, Auto-MDIX.

Owns: the PHY's registers, link and auto-negotiation state.
Must not touch: the MAC (it is asked through :meth:`mdio_read`/:meth:`mdio_write`).
"""

from __future__ import annotations

from collections.abc import Callable

from twin.net.ethmac_timers import StopAwareTimers

PHY_ID1, PHY_ID2 = 0x0007, 0xC130
AUTONEG_NS = 200_000_000
FORCED_NS = 2_000_000

BCR, BSR, ID1, ID2, ANAR, ANLPAR, ANER = 0, 1, 2, 3, 4, 5, 6
MCSR, SMR, SECR, CSIR, ISFR, IMR, PHYSCSR = 17, 18, 26, 27, 29, 30, 31

BCR_RESET, BCR_LOOPBACK, BCR_SPEED100, BCR_AN_EN = 1 << 15, 1 << 14, 1 << 13, 1 << 12
BCR_POWER_DOWN, BCR_ISOLATE, BCR_AN_RESTART, BCR_FULL = 1 << 11, 1 << 10, 1 << 9, 1 << 8
BSR_ABILITIES = 0x7809  # 100TX FD/HD, 10T FD/HD, AN ability, extended capabilities
BSR_AN_DONE, BSR_LINK = 1 << 5, 1 << 2
ANAR_RESET = 0x01E1  # 100FD, 100HD, 10FD, 10HD, IEEE 802.3 selector
PARTNER = 0x45E1  # ACK, symmetric pause, 100FD/HD, 10FD/HD, IEEE 802.3
ISF_PAGE, ISF_LP_ACK, ISF_LINK_DOWN, ISF_AN_DONE, ISF_ENERGYON = 1 << 1, 1 << 3, 1 << 4, 1 << 6, 1 << 7
PHYSCSR_AUTODONE, PHYSCSR_4B5B = 1 << 12, 1 << 6
#: (100 Mbit/s, full duplex) → PHYSCSR speed indication bits 4:2
SPEED_BITS = {(False, False): 0x04, (False, True): 0x14, (True, False): 0x08, (True, True): 0x18}
#: ANAR ability bits from best to worst: (bit, 100 Mbit/s, full duplex)
ABILITIES = ((1 << 8, True, True), (1 << 7, True, False), (1 << 6, False, True), (1 << 5, False, False))


class Lan8742:
    """A LAN8742A: MDIO registers, cable, auto-negotiation, link.

    Args:
        timers: the MAC's halt-aware timers (the PHY's crystal keeps running in a halt).
        log: the owning device's log function.
        autoneg_ns: time from (re)start to completion of auto-negotiation.
    """

    def __init__(
        self,
        timers: StopAwareTimers,
        log: Callable[[str], None],
        autoneg_ns: int = AUTONEG_NS,
        address: int = 0,
    ) -> None:
        self.timers = timers
        self.log = log
        self.autoneg_ns = autoneg_ns
        self.cable = True
        self.on_link: Callable[[bool], None] | None = None  # told when the link goes up/down
        #: SMR's strapped value: MODE = 111, PHYAD = ``address`` (the NUCLEO's: 0)
        self.strap = 0x00E0 | (address & 0x1F)
        self.smr = self.strap
        self._registers_reset()

    # ------------------------------------------------------------------ state
    def _registers_reset(self) -> None:
        self.bcr = BCR_SPEED100 | BCR_AN_EN | BCR_FULL
        self.anar = ANAR_RESET
        self.mcsr = 0
        self.csir = 0
        self.isfr = 0
        self.imr = 0
        self.physcsr_rw = PHYSCSR_4B5B
        self.link = False
        self._bsr_link_latch = False
        self.an_done = False
        self.anlpar = 0x0001
        self.aner = 0
        self.speed100, self.full_duplex = True, True
        self.timers.cancel("phy")

    def hard_reset(self) -> None:
        """nRST (the board's NRST): straps reloaded, registers at reset values, link
        re-established."""
        self.smr = self.strap
        self._soft_reset()

    def _soft_reset(self) -> None:
        was_up = self.link
        self._registers_reset()
        if was_up:
            self._link_changed(False)
        self._start_link()

    @property
    def address(self) -> int:
        """The MDIO address the PHY answers (SMR.PHYAD)."""
        return self.smr & 0x1F

    def passes_frames(self) -> bool:
        """Frames cross between the MAC and the cable (link up, not isolated, powered,
        not in loopback)."""
        return self.link and not self.bcr & (BCR_LOOPBACK | BCR_POWER_DOWN | BCR_ISOLATE)

    @property
    def loopback(self) -> bool:
        """BCR loopback: the MAC's transmitted frames come back to it, none reach the wire."""
        return bool(self.bcr & BCR_LOOPBACK) and not self.bcr & (BCR_POWER_DOWN | BCR_ISOLATE)

    # ------------------------------------------------------------------ link
    def set_cable(self, up: bool) -> None:
        """The network's cable state changed (CPU thread)."""
        if up == self.cable:
            return
        self.cable = up
        self.log(f"PHY: cable {'plugged in' if up else 'unplugged'}")
        if up:
            self.isfr |= ISF_ENERGYON
            self._start_link()
        else:
            self.timers.cancel("phy")
            self.an_done = False
            if self.link:
                self._link_changed(False)

    def _start_link(self) -> None:
        """Begin auto-negotiation (or the forced link) if a cable is there and powered."""
        self.timers.cancel("phy")
        self.an_done = False
        self.aner = 0
        self.anlpar = 0x0001
        if not self.cable or self.bcr & BCR_POWER_DOWN:
            return
        if self.bcr & BCR_AN_EN:
            self.timers.start("phy", self.autoneg_ns, self._autoneg_done)
        else:
            self.timers.start("phy", FORCED_NS, self._forced_up)

    def _autoneg_done(self) -> None:
        common = self.anar & PARTNER
        for bit, fast, full in ABILITIES:
            if common & bit:
                self.speed100, self.full_duplex = fast, full
                break
        else:
            self.log(f"PHY: auto-negotiation found no common mode (ANAR 0x{self.anar:04X}); no link")
            return
        self.an_done = True
        self.anlpar = PARTNER
        self.aner = 0x0003  # partner AN able, page received
        self.isfr |= ISF_AN_DONE | ISF_PAGE | ISF_LP_ACK
        self._link_changed(True)

    def _forced_up(self) -> None:
        self.speed100 = bool(self.bcr & BCR_SPEED100)
        self.full_duplex = bool(self.bcr & BCR_FULL)
        self._link_changed(True)

    def _link_changed(self, up: bool) -> None:
        self.link = up
        if not up:
            self._bsr_link_latch = False
            self.isfr |= ISF_LINK_DOWN
        mode = f"{100 if self.speed100 else 10} Mbit/s {'full' if self.full_duplex else 'half'} duplex"
        self.log(f"PHY: link {'up, ' + mode if up else 'down'}")
        if self.on_link is not None:
            self.on_link(up)

    # ------------------------------------------------------------------ MDIO
    def mdio_read(self, phy: int, reg: int) -> int:
        """The value an MDIO read of ``reg`` at ``phy`` returns (0xFFFF: nobody answers,
        the board's pull-up)."""
        if phy != self.address:
            return 0xFFFF
        if reg == BSR:
            value = BSR_ABILITIES | (BSR_AN_DONE if self.an_done else 0)
            value |= BSR_LINK if self._bsr_link_latch else 0
            self._bsr_link_latch = self.link
            return value
        if reg == ANER:
            value, self.aner = self.aner, self.aner & ~0x0002  # page received: latched high
            return value
        if reg == ISFR:
            value, self.isfr = self.isfr, 0
            return value
        return self._plain_register(reg)

    def _plain_register(self, reg: int) -> int:
        if reg == BCR:
            return self.bcr
        if reg == PHYSCSR:
            value = self.physcsr_rw | (PHYSCSR_AUTODONE if self.an_done else 0)
            if self.an_done or not self.bcr & BCR_AN_EN:
                value |= SPEED_BITS[(self.speed100, self.full_duplex)]
            return value
        if reg == MCSR:
            energy = self.cable and not self.bcr & BCR_POWER_DOWN
            return (self.mcsr & 0x2240) | (0x0002 if energy else 0)
        table = {ID1: PHY_ID1, ID2: PHY_ID2, ANAR: self.anar, ANLPAR: self.anlpar, SMR: self.smr}
        table |= {SECR: 0, CSIR: self.csir, IMR: self.imr}
        return table.get(reg, 0)

    def mdio_write(self, phy: int, reg: int, value: int) -> None:
        """An MDIO write of ``value`` to ``reg`` at ``phy``."""
        if phy != self.address:
            return
        value &= 0xFFFF
        if reg == BCR:
            self._write_bcr(value)
        elif reg == ANAR:
            self.anar = (value & 0x2DE0) | 0x0001  # pause, abilities, remote fault; selector fixed
        elif reg == MCSR:
            self.mcsr = value & 0x2240  # EDPWRDOWN, FARLOOPBACK, ALTINT
        elif reg == SMR:
            self.smr = value & 0x00FF  # MODE, PHYAD (new address answers at once)
        elif reg == CSIR:
            self.csir = value & 0xA800  # AMDIXCTRL, CH_SELECT, SQEOFF
        elif reg == IMR:
            self.imr = value & 0x01FE
        elif reg == PHYSCSR:
            self.physcsr_rw = value & PHYSCSR_4B5B

    def _write_bcr(self, value: int) -> None:
        if value & BCR_RESET:
            self._soft_reset()  # completes at once: the bit reads back 0
            return
        old = self.bcr
        self.bcr = value & 0x7F80  # restart AN self-clears, reserved bits read 0
        restart = bool(value & BCR_AN_RESTART) and bool(value & BCR_AN_EN)
        changed = (old ^ self.bcr) & (BCR_AN_EN | BCR_POWER_DOWN | BCR_SPEED100 | BCR_FULL)
        if self.bcr & BCR_AN_EN:
            changed &= ~(BCR_SPEED100 | BCR_FULL)  # forced bits do not matter while AN is on
        if restart or changed:
            if self.link:
                self._link_changed(False)
            self._start_link()

    def snapshot(self) -> dict[str, object]:
        """State for the control interface."""
        return {
            "address": self.address,
            "cable": self.cable,
            "link": self.link,
            "autoneg_done": self.an_done,
            "speed_mbps": 100 if self.speed100 else 10,
            "full_duplex": self.full_duplex,
            "bcr": self.bcr,
            "anar": self.anar,
        }
