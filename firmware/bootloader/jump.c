/*
 * jump.c - the jump contract the thread learned the hard way:
 *   thread mode, never from an interrupt handler; interrupts masked while quiescing;
 *   SysTick stopped and its pending bit cleared; every NVIC line (8 words) disabled and
 *   un-pended; RCC back to HSI with PLLs off; D-cache cleaned+invalidated and I-cache
 *   invalidated if they are on, then off; MPU off; VTOR = app base; DSB/ISB; then MSP and
 *   the reset handler are loaded into registers *before* MSP changes and the branch uses
 *   the register (nothing is read from the old stack after the switch); PRIMASK cleared.
 * Variant build flags reproduce the thread's mistakes (quoted where they apply).
 */
#include "jump.h"

#include "board.h"
#include "stm32f767.h"

#define WAIT_CYCLES (BOARD_CORE_HZ / 100u) /* 10 ms for each RCC flag */

static void wait_rcc(uint32_t mask, uint32_t want, volatile uint32_t *reg)
{
    uint32_t start = DWT->CYCCNT;
    while ((*reg & mask) != want && (uint32_t)(DWT->CYCCNT - start) < WAIT_CYCLES) {
    }
}

static void rcc_to_reset_clock(void)
{
    RCC->CR |= RCC_CR_HSION;
    wait_rcc(RCC_CR_HSIRDY, RCC_CR_HSIRDY, &RCC->CR);
    RCC->CFGR = 0; /* SYSCLK = HSI, no prescalers */
    wait_rcc(RCC_CFGR_SWS_MASK, 0, &RCC->CFGR);
    RCC->CR &= ~(RCC_CR_HSEON | RCC_CR_HSEBYP | RCC_CR_CSSON | RCC_CR_PLLON |
                 RCC_CR_PLLI2SON | RCC_CR_PLLSAION);
    wait_rcc(RCC_CR_PLLRDY | RCC_CR_HSERDY, 0, &RCC->CR);
    RCC->PLLCFGR = RCC_PLLCFGR_RESET;
    RCC->CIR = 0;
}

static void caches_off(void)
{
    cpu_dsb();
    cpu_isb();
    if (SCB->CCR & SCB_CCR_DC) {
        SCB->CSSELR = 0; /* level 1 data cache */
        cpu_dsb();
        uint32_t ccsidr = SCB->CCSIDR;
        for (uint32_t set = 0; set <= CCSIDR_SETS(ccsidr); set++) {
            for (uint32_t way = 0; way <= CCSIDR_WAYS(ccsidr); way++) {
                SCB_DCCISW = (set << 5) | (way << 30);
            }
        }
        SCB->CCR &= ~SCB_CCR_DC;
        cpu_dsb();
    }
    if (SCB->CCR & SCB_CCR_IC) {
        SCB->CCR &= ~SCB_CCR_IC;
    }
    SCB_ICIALLU = 0;
    cpu_dsb();
    cpu_isb();
}

#ifdef BL_VARIANT_IWDG_LEFT_ON
static void iwdg_start_1s(void)
{
    /* Thread (MM..1): "Is in your code used IWDG or WWDG ?" - a watchdog the bootloader
       started keeps running in the app, which never feeds it: the board resets ~1 s
       after the jump, over and over. */
    IWDG->KR = IWDG_KEY_START;
    IWDG->KR = IWDG_KEY_ACCESS;
    IWDG->PR = 3;     /* /32 -> 1 kHz */
    IWDG->RLR = 999;  /* 1 s */
    IWDG->KR = IWDG_KEY_RELOAD;
}
#endif

void jump_to_app(uint32_t base)
{
    cpu_irq_disable();

#ifdef BL_VARIANT_IRQ_LEFT_ENABLED
    /* Thread: "Could be getting an unexpected interrupt when the application
       re-initializes them." - SysTick keeps running with its interrupt on, and the WINC's
       EXTI1 line is left enabled and pending: the app takes them on its first instruction
       with interrupts enabled. */
    SYSTICK->LOAD = BOARD_CORE_HZ / 1000u - 1u;
    SYSTICK->VAL = 0;
    SYSTICK->CTRL = SYSTICK_CTRL_CLKSOURCE | SYSTICK_CTRL_TICKINT | SYSTICK_CTRL_ENABLE;
    nvic_enable_irq(IRQN_EXTI1);
    nvic_set_pending(IRQN_EXTI1);
#else
    SYSTICK->CTRL = 0;
    SYSTICK->LOAD = 0;
    SYSTICK->VAL = 0;
    SCB->ICSR = SCB_ICSR_PENDSTCLR | SCB_ICSR_PENDSVCLR;
    for (uint32_t i = 0; i < NVIC_WORDS; i++) {
        NVIC->ICER[i] = 0xFFFFFFFFu;
        NVIC->ICPR[i] = 0xFFFFFFFFu;
    }
#endif

#ifdef BL_VARIANT_PLL_LEFT_ON
    /* A bootloader that runs on the PLL (44 MHz here) and jumps without HAL_RCC_DeInit: the
       app starts on the PLL. Its SystemClock_Config returns HAL_ERROR (HAL_RCC_OscConfig
       will not change a PLL that is the system clock), and code that assumes the reset
       clock, as the reference app's board layer does, computes its UART's BRR for 16 MHz:
       the host reads garbage at 2.75 times the baud rate. */
    rcc_to_reset_clock();   /* (where it was, then the PLL again) */
    (void)board_clock_set(44000000u);
#else
    rcc_to_reset_clock();
#endif
    caches_off();

#ifdef BL_VARIANT_MPU_LEFT_ON
    /* Thread (Shirley.Ye): "If your bootloader configures the MPU, make sure to disable or
       reset it before jumping to the application." - this build leaves it on. */
#else
    MPU->CTRL = 0;
#endif

#ifdef BL_VARIANT_IWDG_LEFT_ON
    iwdg_start_1s();
#endif

#ifdef BL_VARIANT_NO_VTOR
    /* Thread, first sequence: VTOR is only written in the half of the code that never
       runs; here it is simply never set, so the app's interrupts use our table. */
#else
    SCB->VTOR = base;
#endif
    cpu_dsb();
    cpu_isb();

#ifdef BL_VARIANT_ENTRY_FROM_STACK
    /* Thread (Piranha): "If the reset handler address is stored on the stack and then the
       MSP is reloaded, your code will not jump to the app entry point."
       "void (*app_reset_handler)(void) = ...; __set_MSP(*(volatile uint32_t*) 0x08100000);
       ... app_reset_handler();" - the local lives on the stack and is read back through
       the new SP. */
    volatile uint32_t app_entry = *(volatile uint32_t *)(uintptr_t)(base + 4u);
    uint32_t app_sp = *(volatile uint32_t *)(uintptr_t)base;
    __asm volatile("msr msp, %0" : : "r"(app_sp) : "memory");
    cpu_irq_enable();
    ((void (*)(void))(uintptr_t)app_entry)();
    for (;;) {
    }
#else
    __asm volatile(
        "ldr r0, [%0]      \n" /* initial MSP       */
        "ldr r1, [%0, #4]  \n" /* reset handler     */
        "movs r2, #0       \n"
        "msr control, r2   \n" /* privileged, MSP   */
        "isb               \n"
        "msr msp, r0       \n"
#ifndef BL_VARIANT_PRIMASK_LEFT_SET
        "cpsie i           \n" /* PRIMASK = 0       */
#endif
        "bx r1             \n"
        :
        : "r"(base)
        : "r0", "r1", "r2", "memory");
    __builtin_unreachable();
#endif
}
