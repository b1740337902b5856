/*
 * eth_stm32.c - STM32F767 Ethernet MAC + DMA in RMII mode (see eth_stm32.h).
 *
 * Bring-up order (RM0410, Ethernet chapter and SYSCFG_PMC):
 *   1. GPIO clocks, the nine RMII pins in AF11 (very high speed, push-pull, no pull);
 *   2. SYSCFG clock; the MAC held in reset (RCC_AHB1RSTR.ETHMACRST) while
 *      SYSCFG_PMC.MII_RMII_SEL selects RMII; MAC/TX/RX clocks on; reset released;
 *   3. DMABMR.SR software reset, polled until the MAC clears it (500 ms budget: on
 *      silicon it only clears when the PHY's 50 MHz REF_CLK reaches PA1);
 *   4. MDIO clock range from HCLK; MAC configuration, address, frame filter; MMC
 *      interrupts masked; DMA bus mode, descriptor lists, operation mode (store and
 *      forward both ways: required for TX checksum insertion);
 *   5. eth_start() once the PHY has a link: speed/duplex into MACCR, TX FIFO flush,
 *      DMA TX start, MAC TX/RX enable, DMA RX start, RX poll demand.
 * Descriptors are "normal" (4 words) in chained mode (TCH/RCH), one buffer per frame.
 */
#include "eth_stm32.h"

#include <stddef.h>

#include "board.h"
#include "stm32f767.h"

#define RCC_AHB1RSTR_ETHMACRST (1u << 25)
#define RCC_AHB1ENR_GPIOS      (RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN | \
                                RCC_AHB1ENR_GPIOCEN | RCC_AHB1ENR_GPIOGEN)
#define RCC_AHB1ENR_ETH        (RCC_AHB1ENR_ETHMACEN | RCC_AHB1ENR_ETHMACTXEN | \
                                RCC_AHB1ENR_ETHMACRXEN)
#define SYSCFG_PMC_MII_RMII_SEL (1u << 23)
#define GPIO_AF11_ETH          11u
#define GPIO_SPEED_VERY_HIGH   3u

#define RESET_TIMEOUT_MS 500u
#define MDIO_TIMEOUT_MS  10u   /* a 64-bit MDIO frame at >= 1 MHz MDC takes 64 us */
#define FLUSH_TIMEOUT_MS 10u

/* NUCLEO-F767ZI RMII wiring (UM1974): port index (A=0), pin. */
/* ETH_TXD1_PG14=1 builds TXD1 on PG14, as ST's EVAL and Discovery boards wire it, which on a
   NUCLEO-F767ZI (TXD1 on PB13) sends nothing: build/bootloader-eth-txd1-pg14.bin,
   tests/firmware/test_fw_eth_pins.py */
#ifndef ETH_TXD1_PG14
#define ETH_TXD1_PG14 0
#endif
static const uint8_t k_rmii_pins[][2] = {
    {0, 1},   /* PA1  RMII_REF_CLK */
    {0, 2},   /* PA2  RMII_MDIO */
    {0, 7},   /* PA7  RMII_CRS_DV */
#if ETH_TXD1_PG14
    {6, 14},  /* PG14 RMII_TXD1 (not the NUCLEO's) */
#else
    {1, 13},  /* PB13 RMII_TXD1 */
#endif
    {2, 1},   /* PC1  RMII_MDC */
    {2, 4},   /* PC4  RMII_RXD0 */
    {2, 5},   /* PC5  RMII_RXD1 */
    {6, 11},  /* PG11 RMII_TX_EN */
    {6, 13},  /* PG13 RMII_TXD0 */
};

#if ETH_DCACHE
/* The D-cache build (eth_stm32.h): DMA memory in cacheable SRAM1, one descriptor a cache
   line (a clean of one descriptor must not write back a neighbour the DMA has updated). */
