/*
 * fwlib.c - freestanding replacements for the C library pieces the firmware uses,
 * a small vsnprintf, and a slicing-by-4 software CRC-32 (zlib polynomial).
 * Built for the target and, with FWLIB_HOSTED, for the host unit tests.
 */
#include "fwlib.h"

#ifndef FWLIB_HOSTED
typedef uint32_t __attribute__((may_alias)) fw_u32;

/* Word copies (16 bytes a round). Source and destination sharing their alignment modulo 4:
   aligned words both ways. Otherwise (an lwIP TCP payload sits 2 bytes off a word in its
   pbuf; a ring buffer at any offset): the destination aligned, then words loaded from the
   unaligned source, which the Cortex-M7 allows for normal memory (plain LDR, CCR.UNALIGN_TRP
   clear: its reset value; ARMv7-M ARM A3.2.1) and does in one access within a line. Bytes
   for the rest. Never turned into a call to itself. */
typedef uint32_t __attribute__((may_alias, aligned(1))) fw_u32_unaligned;

__attribute__((optimize("no-tree-loop-distribute-patterns")))
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (n >= 8u) {
        while (((uintptr_t)d & 3u) != 0u) {
            *d++ = *s++;
            n--;
        }
        fw_u32 *dw = (fw_u32 *)(void *)d;
        if (((uintptr_t)s & 3u) == 0u) {
            const fw_u32 *sw = (const fw_u32 *)(const void *)s;
            while (n >= 16u) {
                uint32_t a = sw[0], b = sw[1], c = sw[2], e = sw[3];
                dw[0] = a;
                dw[1] = b;
                dw[2] = c;
                dw[3] = e;
                dw += 4;
                sw += 4;
                n -= 16u;
            }
            while (n >= 4u) {
                *dw++ = *sw++;
                n -= 4u;
            }
            s = (const uint8_t *)sw;
        } else {
            const fw_u32_unaligned *su = (const fw_u32_unaligned *)(const void *)s;
            while (n >= 16u) {
                uint32_t a = su[0], b = su[1], c = su[2], e = su[3];
                dw[0] = a;
                dw[1] = b;
                dw[2] = c;
                dw[3] = e;
                dw += 4;
                su += 4;
                n -= 16u;
            }
            while (n >= 4u) {
                *dw++ = *su++;
                n -= 4u;
            }
            s = (const uint8_t *)su;
        }
        d = (uint8_t *)dw;
    }
    while (n-- != 0u) {
        *d++ = *s++;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d == s || n == 0) {
        return dst;
    }
    if (d < s) {
        while (n--) {
            *d++ = *s++;
        }
    } else {
        while (n--) {
            d[n] = s[n];
        }
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) {
        *d++ = (uint8_t)c;
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a;
    const uint8_t *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return (int)x[i] - (int)y[i];
        }
    }
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0') {
        n++;
    }
    return n;
}

int strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i] || a[i] == '\0') {
            return (int)(uint8_t)a[i] - (int)(uint8_t)b[i];
        }
    }
    return 0;
}
#endif /* !FWLIB_HOSTED */

/* ------------------------------------------------------------------ vsnprintf */
typedef struct {
    char *buf;
    size_t size;
    size_t pos;
} out_t;

static void out_c(out_t *o, char c)
{
    if (o->pos + 1 < o->size) {
        o->buf[o->pos] = c;
    }
    o->pos++;
}

static void out_num(out_t *o, unsigned long v, unsigned base, int upper, int neg,
                    int width, int zero, int left)
{
    char tmp[24];
    int n = 0;
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    do {
        tmp[n++] = digits[v % base];
        v /= base;
    } while (v != 0 && n < (int)sizeof(tmp));
    int len = n + (neg ? 1 : 0);
    if (!left && !zero) {
        for (; width > len; width--) {
            out_c(o, ' ');
        }
    }
    if (neg) {
        out_c(o, '-');
    }
    if (!left && zero) {
        for (; width > len; width--) {
            out_c(o, '0');
        }
    }
    while (n > 0) {
        out_c(o, tmp[--n]);
    }
    if (left) {
        for (; width > len; width--) {
            out_c(o, ' ');
        }
    }
}

