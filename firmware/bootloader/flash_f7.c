/*
 * flash_f7.c - STM32F767 flash (single bank, PSIZE x32) and CRC unit for the OTA logic.
 * Erase by sector number, program word by word with read-back verification, every
 * BSY wait bounded. With the D-cache on (the SPI-on-DMA WiFi build turns it on while the
 * module is open), flash read through AXIM is cached: the lines of an erased sector and
 * of each programmed word are invalidated by address (DCIMVAC) before the CPU reads them
 * back, so the checks see the flash, not what the CPU read before.
 * The CRC unit is set to REV_IN=word, REV_OUT=1, which with a final
 * XOR gives the zlib CRC-32 of the bytes in memory order.
 */
#include "flash_f7.h"

#include "board.h"
#include "stm32f767.h"

static const ota_sector_t k_sectors[12] = {
    {0x08000000u, 0x8000u},  {0x08008000u, 0x8000u},  {0x08010000u, 0x8000u},
    {0x08018000u, 0x8000u},  {0x08020000u, 0x20000u}, {0x08040000u, 0x40000u},
    {0x08080000u, 0x40000u}, {0x080C0000u, 0x40000u}, {0x08100000u, 0x40000u},
    {0x08140000u, 0x40000u}, {0x08180000u, 0x40000u}, {0x081C0000u, 0x40000u},
};

const ota_layout_t g_layout_f7 = {
    .sectors = k_sectors,
    .n_sectors = 12,
    .scratch_addr = 0x08180000u,
    .scratch_size = 0x80000u,
    .app_addr = 0x08040000u,
    .app_size = 0x140000u,
    .config_addr = 0x08020000u,
};

#define ERASE_TIMEOUT_MS   8000u
#define PROGRAM_TIMEOUT_MS 10u

/* Wait for BSY to clear: the clock is read only while the controller is still busy, and
   SR is written only when there are flags to clear (one SR read per programmed word when
   the operation is already over, which is the common case for a word program). */
static int wait_idle(uint32_t timeout_ms)
{
    uint32_t sr = FLASH_IF->SR;
    if (sr & FLASH_SR_BSY) {
        uint32_t start = board_millis();
        while ((sr = FLASH_IF->SR) & FLASH_SR_BSY) {
            if ((uint32_t)(board_millis() - start) > timeout_ms && (FLASH_IF->SR & FLASH_SR_BSY)) {
                return -1; /* still busy after the deadline (checked again after the time test) */
            }
        }
    }
    if (sr & (FLASH_SR_ERRORS | FLASH_SR_EOP)) {
        FLASH_IF->SR = sr & (FLASH_SR_ERRORS | FLASH_SR_EOP);
    }
    return (sr & FLASH_SR_ERRORS) ? -2 : 0;
}

#define SCB_DCIMVAC REG32(0xE000EF5Cu)

/* Drop the D-cache's lines of [addr, addr + len) (no-op while the D-cache is off). */
static void dcache_forget(uint32_t addr, uint32_t len)
{
    if (!(SCB->CCR & SCB_CCR_DC)) {
        return;
    }
    cpu_dsb();
    for (uint32_t a = addr & ~31u; a < addr + len; a += 32u) {
        SCB_DCIMVAC = a;
    }
    cpu_dsb();
    cpu_isb();
}

static int unlock(void)
{
    if (FLASH_IF->CR & FLASH_CR_LOCK) {
        FLASH_IF->KEYR = FLASH_KEY1;
        FLASH_IF->KEYR = FLASH_KEY2;
    }
    return (FLASH_IF->CR & FLASH_CR_LOCK) ? -1 : 0;
}

static void lock(void)
{
    FLASH_IF->CR = FLASH_CR_LOCK;
}

static int f7_erase(uint32_t addr, uint32_t size)
{
    int snb = -1;
    for (uint32_t i = 0; i < 12; i++) {
        if (k_sectors[i].addr == addr && k_sectors[i].size == size) {
            snb = (int)i;
        }
    }
    if (snb < 0 || snb < 4 /* never the bootloader's own sectors */) {
        return -1;
    }
    if (unlock() != 0 || wait_idle(PROGRAM_TIMEOUT_MS) == -1) {
        lock();
        return -1;
    }
    FLASH_IF->CR = FLASH_CR_PSIZE_X32 | FLASH_CR_SER | ((uint32_t)snb << FLASH_CR_SNB_POS);
    FLASH_IF->CR |= FLASH_CR_STRT;
    cpu_dsb();
    int rc = wait_idle(ERASE_TIMEOUT_MS);
    lock();
    dcache_forget(addr, size);
    if (rc != 0) {
        return rc;
    }
    /* Blank check of the first and last words (a full check costs a 256 KiB read). */
    if (REG32(addr) != 0xFFFFFFFFu || REG32(addr + size - 4u) != 0xFFFFFFFFu) {
        return -3;
    }
    return 0;
}