#define DMA_RAM __attribute__((section(".sram_dma"), aligned(32)))
typedef struct {
    eth_desc_t d;
    uint32_t pad[4];
} __attribute__((aligned(32))) eth_desc_slot_t;
static eth_desc_slot_t s_rx_slot[ETH_RX_DESC_COUNT] DMA_RAM;
static eth_desc_slot_t s_tx_slot[ETH_TX_DESC_COUNT] DMA_RAM;
#define RX_DESC(i) (&s_rx_slot[(i)].d)
#define TX_DESC(i) (&s_tx_slot[(i)].d)
#else
/* DMA memory: in .dma_ram (DTCM, uncached, see eth_stm32.h). */
#define DMA_RAM __attribute__((section(".dma_ram"), aligned(32)))
static eth_desc_t s_rx_desc[ETH_RX_DESC_COUNT] DMA_RAM;
static eth_desc_t s_tx_desc[ETH_TX_DESC_COUNT] DMA_RAM;
#define RX_DESC(i) (&s_rx_desc[(i)])
#define TX_DESC(i) (&s_tx_desc[(i)])
#endif
static uint8_t s_rx_buf[ETH_RX_DESC_COUNT][ETH_BUF_SIZE] DMA_RAM;
static uint8_t s_tx_buf[ETH_TX_DESC_COUNT][ETH_BUF_SIZE] DMA_RAM;

static uint32_t s_rx_idx;
static uint32_t s_tx_idx;
static uint32_t s_mdio_cr;
static uint32_t s_clocks_before;   /* AHB1ENR GPIO bits that were on before eth_init */
static uint32_t s_syscfg_before;   /* APB2ENR.SYSCFGEN before eth_init */
static int s_up;
static int s_irq;
static eth_stats_t s_stats;
volatile uint32_t g_eth_irq_count;

#if ETH_DCACHE && !ETH_DCACHE_NO_MAINTENANCE
/* Cache maintenance by address over whole 32-byte lines (SCB_CleanDCache_by_Addr /
   SCB_InvalidateDCache_by_Addr): the DMA sees memory, not the CPU's cache. */
static void dcache_by_addr(volatile uint32_t *op, const volatile void *p, uint32_t n)
{
    uint32_t a = (uint32_t)(uintptr_t)p & ~(DCACHE_LINE_SIZE - 1u);
    uint32_t end = (uint32_t)(uintptr_t)p + n;
    cpu_dsb();
    for (; a < end; a += DCACHE_LINE_SIZE)
        *op = a;
    cpu_dsb();
    cpu_isb();
}
#define CLEAN(p, n)      dcache_by_addr(&SCB_DCCMVAC, (p), (n))
#define INVALIDATE(p, n) dcache_by_addr(&SCB_DCIMVAC, (p), (n))
#else
/* DTCM (never cached), or the broken variant that forgets the maintenance */
#define CLEAN(p, n)      ((void)(p), (void)(n))
#define INVALIDATE(p, n) ((void)(p), (void)(n))
#endif

#if ETH_DCACHE
/* SCB_EnableDCache: invalidate by set/way, then CCR.DC (as an application's main() does;
   the jump to the application cleans and turns it off again, bootloader/jump.c). */
static void dcache_on(void)
{
    if (!(SCB->CCR & SCB_CCR_DC))
        cpu_dcache_enable();
}
#endif

/* Wait until (*reg & mask) == want, at most timeout_ms; 0 on success. */
static int wait_reg(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    while ((*reg & mask) != want) {
        if ((uint32_t)(board_millis() - start) >= timeout_ms) {
            return (*reg & mask) == want ? 0 : -1;   /* time may have jumped: look once more */
        }
    }
    return 0;
}

