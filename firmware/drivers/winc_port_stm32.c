/*
 * winc_port_stm32.c - the WINC3400 on a NUCLEO-F767ZI (the thread's shield wiring): SPI1
 * SCK PA5, MISO PA6, MOSI PB5 (AF5, mode 0, MSB first, 8-bit frames, software NSS),
 * CS PD14, IRQN PB1 -> EXTI1 (falling edge), RESET_N PF12, CHIP_EN PF13.
 *
 * SPI transfers are polled (FIFO data packing: 16-bit DR accesses move two bytes), or with
 * WINC_SPI_DMA=1 run on DMA2 for blocks of WINC_DMA_MIN bytes and more: SPI1_RX on
 * DMA2 Stream 2 channel 3, SPI1_TX on DMA2 Stream 3 channel 3 (RM0410 DMA2 request
 * mapping: SPI1_RX = Stream 0 or 2, SPI1_TX = Stream 3 or 5, channel 3). The DMA build
 * turns the D-cache on while the module is open (as an application built with the
 * vendor's CubeMX defaults has it) and keeps its buffers coherent: the RX buffer sits in
 * cacheable SRAM1 (section .sram_dma, 32-byte aligned, a whole number of lines) and is
 * invalidated by address (DCIMVAC) before and after each transfer; the TX buffer and the
 * fill byte sit in the DTCM (.dma_ram), which is never cached.
 * WINC_DMA_NO_INVALIDATE=1 is the thread's bug: the RX buffer is never invalidated, so
 * the CPU reads the lines it cached from an earlier transfer instead of the new data.
 *
 * IRQN: EXTI1 latches the falling edge (IMR set, NVIC line 7 never enabled); the HIF
 * layer asks for the latch and the level. Nothing here uses an interrupt.
 *
 * WINC_WIRING=2 is another wiring, the one the rig's board-file option winc: is
 * tested with (spi=3,cs=PA4,irqn=PG2,reset_n=PG3,chip_en=PE2): SPI3 SCK PC10, MISO PC11,
 * MOSI PC12 (AF6), CS PA4, IRQN PG2 -> EXTI2, RESET_N PG3, CHIP_EN PE2; DMA on DMA1,
 * SPI3_RX on Stream 0 and SPI3_TX on Stream 5, channel 0 (RM0410 DMA1 request mapping).
 */
#include <stddef.h>

#include "board.h"
#include "stm32f767.h"
#include "winc_bus.h"
#include "winc_hif.h"

#ifndef WINC_SPI_DMA
#define WINC_SPI_DMA 0
#endif
#ifndef WINC_DMA_NO_INVALIDATE
#define WINC_DMA_NO_INVALIDATE 0
#endif

#ifndef WINC_WIRING
#define WINC_WIRING 1
#endif
/* ports by number (0 = A), pins, the SPI and its DMA controller */
#if WINC_WIRING == 2
#define WSPI         ((spi_t *)0x40003C00u)   /* SPI3 on APB1 */
#define WSPI_ENR     (RCC->APB1ENR)
#define WSPI_EN      (1u << 15)
#define WSPI_IRQN    51u
#define CS_PORT      0u   /* PA4 */
#define PIN_CS       4u
#define IRQN_PORT    6u   /* PG2, EXTI2 */
#define PIN_IRQN     2u
#define RESET_PORT   6u   /* PG3 */
#define PIN_RESET_N  3u
#define EN_PORT      4u   /* PE2 */
#define PIN_CHIP_EN  2u
#define SCK_PORT     2u   /* PC10 AF6 */
#define PIN_SCK      10u
#define MISO_PORT    2u   /* PC11 AF6 */
#define PIN_MISO     11u
#define MOSI_PORT    2u   /* PC12 AF6 */
#define PIN_MOSI     12u
#define SPI_AF       6u
#define WDMA_BASE    0x40026000u              /* DMA1 */
#define WDMA_EN      (1u << 21)
#define WDMA_RX      0u
#define WDMA_TX      5u
#define WDMA_CHANNEL 0u
#else
#define WSPI         SPI1                     /* on APB2 */
#define WSPI_ENR     (RCC->APB2ENR)
#define WSPI_EN      RCC_APB2ENR_SPI1EN
#define WSPI_IRQN    IRQN_SPI1
#define CS_PORT      3u   /* PD14 */
#define PIN_CS       14u
#define IRQN_PORT    1u   /* PB1, EXTI1 */
#define PIN_IRQN     1u
#define RESET_PORT   5u   /* PF12 */
#define PIN_RESET_N  12u
#define EN_PORT      5u   /* PF13 */
#define PIN_CHIP_EN  13u
#define SCK_PORT     0u   /* PA5 AF5 */
#define PIN_SCK      5u
#define MISO_PORT    0u   /* PA6 AF5 */
#define PIN_MISO     6u
#define MOSI_PORT    1u   /* PB5 AF5 */
#define PIN_MOSI     5u
#define SPI_AF       5u
#define WDMA_BASE    0x40026400u              /* DMA2 */
#define WDMA_EN      (1u << 22)
#define WDMA_RX      2u
#define WDMA_TX      3u
#define WDMA_CHANNEL 3u
#endif
/* the MOSI pin's alternate function: SPI_AF, or another one to build the mistake of a driver
   moved from SPI3 to SPI1 that kept GPIO_AF6_SPI3 for PB5 (WINC_MOSI_AF=6:
   build/bootloader-winc-mosi-af6.bin, tests/firmware/test_fw_wiring.py) */
