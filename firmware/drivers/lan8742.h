/*
 * lan8742.h - Microchip LAN8742A 10/100 RMII PHY over the MAC's MDIO (eth_mdio_*).
 *
 * Written for ota-rig from the LAN8742A datasheet's register map (IEEE 802.3 clause 22
 * registers 0-6 plus the vendor registers 17, 18, 26-31). The NUCLEO-F767ZI straps the
 * PHY to MDIO address 0; the driver still scans 0..31 and takes the first address that
 * answers with a plausible ID, so a board strapped differently works too.
 */
#ifndef LAN8742_H
#define LAN8742_H

#include <stdint.h>

#define LAN8742_BCR      0u    /* basic control */
#define LAN8742_BSR      1u    /* basic status (link status latched low) */
#define LAN8742_PHYID1   2u    /* 0x0007 (OUI bits 3-18) */
#define LAN8742_PHYID2   3u    /* 0xC13x on the LAN8742A (x = revision) */
#define LAN8742_ANAR     4u
#define LAN8742_ANLPAR   5u
#define LAN8742_ANER     6u
#define LAN8742_SMR      18u   /* special modes: PHYAD b4:0 */
#define LAN8742_ISFR     29u   /* interrupt source flags (read clears) */
#define LAN8742_IMR      30u
#define LAN8742_PHYSCSR  31u   /* PHY special control/status */

#define LAN8742_BCR_SOFT_RESET    0x8000u
#define LAN8742_BCR_AUTONEG_EN    0x1000u
#define LAN8742_BCR_RESTART_AN    0x0200u
#define LAN8742_BSR_LINK          0x0004u
#define LAN8742_BSR_AN_COMPLETE   0x0020u
#define LAN8742_SCSR_AUTODONE     0x1000u
#define LAN8742_SCSR_SPEED_MASK   0x001Cu
#define LAN8742_SCSR_10HD         0x0004u
#define LAN8742_SCSR_100HD        0x0008u
#define LAN8742_SCSR_10FD         0x0014u
#define LAN8742_SCSR_100FD        0x0018u

#define LAN8742_OK         0
#define LAN8742_ERR_NONE   (-1)   /* no PHY answered on MDIO 0..31 */
#define LAN8742_ERR_RESET  (-2)   /* BCR soft reset never cleared */
#define LAN8742_ERR_MDIO   (-3)

typedef struct {
    uint32_t addr;     /* MDIO address found by the scan */
    uint16_t id1, id2;
    uint16_t smr;
} lan8742_t;

typedef struct {
    int up;            /* link up and auto-negotiation complete */
    int speed_100;
    int full_duplex;
} lan8742_link_t;

/* Scan, soft reset (bounded, 500 ms), enable and restart auto-negotiation. */
int lan8742_init(lan8742_t *phy);
/* Current link (BSR read twice for the latched-low bit, then PHYSCSR for the result). */
int lan8742_link(const lan8742_t *phy, lan8742_link_t *link);

#endif /* LAN8742_H */
