/*
 * lowpower - Stop mode the way ST's HAL enters it (HAL_PWR_EnterSTOPMode: PWR_CR1.LPDS,
 * SCB_SCR.SLEEPDEEP, WFI), woken by the RTC's wake-up timer (EXTI line 22, RTC_WKUP_IRQn),
 * written here from RM0410 (no ST code).
 *
 * The core runs at 40 MHz from the PLL with SysTick at 1 kHz; the RTC on the LSE has its
 * wake-up timer at 100 ms (RTCCLK/16, WUTR 204). Two rounds:
 *   A  no debugger bit: Stop. SysTick and DWT.CYCCNT stand still, only the RTC wakes the
 *      system, which then runs on the HSI (16 MHz) with the PLL off, as after a reset.
 *   B  DBGMCU_CR.DBG_STOP set, as pyOCD does at every connect: the core stays clocked on
 *      the HSI through Stop and SysTick's next interrupt wakes it.
 *   C  the RTC's wake-up off, the user button (PC13, EXTI13 rising, IRQ 40) on: it prints
 *      "LP: C waiting for the button" and stays in Stop until the host presses it.
 * After each round it goes back to 40 MHz (SystemClock_Config again) and prints
 * "LP: <A|B|C> sws=<n> pll=<n> ticks=<n> cycles=<n> rtc=<n> button=<n> PASS|FAIL", then
 * "LP: DONE".
 *   D  the IWDG started (about 250 ms) and Stop with no wake-up source: the IWDG (LSI)
 *      counts on in Stop and resets the board, which then prints "LP: reset by the IWDG"
 *      and stays in a loop.
 */
#include <stdint.h>

#include "board.h"
#include "stm32f767.h"

#define PWR_CR1      REG32(0x40007000u)
#define RTC_CR       REG32(0x40002808u)
#define RTC_ISR      REG32(0x4000280Cu)
#define RTC_WUTR     REG32(0x40002814u)
#define RTC_WPR      REG32(0x40002824u)
#define EXTI_IMR     REG32(0x40013C00u)
#define EXTI_RTSR    REG32(0x40013C08u)
#define EXTI_PR      REG32(0x40013C14u)
#define DBGMCU_CR    REG32(0xE0042004u)
#define SCR_SLEEPDEEP (1u << 2)
#define PWR_LPDS     (1u << 0)
#define PWR_PDDS     (1u << 1)
#define PWR_DBP      (1u << 8)
#define RTC_WUTF     (1u << 10)
#define RTC_WUTWF    (1u << 2)
#define RTC_INIT     (1u << 7)
#define DBG_STOP     (1u << 1)
#define FAST_HZ      40000000u

#define SYSCFG_EXTICR4 REG32(0x40013814u)
#define EXTI_IRQN_15_10 40u

static volatile uint32_t ticks, wakeups, presses;

void EXTI15_10_IRQHandler(void);
void EXTI15_10_IRQHandler(void)
{
    if (EXTI_PR & (1u << 13)) {
        EXTI_PR = 1u << 13;
        presses++;
    }
}

void SysTick_Handler(void);
void SysTick_Handler(void) { ticks++; }

void RTC_WKUP_IRQHandler(void);
void RTC_WKUP_IRQHandler(void)
{
    if (RTC_ISR & RTC_WUTF) {
        RTC_ISR = ~(RTC_WUTF | RTC_INIT) & 0x0001FFFFu;
        wakeups++;
    }
    EXTI_PR = 1u << 22;
}

static int wait_set(volatile uint32_t *reg, uint32_t bit, uint32_t ms)
{
    uint32_t t0 = board_millis();
    while (!(*reg & bit))
        if (board_millis() - t0 > ms)
            return -1;
    return 0;
}

static int rtc_wakeup_100ms(void)
{
    RCC->APB1ENR |= RCC_APB1ENR_PWREN;
    PWR_CR1 |= PWR_DBP;
    RCC->BDCR |= 1u; /* LSEON */
    if (wait_set(&RCC->BDCR, 2u, 5000u) != 0)
        return -1;
    RCC->BDCR = (RCC->BDCR & ~(3u << 8)) | (1u << 8) | (1u << 15); /* RTCSEL LSE, RTCEN */
    RTC_WPR = 0xCAu;
    RTC_WPR = 0x53u;
    RTC_CR &= ~(1u << 10);
    if (wait_set(&RTC_ISR, RTC_WUTWF, 100u) != 0)
        return -2;
    RTC_WUTR = 204u;                           /* 205 x 16 / 32768 Hz = 100 ms */
    RTC_CR = (RTC_CR & ~7u) | (1u << 14) | (1u << 10); /* RTCCLK/16, WUTIE, WUTE */
    RTC_WPR = 0xFFu;
    EXTI_IMR |= 1u << 22;
    EXTI_RTSR |= 1u << 22;
    nvic_enable_irq(IRQN_RTC_WKUP);
    return 0;
}

