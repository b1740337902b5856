/*
 * haltest - HAL-style test firmware for the twin (issue 4).
 *
 * Does what an ST HAL bootloader does, with this file's own register definitions (no ST
 * code): HAL_Init (flash ART/prefetch, priority grouping, 1 kHz SysTick), SystemClock_Config
 * (HSE bypass + PLL to 216 MHz, VOS1, over-drive, flash latency 7, APB1/4 APB2/2), SysTick
 * delays and timeouts, USART3 with TXE/TC/RXNE interrupts, CRC unit, flash erase/program,
 * I/D caches, the MPU, SVC/PendSV, a UsageFault that is recovered, then de-initialises
 * (HAL_RCC_DeInit, NVIC ICER/ICPR, caches, MPU, SysTick) and jumps like the forum thread's
 * bootloader: to the app at 0x08040000 if one is there, else to a vector table in SRAM.
 *
 * Every result is one line "HT: <name> <PASS|FAIL|value> ..." on USART3; the last line
 * before the jump is "HT: DONE pass=<n> fail=<m>".
 */
#include <stdint.h>

#define R32(a) (*(volatile uint32_t *)(uintptr_t)(a))
#define R16(a) (*(volatile uint16_t *)(uintptr_t)(a))
#define R8(a)  (*(volatile uint8_t *)(uintptr_t)(a))

/* ------------------------------------------------------------------ registers */
#define RCC_B        0x40023800u
#define RCC_CR       R32(RCC_B + 0x00)
#define RCC_PLLCFGR  R32(RCC_B + 0x04)
#define RCC_CFGR     R32(RCC_B + 0x08)
#define RCC_CIR      R32(RCC_B + 0x0C)
#define RCC_AHB1ENR  R32(RCC_B + 0x30)
#define RCC_APB1ENR  R32(RCC_B + 0x40)
#define RCC_APB2ENR  R32(RCC_B + 0x44)
#define RCC_CSR      R32(RCC_B + 0x74)
#define RCC_BDCR     R32(RCC_B + 0x70)
#define RTC_TR       R32(0x40002800u)
#define RTC_DR       R32(0x40002804u)
#define RTC_ISR      R32(0x4000280Cu)
#define RTC_PRER     R32(0x40002810u)
#define RTC_WPR      R32(0x40002824u)
#define RTC_CR       R32(0x40002808u)
#define RTC_WUTR     R32(0x40002814u)
#define PWR_CR1      R32(0x40007000u)
#define PWR_CSR1     R32(0x40007004u)
#define FLASH_ACR    R32(0x40023C00u)
#define FLASH_KEYR   R32(0x40023C04u)
#define FLASH_SR     R32(0x40023C0Cu)
#define FLASH_CR     R32(0x40023C10u)
#define GPIOB_B      0x40020400u
#define GPIOC_B      0x40020800u
#define GPIOD_B      0x40020C00u
#define GPIO_MODER(p)  R32((p) + 0x00)
#define GPIO_PUPDR(p)  R32((p) + 0x0C)
#define GPIO_IDR(p)    R32((p) + 0x10)
#define GPIO_BSRR(p)   R32((p) + 0x18)
#define GPIO_AFRH(p)   R32((p) + 0x24)
#define SYSCFG_EXTICR4 R32(0x40013814u)
#define EXTI_IMR     R32(0x40013C00u)
#define EXTI_RTSR    R32(0x40013C08u)
#define EXTI_PR      R32(0x40013C14u)
#define USART3_B     0x40004800u
#define U3_CR1       R32(USART3_B + 0x00)
#define U3_CR3       R32(USART3_B + 0x08)
#define U3_BRR       R32(USART3_B + 0x0C)
#define U3_ISR       R32(USART3_B + 0x1C)
#define U3_ICR       R32(USART3_B + 0x20)
#define U3_RDR       R32(USART3_B + 0x24)
#define U3_TDR       R32(USART3_B + 0x28)
#define CRC_DR       R32(0x40023000u)
#define CRC_DR8      R8(0x40023000u)
#define CRC_CR       R32(0x40023008u)
#define CRC_INIT     R32(0x40023010u)
#define CRC_POL      R32(0x40023014u)
#define STK_CTRL     R32(0xE000E010u)
#define STK_LOAD     R32(0xE000E014u)
#define STK_VAL      R32(0xE000E018u)
#define NVIC_ISER(n) R32(0xE000E100u + 4u * (n))
#define NVIC_ICER(n) R32(0xE000E180u + 4u * (n))
#define NVIC_ICPR(n) R32(0xE000E280u + 4u * (n))
#define NVIC_IPR8(n) R8(0xE000E400u + (n))
#define SCB_ICSR     R32(0xE000ED04u)
#define SCB_VTOR     R32(0xE000ED08u)
#define SCB_AIRCR    R32(0xE000ED0Cu)
#define SCB_CCR      R32(0xE000ED14u)
#define SCB_SHPR3    R32(0xE000ED20u)
#define SCB_SHCSR    R32(0xE000ED24u)
#define SCB_CFSR     R32(0xE000ED28u)
#define SCB_CCSIDR   R32(0xE000ED80u)
#define SCB_CSSELR   R32(0xE000ED84u)
#define MPU_TYPE     R32(0xE000ED90u)
#define MPU_CTRL     R32(0xE000ED94u)
#define MPU_RNR      R32(0xE000ED98u)
#define MPU_RBAR     R32(0xE000ED9Cu)
#define MPU_RASR     R32(0xE000EDA0u)
#define ICIALLU      R32(0xE000EF50u)
#define DCISW        R32(0xE000EF60u)
#define DCCISW       R32(0xE000EF74u)

