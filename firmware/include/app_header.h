/*
 * app_header.h - the header every test application carries at a fixed offset
 * (0x200, right after the 126-word vector table) so the rig and the bootloader can read
 * the version of an image without running it. All fields little-endian.
 */
#ifndef APP_HEADER_H
#define APP_HEADER_H

#include <stdint.h>

#define APP_HEADER_OFFSET  0x200u
#define APP_HEADER_MAGIC   0x4841544Fu /* bytes "OTAH" */
#define APP_HEADER_VERSION 1u

typedef struct {
    uint32_t magic;          /* APP_HEADER_MAGIC */
    uint32_t header_version; /* APP_HEADER_VERSION */
    uint32_t app_version;    /* the N of app-vN */
    uint32_t image_size;     /* length of the .bin in bytes */
    uint32_t link_address;   /* where the vector table is linked (0x08040000) */
    char     build_id[12];   /* 8 hex digits, NUL-terminated */
} app_header_t;              /* 32 bytes */

#endif /* APP_HEADER_H */