#ifndef WINC_MOSI_AF
#define WINC_MOSI_AF SPI_AF
#endif
#define EXTI_LINE    (1u << PIN_IRQN)
/* the NVIC line of EXTI line n (EXTI0..4: 6..10, 5..9: 23, 10..15: 40) */
#define IRQN_EXTI_OF(n) ((n) < 5u ? 6u + (n) : (n) < 10u ? 23u : 40u)
#define PORT_BITS    ((1u << CS_PORT) | (1u << IRQN_PORT) | (1u << RESET_PORT) | (1u << EN_PORT) | \
                      (1u << SCK_PORT) | (1u << MISO_PORT) | (1u << MOSI_PORT))

#define SPI_CR2_RXDMAEN   (1u << 0)
#define SPI_CR2_TXDMAEN   (1u << 1)
#define SPI_SR_OVR        (1u << 6)
#define SPI_SR_FRLVL      (3u << 9)
#define SPI_SR_FTLVL      (3u << 11)
#define SPI_WAIT_LOOPS    20000u

#define RESET_LOW_MS      1u   /* CHIP_EN and RESET_N low */
#define CHIP_EN_MS        5u   /* CHIP_EN high before RESET_N rises */
#define BOOT_MS           10u  /* after RESET_N rises, before the first command */

static int s_open;

/* ---------------------------------------------------------------- pins */
static void pin_mode(gpio_t *g, unsigned pin, unsigned mode)
{
    g->MODER = (g->MODER & ~(3u << (2u * pin))) | (mode << (2u * pin));
}

static void pin_af(gpio_t *g, unsigned pin, unsigned af)
{
    volatile uint32_t *afr = &g->AFR[pin >> 3];
    unsigned shift = (pin & 7u) * 4u;
    *afr = (*afr & ~(0xFu << shift)) | (af << shift);
    pin_mode(g, pin, GPIO_MODE_AF);
}

static void pin_pull(gpio_t *g, unsigned pin, unsigned pull)
{
    g->PUPDR = (g->PUPDR & ~(3u << (2u * pin))) | (pull << (2u * pin));
}

static void pin_write(gpio_t *g, unsigned pin, int level)
{
    g->BSRR = level ? (1u << pin) : (1u << (pin + 16u));
}

void winc_port_select(int on)
{
    pin_write(GPIO_PORT(CS_PORT), PIN_CS, !on);
}

int winc_port_irq_level(void)
{
    return !(GPIO_PORT(IRQN_PORT)->IDR & (1u << PIN_IRQN));
}

int winc_port_irq_edge(void)
{
    if (EXTI->PR & EXTI_LINE) {
        EXTI->PR = EXTI_LINE;
        return 1;
    }
    return 0;
}

void winc_port_delay_ms(uint32_t ms)
{
    delay_ms(ms);
}

uint32_t winc_port_millis(void)
{
    return board_millis();
}

