/*
 * net.h - the board's one network interface: STM32 ETH MAC + LAN8742A under lwIP
 * (NO_SYS, raw API, polled). Used by the Ethernet transport (transport_lwip.c) and by
 * test programs that speak lwIP's raw API themselves (firmware/progs/lwiptest).
 *
 * Everything runs in thread mode from net_poll(): received frames into lwIP, lwIP's
 * timers, and a PHY link check every NET_LINK_POLL_MS. Nothing here blocks for long.
 */
#ifndef LWIP_PORT_NET_H
#define LWIP_PORT_NET_H

#include <stdint.h>

#define NET_LINK_POLL_MS 100u
/* HCLK while the network is up: the MAC needs at least 25 MHz (RM0410), the reset clock
   is HSI 16 MHz. net_init raises SYSCLK to this (PLL from HSI), net_deinit goes back. */
#define NET_HCLK_HZ      32000000u

#define NET_OK          0
#define NET_ERR_MAC     (-1)   /* DMA soft reset never completed (no REF_CLK from the PHY?) */
#define NET_ERR_PHY     (-2)   /* no PHY on MDIO, or it did not come out of reset */
#define NET_ERR_CLOCK   (-3)   /* the PLL did not lock: HCLK would be too slow for the MAC */

typedef struct {
    uint32_t ip;        /* host order (192.168.1.20 = 0xC0A80114); 0 with dhcp */
    uint32_t netmask;
    uint32_t gateway;
    int dhcp;           /* 1: ask for a lease (ip/netmask/gateway ignored) */
} net_config_t;

struct netif;

/* Bring up MAC, PHY and the lwIP interface (lwIP itself is initialised once). The
   link comes up later, in net_poll(). Safe to call again after net_deinit(). */
int net_init(const net_config_t *cfg);
/* One round: frames in, timers, link check (rate-limited). Returns quickly, with the
   number of frames handed to lwIP. */
uint32_t net_poll(void);
/* Poll until cond() is true or timeout_ms passed; 1 if cond() held. */
int net_wait(int (*cond)(void), uint32_t timeout_ms);
int net_link_up(void);
/* Link up and an address bound (static, or a DHCP lease). */
int net_ready(void);
uint32_t net_ip(void);           /* host order, 0 if none */
const uint8_t *net_mac(void);    /* 6 bytes */
struct netif *net_netif(void);
/* MAC and PHY state for logs: "link 100FD phy@0 0007:c131 rx=.. tx=.." */
void net_describe(char *buf, uint32_t size);
/* Interface down, MAC reset, pins and clocks back, IRQ 61 off (before a jump). */
void net_deinit(void);

#endif /* LWIP_PORT_NET_H */
