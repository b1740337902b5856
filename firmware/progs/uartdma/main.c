/*
 * uartdma - USART3 (the ST-LINK virtual COM port) by DMA1, the way ST's HAL does it
 * (HAL_UART_Transmit_DMA / HAL_UART_Receive_DMA), written here from RM0410 (no ST code):
 * a bootloader that logs or takes its commands and image over the VCP by DMA, into a
 * receive buffer in cacheable SRAM1.
 *
 *   TX: DMA1 Stream 3 channel 4 (USART3_TX), memory to TDR, byte items. The buffer is
 *       cleaned from the D-cache first (SCB_DCCMVAC), ICR.TCCF, then CR3.DMAT. The stream's
 *       transfer-complete interrupt clears DMAT and enables CR1.TCIE; USART3's TC interrupt
 *       then ends the transfer (the last byte has left the shift register), as HAL's
 *       UART_DMATransmitCplt / UART_EndTransmit_IT do.
 *   RX: DMA1 Stream 1 channel 4 (USART3_RX), RDR to a 32-byte aligned buffer in SRAM1, byte
 *       items, half-transfer and transfer-complete interrupts, CR3.EIE and CR3.DMAR.
 *
 * The CPU reads the receive buffer (filled with 0xEE) before the reception, so its lines
 * are in the D-cache: after the DMA has written it the CPU still sees 0xEE until it
 * invalidates the lines (SCB_DCIMVAC), as on the chip. Both views are printed.
 *
 * Prints "UD: ready <n>" (by DMA), waits up to 30 s for RX_LEN bytes, then
 * "UD: stale=<hex of the first 4 bytes before invalidating> got=<hex of all> ht=<n> tc=<n>
 *  tx=<n> ore=<n> PASS|FAIL" (by DMA), twice (the second round re-arms both streams).
 */
#include <stdint.h>

#include "board.h"
#include "stm32f767.h"

#define RCC_DMA1EN    (1u << 21)
#define TX_STREAM     3u
#define RX_STREAM     1u
#define CHANNEL_4     (4u << 25)
#define CR_EN         (1u << 0)
#define CR_TEIE       (1u << 2)
#define CR_HTIE       (1u << 3)
#define CR_TCIE       (1u << 4)
#define CR_DIR_M2P    (1u << 6)
#define CR_MINC       (1u << 10)
#define CR_PL_HIGH    (2u << 16)
/* LISR/LIFCR groups: stream 1 at bit 6, stream 3 at bit 22 */
#define FLAGS_S1      (0x3Du << 6)
#define FLAGS_S3      (0x3Du << 22)
#define TCIF_S1       (0x20u << 6)
#define HTIF_S1       (0x10u << 6)
#define TEIF_S1       (0x08u << 6)
#define TCIF_S3       (0x20u << 22)
#define TEIF_S3       (0x08u << 22)
#define IRQ_DMA1_S1   12u
#define IRQ_DMA1_S3   14u
#define IRQ_USART3    39u

#define USART_CR1_TCIE (1u << 6)
#define USART_CR3_EIE  (1u << 0)
#define USART_CR3_DMAR (1u << 6)
#define USART_CR3_DMAT (1u << 7)
#define USART_ISR_ORE  (1u << 3)
#define USART_ISR_TC   (1u << 6)
#define USART_ICR_ORECF (1u << 3)
#define USART_ICR_TCCF (1u << 6)

#define RX_LEN  16u
#define TX_MAX  160u
#define LINE    32u

static uint8_t rx_buf[LINE] __attribute__((section(".sram_dma"), aligned(32)));
static uint8_t tx_buf[TX_MAX] __attribute__((section(".sram_dma"), aligned(32)));
static uint32_t vectors[16 + IRQN_COUNT] __attribute__((aligned(512)));
static volatile uint32_t tx_busy, tx_done, rx_ht, rx_tc, dma_err, ore;

void DMA1_Stream3_IRQHandler(void);
void DMA1_Stream3_IRQHandler(void)
{
    uint32_t isr = DMA1->LISR;
    DMA1->LIFCR = isr & FLAGS_S3;
    if (isr & TEIF_S3)
        dma_err++;
    if (isr & TCIF_S3) { /* all bytes are in the USART: wait for the last one to leave */
        USART3->CR3 &= ~USART_CR3_DMAT;
        USART3->CR1 |= USART_CR1_TCIE;
    }
}

void DMA1_Stream1_IRQHandler(void);
void DMA1_Stream1_IRQHandler(void)
{
    uint32_t isr = DMA1->LISR;
    DMA1->LIFCR = isr & FLAGS_S1;
    if (isr & TEIF_S1)
        dma_err++;
    if (isr & HTIF_S1)
        rx_ht++;
    if (isr & TCIF_S1) {
        USART3->CR3 &= ~(USART_CR3_DMAR | USART_CR3_EIE);
        rx_tc++;
    }
}

void USART3_IRQHandler(void);
void USART3_IRQHandler(void)
{
    uint32_t isr = USART3->ISR;
    if (isr & USART_ISR_ORE) {
        USART3->ICR = USART_ICR_ORECF;
        ore++;
    }
    if ((USART3->CR1 & USART_CR1_TCIE) && (isr & USART_ISR_TC)) {
        USART3->CR1 &= ~USART_CR1_TCIE;
        tx_busy = 0;
        tx_done++;
    }
}

