/*
 * fwlib.h - the few C library functions the freestanding firmware needs (no newlib).
 * Portable: the OTA logic's host unit tests compile these too.
 */
#ifndef FWLIB_H
#define FWLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef FWLIB_HOSTED
void  *memcpy(void *dst, const void *src, size_t n);
void  *memmove(void *dst, const void *src, size_t n);
void  *memset(void *dst, int c, size_t n);
int    memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int    strncmp(const char *a, const char *b, size_t n);
#else
#include <string.h>
#endif

/* vsnprintf subset (see board_printf). Always NUL-terminates when size > 0; returns the
   number of characters stored (not counting the NUL). */
int fw_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);
int fw_snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* zlib-compatible CRC-32 (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF) in software.
   Chain calls with crc = fw_crc32(crc, ...); start with 0. */
uint32_t fw_crc32(uint32_t crc, const void *data, size_t len);

#endif /* FWLIB_H */