/* ---------------------------------------------------------------- polled SPI */
static uint32_t s_cr2;   /* SPI1_CR2 as last written (no read-modify-write per transfer) */

static void cr2_write(uint32_t v)
{
    if (v != s_cr2) {
        s_cr2 = v;
        WSPI->CR2 = v;
    }
}

static int wait_sr(uint32_t mask)
{
    for (uint32_t n = SPI_WAIT_LOOPS; !(WSPI->SR & mask);) {
        if (--n == 0)
            return (WSPI->SR & mask) ? 0 : -1;
    }
    return 0;
}

uint8_t winc_port_byte(uint8_t out)
{
    cr2_write(s_cr2 | SPI_CR2_FRXTH);   /* RXNE at 8 bits */
    *(volatile uint8_t *)&WSPI->DR = out;
    if (wait_sr(SPI_SR_RXNE) != 0)
        return 0xFFu;
    return *(volatile uint8_t *)&WSPI->DR;
}

/* Discard what the RX FIFO holds and a pending overrun. */
static void rx_drain(void)
{
    for (uint32_t n = 0; n < 8u && (WSPI->SR & (SPI_SR_FRLVL | SPI_SR_RXNE)); n++)
        (void)*(volatile uint8_t *)&WSPI->DR;
    (void)WSPI->SR;
}

static int xfer_polled(const uint8_t *tx, uint8_t *rx, uint32_t n)
{
    if (rx == NULL && n >= 16u) {
        /* a long transmit: keep TX fed, let RX overrun, drain once at the end */
        while (n >= 2u) {
            if (wait_sr(SPI_SR_TXE) != 0)
                return -1;
            *(volatile uint16_t *)&WSPI->DR = tx ? (uint16_t)(tx[0] | (tx[1] << 8)) : 0u;
            if (tx)
                tx += 2;
            n -= 2u;
        }
        if (n) {
            if (wait_sr(SPI_SR_TXE) != 0)
                return -1;
            *(volatile uint8_t *)&WSPI->DR = tx ? tx[0] : 0u;
        }
        for (uint32_t k = SPI_WAIT_LOOPS; WSPI->SR & SPI_SR_BSY;) {
            if (--k == 0)
                return -1;
        }
        rx_drain();
        return 0;
    }
    /* data packing: a 16-bit DR access moves two frames, and the 32-bit FIFOs hold two
       such half-words. Four bytes at a time: both half-words into the empty TX FIFO (the
       first leaves it half full, so TXE allows the second), then one status read for the
       end of the burst as RM0410 gives it for disabling the SPI (FTLVL = 0: nothing left to
       send, BSY = 0: the last frame is processed, so all four are in the RX FIFO: FRLVL =
       full), and both half-words out: five register accesses per four bytes. */
    if (n >= 2u)
        cr2_write(s_cr2 & ~SPI_CR2_FRXTH);
    while (n >= 4u) {
        *(volatile uint16_t *)&WSPI->DR = tx ? (uint16_t)(tx[0] | (tx[1] << 8)) : 0u;
        *(volatile uint16_t *)&WSPI->DR = tx ? (uint16_t)(tx[2] | (tx[3] << 8)) : 0u;
        for (uint32_t k = SPI_WAIT_LOOPS;
             (WSPI->SR & (SPI_SR_FTLVL | SPI_SR_BSY | SPI_SR_FRLVL)) != SPI_SR_FRLVL;) {
            if (--k == 0)
                return -1;
        }
        uint16_t v0 = *(volatile uint16_t *)&WSPI->DR;
        uint16_t v1 = *(volatile uint16_t *)&WSPI->DR;
        if (rx) {
            rx[0] = (uint8_t)v0;
            rx[1] = (uint8_t)(v0 >> 8);
            rx[2] = (uint8_t)v1;
            rx[3] = (uint8_t)(v1 >> 8);
            rx += 4;
        }
        if (tx)
            tx += 4;
        n -= 4u;
    }
    /* two bytes left: with FRXTH = 0 RXNE means both wait in the RX FIFO */
    while (n >= 2u) {
        *(volatile uint16_t *)&WSPI->DR = tx ? (uint16_t)(tx[0] | (tx[1] << 8)) : 0u;
        if (wait_sr(SPI_SR_RXNE) != 0)
            return -1;
        uint16_t v = *(volatile uint16_t *)&WSPI->DR;
        if (rx) {
            rx[0] = (uint8_t)v;
            rx[1] = (uint8_t)(v >> 8);
            rx += 2;
        }
        if (tx)
            tx += 2;
        n -= 2u;
    }
    if (n) {
        uint8_t v = winc_port_byte(tx ? tx[0] : 0u);
        if (rx)
            rx[0] = v;
    }
    return 0;
}