int fw_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    out_t o = {buf, size, 0};
    for (const char *p = fmt; *p != '\0'; p++) {
        if (*p != '%') {
            out_c(&o, *p);
            continue;
        }
        p++;
        int zero = 0;
        int left = 0;
        int width = 0;
        int is_long = 0;
        for (;; p++) {
            if (*p == '0') {
                zero = 1;
            } else if (*p == '-') {
                left = 1;
            } else {
                break;
            }
        }
        while (*p >= '0' && *p <= '9') {
            width = width * 10 + (*p - '0');
            p++;
        }
        while (*p == 'l' || *p == 'z') {
            is_long = 1;
            p++;
        }
        switch (*p) {
        case 'd':
        case 'i': {
            long v = is_long ? va_arg(ap, long) : (long)va_arg(ap, int);
            unsigned long mag = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
            out_num(&o, mag, 10, 0, v < 0, width, zero, left);
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            unsigned long v = is_long ? va_arg(ap, unsigned long) : (unsigned long)va_arg(ap, unsigned);
            out_num(&o, v, *p == 'u' ? 10u : 16u, *p == 'X', 0, width, zero, left);
            break;
        }
        case 'p':
            out_c(&o, '0');
            out_c(&o, 'x');
            out_num(&o, (unsigned long)(uintptr_t)va_arg(ap, void *), 16, 0, 0, 8, 1, 0);
            break;
        case 'c':
            out_c(&o, (char)va_arg(ap, int));
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (s == NULL) {
                s = "(null)";
            }
            int len = 0;
            while (s[len] != '\0') {
                len++;
            }
            if (!left) {
                for (; width > len; width--) {
                    out_c(&o, ' ');
                }
            }
            for (int i = 0; i < len; i++) {
                out_c(&o, s[i]);
            }
            if (left) {
                for (; width > len; width--) {
                    out_c(&o, ' ');
                }
            }
            break;
        }
        case '%':
            out_c(&o, '%');
            break;
        case '\0':
            p--;
            break;
        default:
            out_c(&o, '%');
            out_c(&o, *p);
            break;
        }
    }
    if (size > 0) {
        o.buf[o.pos < size ? o.pos : size - 1] = '\0';
    }
    return (int)(o.pos < size ? o.pos : (size > 0 ? size - 1 : 0));
}

int fw_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = fw_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

/* ------------------------------------------------------------------ CRC-32 */
/* zlib's CRC-32 (reflected polynomial 0xEDB88320), slicing-by-4: a byte at a time up to a
   word boundary, then a word XORed into the register and folded with four table lookups
   (about 4 instructions a byte on the Cortex-M7, against 11 for a nibble table). The 4 KiB
   of tables are const (flash) and generated: firmware/tools/gen_crc32_tables.py. */
#include "crc32_tables.h"

typedef uint32_t __attribute__((may_alias)) fw_word_alias;

uint32_t fw_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len != 0u && ((uintptr_t)p & 3u) != 0u) {
        crc = (crc >> 8) ^ crc32_tab[0][(crc ^ *p++) & 0xFFu];
        len--;
    }
    while (len >= 4u) {
        crc ^= *(const fw_word_alias *)(const void *)p; /* little-endian: first byte low */
        crc = crc32_tab[3][crc & 0xFFu] ^ crc32_tab[2][(crc >> 8) & 0xFFu] ^
              crc32_tab[1][(crc >> 16) & 0xFFu] ^ crc32_tab[0][crc >> 24];
        p += 4;
        len -= 4u;
    }
    while (len-- != 0u) {
        crc = (crc >> 8) ^ crc32_tab[0][(crc ^ *p++) & 0xFFu];
    }
    return ~crc;
}
