/*
 * main.c - the thread-style bootloader (see tb.h): "I prefer jump to app on first main
 * lines based on some marker, then after update simply reset and no jump."
 *
 * At every boot: read the update marker (RTC_BKP0R == TB_UPDATE_MAGIC, cleared at once so
 * it asks once) and the user button B1 (PC13, held = pressed). Nothing asked and a valid
 * application (boot record magic, size, initial SP in RAM, reset handler inside it, CRC)
 * -> jump to it, at once. Otherwise update over Ethernet until one is installed, then
 * reset. An invalid application is never entered; without one the bootloader asks for an
 * update on its own, so a power cut in the middle of an update never bricks the board.
 */
#include "board.h"
#include "fwlib.h"
#include "stm32f767.h"
#include "tb.h"
#include "transport.h"

#ifndef TB_VARIANT_NAME
#define TB_VARIANT_NAME "correct"
#endif

/* RTC backup register 0 and the backup-domain write enable (RM0410 4.4.1, 32.6.20) */
#define PWR_CR1        REG32(0x40007000u)
#define PWR_CR1_DBP    (1u << 8)
#define RTC_BKP0R      REG32(0x40002850u)
#define RCC_APB1_RTCAPBEN (1u << 10)
#define RAM_LO 0x20000000u
#define RAM_HI 0x20080000u

static tb_settings_t s_settings;

static void load_settings(void)
{
    const tb_settings_t *f = (const tb_settings_t *)(uintptr_t)TB_SETTINGS_ADDR;
    if (f->magic == TB_SETTINGS_MAGIC && f->crc == fw_crc32(0, f, sizeof(*f) - 4u) && f->server_port >= 1u &&
        f->server_port <= 65535u) {
        s_settings = *f;
        s_settings.serial[sizeof(s_settings.serial) - 1] = '\0';
        board_printf("TB: settings from flash: device %s\n", s_settings.serial);
        return;
    }
    memset(&s_settings, 0, sizeof(s_settings));
    s_settings.server_ip = TB_DEFAULT_SERVER_IP;
    s_settings.server_port = TB_DEFAULT_SERVER_PORT;
    board_printf("TB: no settings in sector 4, using the defaults\n");
}

/* The marker in RTC_BKP0R (cleared once read) or B1 held: which one asked, or NULL. */
static const char *update_asked(void)
{
    RCC->APB1ENR |= RCC_APB1ENR_PWREN | RCC_APB1_RTCAPBEN;
    (void)RCC->APB1ENR;
    uint32_t marker = RTC_BKP0R;
    if (marker == TB_UPDATE_MAGIC) {
        PWR_CR1 |= PWR_CR1_DBP;
        RTC_BKP0R = 0;
        PWR_CR1 &= ~PWR_CR1_DBP;
    }
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOCEN;
    (void)RCC->AHB1ENR;
    GPIOC->MODER &= ~(3u << 26); /* PC13 input (its reset state); B1 has a pull-down */
    uint32_t held = 0;
    for (uint32_t i = 0; i < 5; i++) { /* debounce: held on every sample */
        held += (GPIOC->IDR >> 13) & 1u;
        delay_ms(2);
    }
    RCC->AHB1ENR &= ~RCC_AHB1ENR_GPIOCEN;
    RCC->APB1ENR &= ~RCC_APB1ENR_PWREN;
    if (marker == TB_UPDATE_MAGIC) {
        return "marker in RTC_BKP0R";
    }
    return held == 5 ? "button B1 held" : NULL;
}