#if WINC_SPI_DMA
/* ---------------------------------------------------------------- DMA2 + D-cache */
#define WDMA ((dma_t *)WDMA_BASE)
#define DMA_RX_STREAM WDMA_RX
#define DMA_TX_STREAM WDMA_TX
#define DMA_CHANNEL   WDMA_CHANNEL
#define DMA_CR_EN     (1u << 0)
#define DMA_CR_DIR_M2P (1u << 6)
#define DMA_CR_MINC   (1u << 10)
#define DMA_CR_PL_HIGH (2u << 16)
#define DMA_CR_CHSEL(c) ((uint32_t)(c) << 25)
/* LISR/LIFCR (streams 0-3) and HISR/HIFCR (4-7) bit groups: stream 0/4 at 0, 1/5 at 6,
   2/6 at 16, 3/7 at 22 */
#define DMA_SHIFT(s)  (((s) & 3u) == 0 ? 0 : ((s) & 3u) == 1 ? 6 : ((s) & 3u) == 2 ? 16 : 22)
#define DMA_FLAGS(s)  (0x3Du << DMA_SHIFT(s))
#define DMA_TCIF(s)   (0x20u << DMA_SHIFT(s))
#define DMA_TEIF(s)   (0x08u << DMA_SHIFT(s))
#define DMA_DMEIF(s)  (0x04u << DMA_SHIFT(s))
#define DMA_ISR(s)    ((s) < 4u ? WDMA->LISR : WDMA->HISR)

#define SCB_DCIMVAC  REG32(0xE000EF5Cu)
#define DCACHE_LINE  32u

#define WINC_DMA_MIN  64u    /* shorter transfers (commands, answers, register values, HIF
                                headers and reply structures) stay polled: setting up two
                                streams costs more than they do */
#define WINC_DMA_BUF  1632u  /* whole 32-byte lines, more than a HIF message */

/* RX lands in cacheable SRAM1; TX data and the fill byte come from the DTCM. */
static uint8_t dma_rx[WINC_DMA_BUF] __attribute__((section(".sram_dma"), aligned(32)));
static uint8_t dma_tx[WINC_DMA_BUF] __attribute__((section(".dma_ram"), aligned(32)));
static uint8_t dma_fill[4] __attribute__((section(".dma_ram"), aligned(4)));
static uint8_t dma_sink[4] __attribute__((section(".dma_ram"), aligned(4)));

uint32_t winc_dma_transfers;   /* for test programs */
static int s_dcache_was_on;

#if !WINC_DMA_NO_INVALIDATE
static void dcache_invalidate(const void *p, uint32_t n)
{
    uint32_t a = (uint32_t)(uintptr_t)p & ~(DCACHE_LINE - 1u);
    uint32_t end = (uint32_t)(uintptr_t)p + n;
    cpu_dsb();
    for (; a < end; a += DCACHE_LINE)
        SCB_DCIMVAC = a;
    cpu_dsb();
    cpu_isb();
}
#endif

/* CubeMX's MPU_Config for the Cortex-M7, which the projects that turn the D-cache on run
   first: region 0 a 4 GB no-access, execute-never, shareable strongly-ordered background
   (no speculative reads of the external memory space) with sub-regions 0, 1, 2 and 7
   disabled, so code, SRAM (the RX buffer: cacheable), the peripherals and the system
   region keep the default map. On with the D-cache, off again with it (before the jump). */
static void mpu_background(int on)
{
    cpu_dsb();
    MPU->CTRL = 0;
    if (on) {
        MPU->RNR = 0;
        MPU->RBAR = 0;
        MPU->RASR = MPU_RASR_XN | MPU_RASR_S | MPU_RASR_SRD(0x87u) | MPU_RASR_SIZE(32) | MPU_RASR_ENABLE;
        MPU->CTRL = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
    } else {
        MPU->RNR = 0;
        MPU->RASR = 0;
    }
    cpu_dsb();
    cpu_isb();
}

