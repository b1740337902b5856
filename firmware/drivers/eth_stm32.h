/*
 * eth_stm32.h - the STM32F767's own Ethernet MAC + DMA (0x40028000, IRQ 61) in RMII mode,
 * as wired on the NUCLEO-F767ZI (LAN8742A PHY at MDIO address 0).
 *
 * Written for ota-rig from RM0410 (Ethernet chapter: MAC, MMC and DMA registers, normal
 * descriptors) and the NUCLEO-F767ZI pin-out; no vendor driver code. The driver is
 * independent of any TCP/IP stack: frames go in and out as flat buffers (one descriptor
 * buffer per frame), the lwIP glue is drivers/lwip_port/ethernetif.c.
 *
 * Memory: descriptors and frame buffers live in the .dma_ram section, which the linker
 * script puts at the start of .bss, inside the DTCM (0x20000000-0x2001FFFF; the linker
 * checks it). The DTCM is never cached by the Cortex-M7 and the Ethernet DMA reaches it
 * through the core's AHBS port, so no cache maintenance is needed even when firmware
 * turns the D-cache on. (The bootloader leaves the D-cache off anyway.)
 *
 * Time: every wait (DMA soft reset, MDIO, FIFO flush, a free TX descriptor) is bounded
 * with board_millis() and re-checks its flag once after the timeout.
 */
#ifndef ETH_STM32_H
#define ETH_STM32_H

#include <stdint.h>

/* ---------------------------------------------------------------- MAC (0x40028000) */
typedef struct {
    volatile uint32_t MACCR;      /* 0x00 configuration */
    volatile uint32_t MACFFR;     /* 0x04 frame filter */
    volatile uint32_t MACHTHR;    /* 0x08 hash table high */
    volatile uint32_t MACHTLR;    /* 0x0C hash table low */
    volatile uint32_t MACMIIAR;   /* 0x10 MII (MDIO) address */
    volatile uint32_t MACMIIDR;   /* 0x14 MII (MDIO) data */
    volatile uint32_t MACFCR;     /* 0x18 flow control */
    volatile uint32_t MACVLANTR;  /* 0x1C VLAN tag */
    uint32_t          _r0[2];     /* 0x20, 0x24 */
    volatile uint32_t MACRWUFFR;  /* 0x28 remote wake-up frame filter */
    volatile uint32_t MACPMTCSR;  /* 0x2C PMT control/status */
    uint32_t          _r1;        /* 0x30 */
    volatile uint32_t MACDBGR;    /* 0x34 debug */
    volatile uint32_t MACSR;      /* 0x38 interrupt status */
    volatile uint32_t MACIMR;     /* 0x3C interrupt mask */
    volatile uint32_t MACA0HR;    /* 0x40 address 0 high */
    volatile uint32_t MACA0LR;    /* 0x44 address 0 low */
} eth_mac_t;
#define ETH_MAC_BASE   0x40028000u
#define ETH_MAC        ((eth_mac_t *)ETH_MAC_BASE)

#define ETH_MACCR_RE    (1u << 2)    /* receiver enable */
#define ETH_MACCR_TE    (1u << 3)    /* transmitter enable */
#define ETH_MACCR_APCS  (1u << 7)    /* automatic pad/CRC stripping (length frames) */
#define ETH_MACCR_RD    (1u << 9)    /* retry disable */
#define ETH_MACCR_IPCO  (1u << 10)   /* IPv4 checksum offload (RX) */
#define ETH_MACCR_DM    (1u << 11)   /* full duplex */
#define ETH_MACCR_FES   (1u << 14)   /* 100 Mbit/s */
#define ETH_MACCR_CSTF  (1u << 25)   /* CRC stripping for type frames */

#define ETH_MACFFR_PM   (1u << 0)    /* promiscuous */
#define ETH_MACFFR_PAM  (1u << 4)    /* pass all multicast */
#define ETH_MACFFR_BFD  (1u << 5)    /* broadcast frames disable */
#define ETH_MACFFR_RA   (1u << 31)   /* receive all */

