/*
 * ethernetif.c - lwIP netif driver on the STM32 ETH MAC: frames are copied between
 * pbufs and the driver's own DMA buffers (one descriptor per frame), which keeps lwIP's
 * memory out of the DMA's way and the driver independent of lwIP.
 */
#include "ethernetif.h"

#include "eth_stm32.h"
#include "lwip/etharp.h"
#include "lwip/pbuf.h"
#include "lwipopts.h"
#include "netif/ethernet.h"

#if LWIP_PORT_RX_CSUM_OFFLOAD != ETH_RX_CSUM_OFFLOAD
#error "lwIP trusts received checksums only if the MAC checks them (ETH_RX_CSUM_OFFLOAD)"
#endif

#define TX_WAIT_MS 20u   /* a free TX descriptor: 4 frames at 10 Mbit/s take < 5 ms */

uint32_t g_ethernetif_rx_nomem;

static err_t low_level_output(struct netif *netif, struct pbuf *p)
{
    (void)netif;
    if (p->tot_len > ETH_FRAME_MAX) {
        return ERR_BUF;
    }
    uint8_t *buf = eth_tx_buffer(TX_WAIT_MS);
    if (buf == NULL) {
        return ERR_IF;   /* like a frame lost on the wire: TCP retransmits */
    }
    (void)pbuf_copy_partial(p, buf, p->tot_len, 0);
    return eth_tx_send(p->tot_len, LWIP_PORT_TX_CSUM_OFFLOAD) == ETH_OK ? ERR_OK : ERR_IF;
}

uint32_t ethernetif_input_poll(struct netif *netif)
{
    uint32_t n = 0;
    const uint8_t *frame;
    uint32_t len;
    while (n < ETH_RX_DESC_COUNT && eth_rx_frame(&frame, &len)) {
        struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_POOL);
        if (p != NULL) {
            (void)pbuf_take(p, frame, (u16_t)len);
        }
        eth_rx_release();
        n++;
        if (p == NULL) {
            g_ethernetif_rx_nomem++;
        } else if (netif->input(p, netif) != ERR_OK) {
            pbuf_free(p);
        }
    }
    return n;
}

err_t ethernetif_init(struct netif *netif)
{
    const uint8_t *mac = (const uint8_t *)netif->state;
    netif->name[0] = 'e';
    netif->name[1] = '0';
    netif->output = etharp_output;
    netif->linkoutput = low_level_output;
    netif->mtu = 1500;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    for (unsigned i = 0; i < ETH_HWADDR_LEN; i++) {
        netif->hwaddr[i] = mac[i];
    }
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}