static void dcache_clean(const void *p, uint32_t n)
{
    for (uintptr_t a = (uintptr_t)p & ~(LINE - 1u); a < (uintptr_t)p + n; a += LINE)
        SCB_DCCMVAC = (uint32_t)a;
    cpu_dsb();
}

static void dcache_invalidate(const void *p, uint32_t n)
{
    for (uintptr_t a = (uintptr_t)p & ~(LINE - 1u); a < (uintptr_t)p + n; a += LINE)
        SCB_DCIMVAC = (uint32_t)a;
    cpu_dsb();
    cpu_isb();
}

static int wait_flag(volatile uint32_t *flag, uint32_t want, uint32_t ms)
{
    uint32_t t0 = board_millis();
    while (*flag < want)
        if (board_millis() - t0 > ms)
            return -1;
    return 0;
}

/* HAL_UART_Transmit_DMA, then a wait for its end (TC) */
static int dma_send(const char *s)
{
    uint32_t n = 0;
    while (s[n] && n < TX_MAX) {
        tx_buf[n] = (uint8_t)s[n];
        n++;
    }
    dcache_clean(tx_buf, n);
    dma_stream_t *st = &DMA1->S[TX_STREAM];
    st->CR = 0;
    DMA1->LIFCR = FLAGS_S3;
    st->PAR = (uint32_t)(uintptr_t)&USART3->TDR;
    st->M0AR = (uint32_t)(uintptr_t)tx_buf;
    st->NDTR = n;
    st->FCR = 0; /* direct mode */
    st->CR = CHANNEL_4 | CR_PL_HIGH | CR_MINC | CR_DIR_M2P | CR_TCIE | CR_TEIE;
    st->CR |= CR_EN;
    uint32_t before = tx_done;
    tx_busy = 1;
    USART3->ICR = USART_ICR_TCCF;
    USART3->CR3 |= USART_CR3_DMAT;
    return wait_flag(&tx_done, before + 1, 1000);
}

/* HAL_UART_Receive_DMA */
static void dma_receive_start(void)
{
    dma_stream_t *st = &DMA1->S[RX_STREAM];
    st->CR = 0;
    DMA1->LIFCR = FLAGS_S1;
    st->PAR = (uint32_t)(uintptr_t)&USART3->RDR;
    st->M0AR = (uint32_t)(uintptr_t)rx_buf;
    st->NDTR = RX_LEN;
    st->FCR = 0;
    st->CR = CHANNEL_4 | CR_PL_HIGH | CR_MINC | CR_TCIE | CR_HTIE | CR_TEIE;
    st->CR |= CR_EN;
    USART3->ICR = USART_ICR_ORECF;
    USART3->CR3 |= USART_CR3_EIE | USART_CR3_DMAR;
}

static void to_hex(char *out, const volatile uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        fw_snprintf(out + 2 * i, 3, "%02x", (unsigned)p[i]);
}

int main(void)
{
    board_init();
    cpu_dcache_enable();
    board_printf("UD: start\r\n");
    console_flush(100);

    const uint32_t *flash_vectors = (const uint32_t *)(uintptr_t)SCB->VTOR;
    for (unsigned i = 0; i < 16 + IRQN_COUNT; i++)
        vectors[i] = flash_vectors[i];
    vectors[16 + IRQ_DMA1_S1] = (uint32_t)(uintptr_t)DMA1_Stream1_IRQHandler;
    vectors[16 + IRQ_DMA1_S3] = (uint32_t)(uintptr_t)DMA1_Stream3_IRQHandler;
    vectors[16 + IRQ_USART3] = (uint32_t)(uintptr_t)USART3_IRQHandler;
    SCB->VTOR = (uint32_t)(uintptr_t)vectors;
    cpu_dsb();
    cpu_isb();

    RCC->AHB1ENR |= RCC_DMA1EN;
    (void)RCC->AHB1ENR;
    nvic_enable_irq(IRQ_DMA1_S1);
    nvic_enable_irq(IRQ_DMA1_S3);
    nvic_enable_irq(IRQ_USART3);
    cpu_irq_enable();

    for (unsigned round = 1; round <= 2; round++) {
        for (unsigned i = 0; i < LINE; i++)
            rx_buf[i] = 0xEE;
        dcache_clean(rx_buf, LINE); /* SRAM holds 0xEE; the lines stay cached */
        uint32_t tc_before = rx_tc;
        dma_receive_start();
        char line[TX_MAX];
        const char *ready = round == 1 ? "UD: ready 1\r\n" : "UD: ready 2\r\n";
        if (dma_send(ready) != 0)
            led_set(3, 1);
        int ok = wait_flag(&rx_tc, tc_before + 1, 30000) == 0;
        char stale[9], got[2 * RX_LEN + 1];
        to_hex(stale, rx_buf, 4); /* through the D-cache: the lines read before the DMA */
        dcache_invalidate(rx_buf, LINE);
        to_hex(got, rx_buf, RX_LEN);
        int pass = ok && dma_err == 0 && ore == 0 && rx_ht == round && rx_tc == round;
        fw_snprintf(line, sizeof line, "UD: stale=%s got=%s ht=%lu tc=%lu tx=%lu ore=%lu %s\r\n", stale, got,
                    (unsigned long)rx_ht, (unsigned long)rx_tc, (unsigned long)tx_done, (unsigned long)ore,
                    pass ? "PASS" : "FAIL");
        if (dma_send(line) != 0)
            led_set(3, 1);
        led_set(1, pass);
    }
    for (;;)
        cpu_wfi();
}