#define ETH_MACMIIAR_MB       (1u << 0)   /* busy: set to start, cleared by the MAC */
#define ETH_MACMIIAR_MW       (1u << 1)   /* write */
#define ETH_MACMIIAR_CR_POS   2u          /* clock range b4:2 */
#define ETH_MACMIIAR_CR_MASK  (7u << 2)
#define ETH_MACMIIAR_CR_DIV42  (0u << 2)  /* HCLK  60-100 MHz */
#define ETH_MACMIIAR_CR_DIV62  (1u << 2)  /* HCLK 100-150 MHz */
#define ETH_MACMIIAR_CR_DIV16  (2u << 2)  /* HCLK  20-35 MHz (and below) */
#define ETH_MACMIIAR_CR_DIV26  (3u << 2)  /* HCLK  35-60 MHz */
#define ETH_MACMIIAR_CR_DIV102 (4u << 2)  /* HCLK 150-216 MHz */
#define ETH_MACMIIAR_MR_POS   6u          /* register b10:6 */
#define ETH_MACMIIAR_PA_POS   11u         /* PHY address b15:11 */

/* MMC counters (offsets from the MAC base) */
#define ETH_MMCCR       (*(volatile uint32_t *)(ETH_MAC_BASE + 0x100u))
#define ETH_MMCRIMR     (*(volatile uint32_t *)(ETH_MAC_BASE + 0x10Cu))
#define ETH_MMCTIMR     (*(volatile uint32_t *)(ETH_MAC_BASE + 0x110u))
#define ETH_MMCTGFCR    (*(volatile uint32_t *)(ETH_MAC_BASE + 0x168u)) /* TX good frames */
#define ETH_MMCRFCECR   (*(volatile uint32_t *)(ETH_MAC_BASE + 0x194u)) /* RX CRC errors */
#define ETH_MMCRGUFCR   (*(volatile uint32_t *)(ETH_MAC_BASE + 0x1C4u)) /* RX good unicast */
#define ETH_MMCCR_CR    (1u << 0)     /* counter reset */
#define ETH_MMCCR_ROR   (1u << 2)     /* reset on read */

/* ---------------------------------------------------------------- DMA (0x40029000) */
typedef struct {
    volatile uint32_t DMABMR;     /* 0x00 bus mode */
    volatile uint32_t DMATPDR;    /* 0x04 TX poll demand */
    volatile uint32_t DMARPDR;    /* 0x08 RX poll demand */
    volatile uint32_t DMARDLAR;   /* 0x0C RX descriptor list address */
    volatile uint32_t DMATDLAR;   /* 0x10 TX descriptor list address */
    volatile uint32_t DMASR;      /* 0x14 status (write 1 to clear) */
    volatile uint32_t DMAOMR;     /* 0x18 operation mode */
    volatile uint32_t DMAIER;     /* 0x1C interrupt enable */
    volatile uint32_t DMAMFBOCR;  /* 0x20 missed frame / buffer overflow counter */
    volatile uint32_t DMARSWTR;   /* 0x24 RX status watchdog timer */
    uint32_t          _r0[8];     /* 0x28..0x44 */
    volatile uint32_t DMACHTDR;   /* 0x48 current host TX descriptor */
    volatile uint32_t DMACHRDR;   /* 0x4C current host RX descriptor */
    volatile uint32_t DMACHTBAR;  /* 0x50 current host TX buffer */
    volatile uint32_t DMACHRBAR;  /* 0x54 current host RX buffer */
} eth_dma_t;
#define ETH_DMA ((eth_dma_t *)(ETH_MAC_BASE + 0x1000u))

#define ETH_DMABMR_SR      (1u << 0)     /* software reset, cleared by the MAC */
#define ETH_DMABMR_PBL(n)  ((uint32_t)(n) << 8)
#define ETH_DMABMR_FB      (1u << 16)    /* fixed burst */
#define ETH_DMABMR_RDP(n)  ((uint32_t)(n) << 17)
#define ETH_DMABMR_USP     (1u << 23)    /* separate RX burst length (RDP) */
#define ETH_DMABMR_AAB     (1u << 25)    /* address-aligned beats */