/* HCLK from the RCC configuration (HSI 16 MHz, HSE 8 MHz on the NUCLEO, or the PLL). */
static uint32_t hclk_hz(void)
{
    uint32_t cfgr = RCC->CFGR;
    uint32_t hz = 16000000u;
    uint32_t sws = (cfgr >> 2) & 3u;
    if (sws == 1u) {
        hz = 8000000u;
    } else if (sws == 2u) {
        uint32_t pll = RCC->PLLCFGR;
        uint32_t m = pll & 0x3Fu;
        uint32_t n = (pll >> 6) & 0x1FFu;
        uint32_t p = (((pll >> 16) & 3u) + 1u) * 2u;
        uint32_t src = (pll & (1u << 22)) ? 8000000u : 16000000u;
        if (m >= 2u) {
            hz = src / m * n / p;
        }
    }
    uint32_t hpre = (cfgr >> 4) & 0xFu;
    if (hpre & 8u) {
        static const uint8_t shift[8] = {1, 2, 3, 4, 6, 7, 8, 9};
        hz >>= shift[hpre & 7u];
    }
    return hz;
}

static uint32_t mdio_clock_range(uint32_t hz)
{
    if (hz >= 150000000u) {
        return ETH_MACMIIAR_CR_DIV102;
    }
    if (hz >= 100000000u) {
        return ETH_MACMIIAR_CR_DIV62;
    }
    if (hz >= 60000000u) {
        return ETH_MACMIIAR_CR_DIV42;
    }
    if (hz >= 35000000u) {
        return ETH_MACMIIAR_CR_DIV26;
    }
    return ETH_MACMIIAR_CR_DIV16;   /* 20-35 MHz; below that MDC is slower still */
}

static void pins_rmii(int on)
{
    for (uint32_t i = 0; i < sizeof(k_rmii_pins) / sizeof(k_rmii_pins[0]); i++) {
        gpio_t *port = GPIO_PORT(k_rmii_pins[i][0]);
        uint32_t pin = k_rmii_pins[i][1];
        uint32_t two = 3u << (pin * 2u);
        volatile uint32_t *afr = &port->AFR[pin >> 3];
        uint32_t af_shift = (pin & 7u) * 4u;
        if (on) {
            *afr = (*afr & ~(0xFu << af_shift)) | (GPIO_AF11_ETH << af_shift);
            port->OTYPER &= ~(1u << pin);
            port->PUPDR &= ~two;
            port->OSPEEDR = (port->OSPEEDR & ~two) | (GPIO_SPEED_VERY_HIGH << (pin * 2u));
            port->MODER = (port->MODER & ~two) | (GPIO_MODE_AF << (pin * 2u));
        } else {   /* reset state of these pins: input, low speed, AF0 */
            port->MODER &= ~two;
            port->OSPEEDR &= ~two;
            *afr &= ~(0xFu << af_shift);
        }
    }
}

static void rings_init(void)
{
    for (uint32_t i = 0; i < ETH_RX_DESC_COUNT; i++) {
        eth_desc_t *d = RX_DESC(i);
        INVALIDATE(s_rx_buf[i], ETH_BUF_SIZE);   /* no dirty line may land on a frame */
        d->des1 = ETH_RDES1_RCH | ETH_BUF_SIZE;
        d->des2 = (uint32_t)(uintptr_t)s_rx_buf[i];
        d->des3 = (uint32_t)(uintptr_t)RX_DESC((i + 1u) % ETH_RX_DESC_COUNT);
        d->des0 = ETH_RDES0_OWN;
        CLEAN(d, sizeof *d);
    }
    for (uint32_t i = 0; i < ETH_TX_DESC_COUNT; i++) {
        eth_desc_t *d = TX_DESC(i);
        d->des1 = 0;
        d->des2 = (uint32_t)(uintptr_t)s_tx_buf[i];
        d->des3 = (uint32_t)(uintptr_t)TX_DESC((i + 1u) % ETH_TX_DESC_COUNT);
        d->des0 = ETH_TDES0_TCH;
        CLEAN(d, sizeof *d);
    }
    s_rx_idx = 0;
    s_tx_idx = 0;
    cpu_dsb();
}

