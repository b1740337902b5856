/*
 * fwlib.c - freestanding replacements for the C library pieces the firmware uses,
 * a small vsnprintf, and a table-light software CRC-32 (zlib polynomial).
 * Built for the target and, with FWLIB_HOSTED, for the host unit tests.
 */
#include "fwlib.h"

#ifndef FWLIB_HOSTED
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
        while (n >= 4) {
            *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
            d += 4;
            s += 4;
            n -= 4;
        }
    }
    while (n--) {
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
/* Reflected polynomial 0xEDB88320, processed a nibble at a time (16-entry table). */
static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
    0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

uint32_t fw_crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
    }
    return ~crc;
}