#define ETH_DMASR_TS    (1u << 0)    /* frame transmitted */
#define ETH_DMASR_TPSS  (1u << 1)    /* TX process stopped */
#define ETH_DMASR_TBUS  (1u << 2)    /* TX buffer unavailable (suspended) */
#define ETH_DMASR_TJTS  (1u << 3)
#define ETH_DMASR_ROS   (1u << 4)    /* RX overflow */
#define ETH_DMASR_TUS   (1u << 5)    /* TX underflow */
#define ETH_DMASR_RS    (1u << 6)    /* frame received */
#define ETH_DMASR_RBUS  (1u << 7)    /* RX buffer unavailable (suspended) */
#define ETH_DMASR_RPSS  (1u << 8)    /* RX process stopped */
#define ETH_DMASR_FBES  (1u << 13)   /* fatal bus error: DMA stopped */
#define ETH_DMASR_AIS   (1u << 15)
#define ETH_DMASR_NIS   (1u << 16)
#define ETH_DMASR_RPS_POS 17u
#define ETH_DMASR_TPS_POS 20u
#define ETH_DMASR_W1C   0x0001E7FFu  /* every write-1-to-clear status bit */

#define ETH_DMAOMR_SR   (1u << 1)    /* start RX */
#define ETH_DMAOMR_OSF  (1u << 2)    /* operate on second frame */
#define ETH_DMAOMR_ST   (1u << 13)   /* start TX */
#define ETH_DMAOMR_FTF  (1u << 20)   /* flush TX FIFO, cleared by the MAC */
#define ETH_DMAOMR_TSF  (1u << 21)   /* TX store and forward (needed for checksum insertion) */
#define ETH_DMAOMR_RSF  (1u << 25)   /* RX store and forward */

#define ETH_DMAIER_TIE  (1u << 0)
#define ETH_DMAIER_RIE  (1u << 6)
#define ETH_DMAIER_RBUIE (1u << 7)
#define ETH_DMAIER_FBEIE (1u << 13)
#define ETH_DMAIER_AISE (1u << 15)
#define ETH_DMAIER_NISE (1u << 16)

/* ---------------------------------------------------------------- descriptors (normal, 4 words) */
typedef struct eth_desc {
    volatile uint32_t des0;     /* status / control, OWN */
    volatile uint32_t des1;     /* buffer sizes, RX control */
    volatile uint32_t des2;     /* buffer 1 address */
    volatile uint32_t des3;     /* next descriptor (chained mode) */
} eth_desc_t;

#define ETH_TDES0_OWN   (1u << 31)
#define ETH_TDES0_IC    (1u << 30)   /* interrupt on completion */
#define ETH_TDES0_LS    (1u << 29)
#define ETH_TDES0_FS    (1u << 28)
#define ETH_TDES0_CIC_FULL (3u << 22) /* IP header + payload (TCP/UDP/ICMP, pseudo-header) */
#define ETH_TDES0_TCH   (1u << 20)   /* second address = next descriptor */
#define ETH_TDES0_ES    (1u << 15)   /* error summary */
#define ETH_TDES1_TBS1_MASK 0x1FFFu

#define ETH_RDES0_OWN   (1u << 31)
#define ETH_RDES0_FL_POS 16u
#define ETH_RDES0_FL_MASK (0x3FFFu << 16)
#define ETH_RDES0_ES    (1u << 15)   /* error summary */
#define ETH_RDES0_FS    (1u << 9)
#define ETH_RDES0_LS    (1u << 8)
#define ETH_RDES0_IPHCE (1u << 7)    /* with IPCO: IPv4 header checksum error */
#define ETH_RDES0_FT    (1u << 5)    /* frame type: Ethernet type frame (IPv4 when checked) */
#define ETH_RDES0_PCE   (1u << 0)    /* with IPCO: TCP/UDP/ICMP checksum error */
#define ETH_RDES1_RCH   (1u << 14)   /* second address = next descriptor */
#define ETH_RDES1_RBS1_MASK 0x1FFFu