int eth_init(const uint8_t mac[6])
{
#if ETH_DCACHE
    dcache_on();
#endif
    s_up = 0;
    s_clocks_before = RCC->AHB1ENR & RCC_AHB1ENR_GPIOS;
    s_syscfg_before = RCC->APB2ENR & RCC_APB2ENR_SYSCFGEN;
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOS;
    RCC->APB2ENR |= RCC_APB2ENR_SYSCFGEN;
    (void)RCC->APB2ENR;   /* read back: the clocks run before the first access */
    pins_rmii(1);

    /* RMII must be selected while the MAC is in reset, before its clocks run. */
    RCC->AHB1RSTR |= RCC_AHB1RSTR_ETHMACRST;
    SYSCFG->PMC |= SYSCFG_PMC_MII_RMII_SEL;
    (void)SYSCFG->PMC;
    RCC->AHB1ENR |= RCC_AHB1ENR_ETH;
    (void)RCC->AHB1ENR;
    RCC->AHB1RSTR &= ~RCC_AHB1RSTR_ETHMACRST;

    ETH_DMA->DMABMR |= ETH_DMABMR_SR;
    if (wait_reg(&ETH_DMA->DMABMR, ETH_DMABMR_SR, 0, RESET_TIMEOUT_MS) != 0) {
        return ETH_ERR_RESET;
    }

    s_mdio_cr = mdio_clock_range(hclk_hz());
    ETH_MAC->MACMIIAR = s_mdio_cr;

    /* MACCR: keep the reserved bits, MAC off; retry disable (half duplex only). Speed
       and duplex come from the PHY in eth_start(). CRC is not stripped: RX frame
       lengths include the 4-byte FCS, which eth_rx_frame() removes. IPCO: the MAC checks
       IPv4 header and TCP/UDP/ICMP checksums and (store-and-forward, DMAOMR.DTCEFD 0)
       drops frames that fail. */
    uint32_t cr = ETH_MAC->MACCR;
    cr &= ~(ETH_MACCR_RE | ETH_MACCR_TE | ETH_MACCR_DM | ETH_MACCR_FES | ETH_MACCR_IPCO |
            ETH_MACCR_APCS | ETH_MACCR_CSTF);
    ETH_MAC->MACCR = cr | ETH_MACCR_RD | (ETH_RX_CSUM_OFFLOAD ? ETH_MACCR_IPCO : 0u);
    ETH_MAC->MACFFR = 0;          /* own unicast address and broadcast */
    ETH_MAC->MACHTHR = 0;
    ETH_MAC->MACHTLR = 0;
    ETH_MAC->MACFCR = 0;          /* no pause frames */
    ETH_MAC->MACA0HR = (uint32_t)mac[4] | ((uint32_t)mac[5] << 8);
    ETH_MAC->MACA0LR = (uint32_t)mac[0] | ((uint32_t)mac[1] << 8) | ((uint32_t)mac[2] << 16) |
                       ((uint32_t)mac[3] << 24);
    ETH_MMCRIMR = (1u << 5) | (1u << 6) | (1u << 17);   /* RFCEM RFAEM RGUFM */
    ETH_MMCTIMR = (1u << 14) | (1u << 15) | (1u << 21); /* TGFSCM TGFMSCM TGFM */

    ETH_DMA->DMABMR = ETH_DMABMR_AAB | ETH_DMABMR_USP | ETH_DMABMR_RDP(32) |
                      ETH_DMABMR_FB | ETH_DMABMR_PBL(32);
    rings_init();
    ETH_DMA->DMARDLAR = (uint32_t)(uintptr_t)RX_DESC(0);
    ETH_DMA->DMATDLAR = (uint32_t)(uintptr_t)TX_DESC(0);
    ETH_DMA->DMAOMR = ETH_DMAOMR_RSF | ETH_DMAOMR_TSF;
    ETH_DMA->DMAIER = 0;
    ETH_DMA->DMASR = ETH_DMASR_W1C;
    return ETH_OK;
}

