/*
 * tb.h - the thread-style bootloader: a second OTA bootloader, independent of the
 * reference one (firmware/bootloader/), written the way the forum thread's author wrote
 * his, with his bugs fixed. It proves that a board file is enough for the rig to test a
 * bootloader it knows nothing about (boards/thread-bootloader.yaml, docs/lab.md).
 *
 * What makes it different from the reference:
 *   - the thread's own protocol on the wire: REQ_FW -> FILE_SIZE:<n> -> OTA_UPDATE ->
 *     OTA_READY -> n data bytes -> ACK (or NACK), no terminators, no FILE_CRC, the board
 *     counts the data bytes (rig: ota.protocol: thread);
 *   - asked for an update by a marker in RTC_BKP0R (written by the application before
 *     NVIC_SystemReset, or by the rig through the probe) or by the user button B1 (PC13)
 *     held during reset; it clears the marker when it reads it;
 *   - its own layout: the application at 0x08100000 (sector 8, the thread's first
 *     address), the download staged in sectors 10-11 (FLASH_SECTOR_10_ADDR), its settings
 *     (server address, device serial) in sector 4, which it only reads, its boot record
 *     (size and CRC of the installed application) in sector 5;
 *   - its own flash routines and jump sequence; Ethernet only (the reference's lwIP
 *     transport, firmware/drivers), no WiFi.
 */
#ifndef TB_H
#define TB_H

#include <stdint.h>

#define TB_SETTINGS_ADDR 0x08020000u /* S4, 128 KiB: read only */
#define TB_RECORD_ADDR   0x08040000u /* S5, 256 KiB: the boot record */
#define TB_APP_ADDR      0x08100000u /* S8-S9 */
#define TB_APP_SIZE      0x00080000u
#define TB_SCRATCH_ADDR  0x08180000u /* S10-S11, "FLASH_SECTOR_10_ADDR" */
#define TB_SCRATCH_SIZE  0x00080000u

#define TB_UPDATE_MAGIC  0xB007B007u /* in RTC_BKP0R: "update at the next boot" */
#define TB_RECORD_MAGIC  0x50414254u /* "TBAP" */
#define TB_SETTINGS_MAGIC 0x54534254u /* "TBST" */

#define TB_DEFAULT_SERVER_IP   0xC0A8010Au /* 192.168.1.10 */
#define TB_DEFAULT_SERVER_PORT 5000u

/* Sector 4: written at the factory, never by this bootloader. */
typedef struct {
    uint32_t magic;       /* TB_SETTINGS_MAGIC */
    uint32_t server_ip;   /* host order */
    uint32_t server_port;
    char serial[16];      /* device identity */
    uint32_t crc;         /* fw_crc32 of the fields above */
} tb_settings_t;

/* Sector 5: what is installed. */
typedef struct {
    uint32_t magic;    /* TB_RECORD_MAGIC */
    uint32_t size;     /* bytes of the application */
    uint32_t crc;      /* fw_crc32 of them */
    uint32_t size_inv; /* ~size */
} tb_record_t;

/* flash.c: erase the sectors covering [addr, addr+len), program words, the sector table. */
int tb_flash_erase(uint32_t addr, uint32_t len);
int tb_flash_program(uint32_t addr, const void *data, uint32_t len);
uint32_t tb_flash_crc(uint32_t addr, uint32_t len);

/* ota.c: one update over Ethernet with the thread's protocol; 0 = installed (reset now). */
int tb_ota_update(uint32_t server_ip, uint16_t server_port);

/* main.c */
const char *tb_app_check(char *why, uint32_t why_len);

#endif /* TB_H */