#define IRQ_USART3    39u
#define IRQ_EXTI15_10 40u
#define APP_ADDR      0x08040000u
#define TEST_SECTOR   3u
#define TEST_ADDR     0x08018000u

static inline void dsb(void) { __asm volatile("dsb 0xF" ::: "memory"); }
static inline void isb(void) { __asm volatile("isb 0xF" ::: "memory"); }
static inline void irq_off(void) { __asm volatile("cpsid i" ::: "memory"); }
static inline void irq_on(void) { __asm volatile("cpsie i" ::: "memory"); }

/* ------------------------------------------------------------------ tick (HAL_GetTick) */
static volatile uint32_t ht_tick;
static uint32_t ht_core_hz = 16000000u;

void SysTick_Handler(void) { ht_tick++; }

static void ht_init_tick(uint32_t hz)
{
    STK_LOAD = hz / 1000u - 1u;
    STK_VAL = 0;
    STK_CTRL = 7u;                      /* CLKSOURCE=HCLK, TICKINT, ENABLE */
}

static void ht_delay(uint32_t ms)        /* HAL_Delay: at least ms + 1 ticks */
{
    uint32_t start = ht_tick;
    uint32_t wait = ms + 1u;
    while (ht_tick - start < wait) {
    }
}

/* Poll (*reg & mask) == want with a HAL-style millisecond timeout. */
static int ht_wait(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint32_t timeout_ms)
{
    uint32_t start = ht_tick;
    while ((*reg & mask) != want) {
        if (ht_tick - start > timeout_ms) {
            return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ UART with interrupts */
static volatile char ht_txbuf[256];
static volatile uint32_t ht_tx_head, ht_tx_tail;
static volatile uint32_t ht_tc_count;
static volatile int ht_rx_char = -1;

void USART3_IRQHandler(void)
{
    uint32_t isr = U3_ISR;
    if ((isr & (1u << 5)) && (U3_CR1 & (1u << 5))) {           /* RXNE */
        ht_rx_char = (int)(U3_RDR & 0xFFu);
    }
    if (isr & (1u << 3)) {                                      /* ORE */
        U3_ICR = 1u << 3;
    }
    if ((isr & (1u << 7)) && (U3_CR1 & (1u << 7))) {           /* TXE */
        if (ht_tx_tail != ht_tx_head) {
            U3_TDR = (uint8_t)ht_txbuf[ht_tx_tail % sizeof ht_txbuf];
            ht_tx_tail++;
        } else {
            U3_CR1 = (U3_CR1 & ~(1u << 7)) | (1u << 6);          /* TXEIE off, TCIE on */
        }
    }
    if ((isr & (1u << 6)) && (U3_CR1 & (1u << 6))) {           /* TC */
        U3_CR1 &= ~(1u << 6);
        U3_ICR = 1u << 6;
        ht_tc_count++;
    }
}

static int ht_uart_init(uint32_t pclk1)
{
    RCC_AHB1ENR |= 1u << 3;                                      /* GPIOD */
    RCC_APB1ENR |= 1u << 18;                                     /* USART3 */
    (void)RCC_APB1ENR;
    GPIO_MODER(GPIOD_B) = (GPIO_MODER(GPIOD_B) & ~(0xFu << 16)) | (0xAu << 16); /* PD8/9 AF */
    GPIO_AFRH(GPIOD_B) = (GPIO_AFRH(GPIOD_B) & ~0xFFu) | 0x77u;  /* AF7 */
    U3_CR1 = 0;
    U3_BRR = (pclk1 + 115200u / 2u) / 115200u;
    U3_CR3 = 0;
    U3_CR1 = (1u << 3) | (1u << 2) | 1u;                          /* TE RE UE */
    if (ht_wait(&U3_ISR, (1u << 21) | (1u << 22), (1u << 21) | (1u << 22), 100u) != 0) {
        return -1;                                               /* TEACK/REACK */
    }
    NVIC_IPR8(IRQ_USART3) = 0x50u;
    NVIC_ISER(IRQ_USART3 / 32u) = 1u << (IRQ_USART3 % 32u);
    U3_CR1 |= 1u << 5;                                           /* RXNEIE */
    return 0;
}

static void ht_putc(char c)
{
    while (ht_tx_head - ht_tx_tail >= sizeof ht_txbuf) {
    }
    ht_txbuf[ht_tx_head % sizeof ht_txbuf] = c;
    ht_tx_head++;
    U3_CR1 |= 1u << 7;                                           /* TXEIE */
}

static void ht_puts(const char *s)
{
    while (*s) {
        ht_putc(*s++);
    }
}

static void ht_hex(uint32_t v)
{
    ht_puts("0x");
    for (int i = 7; i >= 0; i--) {
        ht_putc("0123456789ABCDEF"[(v >> (4 * i)) & 0xFu]);
    }
}

static void ht_dec(uint32_t v)
{
    char buf[11];
    int n = 0;
    do {
        buf[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v);
    while (n) {
        ht_putc(buf[--n]);
    }
}

static void ht_flush(uint32_t timeout_ms)
{
    uint32_t start = ht_tick;
    while ((ht_tx_tail != ht_tx_head || (U3_CR1 & (3u << 6))) && ht_tick - start < timeout_ms) {
    }
}

static uint32_t ht_pass, ht_fail;

static void ht_result(const char *name, int ok, const char *what, uint32_t value)
{
    ht_puts("HT: ");
    ht_puts(name);
    ht_puts(ok ? " PASS" : " FAIL");
    if (what) {
        ht_putc(' ');
        ht_puts(what);
        ht_putc('=');
        ht_hex(value);
    }
    ht_puts("\r\n");
    if (ok) {
        ht_pass++;
    } else {
        ht_fail++;
    }
}

/* ------------------------------------------------------------------ clocks */
static int ht_clock_status;

static int ht_system_clock_config(void)     /* 216 MHz from HSE bypass 8 MHz */
{
    RCC_APB1ENR |= 1u << 28;                                     /* PWR */
    PWR_CR1 |= 3u << 14;                                         /* VOS scale 1 */
    RCC_CR |= (1u << 16) | (1u << 18);                           /* HSEON + HSEBYP */
    if (ht_wait(&RCC_CR, 1u << 17, 1u << 17, 100u)) return -1;
    RCC_CR &= ~(1u << 24);
    if (ht_wait(&RCC_CR, 1u << 25, 0, 2u)) return -2;
    RCC_PLLCFGR = 4u | (216u << 6) | (0u << 16) | (1u << 22) | (9u << 24) | (7u << 28);
    RCC_CR |= 1u << 24;
    if (ht_wait(&RCC_CR, 1u << 25, 1u << 25, 2u)) return -3;
    PWR_CR1 |= 1u << 16;                                         /* ODEN */
    if (ht_wait(&PWR_CSR1, 1u << 16, 1u << 16, 1000u)) return -4;
    PWR_CR1 |= 1u << 17;                                         /* ODSWEN */
    if (ht_wait(&PWR_CSR1, 1u << 17, 1u << 17, 1000u)) return -5;
    FLASH_ACR = (FLASH_ACR & ~0xFu) | 7u;                        /* LATENCY 7 before going up */
    if ((FLASH_ACR & 0xFu) != 7u) return -6;
    RCC_CFGR = (RCC_CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13))) | (5u << 10) | (4u << 13);
    RCC_CFGR = (RCC_CFGR & ~3u) | 2u;                            /* SW = PLL */
    if (ht_wait(&RCC_CFGR, 0xCu, 0x8u, 5000u)) return -7;
    ht_core_hz = 216000000u;
    ht_init_tick(ht_core_hz);                                    /* HAL_InitTick again */
    return 0;
}

static int ht_rcc_deinit(void)              /* HAL_RCC_DeInit's order of polls */
{
    RCC_CR |= 1u;
    if (ht_wait(&RCC_CR, 1u << 1, 1u << 1, 2u)) return -1;
    RCC_CR |= 0x10u << 3;
    RCC_CFGR = 0;
    if (ht_wait(&RCC_CFGR, 0xCu, 0, 5000u)) return -2;
    ht_core_hz = 16000000u;
    RCC_CR &= ~((1u << 16) | (1u << 18) | (1u << 19));
    if (ht_wait(&RCC_CR, 1u << 17, 0, 100u)) return -3;
    RCC_CR &= ~(1u << 24);
    if (ht_wait(&RCC_CR, 1u << 25, 0, 2u)) return -4;
    RCC_PLLCFGR = 0x24003010u;
    RCC_CIR = 0;
    RCC_CSR &= ~1u;
    RCC_CSR |= 1u << 24;                                         /* RMVF */
    FLASH_ACR &= ~0xFu;
    return 0;
}

/* ------------------------------------------------------------------ CRC */
static uint32_t ht_crc_bytes(const uint8_t *p, uint32_t n)
{
    CRC_CR |= 1u;                                                /* RESET */
    uint32_t i = 0;
    for (; i + 4u <= n; i += 4u) {
        CRC_DR = (uint32_t)p[i] << 24 | (uint32_t)p[i + 1] << 16 | (uint32_t)p[i + 2] << 8 | p[i + 3];
    }
    for (; i < n; i++) {
        CRC_DR8 = p[i];
    }
    return CRC_DR;
}

/* ------------------------------------------------------------------ flash */
static int ht_flash_test(void)
{
    if (FLASH_CR & (1u << 31)) {
        FLASH_KEYR = 0x45670123u;
        FLASH_KEYR = 0xCDEF89ABu;
    }
    if (FLASH_CR & (1u << 31)) return -1;
    if (ht_wait(&FLASH_SR, 1u << 16, 0, 50000u)) return -2;
    FLASH_SR = 0xF3u;
    FLASH_CR = (2u << 8) | (1u << 1) | (TEST_SECTOR << 3);        /* x32, SER, SNB */
    FLASH_CR |= 1u << 16;                                        /* STRT */
    dsb();
    if (ht_wait(&FLASH_SR, 1u << 16, 0, 50000u)) return -3;
    if (FLASH_SR & 0xF2u) return -4;
    FLASH_CR &= ~((1u << 1) | (0x1Fu << 3));
    if (R32(TEST_ADDR) != 0xFFFFFFFFu) return -5;
    static const uint32_t pattern[4] = {0x12345678u, 0xCAFEF00Du, 0x00000000u, 0xA5A5A5A5u};
    for (uint32_t i = 0; i < 4u; i++) {
        FLASH_CR = (2u << 8) | 1u;                               /* x32, PG */
        R32(TEST_ADDR + 4u * i) = pattern[i];
        dsb();
        if (ht_wait(&FLASH_SR, 1u << 16, 0, 50000u)) return -6;
        if (FLASH_SR & 0xF2u) return -7;
        FLASH_CR &= ~1u;
    }
    FLASH_CR |= 1u << 31;                                        /* lock */
    for (uint32_t i = 0; i < 4u; i++) {
        if (R32(TEST_ADDR + 4u * i) != pattern[i]) return -8;
    }
    return 0;
}

/* ------------------------------------------------------------------ caches and MPU */
static void ht_dcache_setway(volatile uint32_t *op)
{
    SCB_CSSELR = 0;
    dsb();
    uint32_t ccsidr = SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    for (uint32_t s = 0; s < sets; s++) {
        for (uint32_t w = 0; w < ways; w++) {
            *op = (w << 30) | (s << 5);
        }
    }
    dsb();
}

static void ht_caches_on(void)
{
    dsb();
    isb();
    ICIALLU = 0;
    dsb();
    isb();
    SCB_CCR |= 1u << 17;
    dsb();
    isb();
    ht_dcache_setway(&DCISW);
    SCB_CCR |= 1u << 16;
    dsb();
    isb();
}

static void ht_caches_off(void)
{
    SCB_CCR &= ~(1u << 16);
    ht_dcache_setway(&DCCISW);
    dsb();
    isb();
    SCB_CCR &= ~(1u << 17);
    ICIALLU = 0;
    dsb();
    isb();
}

/* ------------------------------------------------------------------ exceptions */
static volatile uint32_t ht_order[4];
static volatile uint32_t ht_norder;
static volatile uint32_t ht_fault_cfsr;
static volatile uint32_t ht_button;

void SVC_Handler(void)
{
    ht_order[ht_norder++ & 3u] = 11u;
    SCB_ICSR = 1u << 28;                /* pend PendSV (lower priority: runs after) */
    ht_order[ht_norder++ & 3u] = 0x10Bu;
}

void PendSV_Handler(void) { ht_order[ht_norder++ & 3u] = 14u; }

__attribute__((naked)) void UsageFault_Handler(void)
{
    __asm volatile(
        "ldr r0, =0xE000ED28\n"
        "ldr r1, [r0]\n"
        "str r1, [r0]\n"                /* clear CFSR (write 1 to clear) */
        "ldr r2, =ht_fault_cfsr\n"
        "str r1, [r2]\n"
        "mrs r0, msp\n"
        "ldr r1, [r0, #24]\n"
        "adds r1, #2\n"                 /* skip the 16-bit UDF */
        "str r1, [r0, #24]\n"
        "bx lr\n");
}

void EXTI15_10_IRQHandler(void)
{
    if (EXTI_PR & (1u << 13)) {
        EXTI_PR = 1u << 13;
        ht_button++;
    }
}

/* HAL_RTCEx_WakeUpTimerIRQHandler: WUTF, then EXTI line 22 cleared */
static volatile uint32_t ht_wakeups;
void RTC_WKUP_IRQHandler(void)
{
    if (RTC_ISR & (1u << 10)) {
        RTC_ISR = ~((1u << 10) | (1u << 7)) & 0x0001FFFFu; /* WUTF written 0, INIT kept 0 */
        ht_wakeups++;
    }
    EXTI_PR = 1u << 22;
}

/* HAL_RTCEx_SetWakeUpTimer_IT(&hrtc, 15, RTC_WAKEUPCLOCK_RTCCLK_DIV16): a wake-up every
 * 16 x 16 / 32768 Hz = 7.8 ms on the LSE the calendar test started; 50 ms give 6. */
static int ht_rtc_wakeup_test(uint32_t *count)
{
    RTC_WPR = 0xCAu;
    RTC_WPR = 0x53u;
    RTC_CR &= ~(1u << 10);                                       /* WUTE off */
    if (ht_wait(&RTC_ISR, 1u << 2, 1u << 2, 100u) != 0) {        /* WUTWF */
        return 1;
    }
    RTC_WUTR = 15u;
    RTC_CR = (RTC_CR & ~7u) | (1u << 14) | (1u << 10);           /* RTCCLK/16, WUTIE, WUTE */
    RTC_WPR = 0xFFu;
    EXTI_IMR |= 1u << 22;
    EXTI_RTSR |= 1u << 22;
    NVIC_ISER(0) = 1u << 3;                                      /* RTC_WKUP_IRQn */
    ht_delay(50u);
    *count = ht_wakeups;
    RTC_WPR = 0xCAu;
    RTC_WPR = 0x53u;
    RTC_CR &= ~((1u << 14) | (1u << 10));
    RTC_WPR = 0xFFu;
    return 0;
}

/* ------------------------------------------------------------------ jump */
typedef void (*ht_entry_t)(void);
static uint32_t ht_ram_vectors[128] __attribute__((aligned(512)));
static uint32_t ht_app_stack[256] __attribute__((aligned(8)));

static void ht_app_in_ram(void)
{
    uint32_t msp, control, primask, ipsr;
    __asm volatile("mrs %0, msp" : "=r"(msp));
    __asm volatile("mrs %0, control" : "=r"(control));
    __asm volatile("mrs %0, primask" : "=r"(primask));
    __asm volatile("mrs %0, ipsr" : "=r"(ipsr));
    ht_init_tick(16000000u);
    irq_on();
    ht_uart_init(16000000u);
    ht_puts("HT: APP vtor=");
    ht_hex(SCB_VTOR);
    ht_puts(" msp=");
    ht_hex(msp);
    ht_puts(" control=");
    ht_hex(control);
    ht_puts(" primask=");
    ht_hex(primask);
    ht_puts(" ipsr=");
    ht_hex(ipsr);
    ht_puts(" ccr=");
    ht_hex(SCB_CCR);
    ht_puts(" mpu=");
    ht_hex(MPU_CTRL);
    ht_puts("\r\nHT: APP OK\r\n");
    ht_flush(100u);
    for (;;) {
        __asm volatile("wfi");
    }
}

static __attribute__((noreturn)) void ht_jump(uint32_t table)
{
    uint32_t sp = R32(table);
    ht_entry_t entry = (ht_entry_t)R32(table + 4u);   /* read before MSP changes */
    SCB_VTOR = table;
    dsb();
    isb();
    __asm volatile("msr msp, %0" ::"r"(sp) : "memory");
    irq_on();
    entry();
    for (;;) {
    }
}

/* ------------------------------------------------------------------ main */
/* HAL_RTC_Init + HAL_RTC_SetTime/SetDate on the LSE, then the time a little later. The
 * prescalers give 128 calendar seconds per second (PREDIV_A 0, PREDIV_S 255), so 21 ms
 * carry 23:59:58 on Wed 28 Feb 2024 into 00:00:00 on Thu 29 Feb. Returns 0 or a step. */
static int ht_rtc_test(uint32_t *tr, uint32_t *dr)
{
    RCC_APB1ENR |= 1u << 28;                                     /* PWREN */
    PWR_CR1 |= 1u << 8;                                          /* DBP */
    RCC_BDCR |= 1u;                                              /* LSEON */
    if (ht_wait(&RCC_BDCR, 2u, 2u, 5000u) != 0) {
        return 1;
    }
    RCC_BDCR = (RCC_BDCR & ~(3u << 8)) | (1u << 8) | (1u << 15); /* RTCSEL = LSE, RTCEN */
    RTC_WPR = 0xCAu;
    RTC_WPR = 0x53u;
    RTC_ISR |= 1u << 7;                                          /* INIT */
    if (ht_wait(&RTC_ISR, 1u << 6, 1u << 6, 100u) != 0) {
        return 2;
    }
    RTC_PRER = 255u;                                             /* PREDIV_S 255, PREDIV_A 0 */
    RTC_TR = 0x235958u;
    RTC_DR = (0x24u << 16) | (3u << 13) | (0x02u << 8) | 0x28u;
    RTC_ISR &= ~(1u << 7);
    RTC_ISR &= ~(1u << 5);                                       /* HAL_RTC_WaitForSynchro */
    if (ht_wait(&RTC_ISR, 1u << 5, 1u << 5, 100u) != 0) {
        return 3;
    }
    RTC_WPR = 0xFFu;
    ht_delay(20u);
    *tr = RTC_TR;                                                /* TR then DR: the shadow order */
    *dr = RTC_DR;
    return 0;
}

int main(void)
{
    /* HAL_Init: ART + prefetch, NVIC_PRIORITYGROUP_4, SysTick 1 kHz at lowest priority. */
    FLASH_ACR |= (1u << 9) | (1u << 8);
    SCB_AIRCR = 0x05FA0000u | (3u << 8);
    SCB_SHPR3 = (SCB_SHPR3 & 0x00FFFFFFu) | (0xF0u << 24);
    ht_init_tick(16000000u);
    irq_on();

    ht_clock_status = ht_system_clock_config();
    if (ht_uart_init(54000000u) != 0) {
        for (;;) {
        }
    }
    ht_puts("\r\nHT: haltest start\r\n");
    ht_result("clock", ht_clock_status == 0 && (RCC_CFGR & 0xCu) == 0x8u, "status",
              (uint32_t)ht_clock_status);
    ht_result("flash-latency", (FLASH_ACR & 0xFu) == 7u, "acr", FLASH_ACR);
    ht_result("overdrive", (PWR_CSR1 & (3u << 16)) == (3u << 16), "csr1", PWR_CSR1);
    ht_result("reset-flags", (RCC_CSR & 0xFE000000u) != 0, "csr", RCC_CSR);

    uint32_t t0 = ht_tick;
    uint32_t v0 = STK_VAL;
    ht_delay(25);
    uint32_t dt = ht_tick - t0;
    ht_result("delay", dt >= 26u && dt <= 27u && v0 < 216000u, "ticks", dt);
    ht_result("systick-load", STK_LOAD == 215999u, "load", STK_LOAD);

    uint32_t tc_before = ht_tc_count;
    ht_puts("HT: uart-irq line\r\n");
    ht_flush(50u);
    ht_result("uart-tc-irq", ht_tc_count > tc_before, "tc", ht_tc_count);

    RCC_AHB1ENR |= 1u << 12;                                     /* CRC */
    static const uint8_t check[9] = {'1', '2', '3', '4', '5', '6', '7', '8', '9'};
    uint32_t mpeg2 = ht_crc_bytes(check, 9);
    ht_result("crc-mpeg2", mpeg2 == 0x0376E6E7u, "crc", mpeg2);
    CRC_CR = (1u << 5) | (1u << 7);                               /* REV_IN byte, REV_OUT */
    uint32_t zlib = ht_crc_bytes(check, 9) ^ 0xFFFFFFFFu;
    ht_result("crc-zlib", zlib == 0xCBF43926u, "crc", zlib);
    CRC_CR = 0;
    CRC_POL = 0x04C11DB7u;
    CRC_INIT = 0xFFFFFFFFu;

    int fl = ht_flash_test();
    ht_result("flash", fl == 0, "status", (uint32_t)fl);

    uint32_t rtc_tr = 0, rtc_dr = 0;
    int rtc = ht_rtc_test(&rtc_tr, &rtc_dr);
    ht_result("rtc", rtc == 0 && rtc_tr == 0u &&
              rtc_dr == ((0x24u << 16) | (4u << 13) | (0x02u << 8) | 0x29u), "dr", rtc_dr);

    uint32_t wakeups = 0;
    int wk = ht_rtc_wakeup_test(&wakeups);
    ht_result("rtc-wakeup", wk == 0 && wakeups >= 5u && wakeups <= 7u, "n", wakeups);

    ht_caches_on();
    ht_result("caches-on", (SCB_CCR & (3u << 16)) == (3u << 16), "ccr", SCB_CCR);

    /* MPU: region 0 = SRAM 512 KB, full access, normal WBWA; PRIVDEFENA. */
    MPU_RNR = 0;
    MPU_RBAR = 0x20000000u;
    MPU_RASR = (3u << 24) | (1u << 19) | (1u << 17) | (1u << 16) | (18u << 1) | 1u;
    MPU_CTRL = 5u;
    dsb();
    isb();
    ht_result("mpu", MPU_CTRL == 5u && (MPU_TYPE >> 8 & 0xFFu) == 8u && (MPU_RASR & 1u), "rasr",
              MPU_RASR);

    SCB_SHPR3 = (SCB_SHPR3 & 0xFF00FFFFu) | (0xE0u << 16);        /* PendSV below SVC */
    __asm volatile("svc #5" ::: "memory");
    ht_result("svc-pendsv", ht_norder == 3u && ht_order[0] == 11u && ht_order[1] == 0x10Bu &&
              ht_order[2] == 14u, "n", ht_norder);

    SCB_SHCSR |= 1u << 18;                                       /* USGFAULTENA */
    __asm volatile("udf #7" ::: "memory");
    ht_result("usagefault", (ht_fault_cfsr & (1u << 16)) != 0, "cfsr", ht_fault_cfsr);

    /* User button on PC13 → EXTI13 rising → IRQ 40. */
    RCC_AHB1ENR |= 1u << 2;
    RCC_APB2ENR |= 1u << 14;
    SYSCFG_EXTICR4 = (SYSCFG_EXTICR4 & ~(0xFu << 4)) | (2u << 4);
    EXTI_RTSR |= 1u << 13;
    EXTI_IMR |= 1u << 13;
    NVIC_ISER(IRQ_EXTI15_10 / 32u) = 1u << (IRQ_EXTI15_10 % 32u);

    /* Interactive part: the host may press the button and send one byte. */
    ht_puts("HT: waiting for input\r\n");
    uint32_t start = ht_tick;
    while (ht_tick - start < 300u && (ht_rx_char < 0 || ht_button == 0u)) {
    }
    ht_puts("HT: input button=");
    ht_dec(ht_button);
    ht_puts(" rx=");
    ht_hex((uint32_t)ht_rx_char);
    ht_puts("\r\n");

    ht_puts("HT: DONE pass=");
    ht_dec(ht_pass);
    ht_puts(" fail=");
    ht_dec(ht_fail);
    ht_puts("\r\n");
    ht_flush(100u);

    /* De-initialise like the thread's goto_application, then jump. */
    irq_off();
    STK_CTRL = 0;
    STK_LOAD = 0;
    STK_VAL = 0;
    U3_CR1 = 0;
    EXTI_IMR = 0;
    int deinit = ht_rcc_deinit();
    for (uint32_t i = 0; i < 8u; i++) {
        NVIC_ICER(i) = 0xFFFFFFFFu;
        NVIC_ICPR(i) = 0xFFFFFFFFu;
    }
    SCB_SHCSR &= ~(7u << 16);
    ht_caches_off();
    MPU_CTRL = 0;
    dsb();
    isb();
    (void)deinit;

    uint32_t app_sp = R32(APP_ADDR);
    if ((app_sp & 0xFFF80003u) == 0x20000000u || app_sp == 0x20080000u) {
        ht_jump(APP_ADDR);
    }
    ht_ram_vectors[0] = (uint32_t)(uintptr_t)&ht_app_stack[256];
    ht_ram_vectors[1] = (uint32_t)(uintptr_t)ht_app_in_ram;
    for (uint32_t i = 2; i < 128u; i++) {
        ht_ram_vectors[i] = R32(0x08000000u + 4u * i);
    }
    ht_jump((uint32_t)(uintptr_t)ht_ram_vectors);
}
