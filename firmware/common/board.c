/*
 * board.c - NUCLEO-F767ZI board layer at the reset clock: the console U(S)ART (USART3 unless
 * built with -DCONSOLE_UART=N), LEDs, DWT time base, tiny printf. Every flag wait is bounded
 * by a cycle budget.
 */
#include "board.h"

#include "stm32f767.h"

/* ---------------------------------------------------------------- the console U(S)ART
 * CONSOLE_UART = the instance's number in RM0410 (USART1..3, UART4/5, USART6, UART7/8).
 * One entry per supported instance, all the board layer needs to know about it:
 *   CON_REGS            its registers
 *   CON_APB             the bus it sits on: 1 = RCC APB1ENR/APB1RSTR, 2 = APB2ENR/APB2RSTR
 *   CON_RCC_BIT         its enable bit, which is also its reset bit in APBxRSTR
 *   CON_TX_*, CON_RX_*  TX and RX pins: port (0 = A .. 6 = G: GPIO_PORT(), AHB1ENR bit) and pin
 *   CON_AF              the alternate function both pins take (STM32F767ZI datasheet's
 *                       alternate-function table)
 * BRR = core clock / baud for every instance: the kernel clock is the bus's PCLK (RCC
 * DCKCFGR2 USARTxSEL left at its reset value 0), and PCLK1 = PCLK2 = HCLK = the core clock
 * because the firmware never changes the APB prescalers (RCC_CFGR PPRE1/PPRE2 stay /1, also
 * at board_clock_set's 44 MHz at most: APB1's limit is 45 MHz
 * without over-drive, DS11532). Another instance = one more entry. */
#ifndef CONSOLE_UART
#define CONSOLE_UART 3
#endif

#if CONSOLE_UART == 3
/* USART3 on PD8 (TX) / PD9 (RX), AF7: the NUCLEO's ST-LINK virtual COM port */
#define CON_REGS    USART3
#define CON_APB     1
#define CON_RCC_BIT RCC_APB1ENR_USART3EN
#define CON_TX_PORT 3u
#define CON_TX_PIN  8u
#define CON_RX_PORT 3u
#define CON_RX_PIN  9u
#define CON_AF      7u
#elif CONSOLE_UART == 6
/* USART6 on PG14 (TX) / PG9 (RX), AF8: the NUCLEO-144's Arduino D1 / D0 */
#define CON_REGS    USART6
#define CON_APB     2
#define CON_RCC_BIT RCC_APB2ENR_USART6EN
#define CON_TX_PORT 6u
#define CON_TX_PIN  14u
#define CON_RX_PORT 6u
#define CON_RX_PIN  9u
#define CON_AF      8u
#else
#error "CONSOLE_UART: 3 (USART3, PD8/PD9) or 6 (USART6, PG14/PG9); add an entry in board.c for another"
#endif

#if CON_APB == 1
#define CON_RCC_ENR  RCC->APB1ENR
#define CON_RCC_RSTR RCC->APB1RSTR
#else
#define CON_RCC_ENR  RCC->APB2ENR
#define CON_RCC_RSTR RCC->APB2RSTR
#endif
#define CON_TX_GPIO GPIO_PORT(CON_TX_PORT)
#define CON_RX_GPIO GPIO_PORT(CON_RX_PORT)
/* the AHB1ENR GPIO clocks board_init turns on: the LEDs' port B and the console's pins' */
#define BOARD_GPIO_CLOCKS (RCC_AHB1ENR_GPIOBEN | (1u << CON_TX_PORT) | (1u << CON_RX_PORT))

#define CYCLES_PER_MS s_cycles_per_ms   /* follows board_clock_set() */
#define UART_TX_TIMEOUT_CYCLES (CYCLES_PER_MS * 10u)

