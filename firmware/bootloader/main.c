/*
 * main.c - the ota-rig reference bootloader (STM32F767, runs from the HSI reset clock).
 *
 * Boot decision: config record UPDATE_REQUESTED, or no valid application -> update over
 * the configured transport (connect retried with back-off; the whole update retried
 * every few seconds until it succeeds); otherwise validate the app (initial SP in RAM,
 * reset handler odd and inside the installed image, CRC over app_size == app_crc) and
 * jump to it from thread mode. An invalid app is never entered: the reason goes to
 * the console (USART3, or the CONSOLE_UART it was built with) and the bootloader keeps
 * asking for an update. Every step is logged ("BL:", "OTA:" lines).
 */
#include "board.h"
#include "config.h"
#include "flash_f7.h"
#include "jump.h"
#include "ota.h"
#include "stm32f767.h"
#include "transport.h"

#ifndef BL_VARIANT_NAME
#define BL_VARIANT_NAME "correct"
#endif

#define CONNECT_ATTEMPTS 5u
#define RETRY_PAUSE_MS   3000u

extern uint8_t __heap_start;
extern uint8_t __heap_end;

static ota_session_t s_session;
static ota_config_t s_cfg;

static void print_config(const char *what, const ota_config_t *c)
{
    board_printf("BL: config %s: flags=0x%lx transport=%s server=%lu.%lu.%lu.%lu:%lu "
                 "app_size=%lu app_crc=%08lx app_version=%lu\n",
                 what, (unsigned long)c->flags, c->transport == CFG_TRANSPORT_WIFI ? "wifi" : "eth",
                 (unsigned long)(c->server_ip >> 24), (unsigned long)((c->server_ip >> 16) & 0xFFu),
                 (unsigned long)((c->server_ip >> 8) & 0xFFu), (unsigned long)(c->server_ip & 0xFFu),
                 (unsigned long)c->server_port, (unsigned long)c->app_size,
                 (unsigned long)c->app_crc, (unsigned long)c->app_version);
}

static void load_config(ota_config_t *cfg)
{
    uint32_t next_free = 0;
    int slot = ota_config_find(&g_flash_f7, &g_layout_f7, cfg, &next_free);
    if (slot >= 0) {
        board_printf("BL: config record in force: slot %d of the log at 0x%08lx\n", slot,
                     (unsigned long)g_layout_f7.config_addr);
        print_config("valid", cfg);
        return;
    }
    board_printf("BL: config: no valid record at 0x%08lx, using defaults\n",
                 (unsigned long)g_layout_f7.config_addr);
    cfg_defaults(cfg);
}

/* Returns NULL if the installed app may be entered, else why not. */
static const char *check_app(const ota_config_t *cfg, char *why, uint32_t why_len)
{
    const ota_layout_t *l = &g_layout_f7;
    if (cfg->app_size == 0) {
        return "no application recorded in the config";
    }
    if (cfg->app_size < 8u || cfg->app_size > l->scratch_size) {
        fw_snprintf(why, why_len, "recorded app_size %lu out of range", (unsigned long)cfg->app_size);
        return why;
    }
    uint32_t sp = REG32(l->app_addr);
    uint32_t pc = REG32(l->app_addr + 4u);
    if (sp < RAM_BASE_ADDR || sp > RAM_END_ADDR || (sp & 3u)) {
        fw_snprintf(why, why_len, "initial SP 0x%08lx is not in RAM", (unsigned long)sp);
        return why;
    }
    if ((pc & 1u) == 0 || (pc & ~1u) < l->app_addr || (pc & ~1u) >= l->app_addr + cfg->app_size) {
        fw_snprintf(why, why_len, "reset handler 0x%08lx is not a Thumb address in the app",
                    (unsigned long)pc);
        return why;
    }
#ifdef BL_VARIANT_RECORD_BEFORE_LAST_WORD
    return NULL; /* the record was written after the CRC was checked at install: trusted */
#endif
    uint32_t crc = g_flash_f7.crc32(ota_app_crc_area(l), cfg->app_size);
    if (crc != cfg->app_crc) {
        fw_snprintf(why, why_len, "CRC mismatch: computed %08lx, recorded %08lx",
                    (unsigned long)crc, (unsigned long)cfg->app_crc);
        return why;
    }
    return NULL;
}