int eth_mdio_read(uint32_t phy, uint32_t reg, uint16_t *val)
{
    if (wait_reg(&ETH_MAC->MACMIIAR, ETH_MACMIIAR_MB, 0, MDIO_TIMEOUT_MS) != 0) {
        return ETH_ERR_MDIO;
    }
    ETH_MAC->MACMIIAR = ((phy & 0x1Fu) << ETH_MACMIIAR_PA_POS) |
                        ((reg & 0x1Fu) << ETH_MACMIIAR_MR_POS) | s_mdio_cr | ETH_MACMIIAR_MB;
    if (wait_reg(&ETH_MAC->MACMIIAR, ETH_MACMIIAR_MB, 0, MDIO_TIMEOUT_MS) != 0) {
        return ETH_ERR_MDIO;
    }
    *val = (uint16_t)(ETH_MAC->MACMIIDR & 0xFFFFu);
    return ETH_OK;
}

int eth_mdio_write(uint32_t phy, uint32_t reg, uint16_t val)
{
    if (wait_reg(&ETH_MAC->MACMIIAR, ETH_MACMIIAR_MB, 0, MDIO_TIMEOUT_MS) != 0) {
        return ETH_ERR_MDIO;
    }
    ETH_MAC->MACMIIDR = val;
    ETH_MAC->MACMIIAR = ((phy & 0x1Fu) << ETH_MACMIIAR_PA_POS) |
                        ((reg & 0x1Fu) << ETH_MACMIIAR_MR_POS) | s_mdio_cr |
                        ETH_MACMIIAR_MW | ETH_MACMIIAR_MB;
    return wait_reg(&ETH_MAC->MACMIIAR, ETH_MACMIIAR_MB, 0, MDIO_TIMEOUT_MS) == 0
               ? ETH_OK : ETH_ERR_MDIO;
}

void eth_start(int speed_100, int full_duplex)
{
    uint32_t cr = ETH_MAC->MACCR & ~(ETH_MACCR_FES | ETH_MACCR_DM);
    if (speed_100) {
        cr |= ETH_MACCR_FES;
    }
    if (full_duplex) {
        cr |= ETH_MACCR_DM;
    }
    ETH_MAC->MACCR = cr;
    if (s_up) {
        return;   /* already running: only the link parameters changed */
    }
    ETH_DMA->DMAOMR |= ETH_DMAOMR_FTF;
    (void)wait_reg(&ETH_DMA->DMAOMR, ETH_DMAOMR_FTF, 0, FLUSH_TIMEOUT_MS);
    ETH_DMA->DMAOMR |= ETH_DMAOMR_ST;
    ETH_MAC->MACCR |= ETH_MACCR_TE | ETH_MACCR_RE;
    ETH_DMA->DMAOMR |= ETH_DMAOMR_SR;
    ETH_DMA->DMARPDR = 0;
    s_up = 1;
}

void eth_stop(void)
{
    if (!(RCC->AHB1ENR & RCC_AHB1ENR_ETHMACEN)) {
        s_up = 0;
        return;
    }
    ETH_DMA->DMAOMR &= ~ETH_DMAOMR_ST;
    ETH_MAC->MACCR &= ~ETH_MACCR_RE;
    ETH_DMA->DMAOMR |= ETH_DMAOMR_FTF;
    (void)wait_reg(&ETH_DMA->DMAOMR, ETH_DMAOMR_FTF, 0, FLUSH_TIMEOUT_MS);
    ETH_MAC->MACCR &= ~ETH_MACCR_TE;
    ETH_DMA->DMAOMR &= ~ETH_DMAOMR_SR;
    s_up = 0;
}