static void dcache_enable(void)
{
    s_dcache_was_on = (SCB->CCR & SCB_CCR_DC) != 0;
    if (!s_dcache_was_on) {
        mpu_background(1);
        cpu_dcache_enable();
    }
}

static void dcache_restore(void)
{
    if (s_dcache_was_on || !(SCB->CCR & SCB_CCR_DC))
        return;
    SCB->CSSELR = 0;
    cpu_dsb();
    SCB->CCR &= ~SCB_CCR_DC;
    cpu_dsb();
    uint32_t ccsidr = SCB->CCSIDR;
    for (uint32_t set = 0; set <= CCSIDR_SETS(ccsidr); set++) {
        for (uint32_t way = 0; way <= CCSIDR_WAYS(ccsidr); way++)
            SCB_DCCISW = (set << 5) | (way << 30);
    }
    cpu_dsb();
    cpu_isb();
    mpu_background(0);
}

static void stream_stop(unsigned s)
{
    WDMA->S[s].CR &= ~DMA_CR_EN;
    for (uint32_t k = SPI_WAIT_LOOPS; (WDMA->S[s].CR & DMA_CR_EN) && --k;) {
    }
    if (s < 4u)
        WDMA->LIFCR = DMA_FLAGS(s);
    else
        WDMA->HIFCR = DMA_FLAGS(s);
}

static int xfer_dma_chunk(const uint8_t *tx, uint8_t *rx, uint32_t n)
{
    dma_stream_t *rs = &WDMA->S[DMA_RX_STREAM], *ts = &WDMA->S[DMA_TX_STREAM];
    stream_stop(DMA_RX_STREAM);
    stream_stop(DMA_TX_STREAM);
    if (tx)
        memcpy(dma_tx, tx, n);
#if !WINC_DMA_NO_INVALIDATE
    if (rx)
        dcache_invalidate(dma_rx, n);   /* no line of it may be written back over the DMA */
#endif
    cr2_write(s_cr2 | SPI_CR2_FRXTH);   /* a DMA request per byte */
    rx_drain();

    /* RX stream first (peripheral -> memory), then TX (memory -> peripheral); direct mode,
       byte size on both sides */
    rs->PAR = (uint32_t)(uintptr_t)&WSPI->DR;
    rs->M0AR = (uint32_t)(uintptr_t)(rx ? dma_rx : dma_sink);
    rs->NDTR = n;
    rs->FCR = 0;
    rs->CR = DMA_CR_CHSEL(DMA_CHANNEL) | DMA_CR_PL_HIGH | (rx ? DMA_CR_MINC : 0u);
    ts->PAR = (uint32_t)(uintptr_t)&WSPI->DR;
    ts->M0AR = (uint32_t)(uintptr_t)(tx ? dma_tx : dma_fill);
    ts->NDTR = n;
    ts->FCR = 0;
    ts->CR = DMA_CR_CHSEL(DMA_CHANNEL) | DMA_CR_PL_HIGH | DMA_CR_DIR_M2P | (tx ? DMA_CR_MINC : 0u);
    cpu_dsb();
    rs->CR |= DMA_CR_EN;
    cr2_write(s_cr2 | SPI_CR2_RXDMAEN);
    ts->CR |= DMA_CR_EN;
    cr2_write(s_cr2 | SPI_CR2_TXDMAEN);

    /* the RX stream finishes last: every byte sent has been received */
    int rc = 0;
    uint32_t start = board_millis();
    for (;;) {
        uint32_t risr = DMA_ISR(DMA_RX_STREAM), tisr = DMA_ISR(DMA_TX_STREAM);
        if ((risr & (DMA_TEIF(DMA_RX_STREAM) | DMA_DMEIF(DMA_RX_STREAM))) ||
            (tisr & (DMA_TEIF(DMA_TX_STREAM) | DMA_DMEIF(DMA_TX_STREAM)))) {
            rc = -1;
            break;
        }
        if (risr & DMA_TCIF(DMA_RX_STREAM))
            break;
        if ((uint32_t)(board_millis() - start) >= 20u) {
            rc = (DMA_ISR(DMA_RX_STREAM) & DMA_TCIF(DMA_RX_STREAM)) ? 0 : -1;
            break;
        }
    }
    cr2_write(s_cr2 & ~(SPI_CR2_RXDMAEN | SPI_CR2_TXDMAEN));
    for (uint32_t k = SPI_WAIT_LOOPS; (WSPI->SR & SPI_SR_BSY) && --k;) {
    }
    stream_stop(DMA_RX_STREAM);
    stream_stop(DMA_TX_STREAM);
    rx_drain();
    winc_dma_transfers++;
    if (rc == 0 && rx) {
#if !WINC_DMA_NO_INVALIDATE
        dcache_invalidate(dma_rx, n);   /* drop lines the CPU fetched before the DMA wrote */
#endif
        memcpy(rx, dma_rx, n);
    }
    return rc;
}
#endif /* WINC_SPI_DMA */