#ifdef BL_VARIANT_JUMP_FROM_IRQ
/* Thread (TDK): "Are you jumping from within an interrupt?" - this build does: the jump
   runs inside the SysTick handler, so the app starts in handler mode (IPSR = 15) with
   every interrupt of equal or lower priority blocked. */
static volatile uint32_t s_jump_base;

void SysTick_Handler(void)
{
    if (s_jump_base != 0) {
        jump_to_app(s_jump_base);
    }
}
#endif

static __attribute__((noreturn)) void boot_app(const ota_config_t *cfg, const transport_t *tr)
{
    uint32_t base = g_layout_f7.app_addr;
    board_printf("BL: jumping to app v%lu at 0x%08lx (SP=0x%08lx PC=0x%08lx)\n",
                 (unsigned long)cfg->app_version, (unsigned long)base,
                 (unsigned long)REG32(base), (unsigned long)REG32(base + 4u));
    if (tr != NULL) {
        tr->deinit();
    }
    crc_unit_deinit();
    board_deinit();
#ifdef BL_VARIANT_JUMP_FROM_IRQ
    s_jump_base = base;
    SYSTICK->LOAD = BOARD_CORE_HZ / 1000u - 1u;
    SYSTICK->VAL = 0;
    SYSTICK->CTRL = SYSTICK_CTRL_CLKSOURCE | SYSTICK_CTRL_TICKINT | SYSTICK_CTRL_ENABLE;
    cpu_irq_enable();
    for (;;) {
        cpu_wfi();
    }
#else
    jump_to_app(base);
#endif
}

static ota_result_t try_update(const transport_t *tr, ota_config_t *cfg)
{
    static const ota_env_t env_template = {0};
    ota_env_t env = env_template;
    env.tr = tr;
    env.flash = &g_flash_f7;
    env.layout = &g_layout_f7;
    env.millis = board_millis;
    env.log = board_printf;
    env.heap = &__heap_start;
    env.heap_size = (uint32_t)(&__heap_end - &__heap_start);

    uint32_t backoff = 250;
    for (uint32_t attempt = 1; attempt <= CONNECT_ATTEMPTS; attempt++) {
        board_printf("BL: OTA over %s to %lu.%lu.%lu.%lu:%lu (attempt %lu)\n", tr->name,
                     (unsigned long)(cfg->server_ip >> 24),
                     (unsigned long)((cfg->server_ip >> 16) & 0xFFu),
                     (unsigned long)((cfg->server_ip >> 8) & 0xFFu),
                     (unsigned long)(cfg->server_ip & 0xFFu), (unsigned long)cfg->server_port,
                     (unsigned long)attempt);
        ota_result_t r = ota_update(&env, cfg, &s_session);
        if (r != OTA_ERR_CONNECT) {
            return r;
        }
        delay_ms(backoff);
        backoff *= 2u;
    }
    return OTA_ERR_CONNECT;
}

#ifdef BL_VARIANT_MPU_LEFT_ON
static void mpu_setup(void)
{
    /* A bootloader that protects its RAM: region 0 = all 512 KiB of RAM, read/write,
       execute-never, Normal write-back write-allocate memory as in the default map (TEX=1
       C=1 B=1: without them the region is Strongly-ordered, and the first unaligned copy
       out of a network buffer is a UsageFault), default map for the rest. Never turned off
       before the jump. */
    MPU->RNR = 0;
    MPU->RBAR = RAM_BASE_ADDR;
    MPU->RASR = MPU_RASR_XN | MPU_RASR_AP_FULL | MPU_RASR_TEX(1) | MPU_RASR_C | MPU_RASR_B |
                MPU_RASR_SIZE(19) | MPU_RASR_ENABLE;
    MPU->CTRL = MPU_CTRL_PRIVDEFENA | MPU_CTRL_ENABLE;
    cpu_dsb();
    cpu_isb();
}
#endif