void eth_deinit(void)
{
    eth_irq_enable(0);
    eth_stop();
    /* MAC, MMC and DMA back to their reset values, then clocks off and MII again. */
    RCC->AHB1RSTR |= RCC_AHB1RSTR_ETHMACRST;
    RCC->AHB1ENR &= ~RCC_AHB1ENR_ETH;
    if (RCC->APB2ENR & RCC_APB2ENR_SYSCFGEN) {
        SYSCFG->PMC &= ~SYSCFG_PMC_MII_RMII_SEL;
    }
    RCC->AHB1RSTR &= ~RCC_AHB1RSTR_ETHMACRST;
    nvic_disable_irq(IRQN_ETH);
    nvic_clear_pending(IRQN_ETH);
    pins_rmii(0);
    RCC->AHB1ENR &= ~(RCC_AHB1ENR_GPIOS & ~s_clocks_before);
    if (!s_syscfg_before) {
        RCC->APB2ENR &= ~RCC_APB2ENR_SYSCFGEN;
    }
}

/* The DMA status, read when the driver has nothing to do (an idle RX poll, a wait for a
   TX descriptor): what it reports is acknowledged (write 1 to clear), so a firmware that
   waits reads a quiet DMASR, as a HAL-style driver does after its interrupt handler. A
   suspended RX process (RBUS: every descriptor was ours) is resumed by a poll demand. A
   fatal bus error stops both DMA processes: it is counted and the DMA restarted from the
   rings. */
static void service_status(void)
{
    uint32_t sr = ETH_DMA->DMASR;
    s_stats.last_dmasr = sr;
    if (sr & ETH_DMASR_W1C & ~ETH_DMASR_FBES) {
        ETH_DMA->DMASR = sr & ETH_DMASR_W1C & ~ETH_DMASR_FBES;
    }
    if (sr & ETH_DMASR_RBUS) {
        s_stats.rx_resumes++;
        ETH_DMA->DMARPDR = 0;
    }
    if (!(sr & ETH_DMASR_FBES)) {
        return;
    }
    s_stats.fatal++;
    ETH_DMA->DMASR = ETH_DMASR_W1C;
    int was_up = s_up;
    eth_stop();
    rings_init();
    ETH_DMA->DMARDLAR = (uint32_t)(uintptr_t)RX_DESC(0);
    ETH_DMA->DMATDLAR = (uint32_t)(uintptr_t)TX_DESC(0);
    if (was_up) {
        eth_start((ETH_MAC->MACCR & ETH_MACCR_FES) != 0, (ETH_MAC->MACCR & ETH_MACCR_DM) != 0);
    }
}

uint8_t *eth_tx_buffer(uint32_t timeout_ms)
{
    eth_desc_t *d = TX_DESC(s_tx_idx);
    uint32_t start = board_millis();
    INVALIDATE(d, sizeof *d);   /* the DMA's write-back (OWN cleared) is in memory */
    while (d->des0 & ETH_TDES0_OWN) {
        service_status();
        ETH_DMA->DMATPDR = 0;
        INVALIDATE(d, sizeof *d);
        if ((uint32_t)(board_millis() - start) >= timeout_ms && (d->des0 & ETH_TDES0_OWN)) {
            s_stats.tx_busy++;
            return NULL;
        }
    }
    if (d->des0 & ETH_TDES0_ES) {
        s_stats.tx_errors++;
    }
    return s_tx_buf[s_tx_idx];
}

int eth_tx_send(uint32_t len, int csum_offload)
{
    if (len == 0 || len > ETH_FRAME_MAX) {
        return ETH_ERR_ARG;
    }
    eth_desc_t *d = TX_DESC(s_tx_idx);
    if (d->des0 & ETH_TDES0_OWN) {
        return ETH_ERR_BUSY;
    }
    CLEAN(s_tx_buf[s_tx_idx], len);   /* the frame the caller wrote */
    d->des1 = len & ETH_TDES1_TBS1_MASK;
    cpu_dsb();
    d->des0 = ETH_TDES0_OWN | ETH_TDES0_FS | ETH_TDES0_LS | ETH_TDES0_TCH |
              (s_irq ? ETH_TDES0_IC : 0u) | (csum_offload ? ETH_TDES0_CIC_FULL : 0u);
    CLEAN(d, sizeof *d);
    cpu_dsb();
    s_tx_idx = (s_tx_idx + 1u) % ETH_TX_DESC_COUNT;
    ETH_DMA->DMATPDR = 0;   /* resume the TX process (suspended when it ran out of frames) */
    s_stats.tx_frames++;
    return ETH_OK;
}

