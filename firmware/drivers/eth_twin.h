/*
 * eth_twin.h - registers of the twin's socket-offload Ethernet device (0x40030000, IRQ 61).
 *
 * A twin-specific block (not the STM32 ETH MAC): one TCP connection driven by commands,
 * with DMA-style buffers in RAM. Full description: docs/twin-network.md.
 * transport_eth (eth_twin.c) is the driver; nothing else should need these.
 */
#ifndef ETH_TWIN_H
#define ETH_TWIN_H

#include <stdint.h>

typedef struct {
    volatile uint32_t ID;           /* 0x00 RO 0x54485445 "ETHT" */
    volatile uint32_t CTRL;         /* 0x04 RW bit0 EN */
    volatile uint32_t STATUS;       /* 0x08 RO ETHT_ST_* */
    volatile uint32_t ISR;          /* 0x0C W1C ETHT_IF_* */
    volatile uint32_t IER;          /* 0x10 RW ETHT_IF_* -> IRQ 61 (level) */
    volatile uint32_t CMD;          /* 0x14 WO ETHT_CMD_* */
    volatile int32_t  CONN_RES;     /* 0x18 RO 0 or ETHT_E_* */
    volatile int32_t  ERR;          /* 0x1C RO last rejected command's error; write clears */
    volatile uint32_t IP;           /* 0x20 RW remote IPv4, host order (192.168.1.10 = 0xC0A8010A) */
    volatile uint32_t PORT;         /* 0x24 RW remote port */
    volatile uint32_t TX_ADDR;      /* 0x28 RW */
    volatile uint32_t TX_LEN;       /* 0x2C RW 1..65535 */
    volatile int32_t  TX_RES;       /* 0x30 RO bytes sent or ETHT_E_ABORTED */
    volatile uint32_t RX_ADDR;      /* 0x34 RW */
    volatile uint32_t RX_MAX;       /* 0x38 RW buffer size (a delivery is <= min(RX_MAX, MSS)) */
    volatile int32_t  RX_RES;       /* 0x3C RO >0 bytes, 0 peer closed, <0 ETHT_E_* */
    volatile uint32_t RX_AVAIL;     /* 0x40 RO bytes waiting in the device */
    volatile uint32_t MSS;          /* 0x44 RO 1460 */
    volatile uint32_t CLOSE_REASON; /* 0x48 RO 0 none, 1 FIN, 2 reset */
    volatile uint32_t RX_TOTAL;     /* 0x4C RO */
    volatile uint32_t TX_TOTAL;     /* 0x50 RO */
} etht_t;

#define ETHT_BASE       0x40030000u
#define ETHT            ((etht_t *)ETHT_BASE)
#define ETHT_IRQN       61
#define ETHT_ID_VALUE   0x54485445u

#define ETHT_CTRL_EN    (1u << 0)

#define ETHT_ST_LINK        (1u << 0)
#define ETHT_ST_CONNECTING  (1u << 1)
#define ETHT_ST_CONNECTED   (1u << 2)
#define ETHT_ST_PEER_CLOSED (1u << 3)
#define ETHT_ST_TX_BUSY     (1u << 4)
#define ETHT_ST_RX_ARMED    (1u << 5)
#define ETHT_ST_RX_DATA     (1u << 6)
#define ETHT_ST_ABORTED     (1u << 7)

#define ETHT_IF_CONN    (1u << 0)
#define ETHT_IF_RX      (1u << 1)
#define ETHT_IF_TX      (1u << 2)
#define ETHT_IF_CLOSED  (1u << 3)
#define ETHT_IF_LINK    (1u << 4)
#define ETHT_IF_ERR     (1u << 5)
#define ETHT_IF_ALL     0x3Fu

#define ETHT_CMD_CONNECT   1u
#define ETHT_CMD_SEND      2u
#define ETHT_CMD_RECV      3u
#define ETHT_CMD_CLOSE     4u
#define ETHT_CMD_ABORT     5u
#define ETHT_CMD_RX_CANCEL 6u

#define ETHT_E_REFUSED     (-3)
#define ETHT_E_UNREACHABLE (-4)
#define ETHT_E_STATE       (-9)
#define ETHT_E_ABORTED     (-12)
#define ETHT_E_TIMEOUT     (-13)
#define ETHT_E_DISABLED    (-20)
#define ETHT_E_ARG         (-22)

#endif /* ETH_TWIN_H */
