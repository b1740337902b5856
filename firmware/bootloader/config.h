/*
 * config.h - the boot configuration record in sector S4 (0x08020000). Ten little-endian
 * uint32 fields, 40 bytes. Portable.
 *
 * The sector is a log: each record sits in its own CFG_SLOT_SIZE-byte slot, the record in
 * force is the last valid one before the first erased slot, and the bootloader appends a
 * new record after installing an image instead of rewriting the old one (ota.c,
 * ota_write_config). A power cut while it writes tears only the new record: the previous
 * one, with the settings (transport, server), stays in force. The sector is erased only
 * when every slot is used. The rig (or a factory tool) programs one record in slot 0 to
 * request an update; boards/stm32f767.yaml marks the region `preserve: append`.
 */
#ifndef OTA_CONFIG_H
#define OTA_CONFIG_H

#include <stdint.h>

#define CFG_MAGIC                 0x4341544Fu /* bytes "OTAC" */
#define CFG_VERSION               1u
#define CFG_FLAG_UPDATE_REQUESTED (1u << 0)
#define CFG_TRANSPORT_ETH         0u
#define CFG_TRANSPORT_WIFI        1u
#define CFG_DEFAULT_SERVER_IP     0xC0A8010Au /* 192.168.1.10 */
#define CFG_DEFAULT_SERVER_PORT   5000u
#define CFG_SLOT_SIZE             64u /* one record per slot of the config log */

typedef struct {
    uint32_t magic;       /* CFG_MAGIC */
    uint32_t version;     /* CFG_VERSION */
    uint32_t flags;       /* bit0 UPDATE_REQUESTED */
    uint32_t transport;   /* 0 eth, 1 wifi */
    uint32_t server_ip;   /* host order */
    uint32_t server_port; /* 1..65535 */
    uint32_t app_size;    /* bytes of the installed app (0 = none) */
    uint32_t app_crc;     /* zlib CRC-32 of the installed app */
    uint32_t app_version; /* from the app's image header, or 0 */
    uint32_t record_crc;  /* zlib CRC-32 of the 36 bytes above */
} ota_config_t;

/* Fill with the defaults: no app, no update requested, eth, 192.168.1.10:5000. */
void cfg_defaults(ota_config_t *cfg);
/* 1 if magic, version, record_crc, transport and port are all valid. */
int cfg_valid(const ota_config_t *cfg);
/* Set magic/version and recompute record_crc. */
void cfg_seal(ota_config_t *cfg);

#endif /* OTA_CONFIG_H */