int eth_rx_frame(const uint8_t **frame, uint32_t *len)
{
    for (uint32_t tries = 0; tries < ETH_RX_DESC_COUNT; tries++) {
        eth_desc_t *d = RX_DESC(s_rx_idx);
        INVALIDATE(d, sizeof *d);
        uint32_t st = d->des0;
        if (st & ETH_RDES0_OWN) {
            service_status();   /* nothing received: the one DMASR read of an idle poll */
            return 0;
        }
        uint32_t fl = (st & ETH_RDES0_FL_MASK) >> ETH_RDES0_FL_POS;
        /* checksum offload (MACCR.IPCO): an IPv4 frame whose header or TCP/UDP/ICMP
           checksum is wrong (FT with IPHCE or PCE) never reaches lwIP, which trusts it */
        int csum_bad = (st & ETH_RDES0_FT) && (st & (ETH_RDES0_IPHCE | ETH_RDES0_PCE));
        if ((st & (ETH_RDES0_FS | ETH_RDES0_LS)) == (ETH_RDES0_FS | ETH_RDES0_LS) &&
            !(st & ETH_RDES0_ES) && !csum_bad && fl > 4u && fl - 4u <= ETH_BUF_SIZE) {
            INVALIDATE(s_rx_buf[s_rx_idx], fl);   /* the frame as the DMA wrote it */
            *frame = s_rx_buf[s_rx_idx];
            *len = fl - 4u;   /* the FCS is not stripped (MACCR.CSTF = 0) */
            s_stats.rx_frames++;
            return 1;
        }
        /* an error frame, or one spread over several buffers (larger than ETH_BUF_SIZE) */
        s_stats.rx_errors++;
        eth_rx_release();
    }
    return 0;
}

void eth_rx_release(void)
{
    eth_desc_t *d = RX_DESC(s_rx_idx);
    d->des0 = ETH_RDES0_OWN;
    CLEAN(d, sizeof *d);
    cpu_dsb();
    s_rx_idx = (s_rx_idx + 1u) % ETH_RX_DESC_COUNT;
    /* A suspended RX process is resumed by the next idle poll (service_status); with
       IRQs on, the handler acknowledges RBUS itself, so the poll demand is made here. */
    if (s_irq) {
        ETH_DMA->DMARPDR = 0;
    }
}

void eth_irq_enable(int on)
{
    s_irq = on;
    if (!(RCC->AHB1ENR & RCC_AHB1ENR_ETHMACEN)) {
        return;
    }
    if (on) {
        ETH_DMA->DMAIER = ETH_DMAIER_NISE | ETH_DMAIER_RIE | ETH_DMAIER_TIE |
                          ETH_DMAIER_AISE | ETH_DMAIER_FBEIE | ETH_DMAIER_RBUIE;
        nvic_enable_irq(IRQN_ETH);
    } else {
        ETH_DMA->DMAIER = 0;
        nvic_disable_irq(IRQN_ETH);
        ETH_DMA->DMASR = ETH_DMASR_W1C;
        nvic_clear_pending(IRQN_ETH);
    }
}

/* Acknowledge what the DMA reported; the thread-mode poll loop does the work. A fatal
   bus error stays set for service_status(), with its interrupt masked. */
void ETH_IRQHandler(void)
{
    uint32_t sr = ETH_DMA->DMASR;
    if (sr & ETH_DMASR_FBES) {
        ETH_DMA->DMAIER &= ~(ETH_DMAIER_FBEIE | ETH_DMAIER_AISE);
        sr &= ~ETH_DMASR_FBES;
    }
    ETH_DMA->DMASR = sr & ETH_DMASR_W1C;
    g_eth_irq_count++;
}

const eth_stats_t *eth_stats(void)
{
    return &s_stats;
}
