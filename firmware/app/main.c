/*
 * main.c - the test application the bootloader installs.
 *
 * Console output (USART3, or the CONSOLE_UART it was built with), in this order:
 *   APP v<version> build <id>
 *   VTOR OK | VTOR BAD 0x<vtor>          (VTOR must equal this image's vector table)
 *   STACK OK | STACK BAD 0x<msp>         (MSP at the reset handler must equal _estack)
 *   MODE OK | MODE BAD ipsr=<n>          (entered in thread mode, not from a handler)
 *   PRIMASK OK | PRIMASK BAD             (interrupts were left enabled for us)
 *   MPU OK | MPU BAD 0x<ctrl>            (the bootloader left the MPU off)
 *   APP READY
 * Then LD1 (PB0) blinks every 250 ms, SysTick counts milliseconds, and the UART answers
 * `version` -> the banner line again, `ticks` -> "TICKS <n>", anything else -> "?".
 */
#include "app.h"
#include "board.h"
#include "stm32f767.h"

extern uint32_t _estack;
extern const void *const g_vectors[];

static volatile uint32_t s_ticks;

void SysTick_Handler(void)
{
    s_ticks++;
}

static void banner(void)
{
    board_printf("APP v%lu build %s\n", (unsigned long)g_app_header.app_version,
                 g_app_header.build_id);
}

static void self_check(void)
{
    uint32_t vtor = SCB->VTOR;
    if (vtor == (uint32_t)(uintptr_t)g_vectors) {
        console_puts("VTOR OK\n");
    } else {
        board_printf("VTOR BAD 0x%08lx\n", (unsigned long)vtor);
    }
    if (g_entry_msp == (uint32_t)(uintptr_t)&_estack) {
        console_puts("STACK OK\n");
    } else {
        board_printf("STACK BAD 0x%08lx\n", (unsigned long)g_entry_msp);
    }
    if ((g_entry_ipsr & 0x1FFu) == 0) {
        console_puts("MODE OK\n");
    } else {
        board_printf("MODE BAD ipsr=%lu\n", (unsigned long)(g_entry_ipsr & 0x1FFu));
    }
    if (g_entry_primask == 0) {
        console_puts("PRIMASK OK\n");
    } else {
        console_puts("PRIMASK BAD\n");
    }
    if ((MPU->CTRL & MPU_CTRL_ENABLE) == 0) {
        console_puts("MPU OK\n");
    } else {
        board_printf("MPU BAD 0x%08lx\n", (unsigned long)MPU->CTRL);
    }
}

static void command(const char *line)
{
    if (strncmp(line, "version", 8) == 0) {
        banner();
    } else if (strncmp(line, "ticks", 6) == 0) {
        board_printf("TICKS %lu\n", (unsigned long)s_ticks);
    } else {
        console_puts("?\n");
    }
}

int main(void)
{
    board_init();
    banner();
    self_check();

    SYSTICK->LOAD = BOARD_CORE_HZ / 1000u - 1u;
    SYSTICK->VAL = 0;
    SYSTICK->CTRL = SYSTICK_CTRL_CLKSOURCE | SYSTICK_CTRL_TICKINT | SYSTICK_CTRL_ENABLE;
    console_puts("APP READY\n");

    char line[32];
    uint32_t len = 0;
    uint32_t last_blink = board_millis();
    for (;;) {
        int c = console_getc(5);
        if (c == '\n' || c == '\r') {
            if (len > 0) {
                line[len] = '\0';
                command(line);
                len = 0;
            }
        } else if (c >= 0) {
            if (len < sizeof(line) - 1u) {
                line[len++] = (char)c;
            }
        }
        if ((uint32_t)(board_millis() - last_blink) >= 250u) {
            last_blink += 250u;
            led_toggle(1);
        }
    }
}
