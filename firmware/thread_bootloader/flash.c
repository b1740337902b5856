/*
 * flash.c - the thread bootloader's own flash routines (Erase_Flash_Area,
 * Flash_Write_Buffer in the thread): single bank, 12 sectors, PSIZE x32, every wait
 * bounded, read back after programming. Sectors 0-4 (this bootloader, its settings) are
 * never erased or programmed.
 */
#include "board.h"
#include "fwlib.h"
#include "stm32f767.h"
#include "tb.h"

static const uint32_t k_sector_base[13] = {
    0x08000000u, 0x08008000u, 0x08010000u, 0x08018000u, 0x08020000u, 0x08040000u, 0x08080000u,
    0x080C0000u, 0x08100000u, 0x08140000u, 0x08180000u, 0x081C0000u, 0x08200000u,
};
#define FIRST_WRITABLE 5u /* S5: the boot record */

static int wait_ready(uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    while (FLASH_IF->SR & FLASH_SR_BSY) {
        if ((uint32_t)(board_millis() - start) > timeout_ms) {
            return -1;
        }
    }
    uint32_t sr = FLASH_IF->SR;
    FLASH_IF->SR = sr & (FLASH_SR_ERRORS | FLASH_SR_EOP);
    return (sr & FLASH_SR_ERRORS) ? -2 : 0;
}

static int flash_unlock(void)
{
    if (FLASH_IF->CR & FLASH_CR_LOCK) {
        FLASH_IF->KEYR = FLASH_KEY1;
        FLASH_IF->KEYR = FLASH_KEY2;
    }
    return (FLASH_IF->CR & FLASH_CR_LOCK) ? -1 : wait_ready(10);
}

int tb_flash_erase(uint32_t addr, uint32_t len)
{
    uint32_t end = addr + len;
    for (uint32_t s = FIRST_WRITABLE; s < 12; s++) {
        if (k_sector_base[s + 1] <= addr || k_sector_base[s] >= end) {
            continue;
        }
        board_printf("TB: erasing sector %lu (0x%08lx)\n", (unsigned long)s, (unsigned long)k_sector_base[s]);
        if (flash_unlock() != 0) {
            FLASH_IF->CR = FLASH_CR_LOCK;
            return -1;
        }
        FLASH_IF->CR = FLASH_CR_PSIZE_X32 | FLASH_CR_SER | (s << FLASH_CR_SNB_POS);
        FLASH_IF->CR |= FLASH_CR_STRT;
        cpu_dsb();
        int rc = wait_ready(8000);
        FLASH_IF->CR = FLASH_CR_LOCK;
        if (rc != 0) {
            return rc;
        }
    }
    return addr < k_sector_base[FIRST_WRITABLE] ? -1 : 0;
}

int tb_flash_program(uint32_t addr, const void *data, uint32_t len)
{
    const uint8_t *src = data;
    if ((addr & 3u) || (len & 3u) || addr < k_sector_base[FIRST_WRITABLE] || addr + len > 0x08200000u) {
        return -1;
    }
    if (flash_unlock() != 0) {
        FLASH_IF->CR = FLASH_CR_LOCK;
        return -1;
    }
    int rc = 0;
    for (uint32_t i = 0; i < len && rc == 0; i += 4) {
        uint32_t word;
        memcpy(&word, src + i, 4);
        FLASH_IF->CR = FLASH_CR_PSIZE_X32 | FLASH_CR_PG;
        REG32(addr + i) = word;
        cpu_dsb();
        rc = wait_ready(10);
        if (rc == 0 && REG32(addr + i) != word) {
            rc = -3;
        }
    }
    FLASH_IF->CR = FLASH_CR_LOCK;
    return rc;
}

uint32_t tb_flash_crc(uint32_t addr, uint32_t len)
{
    return fw_crc32(0, (const void *)(uintptr_t)addr, len);
}