int main(void)
{
    board_init();
    uint32_t csr = RCC->CSR;
    RCC->CSR |= RCC_CSR_RMVF;
    board_printf("\nBL: ota-rig bootloader (%s), reset flags 0x%08lx\n", BL_VARIANT_NAME,
                 (unsigned long)csr);
#ifdef BL_VARIANT_MPU_LEFT_ON
    mpu_setup();
#endif
#ifdef BL_VARIANT_UNALIGN_TRAP
    /* "Trap unaligned accesses" (a coding-standard review, a safety startup file), in code
       built with GCC's default for the Cortex-M7, -munaligned-access: the project's memcpy
       reads words at whatever offset the network stack hands the data over, one LDR each.
       UsageFault UNALIGNED, escalated to HardFault, at the first such copy. The fix: build
       with -mno-unaligned-access (and a memcpy that does not read unaligned words), or
       leave CCR.UNALIGN_TRP clear. */
    SCB->CCR |= SCB_CCR_UNALIGN_TRP;
    cpu_dsb();
    cpu_isb();
#endif
#ifdef BL_VARIANT_ACR_OVERWRITTEN
    /* Its own clock set-up: the PLL to 44 MHz (board_clock_set sets the one wait state that
       needs), then "ART accelerator and prefetch on, as HAL_Init does", by assignment instead
       of |=: FLASH_ACR.LATENCY is 0 again at 44 MHz. Flash needs a wait state per 30 MHz
       (RM0410 §3.3.2): the core now reads flash faster than it can answer, and on the board
       fetches wrong instructions (a crash at once, or now and then); the twin faults the
       next fetch. The fix: FLASH->ACR |= ARTEN | PRFTEN (or HAL's __HAL_FLASH_ART_ENABLE). */
    (void)board_clock_set(44000000u);
    FLASH_IF->ACR = FLASH_ACR_ARTEN | FLASH_ACR_PRFTEN;
#endif
#ifdef BL_VARIANT_WRITES_OWN_SECTOR
    boot_count_bump();
#endif
    if (!crc_unit_init()) {
        board_printf("BL: CRC unit self-test failed, using the software CRC-32\n");
    }
    load_config(&s_cfg);

    char why[96];
    for (uint32_t round = 1;; round++) {
        if (!(s_cfg.flags & CFG_FLAG_UPDATE_REQUESTED)) {
            /* checked only where it decides something: an update that was asked for comes
               first whatever the app's state (its CRC would only cost boot time) */
            const char *bad = check_app(&s_cfg, why, sizeof(why));
            if (bad == NULL) {
                boot_app(&s_cfg, NULL);
            }
            board_printf("BL: no valid app: %s\n", bad);
        } else {
            board_printf("BL: update requested\n");
        }

        const transport_t *tr = s_cfg.transport == CFG_TRANSPORT_WIFI ? &transport_wifi
                                                                        : &transport_eth;
        int rc = tr->init();
        if (rc != TR_OK) {
            board_printf("BL: %s init failed (%d)\n", tr->name, rc);
        } else {
            ota_result_t r = try_update(tr, &s_cfg);
            if (r == OTA_INSTALLED) {
                board_printf("BL: update installed, resetting\n");
                tr->deinit();
                console_flush(20);
                nvic_system_reset();
            }
            static const char *const names[] = {"installed", "connect failed", "refused (NACK)",
                                                "link lost", "install failed"};
            board_printf("BL: update failed: %s\n", names[r]);
            tr->deinit();
            if (r == OTA_ERR_INSTALL) {
                load_config(&s_cfg); /* the record on flash is still the old one */
            }
        }
        board_printf("BL: retrying in %lu ms (round %lu)\n", (unsigned long)RETRY_PAUSE_MS,
                     (unsigned long)round);
        delay_ms(RETRY_PAUSE_MS);
    }
}
