/*
 * net.c - bring-up and polling of the board's lwIP interface (see net.h), plus the
 * small platform hooks lwIP needs under NO_SYS: sys_now (board_millis, the DWT time
 * base every driver here uses), LWIP_RAND (xorshift seeded from the RNG peripheral and
 * the unique ID, so a rebooted board picks new ports and sequence numbers), the
 * assertion hook and atoi.
 */
#include "net.h"

#include "board.h"
#include "eth_stm32.h"
#include "ethernetif.h"
#include "lan8742.h"
#include "lwip/dhcp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"
#include "stm32f767.h"

#define RNG_CR   REG32(0x50060800u)
#define RNG_SR   REG32(0x50060804u)
#define RNG_DR   REG32(0x50060808u)
#define RNG_CR_RNGEN  (1u << 2)
#define RNG_SR_DRDY   (1u << 0)
#define RCC_AHB2ENR_RNGEN (1u << 6)

static struct netif s_netif;
static uint8_t s_mac[6];
static lan8742_t s_phy;
static lan8742_link_t s_link;
static int s_lwip_ready;
static int s_netif_added;
static int s_hw_up;
static int s_dhcp;
static uint32_t s_last_link_check;
static uint32_t s_rand;

/* ---------------------------------------------------------------- lwIP platform hooks */
u32_t sys_now(void)
{
    return board_millis();
}

uint32_t lwip_port_rand(void)
{
    uint32_t x = s_rand ? s_rand : 0x2545F491u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    s_rand = x;
    return x;
}

void lwip_port_assert(const char *msg, int line, const char *file)
{
    board_printf("lwIP assertion \"%s\" failed at %s:%d\n", msg, file, line);
    for (;;) {
    }
}

int lwip_port_atoi(const char *s)
{
    int v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
    }
    return v;
}

/* Seed from the RNG peripheral (two words, bounded wait), the unique ID and the cycle
   counter; the RNG is switched off again (its clock too, if it was off). */
static void seed_rand(void)
{
    uint32_t seed = fw_crc32(0, (const void *)(uintptr_t)UID_BASE_ADDR, 12) ^ board_cycles();
    uint32_t was_on = RCC->AHB2ENR & RCC_AHB2ENR_RNGEN;
    RCC->AHB2ENR |= RCC_AHB2ENR_RNGEN;
    (void)RCC->AHB2ENR;
    RNG_CR |= RNG_CR_RNGEN;
    for (uint32_t words = 0; words < 2u; words++) {
        uint32_t start = board_millis();
        while (!(RNG_SR & RNG_SR_DRDY) && (uint32_t)(board_millis() - start) < 2u) {
        }
        if (RNG_SR & RNG_SR_DRDY) {
            seed = (seed << 7 | seed >> 25) ^ RNG_DR;
        }
    }
    RNG_CR &= ~RNG_CR_RNGEN;
    if (!was_on) {
        RCC->AHB2ENR &= ~RCC_AHB2ENR_RNGEN;
    }
    s_rand ^= seed ? seed : 1u;
}

/* Locally administered unicast address from the 96-bit unique ID: 02:80:E1:xx:xx:xx. */
static void make_mac(void)
{
    uint32_t h = fw_crc32(0, (const void *)(uintptr_t)UID_BASE_ADDR, 12);
    s_mac[0] = 0x02;
    s_mac[1] = 0x80;
    s_mac[2] = 0xE1;
    s_mac[3] = (uint8_t)(h >> 16);
    s_mac[4] = (uint8_t)(h >> 8);
    s_mac[5] = (uint8_t)h;
}

static void to_ip4(ip4_addr_t *a, uint32_t host_order)
{
    ip4_addr_set_u32(a, lwip_htonl(host_order));
}

