/*
 * startup.c - vector table and reset handler shared by every image (bootloader, apps,
 * progs). Cortex-M7, soft-float ABI (the FPU stays off: CPACR untouched).
 *
 * Reset_Handler is naked: its first instructions copy MSP, PRIMASK, IPSR and CONTROL into
 * registers before any stack use, so an application can report what the bootloader left.
 * It does not reload SP from _estack: a wrong MSP at entry must stay visible.
 */
#include <stdint.h>

#include "board.h"
#include "stm32f767.h"

extern uint32_t _estack;
extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss;
int main(void);

volatile uint32_t g_entry_msp;
volatile uint32_t g_entry_primask;
volatile uint32_t g_entry_ipsr;
volatile uint32_t g_entry_control;

void Reset_Handler(void);
void Default_Handler(void);
__attribute__((used, noreturn)) void reset_c(uint32_t msp, uint32_t primask, uint32_t ipsr,
                                             uint32_t control);

#define WEAK_DEFAULT __attribute__((weak, alias("Default_Handler")))
void NMI_Handler(void) WEAK_DEFAULT;
void HardFault_Handler(void) WEAK_DEFAULT;
void MemManage_Handler(void) WEAK_DEFAULT;
void BusFault_Handler(void) WEAK_DEFAULT;
void UsageFault_Handler(void) WEAK_DEFAULT;
void SVC_Handler(void) WEAK_DEFAULT;
void DebugMon_Handler(void) WEAK_DEFAULT;
void PendSV_Handler(void) WEAK_DEFAULT;
void SysTick_Handler(void) WEAK_DEFAULT;
void RTC_WKUP_IRQHandler(void) WEAK_DEFAULT;
void FLASH_IRQHandler(void) WEAK_DEFAULT;
void EXTI1_IRQHandler(void) WEAK_DEFAULT;
void SPI1_IRQHandler(void) WEAK_DEFAULT;
void USART3_IRQHandler(void) WEAK_DEFAULT;
void EXTI15_10_IRQHandler(void) WEAK_DEFAULT;
void ETH_IRQHandler(void) WEAK_DEFAULT;

typedef void (*vector_t)(void);

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Woverride-init"
/* 16 system vectors + 110 IRQs = 126 words (504 bytes; VTOR needs 512-byte alignment). */
__attribute__((section(".isr_vector"), used))
const vector_t g_vectors[16 + IRQN_COUNT] = {
    [0] = (vector_t)(uintptr_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [7 ... 10] = 0,
    [11] = SVC_Handler,
    [12] = DebugMon_Handler,
    [13] = 0,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 ... 16 + IRQN_COUNT - 1] = Default_Handler,
    [16 + IRQN_RTC_WKUP] = RTC_WKUP_IRQHandler,
    [16 + IRQN_FLASH] = FLASH_IRQHandler,
    [16 + IRQN_EXTI1] = EXTI1_IRQHandler,
    [16 + IRQN_SPI1] = SPI1_IRQHandler,
    [16 + IRQN_USART3] = USART3_IRQHandler,
    [16 + IRQN_EXTI15_10] = EXTI15_10_IRQHandler,
    [16 + IRQN_ETH] = ETH_IRQHandler,
};
#pragma GCC diagnostic pop

__attribute__((naked, noreturn)) void Reset_Handler(void)
{
    __asm volatile(
        "mrs r0, msp\n"
        "mrs r1, primask\n"
        "mrs r2, ipsr\n"
        "mrs r3, control\n"
        "b reset_c\n");
}

void reset_c(uint32_t msp, uint32_t primask, uint32_t ipsr, uint32_t control)
{
    uint32_t *src = &_sidata;
    for (uint32_t *dst = &_sdata; dst < &_edata;) {
        *dst++ = *src++;
    }
    for (uint32_t *dst = &_sbss; dst < &_ebss;) {
        *dst++ = 0;
    }
    g_entry_msp = msp;
    g_entry_primask = primask;
    g_entry_ipsr = ipsr;
    g_entry_control = control;
    (void)main();
    for (;;) {
        cpu_wfi();
    }
}

void Default_Handler(void)
{
    board_unhandled_exception(cpu_get_ipsr() & 0x1FFu);
}
