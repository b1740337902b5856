/* flash_f7.h - STM32F767 single-bank flash driver and CRC unit behind ota_flash_t. */
#ifndef FLASH_F7_H
#define FLASH_F7_H

#include "ota.h"

extern const ota_flash_t g_flash_f7;
extern const ota_layout_t g_layout_f7;

/* Enable the CRC unit and check it against the software CRC-32; on a mismatch the
   software CRC is used from then on. Returns 1 if the hardware unit is in use. */
int crc_unit_init(void);
/* Turn the CRC unit's clock off again (before jumping). */
void crc_unit_deinit(void);
#ifdef BL_VARIANT_WRITES_OWN_SECTOR
/* The writes-own-sector variant's boot counter (see flash_f7.c). */
void boot_count_bump(void);
#endif

#endif /* FLASH_F7_H */