int winc_port_xfer(const uint8_t *tx, uint8_t *rx, uint32_t n)
{
#if WINC_SPI_DMA
    if (n >= WINC_DMA_MIN) {
        while (n) {
            uint32_t k = n < WINC_DMA_BUF ? n : WINC_DMA_BUF;
            if (xfer_dma_chunk(tx, rx, k) != 0)
                return -1;
            if (tx)
                tx += k;
            if (rx)
                rx += k;
            n -= k;
        }
        return 0;
    }
#endif
    return xfer_polled(tx, rx, n);
}

/* ---------------------------------------------------------------- life cycle */
int winc_port_open(void)
{
    RCC->AHB1ENR |= PORT_BITS;
    WSPI_ENR |= WSPI_EN;
    RCC->APB2ENR |= RCC_APB2ENR_SYSCFGEN;
#if WINC_SPI_DMA
    RCC->AHB1ENR |= WDMA_EN;
#endif
    (void)RCC->APB2ENR;

    pin_write(GPIO_PORT(CS_PORT), PIN_CS, 1);
    pin_mode(GPIO_PORT(CS_PORT), PIN_CS, GPIO_MODE_OUTPUT);
    pin_write(GPIO_PORT(RESET_PORT), PIN_RESET_N, 0);
    pin_mode(GPIO_PORT(RESET_PORT), PIN_RESET_N, GPIO_MODE_OUTPUT);
    pin_write(GPIO_PORT(EN_PORT), PIN_CHIP_EN, 0);
    pin_mode(GPIO_PORT(EN_PORT), PIN_CHIP_EN, GPIO_MODE_OUTPUT);
    pin_pull(GPIO_PORT(IRQN_PORT), PIN_IRQN, 1u);                 /* pull-up */
    pin_mode(GPIO_PORT(IRQN_PORT), PIN_IRQN, GPIO_MODE_INPUT);
    pin_af(GPIO_PORT(SCK_PORT), PIN_SCK, SPI_AF);
    pin_af(GPIO_PORT(MISO_PORT), PIN_MISO, SPI_AF);
    pin_af(GPIO_PORT(MOSI_PORT), PIN_MOSI, WINC_MOSI_AF);

    /* EXTIn <- IRQN's port */
    volatile uint32_t *exticr = &SYSCFG->EXTICR[PIN_IRQN / 4u];
    *exticr = (*exticr & ~(0xFu << (4u * (PIN_IRQN % 4u)))) | (IRQN_PORT << (4u * (PIN_IRQN % 4u)));
    EXTI->RTSR &= ~EXTI_LINE;
    EXTI->FTSR |= EXTI_LINE;
    EXTI->IMR |= EXTI_LINE;
    EXTI->PR = EXTI_LINE;

    /* master, mode 0, MSB first, fPCLK/4, software NSS, 8-bit frames, RXNE at 8 bits */
    WSPI->CR1 = 0;
    s_cr2 = SPI_CR2_DS_8BIT | SPI_CR2_FRXTH;
    WSPI->CR2 = s_cr2;
    WSPI->CR1 = SPI_CR1_MSTR | SPI_CR1_SSM | SPI_CR1_SSI | (1u << SPI_CR1_BR_POS);
    WSPI->CR1 |= SPI_CR1_SPE;
#if WINC_SPI_DMA
    if (!s_open)
        dcache_enable();   /* once: a second open (the module started again) keeps it */
#endif
    s_open = 1;
    return 0;
}