static void round_(char name, int dbg, int button)
{
    if (dbg)
        DBGMCU_CR |= DBG_STOP;
    else
        DBGMCU_CR &= ~DBG_STOP;
    console_flush(100);
    uint32_t t0 = ticks, w0 = wakeups, p0 = presses, c0 = DWT->CYCCNT;
    PWR_CR1 = (PWR_CR1 & ~PWR_PDDS) | PWR_LPDS;
    SCB->SCR |= SCR_SLEEPDEEP;
    __asm volatile("dsb\n wfi\n isb" ::: "memory");
    SCB->SCR &= ~SCR_SLEEPDEEP;
    uint32_t cycles = DWT->CYCCNT - c0, dt = ticks - t0, dw = wakeups - w0, dp = presses - p0;
    uint32_t sws = (RCC->CFGR >> 2) & 3u, pll = (RCC->CR >> 24) & 1u;
    /* SystemClock_Config again: the board layer thinks it is still at 40 MHz */
    board_clock_set(BOARD_CORE_HZ);
    SYSTICK->LOAD = BOARD_CORE_HZ / 1000u - 1u;
    board_clock_set(FAST_HZ);
    SYSTICK->LOAD = FAST_HZ / 1000u - 1u;
    /* woken by the one source expected, SysTick and CYCCNT still (but with DBG_STOP) */
    int woke = dbg ? (dw == 0 && dp == 0 && dt >= 1u)
                   : (dw == (button ? 0u : 1u) && dp == (button ? 1u : 0u) && dt <= 1u &&
                      cycles < FAST_HZ / 100u);
    int pass = sws == 0 && pll == 0 && woke;
    board_printf("LP: %c sws=%lu pll=%lu ticks=%lu cycles=%lu rtc=%lu button=%lu %s\n", name,
                 (unsigned long)sws, (unsigned long)pll, (unsigned long)dt, (unsigned long)cycles,
                 (unsigned long)dw, (unsigned long)dp, pass ? "PASS" : "FAIL");
}

static void rtc_wakeup_off(void)
{
    RTC_WPR = 0xCAu;
    RTC_WPR = 0x53u;
    RTC_CR &= ~((1u << 14) | (1u << 10));
    RTC_WPR = 0xFFu;
}

static void button_on(void)
{
    RCC->AHB1ENR |= 1u << 2;  /* GPIOC */
    RCC->APB2ENR |= 1u << 14; /* SYSCFG */
    SYSCFG_EXTICR4 = (SYSCFG_EXTICR4 & ~(0xFu << 4)) | (2u << 4); /* EXTI13 <- port C */
    EXTI_RTSR |= 1u << 13;
    EXTI_IMR |= 1u << 13;
    nvic_enable_irq(EXTI_IRQN_15_10);
}

static void iwdg_stop_round(void)
{
    board_printf("LP: D stop with the IWDG running\n");
    console_flush(100);
    IWDG->KR = IWDG_KEY_START;
    IWDG->KR = IWDG_KEY_ACCESS;
    IWDG->PR = 1u;    /* LSI / 8: 4 kHz */
    IWDG->RLR = 999u; /* 250 ms */
    for (uint32_t t0 = board_millis(); IWDG->SR && board_millis() - t0 < 100u;) {
    }
    IWDG->KR = 0xAAAAu;
    DBGMCU_CR &= ~DBG_STOP;
    PWR_CR1 = (PWR_CR1 & ~PWR_PDDS) | PWR_LPDS;
    SCB->SCR |= SCR_SLEEPDEEP;
    __asm volatile("dsb\n wfi\n isb" ::: "memory");
    board_printf("LP: D FAIL: woke up without a reset\n");
}

int main(void)
{
    board_init();
    if (RCC->CSR & RCC_CSR_IWDGRSTF) {
        board_printf("LP: reset by the IWDG\n");
        for (;;) {
        }
    }
    if (board_clock_set(FAST_HZ) != 0 || rtc_wakeup_100ms() != 0) {
        board_printf("LP: setup FAIL\n");
        for (;;) {
        }
    }
    SYSTICK->LOAD = FAST_HZ / 1000u - 1u;
    SYSTICK->VAL = 0;
    SYSTICK->CTRL = SYSTICK_CTRL_ENABLE | SYSTICK_CTRL_TICKINT | SYSTICK_CTRL_CLKSOURCE;
    cpu_irq_enable();
    board_printf("LP: start core=%lu\n", (unsigned long)board_core_hz());
    round_('A', 0, 0);
    round_('B', 1, 0);
    rtc_wakeup_off();
    button_on();
    board_printf("LP: C waiting for the button\n");
    round_('C', 0, 1);
    board_printf("LP: DONE\n");
    iwdg_stop_round();
    for (;;)
        cpu_wfi();
}
