/*
 * board.c - NUCLEO-F767ZI board layer at the reset clock: USART3 console, LEDs,
 * DWT time base, tiny printf. Every flag wait is bounded by a cycle budget.
 */
#include "board.h"

#include "stm32f767.h"

#define CYCLES_PER_MS s_cycles_per_ms   /* follows board_clock_set() */
#define UART_TX_TIMEOUT_CYCLES (CYCLES_PER_MS * 10u)

#define FLASH_ACR_LATENCY_MASK 0xFu
#define RCC_CFGR_SW_PLL        2u
#define RCC_CFGR_SWS_PLL       (2u << 2)
#define PLL_IN_HZ              2000000u    /* HSI / M = 16 MHz / 8: inside the 1-2 MHz window */

static uint32_t s_core_hz = BOARD_CORE_HZ;
static uint32_t s_cycles_per_ms = BOARD_CORE_HZ / 1000u;
static uint32_t s_last_cyc;
static uint32_t s_ms;
static uint32_t s_rem;
static int s_uart_up;

uint32_t board_cycles(void)
{
    return DWT->CYCCNT;
}

uint32_t board_millis(void)
{
    uint32_t now = DWT->CYCCNT;
    uint32_t d = now - s_last_cyc;
    s_last_cyc = now;
    s_ms += d / CYCLES_PER_MS;
    s_rem += d % CYCLES_PER_MS;
    if (s_rem >= CYCLES_PER_MS) {
        s_rem -= CYCLES_PER_MS;
        s_ms++;
    }
    return s_ms;
}

void delay_ms(uint32_t ms)
{
    uint32_t start = board_millis();
    while ((uint32_t)(board_millis() - start) < ms) {
    }
}

/* Spin until (reg & mask) == want or the cycle budget runs out. 0 on success. */
static int wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint32_t budget)
{
    uint32_t start = DWT->CYCCNT;
    while ((*reg & mask) != want) {
        if ((uint32_t)(DWT->CYCCNT - start) > budget) {
            /* Look once more: time may have jumped (debugger halt, skipped idle). */
            return (*reg & mask) == want ? 0 : -1;
        }
    }
    return 0;
}

static void dwt_init(void)
{
    COREDEBUG_DEMCR |= DEMCR_TRCENA;
    DWT_LAR = 0xC5ACCE55u;
    DWT->CTRL |= DWT_CTRL_CYCCNTENA;
    s_last_cyc = DWT->CYCCNT;
}

static void pin_mode(gpio_t *port, unsigned pin, uint32_t mode)
{
    port->MODER = (port->MODER & ~(3u << (pin * 2u))) | (mode << (pin * 2u));
}

static void pin_af(gpio_t *port, unsigned pin, uint32_t af)
{
    volatile uint32_t *afr = &port->AFR[pin >> 3];
    unsigned shift = (pin & 7u) * 4u;
    *afr = (*afr & ~(0xFu << shift)) | (af << shift);
}

static const uint8_t led_pins[4] = {0, 0, 7, 14};

void led_set(unsigned n, int on)
{
    if (n < 1 || n > 3) {
        return;
    }
    uint32_t bit = 1u << led_pins[n];
    GPIOB->BSRR = on ? bit : (bit << 16);
}

void led_toggle(unsigned n)
{
    if (n < 1 || n > 3) {
        return;
    }
    led_set(n, (GPIOB->ODR & (1u << led_pins[n])) == 0);
}

void board_init(void)
{
    dwt_init();
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOBEN | RCC_AHB1ENR_GPIODEN;
    RCC->APB1ENR |= RCC_APB1ENR_USART3EN;
    (void)RCC->APB1ENR; /* read back: the clock is on before the first access */

    for (unsigned n = 1; n <= 3; n++) {
        led_set(n, 0);
        pin_mode(GPIOB, led_pins[n], GPIO_MODE_OUTPUT);
    }

    /* PD8 = USART3_TX, PD9 = USART3_RX, alternate function 7. */
    pin_af(GPIOD, 8, 7);
    pin_af(GPIOD, 9, 7);
    pin_mode(GPIOD, 8, GPIO_MODE_AF);
    pin_mode(GPIOD, 9, GPIO_MODE_AF);

    USART3->CR1 = 0;
    USART3->BRR = (s_core_hz + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD; /* 139 at 16 MHz */
    USART3->CR2 = 0;
    USART3->CR3 = 0;
    USART3->CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;
    (void)wait_bits(&USART3->ISR, USART_ISR_TEACK | USART_ISR_REACK,
                    USART_ISR_TEACK | USART_ISR_REACK, CYCLES_PER_MS * 5u);
    USART3->ICR = USART_ICR_ALL;
    s_uart_up = 1;
}

void board_deinit(void)
{
    if (s_uart_up) {
        uart3_flush(20);
    }
    s_uart_up = 0;
    USART3->CR1 = 0;
    RCC->APB1RSTR |= RCC_APB1ENR_USART3EN;
    RCC->APB1RSTR &= ~RCC_APB1ENR_USART3EN;
    RCC->APB1ENR &= ~RCC_APB1ENR_USART3EN;
    pin_mode(GPIOD, 8, GPIO_MODE_INPUT);
    pin_mode(GPIOD, 9, GPIO_MODE_INPUT);
    GPIOD->AFR[1] &= ~0xFFu;
    for (unsigned n = 1; n <= 3; n++) {
        led_set(n, 0);
        pin_mode(GPIOB, led_pins[n], GPIO_MODE_INPUT);
    }
    RCC->AHB1ENR &= ~RCC_AHB1ENR_GPIODEN;
}

void uart3_putc(char c)
{
    if (!s_uart_up) {
        return;
    }
    if (wait_bits(&USART3->ISR, USART_ISR_TXE, USART_ISR_TXE, UART_TX_TIMEOUT_CYCLES) != 0) {
        return;
    }
    USART3->TDR = (uint8_t)c;
}

void uart3_write(const void *buf, uint32_t len)
{
    const char *p = buf;
    for (uint32_t i = 0; i < len; i++) {
        uart3_putc(p[i]);
    }
}

void uart3_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n') {
            uart3_putc('\r');
        }
        uart3_putc(*s++);
    }
}