#define FLASH_ACR_LATENCY_MASK FLASH_ACR_LATENCY
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
    RCC->AHB1ENR |= BOARD_GPIO_CLOCKS;
    CON_RCC_ENR |= CON_RCC_BIT;
    (void)CON_RCC_ENR; /* read back: the clock is on before the first access */

    for (unsigned n = 1; n <= 3; n++) {
        led_set(n, 0);
        pin_mode(GPIOB, led_pins[n], GPIO_MODE_OUTPUT);
    }

    /* the console's TX and RX pins to their alternate function */
    pin_af(CON_TX_GPIO, CON_TX_PIN, CON_AF);
    pin_af(CON_RX_GPIO, CON_RX_PIN, CON_AF);
    pin_mode(CON_TX_GPIO, CON_TX_PIN, GPIO_MODE_AF);
    pin_mode(CON_RX_GPIO, CON_RX_PIN, GPIO_MODE_AF);

    CON_REGS->CR1 = 0;
    CON_REGS->BRR = (s_core_hz + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD; /* 139 at 16 MHz */
    CON_REGS->CR2 = 0;
    CON_REGS->CR3 = 0;
    CON_REGS->CR1 = USART_CR1_TE | USART_CR1_RE | USART_CR1_UE;
    (void)wait_bits(&CON_REGS->ISR, USART_ISR_TEACK | USART_ISR_REACK,
                    USART_ISR_TEACK | USART_ISR_REACK, CYCLES_PER_MS * 5u);
    CON_REGS->ICR = USART_ICR_ALL;
    s_uart_up = 1;
}

uint32_t board_gpio_clocks(void)
{
    return BOARD_GPIO_CLOCKS;
}

void board_deinit(void)
{
    if (s_uart_up) {
        console_flush(20);
    }
    s_uart_up = 0;
    CON_REGS->CR1 = 0;
    CON_RCC_RSTR |= CON_RCC_BIT;
    CON_RCC_RSTR &= ~CON_RCC_BIT;
    CON_RCC_ENR &= ~CON_RCC_BIT;
    pin_mode(CON_TX_GPIO, CON_TX_PIN, GPIO_MODE_INPUT);
    pin_mode(CON_RX_GPIO, CON_RX_PIN, GPIO_MODE_INPUT);
    pin_af(CON_TX_GPIO, CON_TX_PIN, 0);
    pin_af(CON_RX_GPIO, CON_RX_PIN, 0);
    for (unsigned n = 1; n <= 3; n++) {
        led_set(n, 0);
        pin_mode(GPIOB, led_pins[n], GPIO_MODE_INPUT);
    }
    /* the console's ports off; port B (the LEDs') stays clocked, as it always has */
    RCC->AHB1ENR &= ~(BOARD_GPIO_CLOCKS & ~RCC_AHB1ENR_GPIOBEN);
}

void console_putc(char c)
{
    if (!s_uart_up) {
        return;
    }
    if (wait_bits(&CON_REGS->ISR, USART_ISR_TXE, USART_ISR_TXE, UART_TX_TIMEOUT_CYCLES) != 0) {
        return;
    }
    CON_REGS->TDR = (uint8_t)c;
}

void console_write(const void *buf, uint32_t len)
{
    const char *p = buf;
    for (uint32_t i = 0; i < len; i++) {
        console_putc(p[i]);
    }
}

void console_puts(const char *s)
{
    while (*s != '\0') {
        if (*s == '\n') {
            console_putc('\r');
        }
        console_putc(*s++);
    }
}

void console_flush(uint32_t timeout_ms)
{
    (void)wait_bits(&CON_REGS->ISR, USART_ISR_TC, USART_ISR_TC, CYCLES_PER_MS * timeout_ms);
}

int console_getc(uint32_t timeout_ms)
{
    if (!s_uart_up) {
        return -1;
    }
    uint32_t start = board_millis();
    for (;;) {
        uint32_t isr = CON_REGS->ISR;
        if (isr & (USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE | USART_ISR_PE)) {
            CON_REGS->ICR = USART_ISR_ORE | USART_ISR_FE | USART_ISR_NE | USART_ISR_PE;
        }
        if (isr & USART_ISR_RXNE) {
            return (int)(CON_REGS->RDR & 0xFFu);
        }
        if ((uint32_t)(board_millis() - start) >= timeout_ms) {
            if (CON_REGS->ISR & USART_ISR_RXNE) {
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
    console_puts(buf);
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
    if (hz != BOARD_CORE_HZ && (hz < 24000000u || hz > 44000000u || hz % PLL_IN_HZ != 0)) {
        return -1;
    }
    (void)board_millis();   /* the cycles so far count at the old clock */
    if (s_uart_up) {
        console_flush(10);
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
        CON_REGS->CR1 &= ~USART_CR1_UE;
        CON_REGS->BRR = (hz + BOARD_UART_BAUD / 2u) / BOARD_UART_BAUD;   /* PCLK = hz */
        CON_REGS->CR1 |= USART_CR1_UE;
        (void)wait_bits(&CON_REGS->ISR, USART_ISR_TEACK | USART_ISR_REACK,
                        USART_ISR_TEACK | USART_ISR_REACK, CYCLES_PER_MS * 5u);
    }
    return rc == 0 ? 0 : -1;
}
