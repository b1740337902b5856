/*
 * nettest - exercises transport_eth / transport_wifi against a host test server.
 *
 * Transport and server come from the boot config record at 0x08020000 (rig/bootcfg.py:
 * magic "OTAC", transport 0 eth / 1 wifi, server ip, port; CRC-32 checked). Without a
 * valid record: eth, 192.168.1.10:5000.
 *
 * After connecting, nettest sends "HELLO <transport>\n" and serves line commands:
 *   SINK <n> <buf>   reply "READY\n", receive n bytes with recv(max = buf) into RAM,
 *                    reply "SINK <n> crc=<crc32 hex> chunks=<k> min=<a> max=<b> over=<c>\n"
 *                    (over = chunks larger than buf)
 *   ECHO <n> <buf>   reply "READY\n", send back every chunk as received until n bytes,
 *                    then "ECHO <n> chunks=<k> max=<b>\n"
 *   SOURCE <n>       send n bytes of the pattern (i * 7 + 1) & 0xFF, then "SOURCE <n>\n"
 *   STATS            "STATS events=.. crc_errors=.. retries=.. bad_frames=.. resets=..
 *                    polls=..\n" (drivers/winc_bus.h: HIF messages, data packets whose
 *                    CRC16 failed, bus accesses repeated, impossible messages, connections
 *                    lost to the module or WiFi, messages found without an IRQN edge)
 *   CLOSE            close, wait 100 ms, connect again
 *   QUIT             close, deinit, print "nettest: done", stop
 * Errors close the connection and reconnect after 200 ms. Progress goes to USART3.
 */
#include <stddef.h>
#include <stdint.h>

#include "board.h"
#include "fwlib.h"
#include "stm32f767.h"
#include "transport.h"
#include "winc_bus.h"   /* winc_stats of the WINC3400 driver */

#define CFG_ADDR      0x08020000u
#define CFG_MAGIC     0x4341544Fu
#define RING_SIZE     (64u * 1024u)
#define LINE_MAX      64u
#define IO_TIMEOUT_MS 10000u

static uint8_t ring[RING_SIZE];
static char pend[2048];          /* bytes received beyond the current line */
static uint32_t pend_len;

static const transport_t *tr;
static uint32_t server_ip = 0xC0A8010Au;
static uint16_t server_port = 5000;

static void load_config(void)
{
    const uint32_t *c = (const uint32_t *)CFG_ADDR;
    tr = &transport_eth;
    if (c[0] != CFG_MAGIC || c[1] != 1u || fw_crc32(0, c, 36) != c[9])
        return;
    if (c[3] == 1u)
        tr = &transport_wifi;
    server_ip = c[4];
    server_port = (uint16_t)c[5];
}

static int send_str(const char *s)
{
    return tr->send(s, strlen(s), IO_TIMEOUT_MS);
}

static int sendf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sendf(const char *fmt, ...)
{
    char line[160];
    va_list ap;
    va_start(ap, fmt);
    fw_vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    return send_str(line);
}

/* Read one '\n'-terminated line (without '\n'); 0 ok, or the transport's error / 0 closed. */
static int read_line(char *out, uint32_t cap, int *closed)
{
    *closed = 0;
    for (;;) {
        for (uint32_t i = 0; i < pend_len; i++) {
            if (pend[i] == '\n') {
                uint32_t n = i < cap - 1 ? i : cap - 1;
                memcpy(out, pend, n);
                out[n] = 0;
                memmove(pend, pend + i + 1, pend_len - i - 1);
                pend_len -= i + 1;
                return 0;
            }
        }
        if (pend_len >= sizeof pend - 1)
            pend_len = 0;    /* line too long: drop it */
        int rc = tr->recv(pend + pend_len, sizeof pend - pend_len, IO_TIMEOUT_MS);
        if (rc == TR_ERR_TIMEOUT)
            continue;
        if (rc == 0) {
            *closed = 1;
            return 0;
        }
        if (rc < 0)
            return rc;
        pend_len += (uint32_t)rc;
    }
}

static uint32_t parse_u32(const char **p)
{
    uint32_t v = 0;
    while (**p == ' ')
        (*p)++;
    while (**p >= '0' && **p <= '9')
        v = v * 10u + (uint32_t)(*(*p)++ - '0');
    return v;
}

/* Take up to max bytes: first from what read_line left over, then from the transport. */
static int take(uint8_t *dst, uint32_t max)
{
    if (pend_len) {
        uint32_t n = pend_len < max ? pend_len : max;
        memcpy(dst, pend, n);
        memmove(pend, pend + n, pend_len - n);
        pend_len -= n;
        return (int)n;
    }
    int rc;
    do {
        rc = tr->recv(dst, max, IO_TIMEOUT_MS);
    } while (rc == TR_ERR_TIMEOUT);
    return rc;
}