const char *tb_app_check(char *why, uint32_t why_len)
{
    const tb_record_t *r = (const tb_record_t *)(uintptr_t)TB_RECORD_ADDR;
    if (r->magic != TB_RECORD_MAGIC || r->size_inv != ~r->size) {
        return "no boot record in sector 5";
    }
    if (r->size < 8u || r->size > TB_APP_SIZE) {
        fw_snprintf(why, why_len, "recorded size %lu out of range", (unsigned long)r->size);
        return why;
    }
    uint32_t sp = REG32(TB_APP_ADDR);
    uint32_t pc = REG32(TB_APP_ADDR + 4u);
    if (sp < RAM_LO || sp > RAM_HI || (sp & 3u)) {
        fw_snprintf(why, why_len, "initial SP 0x%08lx not in RAM", (unsigned long)sp);
        return why;
    }
    if (!(pc & 1u) || (pc & ~1u) < TB_APP_ADDR || (pc & ~1u) >= TB_APP_ADDR + r->size) {
        fw_snprintf(why, why_len, "reset handler 0x%08lx not in the application", (unsigned long)pc);
        return why;
    }
    uint32_t crc = tb_flash_crc(TB_APP_ADDR, r->size);
    if (crc != r->crc) {
        fw_snprintf(why, why_len, "CRC %08lx, recorded %08lx", (unsigned long)crc, (unsigned long)r->crc);
        return why;
    }
    return NULL;
}

/* The thread's goto_application, in the order the thread arrived at and with what it
   lacked: thread mode only, peripherals (UART, network) off first, SysTick and every NVIC
   line off and un-pended, clocks back to HSI, MPU off, VTOR, then MSP and the entry taken
   into registers before MSP changes (nothing read from the old stack after), interrupts
   enabled again, branch. */
static __attribute__((noreturn)) void goto_application(void)
{
    uint32_t app = TB_APP_ADDR;
    board_printf("TB: Jumping to app: SP=0x%08lx, PC=0x%08lx\n", (unsigned long)REG32(app),
                 (unsigned long)REG32(app + 4u));
    board_deinit();
    cpu_irq_disable();
    SYSTICK->CTRL = 0;
    SYSTICK->LOAD = 0;
    SYSTICK->VAL = 0;
    SCB->ICSR = SCB_ICSR_PENDSTCLR | SCB_ICSR_PENDSVCLR;
    for (uint32_t i = 0; i < 8u; i++) {
        NVIC->ICER[i] = 0xFFFFFFFFu;
        NVIC->ICPR[i] = 0xFFFFFFFFu;
    }
    /* HAL_RCC_DeInit: HSI on and selected, PLLs and HSE off */
    RCC->CR |= RCC_CR_HSION;
    for (uint32_t t = 0; t < 100000u && !(RCC->CR & RCC_CR_HSIRDY); t++) {
    }
    RCC->CFGR = 0;
    for (uint32_t t = 0; t < 100000u && (RCC->CFGR & RCC_CFGR_SWS_MASK); t++) {
    }
    RCC->CR &= ~(RCC_CR_PLLON | RCC_CR_HSEON | RCC_CR_CSSON | RCC_CR_PLLI2SON | RCC_CR_PLLSAION);
    RCC->PLLCFGR = RCC_PLLCFGR_RESET;
    RCC->CIR = 0;
    MPU->CTRL = 0;
    SCB->VTOR = app;
    cpu_dsb();
    cpu_isb();
    __asm volatile(
        "ldr r0, [%0]      \n"
        "ldr r1, [%0, #4]  \n"
        "msr msp, r0       \n"
        "cpsie i           \n"
        "bx r1             \n"
        :
        : "r"(app)
        : "r0", "r1", "memory");
    __builtin_unreachable();
}

int main(void)
{
    board_init();
    uint32_t csr = RCC->CSR;
    RCC->CSR |= (1u << 24); /* RMVF */
    board_printf("\nTB: thread-style bootloader (%s), reset flags 0x%08lx\n", TB_VARIANT_NAME,
                 (unsigned long)csr);
    load_settings();
    const char *asked = update_asked();
    char why[64];
    const char *bad = tb_app_check(why, sizeof(why));
    if (asked == NULL && bad == NULL) {
        goto_application();
    }
    if (asked != NULL) {
        board_printf("TB: update requested (%s)\n", asked);
    } else {
        board_printf("TB: no valid application: %s\n", bad);
    }
    for (uint32_t round = 1;; round++) {
        if (tb_ota_update(s_settings.server_ip, (uint16_t)s_settings.server_port) == 0) {
            board_printf("TB: update installed, rebooting\n");
            console_flush(20);
            nvic_system_reset();
        }
        board_printf("TB: update failed, retrying in 2 s (round %lu)\n", (unsigned long)round);
        delay_ms(2000);
    }
}