/* ---------------------------------------------------------------- driver */
#define ETH_RX_DESC_COUNT  32u
#define ETH_TX_DESC_COUNT  4u
#define ETH_BUF_SIZE       1536u     /* >= 1518 + VLAN, multiple of 32 */
#define ETH_FRAME_MAX      1514u     /* without FCS */
#ifndef ETH_RX_CSUM_OFFLOAD
#define ETH_RX_CSUM_OFFLOAD 1        /* MACCR.IPCO: the MAC checks (and drops) checksums */
#endif

#define ETH_OK          0
#define ETH_ERR_RESET   (-1)         /* DMABMR.SR never cleared (no RMII REF_CLK?) */
#define ETH_ERR_MDIO    (-2)         /* MACMIIAR.MB never cleared */
#define ETH_ERR_BUSY    (-3)         /* no free TX descriptor in time */
#define ETH_ERR_ARG     (-4)

typedef struct {
    uint32_t rx_frames;      /* good frames handed up */
    uint32_t rx_errors;      /* descriptors with ES or a checksum error, or a frame spread
                                over several */
    uint32_t rx_resumes;     /* RX process resumed after "buffer unavailable" */
    uint32_t tx_frames;
    uint32_t tx_busy;        /* sends given up: every TX descriptor owned by the DMA */
    uint32_t tx_errors;      /* TDES0.ES seen when a descriptor came back */
    uint32_t fatal;          /* DMASR.FBES seen (DMA stopped, restarted) */
    uint32_t last_dmasr;
} eth_stats_t;

/* Clocks, RMII pins (AF11), SYSCFG_PMC.MII_RMII_SEL while the MAC is held in reset,
   DMA soft reset (bounded), MDIO clock range, MAC address, filter, descriptor rings.
   Nothing is started: call eth_start() once the PHY reports a link. */
int  eth_init(const uint8_t mac[6]);
/* MDIO (clause 22). 0 or ETH_ERR_MDIO. */
int  eth_mdio_read(uint32_t phy, uint32_t reg, uint16_t *val);
int  eth_mdio_write(uint32_t phy, uint32_t reg, uint16_t val);
/* Program speed/duplex into MACCR and start TX/RX DMA and the MAC. Idempotent. */
void eth_start(int speed_100, int full_duplex);
/* Stop MAC and DMA (frames in flight are dropped). */
void eth_stop(void);
/* Undo eth_init for a jump: MAC reset, IRQ 61 off and unpended, pins and clocks back. */
void eth_deinit(void);

/* TX: a buffer of ETH_BUF_SIZE bytes for the next frame, or NULL if the DMA still owns
   every descriptor after timeout_ms. eth_tx_send hands it to the DMA (len <= 1514,
   padding and FCS are added by the MAC; with csum_offload the MAC fills in the IPv4
   header and TCP/UDP/ICMP checksums). */
uint8_t *eth_tx_buffer(uint32_t timeout_ms);
int  eth_tx_send(uint32_t len, int csum_offload);

/* RX: 1 and the next good frame (without FCS) if one is ready, else 0. The buffer stays
   valid until eth_rx_release(), which gives the descriptor back to the DMA. */
int  eth_rx_frame(const uint8_t **frame, uint32_t *len);
void eth_rx_release(void);

/* IRQ 61: with on, DMAIER = NISE|RIE|AISE|FBEIE|RBUIE and the NVIC line enabled;
   ETH_IRQHandler acknowledges DMASR and counts. Polling works either way. */
void eth_irq_enable(int on);
extern volatile uint32_t g_eth_irq_count;

const eth_stats_t *eth_stats(void);

#endif /* ETH_STM32_H */
