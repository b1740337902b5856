/*
 * ethernetif.h - lwIP netif driver on the STM32 ETH MAC (eth_stm32.h).
 */
#ifndef LWIP_PORT_ETHERNETIF_H
#define LWIP_PORT_ETHERNETIF_H

#include "lwip/err.h"
#include "lwip/netif.h"

/* netif_add() init callback: name "e0", MTU 1500, ARP + broadcast, hwaddr from
   netif->state (6 bytes), output through the MAC's TX ring. */
err_t ethernetif_init(struct netif *netif);
/* Hand every received frame waiting in the RX ring to netif->input (at most one ring's
   worth per call). Returns the number of frames. */
uint32_t ethernetif_input_poll(struct netif *netif);

/* Frames dropped because no pbuf was free (PBUF_POOL exhausted). */
extern uint32_t g_ethernetif_rx_nomem;

#endif /* LWIP_PORT_ETHERNETIF_H */
