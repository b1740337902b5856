/*
 * ota.h - the portable OTA logic: protocol framing (docs/protocol.md), streaming into
 * the scratch area, verification, installation into the app slot, config update.
 *
 * Everything hardware-specific is behind function pointers (transport_t for the network,
 * ota_flash_t for flash and the CRC unit, a millisecond clock and a log function), so
 * the same code runs on the STM32 and in the host unit tests (firmware/tests/host).
 * Build flags BL_VARIANT_* switch in the forum thread's bugs (see README.md).
 */
#ifndef OTA_H
#define OTA_H

#include <stdint.h>

#include "config.h"
#include "transport.h"

#define OTA_LINE_MAX     64u    /* a control line, including its '\n' */
#define OTA_RX_CHUNK     1024u  /* receive buffer (the thread's CHUNK_SIZE) */
#define OTA_RECV_TIMEOUT 10000u /* ms without a byte -> NACK:timeout */
#define OTA_COPY_CHUNK   1024u

typedef struct {
    uint32_t addr;
    uint32_t size;
} ota_sector_t;

typedef struct {
    const ota_sector_t *sectors; /* every sector of the device, ascending */
    uint32_t n_sectors;
    uint32_t scratch_addr, scratch_size; /* S10-S11 */
    uint32_t app_addr, app_size;         /* slot S5-S9 */
    uint32_t config_addr;                /* S4 */
} ota_layout_t;

typedef struct {
    /* Erase the sector [addr, addr+size). 0 or negative. */
    int (*erase)(uint32_t addr, uint32_t size);
    /* Program len bytes (len % 4 == 0, addr % 4 == 0) and verify them. 0 or negative. */
    int (*program)(uint32_t addr, const void *data, uint32_t len);
    /* Read len bytes. */
    void (*read)(uint32_t addr, void *buf, uint32_t len);
    /* zlib CRC-32 of [addr, addr+len). */
    uint32_t (*crc32)(uint32_t addr, uint32_t len);
} ota_flash_t;

typedef struct {
    const transport_t *tr;
    const ota_flash_t *flash;
    const ota_layout_t *layout;
    uint32_t (*millis)(void);
    void (*log)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
    uint32_t recv_timeout_ms;  /* 0 -> OTA_RECV_TIMEOUT */
    uint8_t *heap;             /* RAM for the malloc-whole-image variant only */
    uint32_t heap_size;
} ota_env_t;

typedef enum {
    OTA_INSTALLED = 0,   /* image verified, copied, verified, config written: reset now */
    OTA_ERR_CONNECT = 1, /* could not connect */
    OTA_ERR_REFUSED = 2, /* we sent NACK (reason in ota_session_t.nack) */
    OTA_ERR_LINK = 3,    /* connection lost / closed by the server */
    OTA_ERR_INSTALL = 4, /* ACKed, but erase/copy/verify of the app slot failed */
} ota_result_t;

enum { OTA_ST_HEADER, OTA_ST_DATA, OTA_ST_DONE_WAIT, OTA_ST_STUCK, OTA_ST_FINISHED, OTA_ST_FAILED };

/* One update session. Field order matters for the nul-past-buffer variant: `rx` is
   directly followed by `wr_addr`, as the thread's ota_buf was followed by a pointer. */
typedef struct {
    const ota_env_t *env;
    uint8_t rx[OTA_RX_CHUNK];
    uint32_t wr_addr;      /* next scratch address to program */
    int state;
    char line[OTA_LINE_MAX];
    uint32_t line_len;
    int have_size, have_crc;
    uint32_t size, file_crc;
    uint32_t received, sw_crc;
    uint8_t tail[4];
    uint32_t tail_len;
    const char *nack;      /* reason sent, or NULL */
    uint8_t *ram_image;    /* malloc-whole-image variant */
} ota_session_t;

/* Connect (cfg->server_ip:port), run the protocol, install. On OTA_INSTALLED *cfg holds
   the record that was written (flags cleared, app_size/app_crc/app_version set). */
ota_result_t ota_update(const ota_env_t *env, ota_config_t *cfg, ota_session_t *s);

/* Lower-level pieces, exposed for the unit tests. */
void ota_session_init(ota_session_t *s, const ota_env_t *env);
/* Feed received bytes; may erase/program/send. Returns the new state. */
int ota_feed(ota_session_t *s, const uint8_t *data, uint32_t len);
/* After OTA_ST_FINISHED: erase the app sectors, copy, verify, write the config. */
ota_result_t ota_install(ota_session_t *s, ota_config_t *cfg);

/* The area the app CRC is computed over (the app slot; the crc-wrong-area variant
   returns the scratch area instead). Used by install-verify and by the boot check. */
uint32_t ota_app_crc_area(const ota_layout_t *l);
/* Sectors overlapping [addr, addr+len): first index and count. 0 on success. */
int ota_sectors_for(const ota_layout_t *l, uint32_t addr, uint32_t len, uint32_t *first,
                    uint32_t *count);
/* The config log (config.h): fill *cfg with the record in force - the last valid record
   before the first erased slot - and return its slot, or -1 if there is none (*cfg is
   then untouched). *next_free: the first erased slot (the number of slots if the sector
   is full). */
int ota_config_find(const ota_flash_t *fl, const ota_layout_t *l, ota_config_t *cfg,
                    uint32_t *next_free);
/* Seal the record and append it to the config log in the first erased slot (the sector is
   erased first only when every slot is used). 0 or negative. */
int ota_write_config(const ota_env_t *env, ota_config_t *cfg);

#endif /* OTA_H */
