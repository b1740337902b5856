/*
 * lan8742.c - LAN8742A PHY: find it on MDIO, reset it, start auto-negotiation, read the
 * link (see lan8742.h).
 */
#include "lan8742.h"

#include "board.h"
#include "eth_stm32.h"

#define RESET_TIMEOUT_MS 500u

int lan8742_init(lan8742_t *phy)
{
    uint16_t id1 = 0, id2 = 0, smr = 0;
    uint32_t addr;
    for (addr = 0; addr < 32u; addr++) {
        if (eth_mdio_read(addr, LAN8742_PHYID1, &id1) != ETH_OK) {
            return LAN8742_ERR_MDIO;
        }
        if (id1 != 0xFFFFu && id1 != 0x0000u) {
            break;   /* nobody answers: the pulled-up MDIO line reads all ones */
        }
    }
    if (addr == 32u) {
        return LAN8742_ERR_NONE;
    }
    if (eth_mdio_read(addr, LAN8742_PHYID2, &id2) != ETH_OK ||
        eth_mdio_read(addr, LAN8742_SMR, &smr) != ETH_OK) {
        return LAN8742_ERR_MDIO;
    }
    phy->addr = addr;
    phy->id1 = id1;
    phy->id2 = id2;
    phy->smr = smr;

    if (eth_mdio_write(addr, LAN8742_BCR, LAN8742_BCR_SOFT_RESET) != ETH_OK) {
        return LAN8742_ERR_MDIO;
    }
    uint32_t start = board_millis();
    uint16_t bcr = LAN8742_BCR_SOFT_RESET;
    for (;;) {
        if (eth_mdio_read(addr, LAN8742_BCR, &bcr) != ETH_OK) {
            return LAN8742_ERR_MDIO;
        }
        if (!(bcr & LAN8742_BCR_SOFT_RESET)) {
            break;
        }
        if ((uint32_t)(board_millis() - start) >= RESET_TIMEOUT_MS) {
            if (eth_mdio_read(addr, LAN8742_BCR, &bcr) == ETH_OK &&
                !(bcr & LAN8742_BCR_SOFT_RESET)) {
                break;
            }
            return LAN8742_ERR_RESET;
        }
    }
    /* Advertise what the PHY can (ANAR keeps its reset value: 10/100, half/full). */
    if (eth_mdio_write(addr, LAN8742_BCR, LAN8742_BCR_AUTONEG_EN | LAN8742_BCR_RESTART_AN) !=
        ETH_OK) {
        return LAN8742_ERR_MDIO;
    }
    return LAN8742_OK;
}

int lan8742_link(const lan8742_t *phy, lan8742_link_t *link)
{
    uint16_t bsr = 0, scsr = 0;
    link->up = 0;
    link->speed_100 = 0;
    link->full_duplex = 0;
    /* Link status is latched low: the first read reports a loss since the last read. */
    if (eth_mdio_read(phy->addr, LAN8742_BSR, &bsr) != ETH_OK ||
        eth_mdio_read(phy->addr, LAN8742_BSR, &bsr) != ETH_OK) {
        return LAN8742_ERR_MDIO;
    }
    if (!(bsr & LAN8742_BSR_LINK)) {
        return LAN8742_OK;
    }
    if (eth_mdio_read(phy->addr, LAN8742_PHYSCSR, &scsr) != ETH_OK) {
        return LAN8742_ERR_MDIO;
    }
    if (!(scsr & LAN8742_SCSR_AUTODONE)) {
        return LAN8742_OK;   /* still negotiating */
    }
    uint16_t mode = scsr & LAN8742_SCSR_SPEED_MASK;
    link->up = 1;
    link->speed_100 = mode == LAN8742_SCSR_100FD || mode == LAN8742_SCSR_100HD;
    link->full_duplex = mode == LAN8742_SCSR_100FD || mode == LAN8742_SCSR_10FD;
    return LAN8742_OK;
}