/* ---------------------------------------------------------------- interface */
int net_init(const net_config_t *cfg)
{
    if (s_hw_up) {
        net_deinit();
    }
    make_mac();
    if (board_clock_set(NET_HCLK_HZ) != 0) {
        return NET_ERR_CLOCK;
    }
    seed_rand();   /* after the PLL: the RNG's clock is its Q output (none on the HSI alone) */
    if (eth_init(s_mac) != ETH_OK) {
        eth_deinit();
        (void)board_clock_set(BOARD_CORE_HZ);
        return NET_ERR_MAC;
    }
    if (lan8742_init(&s_phy) != LAN8742_OK) {
        eth_deinit();
        (void)board_clock_set(BOARD_CORE_HZ);
        return NET_ERR_PHY;
    }
    s_hw_up = 1;
    s_link.up = 0;
    s_last_link_check = board_millis() - NET_LINK_POLL_MS;

    if (!s_lwip_ready) {
        lwip_init();
        s_lwip_ready = 1;
    }
    ip4_addr_t ip, mask, gw;
    s_dhcp = cfg->dhcp;
    to_ip4(&ip, s_dhcp ? 0u : cfg->ip);
    to_ip4(&mask, s_dhcp ? 0u : cfg->netmask);
    to_ip4(&gw, s_dhcp ? 0u : cfg->gateway);
    if (!s_netif_added) {
        if (netif_add(&s_netif, &ip, &mask, &gw, s_mac, ethernetif_init, ethernet_input) == NULL) {
            return NET_ERR_MAC;
        }
        netif_set_default(&s_netif);
        s_netif_added = 1;
    } else {
        netif_set_addr(&s_netif, &ip, &mask, &gw);
    }
    netif_set_link_down(&s_netif);
    netif_set_up(&s_netif);
    if (s_dhcp) {
        (void)dhcp_start(&s_netif);   /* waits for the link (LWIP_DHCP_CHECK_LINK_UP) */
    }
    return NET_OK;
}

static void check_link(void)
{
    lan8742_link_t now;
    if (lan8742_link(&s_phy, &now) != LAN8742_OK) {
        return;
    }
    if (now.up && (!s_link.up || now.speed_100 != s_link.speed_100 ||
                   now.full_duplex != s_link.full_duplex)) {
        eth_start(now.speed_100, now.full_duplex);
        s_link = now;
        netif_set_link_up(&s_netif);
    } else if (!now.up && s_link.up) {
        s_link = now;
        netif_set_link_down(&s_netif);
    }
}

/* While frames keep coming, the timers and the link are looked at every BUSY_ROUNDS
   rounds only (reading the time is a peripheral access too). */
#define BUSY_ROUNDS 8u

uint32_t net_poll(void)
{
    static uint32_t busy;
    if (!s_hw_up) {
        return 0;
    }
    uint32_t n = ethernetif_input_poll(&s_netif);
    if (n != 0 && ++busy < BUSY_ROUNDS) {
        return n;
    }
    busy = 0;
    sys_check_timeouts();
    uint32_t now = board_millis();
    if ((uint32_t)(now - s_last_link_check) >= NET_LINK_POLL_MS) {
        s_last_link_check = now;
        check_link();
    }
    return n;
}

int net_wait(int (*cond)(void), uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    for (;;) {
        uint32_t n = net_poll();
        if (cond()) {
            return 1;
        }
        if (n == 0 && (uint32_t)(board_millis() - start) >= timeout_ms) {
            net_poll();
            return cond();
        }
    }
}

int net_link_up(void)
{
    return s_hw_up && s_link.up;
}

int net_ready(void)
{
    return net_link_up() && !ip4_addr_isany_val(*netif_ip4_addr(&s_netif));
}

uint32_t net_ip(void)
{
    return s_netif_added ? lwip_ntohl(ip4_addr_get_u32(netif_ip4_addr(&s_netif))) : 0u;
}

const uint8_t *net_mac(void)
{
    return s_mac;
}

struct netif *net_netif(void)
{
    return &s_netif;
}

void net_describe(char *buf, uint32_t size)
{
    const eth_stats_t *st = eth_stats();
    fw_snprintf(buf, size, "link %s%s phy@%lu %04x:%04x rx=%lu err=%lu nomem=%lu tx=%lu busy=%lu",
                s_link.up ? (s_link.speed_100 ? "100" : "10") : "down",
                s_link.up ? (s_link.full_duplex ? "FD" : "HD") : "",
                (unsigned long)s_phy.addr, s_phy.id1, s_phy.id2,
                (unsigned long)st->rx_frames, (unsigned long)st->rx_errors,
                (unsigned long)g_ethernetif_rx_nomem, (unsigned long)st->tx_frames,
                (unsigned long)st->tx_busy);
}

void net_deinit(void)
{
    if (s_netif_added) {
        if (s_dhcp) {
            dhcp_stop(&s_netif);
        }
        netif_set_link_down(&s_netif);
        netif_set_down(&s_netif);
    }
    s_link.up = 0;
    s_hw_up = 0;
    eth_deinit();
    (void)board_clock_set(BOARD_CORE_HZ);
}