static int do_sink(uint32_t n, uint32_t buf, int echo)
{
    uint32_t got = 0, pos = 0, chunks = 0, mn = 0xFFFFFFFFu, mx = 0, over = 0, crc = 0;
    if (buf == 0 || buf > RING_SIZE)
        buf = 1460;
    int rc = send_str("READY\n");
    if (rc < 0)
        return rc;
    while (got < n) {
        uint32_t want = n - got < buf ? n - got : buf;
        if (pos + want > RING_SIZE)
            pos = 0;
        rc = take(ring + pos, want);
        if (rc == 0) {
            board_printf("nettest: peer closed after %lu of %lu bytes\n", (unsigned long)got,
                         (unsigned long)n);
            return TR_ERR_ABORTED;
        }
        if (rc < 0)
            return rc;
        uint32_t k = (uint32_t)rc;
        chunks++;
        if (k < mn)
            mn = k;
        if (k > mx)
            mx = k;
        if (k > buf)
            over++;
        crc = fw_crc32(crc, ring + pos, k);
        if (echo) {
            rc = tr->send(ring + pos, k, IO_TIMEOUT_MS);
            if (rc < 0)
                return rc;
        }
        pos += k;
        got += k;
    }
    if (echo)
        return sendf("ECHO %lu chunks=%lu max=%lu\n", (unsigned long)n, (unsigned long)chunks,
                     (unsigned long)mx);
    return sendf("SINK %lu crc=%08lx chunks=%lu min=%lu max=%lu over=%lu\n", (unsigned long)n,
                 (unsigned long)crc, (unsigned long)chunks, (unsigned long)(chunks ? mn : 0),
                 (unsigned long)mx, (unsigned long)over);
}

static int do_source(uint32_t n)
{
    uint32_t sent = 0;
    while (sent < n) {
        uint32_t k = n - sent < 4096u ? n - sent : 4096u;
        for (uint32_t i = 0; i < k; i++)
            ring[i] = (uint8_t)((sent + i) * 7u + 1u);
        int rc = tr->send(ring, k, IO_TIMEOUT_MS);
        if (rc < 0)
            return rc;
        sent += k;
    }
    return sendf("SOURCE %lu\n", (unsigned long)n);
}

/* Serve one connection; 1 = reconnect, 0 = quit. */
static int session(void)
{
    char line[LINE_MAX];
    pend_len = 0;
    if (sendf("HELLO %s\n", tr->name) < 0)
        return 1;
    for (;;) {
        int closed;
        int rc = read_line(line, sizeof line, &closed);
        if (closed) {
            board_printf("nettest: peer closed\n");
            return 1;
        }
        if (rc < 0) {
            board_printf("nettest: recv error %d\n", rc);
            return 1;
        }
        const char *p = line;
        if (!strncmp(line, "SINK ", 5) || !strncmp(line, "ECHO ", 5)) {
            int echo = line[0] == 'E';
            p += 5;
            uint32_t n = parse_u32(&p);
            uint32_t buf = parse_u32(&p);
            rc = do_sink(n, buf, echo);
        } else if (!strncmp(line, "SOURCE ", 7)) {
            p += 7;
            rc = do_source(parse_u32(&p));
        } else if (!strncmp(line, "STATS", 5)) {
            rc = sendf("STATS events=%lu crc_errors=%lu retries=%lu bad_frames=%lu resets=%lu "
                       "polls=%lu\n", (unsigned long)winc_stats.events,
                       (unsigned long)winc_stats.crc_errors, (unsigned long)winc_stats.retries,
                       (unsigned long)winc_stats.bad_frames, (unsigned long)winc_stats.resets_seen,
                       (unsigned long)winc_stats.polls_without_irq);
        } else if (!strncmp(line, "CLOSE", 5)) {
            board_printf("nettest: close requested\n");
            return 1;
        } else if (!strncmp(line, "QUIT", 4)) {
            return 0;
        } else {
            rc = send_str("ERR\n");
        }
        if (rc < 0) {
            board_printf("nettest: error %d\n", rc);
            return 1;
        }
    }
}

int main(void)
{
    board_init();
    load_config();
    board_printf("nettest: %s server %lu.%lu.%lu.%lu:%u\n", tr->name,
                 (unsigned long)(server_ip >> 24), (unsigned long)((server_ip >> 16) & 0xFF),
                 (unsigned long)((server_ip >> 8) & 0xFF), (unsigned long)(server_ip & 0xFF),
                 (unsigned)server_port);
    int rc = tr->init();
    board_printf("nettest: init %d\n", rc);
    while (rc < 0) {
        delay_ms(500);
        rc = tr->init();
    }
    for (;;) {
        rc = tr->connect(server_ip, server_port, 5000);
        if (rc < 0) {
            board_printf("nettest: connect %d\n", rc);
            delay_ms(200);
            continue;
        }
        board_printf("nettest: connected\n");
        int again = session();
        tr->close();
        if (!again)
            break;
        delay_ms(100);
    }
    tr->deinit();
    board_printf("nettest: done\n");
    for (;;)
        __asm volatile ("wfi");
}