void winc_port_chip_reset(void)
{
    pin_write(GPIO_PORT(CS_PORT), PIN_CS, 1);
    pin_write(GPIO_PORT(RESET_PORT), PIN_RESET_N, 0);
    pin_write(GPIO_PORT(EN_PORT), PIN_CHIP_EN, 0);
    delay_ms(RESET_LOW_MS);
    pin_write(GPIO_PORT(EN_PORT), PIN_CHIP_EN, 1);
    delay_ms(CHIP_EN_MS);
    pin_write(GPIO_PORT(RESET_PORT), PIN_RESET_N, 1);
    delay_ms(BOOT_MS);
    EXTI->PR = EXTI_LINE;
}

void winc_port_close(void)
{
    if (s_open) {
        pin_write(GPIO_PORT(RESET_PORT), PIN_RESET_N, 0);   /* the module stops talking */
        delay_ms(1);
    }
    s_open = 0;
#if WINC_SPI_DMA
    stream_stop(DMA_RX_STREAM);
    stream_stop(DMA_TX_STREAM);
    WDMA->S[DMA_RX_STREAM].CR = 0;
    WDMA->S[DMA_TX_STREAM].CR = 0;
    RCC->AHB1ENR &= ~WDMA_EN;
    dcache_restore();
#endif
    WSPI->CR1 = 0;
    WSPI->CR2 = 0x0700u;
    s_cr2 = 0x0700u;
    EXTI->IMR &= ~EXTI_LINE;
    EXTI->FTSR &= ~EXTI_LINE;
    EXTI->PR = EXTI_LINE;
    SYSCFG->EXTICR[PIN_IRQN / 4u] &= ~(0xFu << (4u * (PIN_IRQN % 4u)));
    nvic_disable_irq(IRQN_EXTI_OF(PIN_IRQN));
    nvic_clear_pending(IRQN_EXTI_OF(PIN_IRQN));
    nvic_disable_irq(WSPI_IRQN);
    nvic_clear_pending(WSPI_IRQN);
    /* pins back to their reset mode (input, no pull, AF0) */
    GPIO_PORT(SCK_PORT)->AFR[PIN_SCK >> 3] &= ~(0xFu << ((PIN_SCK & 7u) * 4u));
    GPIO_PORT(MISO_PORT)->AFR[PIN_MISO >> 3] &= ~(0xFu << ((PIN_MISO & 7u) * 4u));
    GPIO_PORT(MOSI_PORT)->AFR[PIN_MOSI >> 3] &= ~(0xFu << ((PIN_MOSI & 7u) * 4u));
    pin_mode(GPIO_PORT(SCK_PORT), PIN_SCK, GPIO_MODE_INPUT);
    pin_mode(GPIO_PORT(MISO_PORT), PIN_MISO, GPIO_MODE_INPUT);
    pin_mode(GPIO_PORT(MOSI_PORT), PIN_MOSI, GPIO_MODE_INPUT);
    pin_pull(GPIO_PORT(IRQN_PORT), PIN_IRQN, 0u);
    pin_mode(GPIO_PORT(CS_PORT), PIN_CS, GPIO_MODE_INPUT);
    pin_mode(GPIO_PORT(RESET_PORT), PIN_RESET_N, GPIO_MODE_INPUT);
    pin_mode(GPIO_PORT(EN_PORT), PIN_CHIP_EN, GPIO_MODE_INPUT);
    GPIO_PORT(CS_PORT)->ODR &= ~(1u << PIN_CS);
    GPIO_PORT(RESET_PORT)->ODR &= ~(1u << PIN_RESET_N);
    GPIO_PORT(EN_PORT)->ODR &= ~(1u << PIN_CHIP_EN);
    WSPI_ENR &= ~WSPI_EN;
    RCC->APB2ENR &= ~RCC_APB2ENR_SYSCFGEN;
    /* the ports the board layer does not use (it keeps its own: the LEDs', the console's) */
    RCC->AHB1ENR &= ~(PORT_BITS & ~board_gpio_clocks());
}
