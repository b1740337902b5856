/*
 * lwipopts.h - lwIP 2.1 configuration of the ota-rig firmware: NO_SYS (raw API, one
 * thread, polled), IPv4 only, ARP + ICMP + UDP (for DHCP) + TCP, one netif.
 *
 * Sizing (RAM in .bss, see the build's size report):
 *   - TCP_WND 24 segments (35 KiB): the sender may have that many frames in flight, and
 *     they can arrive back to back, so the driver has more RX descriptors than that (32,
 *     eth_stm32.h): a frame the MAC cannot store is lost, and a lost segment costs the
 *     sender a retransmission timeout. 16 segments left the twin's 512 KiB transfer
 *     window-bound (~12 % slower side by side); 32 was no faster.
 *   - PBUF_POOL: 36 x ~1.5 KiB receive buffers. Received TCP data stays in its pbufs
 *     until the transport's caller consumes it, so the pool covers the whole receive
 *     window plus out-of-order segments and frames being handed in.
 *   - MEM_SIZE: the heap for PBUF_RAM (TCP send copies up to TCP_SND_BUF, ARP queue,
 *     DHCP messages).
 *   - The Ethernet driver's own descriptors and buffers are separate (eth_stm32.h).
 * Checksums: the MAC's checksum offload both ways when LWIP_PORT_TX_CSUM_OFFLOAD /
 * LWIP_PORT_RX_CSUM_OFFLOAD are 1: TX descriptors with CIC = 3 (IPv4 header and the
 * TCP/UDP/ICMP checksum incl. pseudo-header are filled in), MACCR.IPCO on receive (the
 * MAC drops frames whose checksums are wrong, the driver too if one slips through), so
 * lwIP neither computes nor checks them. 0 puts either direction back in software.
 */
#ifndef LWIP_LWIPOPTS_H
#define LWIP_LWIPOPTS_H

#ifndef LWIP_PORT_TX_CSUM_OFFLOAD
#define LWIP_PORT_TX_CSUM_OFFLOAD 1
#endif
#ifndef LWIP_PORT_RX_CSUM_OFFLOAD
#define LWIP_PORT_RX_CSUM_OFFLOAD 1   /* must match ETH_RX_CSUM_OFFLOAD (eth_stm32.h) */
#endif

/* ---- system */
#define NO_SYS                      1
#define SYS_LIGHTWEIGHT_PROT        0   /* lwIP is only ever called from thread mode */
#define LWIP_TIMERS                 1
#define LWIP_NETCONN                0
#define LWIP_SOCKET                 0
#define LWIP_SINGLE_NETIF           1
#define LWIP_NETIF_LINK_CALLBACK    1
#define LWIP_NETIF_STATUS_CALLBACK  1
#define LWIP_NETIF_HOSTNAME         0
#define LWIP_STATS                  0
#define LWIP_PROVIDE_ERRNO          0

/* ---- memory */
#define MEM_ALIGNMENT               4
#define MEM_SIZE                    (20 * 1024)
#define MEMP_NUM_PBUF               8
#define MEMP_NUM_UDP_PCB            2
#define MEMP_NUM_TCP_PCB            6
#define MEMP_NUM_TCP_PCB_LISTEN     4
#define MEMP_NUM_TCP_SEG            32
#define MEMP_NUM_ARP_QUEUE          8
#define PBUF_POOL_SIZE              36
#define PBUF_POOL_BUFSIZE           1536

/* ---- protocols */
#define LWIP_IPV4                   1
#define LWIP_IPV6                   0
#define LWIP_ARP                    1
#define ARP_TABLE_SIZE              4
#define ARP_QUEUEING                1
#define ETHARP_SUPPORT_STATIC_ENTRIES 0
#define LWIP_ICMP                   1
#define LWIP_RAW                    0
#define LWIP_UDP                    1
#define LWIP_TCP                    1
#define LWIP_DHCP                   1
#define LWIP_DHCP_CHECK_LINK_UP     1
#define DHCP_DOES_ARP_CHECK         0   /* no 2 s ARP probe before using a lease */
#define LWIP_AUTOIP                 0
#define LWIP_IGMP                   0
#define LWIP_DNS                    0
#define IP_REASSEMBLY               0
#define IP_FRAG                     0
#define LWIP_RANDOMIZE_INITIAL_LOCAL_PORTS 1   /* a rebooted board never reuses a 4-tuple */

/* ---- TCP */
#define TCP_MSS                     1460
#define TCP_WND                     (24 * TCP_MSS)
#define TCP_SND_BUF                 (8 * TCP_MSS)
#define TCP_SND_QUEUELEN            (2 * TCP_SND_BUF / TCP_MSS)
#define TCP_QUEUE_OOSEQ             1
/* A window update is sent once the application has consumed half the window (lwIP's
   default, a quarter, sent one for every 4 segments on top of the delayed ACK of every
   second one: 0.75 ACKs a segment; this gives 0.56, and the sender still sees at least
   half the window open). */
#define TCP_WND_UPDATE_THRESHOLD    (TCP_WND / 2)
#define TCP_OOSEQ_MAX_PBUFS         4
#define LWIP_TCP_KEEPALIVE          0
#define TCP_LISTEN_BACKLOG          0

/* ---- checksums */
#if LWIP_PORT_TX_CSUM_OFFLOAD
#define CHECKSUM_GEN_IP             0
#define CHECKSUM_GEN_UDP            0
#define CHECKSUM_GEN_TCP            0
#define CHECKSUM_GEN_ICMP           0
#endif
#if LWIP_PORT_RX_CSUM_OFFLOAD
#define CHECKSUM_CHECK_IP           0
#define CHECKSUM_CHECK_UDP          0
#define CHECKSUM_CHECK_TCP          0
#define CHECKSUM_CHECK_ICMP         0
#endif

/* ---- debugging: LWIP_DEBUGF lines go to the console when a module's flag is LWIP_DBG_ON */
#ifdef LWIP_PORT_DEBUG
#define LWIP_DEBUG                  1
#define LWIP_DBG_MIN_LEVEL          LWIP_DBG_LEVEL_ALL
#define DHCP_DEBUG                  LWIP_DBG_ON
#define TCP_DEBUG                   LWIP_DBG_ON
#define ETHARP_DEBUG                LWIP_DBG_ON
#endif

#endif /* LWIP_LWIPOPTS_H */