void uart3_flush(uint32_t timeout_ms)
{
    (void)wait_bits(&USART3->ISR, USART_ISR_TC, USART_ISR_TC, CYCLES_PER_MS * timeout_ms);
}

int uart3_getc(uint32_t timeout_ms)
{
    if (!s_uart_up) {
        return -1;
    }
    uint32_t start = board_millis();
    for (;;) {
        uint32_t isr = USART3->ISR;
        if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE | USART_ISR_PE)) {
            USART3->ICR = USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE | USART_ISR_PE;
        }
        if (isr & USART_ISR_RXNE) {
            return (int)(USART3->RDR & 0xFFu);
        }
        if ((uint32_t)(board_millis() - start) >= timeout_ms) {
            if (USART3->ISR & USART_ISR_RXNE) {
                continue; /* arrived while time jumped: take it */
            }
            return -1;
        }
    }
}

void board_printf(const char *fmt, ...)
{
    char buf[192];
    va_list ap;
    va_start(ap, fmt);
    (void)fw_vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    uart3_puts(buf);
}

__attribute__((weak)) void board_unhandled_exception(uint32_t ipsr)
{
    board_printf("\nUNHANDLED EXCEPTION %lu\n", (unsigned long)ipsr);
    GPIOB->BSRR = 1u << 14; /* LD3 red, even if led_set's pin was reconfigured */
    for (;;) {
        cpu_wfi();
    }
}

uint32_t board_core_hz(void)
{
    return s_core_hz;
}

/* SYSCLK back to HSI, PLL off (flash latency is lowered by the caller afterwards). */
static int clock_to_hsi(void)
{
    int rc = 0;
    RCC->CFGR &= ~RCC_CFGR_SW_MASK;
    rc |= wait_bits(&RCC->CFGR, RCC_CFGR_SWS_MASK, 0, CYCLES_PER_MS * 10u);
    RCC->CR &= ~RCC_CR_PLLON;
    rc |= wait_bits(&RCC->CR, RCC_CR_PLLRDY, 0, CYCLES_PER_MS * 10u);
    return rc;
}

int board_clock_set(uint32_t hz)
{
    if (hz == s_core_hz) {
        return 0;
    }
    if (hz != BOARD_CORE_HZ && (hz < 24000000u || hz > 54000000u || hz % PLL_IN_HZ != 0)) {
        return -1;
    }
    (void)board_millis();   /* the cycles so far count at the old clock */
    if (s_uart_up) {
        uart3_flush(10);
    }
    int rc = 0;
    if ((RCC->CFGR & RCC_CFGR_SWS_MASK) != 0) {
        rc |= clock_to_hsi();
    }
    if (hz != BOARD_CORE_HZ) {
        /* PLL from HSI: 2 MHz in, VCO = hz * P (100..432 MHz), P the smallest even divider */
        uint32_t p = 2;
        while (hz * p < 100000000u) {
            p += 2u;
        }
        uint32_t n = hz / PLL_IN_HZ * p;
        RCC->PLLCFGR = (2u << 28) | (4u << 24) | ((p / 2u - 1u) << 16) | (n << 6) |
                       (BOARD_CORE_HZ / PLL_IN_HZ);
        RCC->CR |= RCC_CR_PLLON;
        rc |= wait_bits(&RCC->CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY, CYCLES_PER_MS * 10u);
        /* wait states before the clock goes up: one per 30 MHz at 2.7-3.6 V */
        FLASH_IF->ACR = (FLASH_IF->ACR & ~FLASH_ACR_LATENCY_MASK) | ((hz - 1u) / 30000000u);
        (void)FLASH_IF->ACR;
        if (rc == 0) {
            RCC->CFGR = (RCC->CFGR & ~RCC_CFGR_SW_MASK) | RCC_CFGR_SW_PLL;
            rc |= wait_bits(&RCC->CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL, CYCLES_PER_MS * 10u);
        }
        if (rc != 0) {   /* the PLL never locked or was not taken: stay on HSI */
            (void)clock_to_hsi();
            hz = BOARD_CORE_HZ;
        }
    }
    if (hz == BOARD_CORE_HZ) {
        FLASH_IF->ACR &= ~FLASH_ACR_LATENCY_MASK;
        RCC->PLLCFGR = RCC_PLLCFGR_RESET;
    }
    s_core_hz = hz;
    s_cycles_per_ms = hz / 1000u;
    s_last_cyc = DWT->CYCCNT;   /* from here on the DWT counts at the new clock */
    if (s_uart_up) {            /* BRR may only change while the USART is disabled */
        USART3->CR1 &= ~USART_CR1_UE;
        USART3->BRR = (hz + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD;
        USART3->CR1 |= USART_CR1_UE;
        (void)wait_bits(&USART3->ISR, USART_ISR_TEACK | USART_ISR_REACK,
                        USART_ISR_TEACK | USART_ISR_REACK, CYCLES_PER_MS * 5u);
    }
    return rc == 0 ? 0 : -1;
}