static int f7_program(uint32_t addr, const void *data, uint32_t len)
{
    if ((addr & 3u) || (len & 3u) || addr < 0x08020000u) {
        return -1;
    }
    if (unlock() != 0 || wait_idle(PROGRAM_TIMEOUT_MS) == -1) {
        lock();
        return -1;
    }
    const uint8_t *src = data;
    int rc = 0;
    int cached = (SCB->CCR & SCB_CCR_DC) != 0;
    FLASH_IF->CR = FLASH_CR_PSIZE_X32 | FLASH_CR_PG;
#ifdef BL_VARIANT_DOUBLEWORD_SOURCE
    /* "Read the source 8 bytes at a time, it is faster": the two words of a pair copied as
       one struct through a pointer into the receive buffer, whose bytes lwIP and the WINC
       driver hand over at any offset. GCC copies the struct with LDRD/LDM, which need a
       word-aligned address on a Cortex-M7 (a plain LDR would not): UsageFault UNALIGNED,
       escalated to HardFault, at the first chunk off a word. */
    struct pair {
        uint32_t lo, hi;
    } pair = {0, 0};
#endif
    for (uint32_t off = 0; off < len; off += 4) {
        uint32_t w;
#ifdef BL_VARIANT_DOUBLEWORD_SOURCE
        if (!(off & 4u) && off + 8u <= len) {
            pair = *(const struct pair *)(const void *)(src + off);
        }
        if (off + 8u <= len || (off & 4u)) {
            w = (off & 4u) ? pair.hi : pair.lo;
        } else {
            memcpy(&w, src + off, 4);
        }
#else
        memcpy(&w, src + off, 4);
#endif
        REG32(addr + off) = w;
        cpu_dsb();
        rc = wait_idle(PROGRAM_TIMEOUT_MS);
        if (cached) {
            dcache_forget(addr + off, 4);
        }
        if (rc == 0 && REG32(addr + off) != w) {
            rc = -3; /* read-back differs: the word was not erased */
        }
        if (rc != 0) {
            break;
        }
    }
    FLASH_IF->CR = FLASH_CR_PSIZE_X32;
    lock();
    return rc;
}

#ifdef BL_VARIANT_WRITES_OWN_SECTOR
/* A boot counter kept in the spare end of the bootloader's own last sector (S3): each boot
   programs the next erased word of its last 1 KiB. The bootloader's flash changes on every
   boot although no update ever writes there. */
void boot_count_bump(void)
{
    uint32_t addr = 0x08020000u - 1024u;
    while (addr < 0x08020000u && REG32(addr) != 0xFFFFFFFFu) {
        addr += 4u;
    }
    if (addr >= 0x08020000u || unlock() != 0 || wait_idle(PROGRAM_TIMEOUT_MS) == -1) {
        lock();
        return;
    }
    FLASH_IF->CR = FLASH_CR_PSIZE_X32 | FLASH_CR_PG;
    REG32(addr) = 0xB007C0DEu - ((addr & 1023u) >> 2);
    cpu_dsb();
    (void)wait_idle(PROGRAM_TIMEOUT_MS);
    FLASH_IF->CR = FLASH_CR_PSIZE_X32;
    lock();
}
#endif

static void f7_read(uint32_t addr, void *buf, uint32_t len)
{
    memcpy(buf, (const void *)(uintptr_t)addr, len);
}

static int s_hw_crc;

static uint32_t hw_crc_words(const uint32_t *p, uint32_t words)
{
    CRC_UNIT->CR = CRC_CR_REV_IN_WORD | CRC_CR_REV_OUT;
    CRC_UNIT->INIT = 0xFFFFFFFFu;
    CRC_UNIT->POL = 0x04C11DB7u;
    CRC_UNIT->CR = CRC_CR_REV_IN_WORD | CRC_CR_REV_OUT | CRC_CR_RESET;
    for (uint32_t i = 0; i < words; i++) {
        CRC_UNIT->DR = p[i];
    }
    return CRC_UNIT->DR ^ 0xFFFFFFFFu;
}

static uint32_t f7_crc32(uint32_t addr, uint32_t len)
{
    if (!s_hw_crc || (addr & 3u)) {
        return fw_crc32(0, (const void *)(uintptr_t)addr, len);
    }
    uint32_t words = len / 4u;
    uint32_t crc = words ? hw_crc_words((const uint32_t *)(uintptr_t)addr, words) : 0u;
#ifdef BL_VARIANT_CRC_TAIL_IGNORED
    /* The CRC unit takes whole words: "len / 4" words are fed and the 1..3 bytes left
       over are forgotten, so an image whose size is not a multiple of 4 never verifies
       (its CRC is that of the first len & ~3 bytes). */
    return crc;
#else
    /* The CRC unit's result is the zlib value of the prefix: finish the 0..3 byte tail
       in software. */
    return fw_crc32(crc, (const void *)(uintptr_t)(addr + words * 4u), len & 3u);
#endif
}

int crc_unit_init(void)
{
    static const uint32_t probe[3] = {0x34333231u, 0x38373635u, 0x0A0D3039u};
    RCC->AHB1ENR |= RCC_AHB1ENR_CRCEN;
    (void)RCC->AHB1ENR;
    s_hw_crc = hw_crc_words(probe, 3) == fw_crc32(0, probe, sizeof(probe));
    return s_hw_crc;
}

void crc_unit_deinit(void)
{
    CRC_UNIT->CR = 0;
    RCC->AHB1ENR &= ~RCC_AHB1ENR_CRCEN;
}

const ota_flash_t g_flash_f7 = {
    .erase = f7_erase,
    .program = f7_program,
    .read = f7_read,
    .crc32 = f7_crc32,
};
