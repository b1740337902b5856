/*
 * test_ota.c - host unit tests of the portable OTA logic (bootloader/ota.c, config.c).
 *
 * Real code under test, host-side parts: a NOR flash model (erase -> 0xFF, programming
 * only clears bits, read-back verified like the target driver), a scripted OTA server
 * behind transport_t that cuts its byte stream into seeded random chunks, and a virtual
 * millisecond clock. Built once per BL_VARIANT_* flag; tests/firmware/test_fw_host.py
 * checks that the correct build passes everything and each variant fails exactly where
 * its bug predicts.
 *
 * Usage: test_ota [name...]   prints "PASS <name>" / "FAIL <name>: <why>", then
 *                             "SUMMARY pass=N fail=M"; exit status 1 if any failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app_header.h"
#include "config.h"
#include "fwlib.h"
#include "ota.h"

/* ------------------------------------------------------------------ flash model */
#define FLASH_BASE 0x08000000u
#define FLASH_SIZE 0x00200000u
static uint8_t g_flash[FLASH_SIZE];
static uint32_t g_erased[64];
static uint32_t g_n_erased;
static uint32_t g_fault_addr;   /* program at this address fails (0 = none) */
static uint32_t g_words_programmed;

static const ota_sector_t k_sectors[12] = {
    {0x08000000u, 0x8000u},  {0x08008000u, 0x8000u},  {0x08010000u, 0x8000u},
    {0x08018000u, 0x8000u},  {0x08020000u, 0x20000u}, {0x08040000u, 0x40000u},
    {0x08080000u, 0x40000u}, {0x080C0000u, 0x40000u}, {0x08100000u, 0x40000u},
    {0x08140000u, 0x40000u}, {0x08180000u, 0x40000u}, {0x081C0000u, 0x40000u},
};
static const ota_layout_t k_layout = {
    .sectors = k_sectors, .n_sectors = 12,
    .scratch_addr = 0x08180000u, .scratch_size = 0x80000u,
    .app_addr = 0x08040000u, .app_size = 0x140000u,
    .config_addr = 0x08020000u,
};

static uint8_t *fl(uint32_t addr) { return &g_flash[addr - FLASH_BASE]; }

static int m_erase(uint32_t addr, uint32_t size)
{
    int ok = 0;
    for (uint32_t i = 0; i < 12; i++) {
        ok |= k_sectors[i].addr == addr && k_sectors[i].size == size;
    }
    if (!ok || addr < 0x08020000u) {
        return -1;
    }
    memset(fl(addr), 0xFF, size);
    if (g_n_erased < 64) {
        g_erased[g_n_erased++] = addr;
    }
    return 0;
}

static int m_program(uint32_t addr, const void *data, uint32_t len)
{
    if ((addr & 3u) || (len & 3u) || addr < 0x08020000u || addr + len > FLASH_BASE + FLASH_SIZE) {
        return -1;
    }
    const uint8_t *d = data;
    for (uint32_t i = 0; i < len; i += 4) {
        if (g_fault_addr != 0 && addr + i == g_fault_addr) {
            return -2;
        }
        uint8_t *p = fl(addr + i);
        for (int k = 0; k < 4; k++) {
            p[k] &= d[i + k];
        }
        g_words_programmed++;
        if (memcmp(p, d + i, 4) != 0) {
            return -3; /* like the target driver's read-back check */
        }
    }
    return 0;
}

static void m_read(uint32_t addr, void *buf, uint32_t len) { memcpy(buf, fl(addr), len); }
/* CRC-32 bit by bit (zlib's), the reference fw_crc32's tables must agree with */
static uint32_t crc32_bitwise(uint32_t crc, const uint8_t *p, size_t len)
{
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ ((crc & 1u) ? 0xEDB88320u : 0u);
        }
    }
    return ~crc;
}

static uint32_t m_crc32(uint32_t addr, uint32_t len) { return fw_crc32(0, fl(addr), len); }

static const ota_flash_t k_flash = {m_erase, m_program, m_read, m_crc32};

/* ------------------------------------------------------------------ clock, log */
static uint32_t g_now;
static uint32_t m_millis(void) { return g_now; }
static int g_verbose;
static void m_log(const char *fmt, ...)
{
    if (!g_verbose) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ scripted server */
typedef struct {
    uint8_t *hdr;  size_t n_hdr, pos_hdr;   /* FILE_SIZE ... OTA_UPDATE */
    uint8_t *body; size_t n_body, pos_body; /* data + OTA_DONE */
    int greedy;          /* send the body without waiting for OTA_READY */
    size_t close_at;     /* close after this many body bytes (0 = never) */
    size_t stall_at;     /* stop sending after this many body bytes (0 = never) */
    uint32_t rng;
    uint32_t min_chunk, max_chunk;
    const uint32_t *plan; size_t n_plan, i_plan; /* fixed chunk sizes (cycled) */
    int connect_rc;
    char sent[256]; size_t n_sent;
    int connected, closed_calls;
} server_t;
static server_t g_srv;

static uint32_t rnd(void)
{
    uint32_t x = g_srv.rng;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    return g_srv.rng = x;
}

static int t_init(void) { return 0; }
static int t_connect(uint32_t ip, uint16_t port, uint32_t timeout)
{
    if (g_srv.connect_rc != 0) {
        return g_srv.connect_rc;
    }
    g_srv.connected = 1;
    return ip == CFG_DEFAULT_SERVER_IP && port == CFG_DEFAULT_SERVER_PORT ? 0 : TR_ERR_REFUSED;
}
static int t_send(const void *buf, uint32_t len, uint32_t timeout)
{
    if (g_srv.n_sent + len < sizeof(g_srv.sent)) {
        memcpy(g_srv.sent + g_srv.n_sent, buf, len);
        g_srv.n_sent += len;
        g_srv.sent[g_srv.n_sent] = '\0';
    }
    return (int)len;
}
static uint32_t next_chunk(uint32_t max)
{
    uint32_t c;
    if (g_srv.plan != NULL) {
        c = g_srv.plan[g_srv.i_plan++ % g_srv.n_plan];
    } else {
        uint32_t span = g_srv.max_chunk - g_srv.min_chunk + 1u;
        c = g_srv.min_chunk + rnd() % span;
    }
    return c < max ? c : max;
}
static int t_recv(void *buf, uint32_t max, uint32_t timeout)
{
    g_now += 1;
    uint8_t *out = buf;
    uint32_t want = next_chunk(max);
    uint32_t got = 0;
    while (got < want && g_srv.pos_hdr < g_srv.n_hdr) {
        out[got++] = g_srv.hdr[g_srv.pos_hdr++];
    }
    int body_ok = g_srv.greedy || strstr(g_srv.sent, "OTA_READY\n") != NULL;
    size_t body_end = g_srv.n_body;
    if (g_srv.close_at && g_srv.close_at < body_end) body_end = g_srv.close_at;
    if (g_srv.stall_at && g_srv.stall_at < body_end) body_end = g_srv.stall_at;
    while (body_ok && got < want && g_srv.pos_body < body_end) {
        out[got++] = g_srv.body[g_srv.pos_body++];
    }
    if (got > 0) {
        return (int)got;
    }
    if (g_srv.close_at && g_srv.pos_body >= g_srv.close_at) {
        return 0;
    }
    g_now += timeout;
    return TR_ERR_TIMEOUT;
}
static void t_close(void) { g_srv.closed_calls++; }
static void t_deinit(void) {}
static const transport_t k_tr = {"fake", t_init, t_connect, t_send, t_recv, t_close, t_deinit};

/* ------------------------------------------------------------------ images, runs */
static uint8_t g_heap[490u * 1024u]; /* what the target leaves after .bss and the stack */

static uint8_t *make_image(uint32_t size, uint32_t seed, uint32_t version)
{
    uint8_t *img = malloc(size ? size : 1);
    uint32_t x = seed * 2654435761u + 1u;
    for (uint32_t i = 0; i < size; i++) {
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        img[i] = (uint8_t)x;
    }
    if (size >= 8) { /* a plausible vector table */
        uint32_t sp = 0x20080000u, pc = 0x08040201u;
        memcpy(img, &sp, 4);
        memcpy(img + 4, &pc, 4);
    }
    if (size >= APP_HEADER_OFFSET + sizeof(app_header_t)) {
        app_header_t h = {APP_HEADER_MAGIC, APP_HEADER_VERSION, version, size, 0x08040000u, "0badc0de"};
        memcpy(img + APP_HEADER_OFFSET, &h, sizeof(h));
    }
    return img;
}

typedef struct {
    const char *size_line; /* NULL: "FILE_SIZE:<n>"; "" : omitted; else sent verbatim */
    const char *crc_line;  /* NULL: correct FILE_CRC; "" : omitted; else verbatim */
    const char *extra;     /* inserted before OTA_UPDATE */
    const char *done;      /* NULL: "OTA_DONE\n" */
} script_t;

static void flash_reset(void)
{
    memset(g_flash, 0xFF, sizeof(g_flash));
    g_n_erased = 0;
    g_fault_addr = 0;
    g_words_programmed = 0;
}

static void server_setup(const uint8_t *img, uint32_t n, const script_t *sc, uint32_t seed,
                         uint32_t min_chunk, uint32_t max_chunk)
{
    free(g_srv.hdr);
    free(g_srv.body);
    memset(&g_srv, 0, sizeof(g_srv));
    char hdr[512];
    char size_line[64], crc_line[64];
    snprintf(size_line, sizeof(size_line), "FILE_SIZE:%u\n", n);
    snprintf(crc_line, sizeof(crc_line), "FILE_CRC:%08X\n", fw_crc32(0, img, n));
    snprintf(hdr, sizeof(hdr), "%s%s%sOTA_UPDATE\n",
             sc && sc->size_line ? sc->size_line : size_line,
             sc && sc->crc_line ? sc->crc_line : crc_line,
             sc && sc->extra ? sc->extra : "");
    g_srv.n_hdr = strlen(hdr);
    g_srv.hdr = malloc(g_srv.n_hdr);
    memcpy(g_srv.hdr, hdr, g_srv.n_hdr);
    const char *done = sc && sc->done ? sc->done : "OTA_DONE\n";
    g_srv.n_body = n + strlen(done);
    g_srv.body = malloc(g_srv.n_body);
    memcpy(g_srv.body, img, n);
    memcpy(g_srv.body + n, done, strlen(done));
    g_srv.rng = seed * 747796405u + 12345u;
    g_srv.min_chunk = min_chunk;
    g_srv.max_chunk = max_chunk;
}

static ota_session_t g_sess;
static ota_config_t g_cfg;

static ota_result_t run(void)
{
    static ota_env_t env;
    env = (ota_env_t){&k_tr, &k_flash, &k_layout, m_millis, m_log, 0, g_heap, sizeof(g_heap)};
    cfg_defaults(&g_cfg);
    g_cfg.flags = CFG_FLAG_UPDATE_REQUESTED;
    cfg_seal(&g_cfg);
    return ota_update(&env, &g_cfg, &g_sess);
}

/* ------------------------------------------------------------------ checks */
static char g_why[256];
#define CHECK(cond, ...) do { if (!(cond)) { snprintf(g_why, sizeof(g_why), __VA_ARGS__); return 0; } } while (0)

/* The record in force in the config log (-1: none). */
static int config_now(ota_config_t *c)
{
    uint32_t next_free = 0;
    memset(c, 0xFF, sizeof(*c));
    return ota_config_find(&k_flash, &k_layout, c, &next_free);
}

static int installed_ok(const uint8_t *img, uint32_t n, ota_result_t r)
{
    CHECK(r == OTA_INSTALLED, "result %d, nack %s, sent '%s'", r, g_sess.nack ? g_sess.nack : "-", g_srv.sent);
    CHECK(memcmp(fl(k_layout.app_addr), img, n) == 0, "app slot differs from the image");
    CHECK(strcmp(g_srv.sent, "REQ_FW\nOTA_READY\nACK\n") == 0, "board sent '%s'", g_srv.sent);
    ota_config_t c;
    CHECK(config_now(&c) >= 0, "no valid config record on flash");
    CHECK(c.app_size == n && c.app_crc == fw_crc32(0, img, n), "config app_size/app_crc wrong");
    CHECK((c.flags & CFG_FLAG_UPDATE_REQUESTED) == 0, "UPDATE_REQUESTED not cleared");
    return 1;
}

static int refused(const char *reason, ota_result_t r)
{
    char want[40];
    snprintf(want, sizeof(want), "NACK:%s\n", reason);
    CHECK(r != OTA_INSTALLED, "installed although a NACK:%s was expected", reason);
    CHECK(strstr(g_srv.sent, want) != NULL, "expected %s, board sent '%s'", want, g_srv.sent);
    return 1;
}

static int nothing_erased(void)
{
    CHECK(g_n_erased == 0, "%u sector(s) erased before the refusal", g_n_erased);
    return 1;
}

/* ------------------------------------------------------------------ tests */
static int install_once(uint32_t n, uint32_t seed, uint32_t cmin, uint32_t cmax)
{
    flash_reset();
    uint8_t *img = make_image(n, seed, 3);
    server_setup(img, n, NULL, seed, cmin, cmax);
    int ok = installed_ok(img, n, run());
    free(img);
    return ok;
}

static int t_random_segmentation(void)
{
    static const uint32_t sizes[] = {1, 2, 3, 4, 5, 8, 63, 64, 65, 1023, 1024, 1025, 4097, 16384, 70001};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        for (uint32_t seed = 1; seed <= 12; seed++) {
            uint32_t cmax = seed % 3 == 0 ? 16 : (seed % 3 == 1 ? 200 : 1024);
            if (!install_once(sizes[i], seed * 31 + (uint32_t)i, 1, cmax)) {
                char tmp[256];
                snprintf(tmp, sizeof(tmp), "size %u seed %u: %s", sizes[i], seed, g_why);
                strcpy(g_why, tmp);
                return 0;
            }
        }
    }
    return 1;
}

static int t_byte_by_byte(void) { return install_once(3001, 7, 1, 1); }

static int t_clean_chunks(void)
{
    /* One message per receive, data in 512-byte pieces: what the thread's code expects. */
    uint32_t n = 5000;
    flash_reset();
    uint8_t *img = make_image(n, 11, 1);
    server_setup(img, n, NULL, 1, 1, 1);
    static uint32_t plan[64];
    size_t k = 0;
    size_t sz = strlen("FILE_SIZE:5000\n");
    plan[k++] = (uint32_t)sz;
    plan[k++] = (uint32_t)strlen("FILE_CRC:00000000\n");
    plan[k++] = (uint32_t)strlen("OTA_UPDATE\n");
    for (uint32_t left = n; left > 0; left -= left > 512 ? 512 : left) {
        plan[k++] = left > 512 ? 512 : left;
    }
    plan[k++] = 9;
    g_srv.plan = plan;
    g_srv.n_plan = k;
    int ok = installed_ok(img, n, run());
    free(img);
    return ok;
}

static int t_full_chunks(void)
{
    /* Every data receive fills the 1024-byte buffer exactly. */
    uint32_t n = 16384;
    flash_reset();
    uint8_t *img = make_image(n, 12, 1);
    server_setup(img, n, NULL, 1, 1, 1);
    static uint32_t plan[64];
    size_t k = 0;
    plan[k++] = (uint32_t)strlen("FILE_SIZE:16384\n");
    plan[k++] = (uint32_t)strlen("FILE_CRC:00000000\n");
    plan[k++] = (uint32_t)strlen("OTA_UPDATE\n");
    plan[k++] = 1000; /* then full buffers at an unaligned scratch offset */
    for (uint32_t left = n - 1000u; left > 0; left -= left > 1024u ? 1024u : left) {
        plan[k++] = left > 1024u ? 1024u : left;
    }
    plan[k++] = 9;
    g_srv.plan = plan;
    g_srv.n_plan = k;
    int ok = installed_ok(img, n, run());
    free(img);
    return ok;
}

static int t_glued_stream(void)
{
    /* The server does not wait for OTA_READY: header, data and OTA_DONE in big chunks. */
    uint32_t n = 10000;
    flash_reset();
    uint8_t *img = make_image(n, 13, 1);
    server_setup(img, n, NULL, 5, 1024, 1024);
    g_srv.greedy = 1;
    int ok = installed_ok(img, n, run());
    free(img);
    return ok;
}

static int t_done_glued_to_data(void)
{
    /* The last data bytes and OTA_DONE arrive in the same receive. */
    uint32_t n = 3000;
    flash_reset();
    uint8_t *img = make_image(n, 14, 1);
    server_setup(img, n, NULL, 1, 1, 1);
    static uint32_t plan[] = {15, 18, 11, 1000, 1000, 1009};
    g_srv.plan = plan;
    g_srv.n_plan = 6;
    int ok = installed_ok(img, n, run());
    free(img);
    return ok;
}

static int t_large_300k(void) { return install_once(300u * 1024u, 21, 700, 1024); }
static int t_large_512k(void) { return install_once(512u * 1024u, 22, 900, 1024); }

static int t_exact_erase(void)
{
    /* the config log is appended to, never erased (it is far from full) */
    static const struct { uint32_t n; uint32_t want[4]; uint32_t count; } cases[] = {
        {16384, {0x08180000u, 0x08040000u}, 2},
        {300u * 1024u, {0x08180000u, 0x081C0000u, 0x08040000u, 0x08080000u}, 4},
    };
    for (size_t c = 0; c < 2; c++) {
        if (!install_once(cases[c].n, 30 + (uint32_t)c, 500, 1024)) {
            return 0;
        }
        /* erases: scratch..., app... */
        uint32_t expect_total = cases[c].count;
        CHECK(g_n_erased == expect_total, "size %u: %u erases, expected %u", cases[c].n, g_n_erased, expect_total);
        for (uint32_t i = 0; i < cases[c].count; i++) {
            CHECK(g_erased[i] == cases[c].want[i], "size %u: erase #%u at 0x%08x, expected 0x%08x",
                  cases[c].n, i, g_erased[i], cases[c].want[i]);
        }
    }
    return 1;
}

static int t_second_update(uint32_t n)
{
    flash_reset();
    uint8_t *a = make_image(n, 41, 1);
    server_setup(a, n, NULL, 3, 600, 1024);
    if (!installed_ok(a, n, run())) {
        free(a);
        return 0;
    }
    uint8_t *b = make_image(n, 42, 2);
    server_setup(b, n, NULL, 4, 600, 1024);
    int ok = installed_ok(b, n, run());
    free(a);
    free(b);
    return ok;
}
static int t_second_update_small(void) { return t_second_update(16384); }
static int t_second_update_large(void) { return t_second_update(300u * 1024u); }

/* Images at sector boundaries (and a byte either side, and 1 byte), each installed over a
   full 512 KiB image so every sector the new one needs holds old data until erased. */
static int t_boundary_sizes(void)
{
    static const uint32_t sizes[] = {256u * 1024u, 512u * 1024u, 256u * 1024u - 1u,
                                     256u * 1024u + 1u, 1u};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        uint32_t n = sizes[i];
        flash_reset();
        uint8_t *a = make_image(512u * 1024u, 60 + (uint32_t)i, 1);
        server_setup(a, 512u * 1024u, NULL, 5, 700, 1024);
        int ok = installed_ok(a, 512u * 1024u, run());
        free(a);
        if (!ok) {
            return 0;
        }
        uint8_t *b = make_image(n, 70 + (uint32_t)i, 2);
        server_setup(b, n, NULL, 6, 700, 1024);
        ok = installed_ok(b, n, run());
        free(b);
        if (!ok) {
            char why[sizeof(g_why)];
            snprintf(why, sizeof(why), "size %u: %s", n, g_why);
            memcpy(g_why, why, sizeof(g_why));
            return 0;
        }
    }
    return 1;
}

static int t_too_large(void)
{
    flash_reset();
    uint32_t n = 512u * 1024u + 1u;
    uint8_t *img = make_image(n, 50, 1);
    server_setup(img, n, NULL, 1, 64, 1024);
    ota_result_t r = run();
    free(img);
    return refused("too_large", r) && nothing_erased();
}

static int t_bad_sizes(void)
{
    static const char *const lines[] = {"FILE_SIZE:0\n", "FILE_SIZE:abc\n", "FILE_SIZE:-5\n",
                                        "FILE_SIZE:+5\n", "FILE_SIZE:12a\n", "FILE_SIZE:\n",
                                        "FILE_SIZE:99999999999\n", "FILE_SIZE: 10\n"};
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        flash_reset();
        uint8_t *img = make_image(100, 51, 1);
        script_t sc = {lines[i], "", NULL, NULL};
        server_setup(img, 100, &sc, 1, 1, 64);
        ota_result_t r = run();
        free(img);
        if (!refused("bad_size", r) || !nothing_erased()) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "line %.20s: %s", lines[i], g_why);
            strcpy(g_why, tmp);
            return 0;
        }
    }
    return 1;
}

static int t_missing_size(void)
{
    flash_reset();
    uint8_t *img = make_image(20000, 52, 1);
    script_t sc = {"", "", NULL, NULL};
    server_setup(img, 20000, &sc, 1, 500, 1024);
    ota_result_t r = run();
    free(img);
    return refused("bad_size", r) && nothing_erased();
}

static int t_protocol_errors(void)
{
    static const char *const extras[] = {
        "HELLO\n", "OTA_DONE\n", "FILE_SIZE:100\n", "FILE_CRC:1234\n", "FILE_CRC:1234567G\n",
        "FILE_SIZE:100\r\n",
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\n",
    };
    for (size_t i = 0; i < sizeof(extras) / sizeof(extras[0]); i++) {
        flash_reset();
        uint8_t *img = make_image(100, 53, 1);
        script_t sc = {NULL, "", extras[i], NULL};
        server_setup(img, 100, &sc, 1, 1, 64);
        ota_result_t r = run();
        free(img);
        if (!refused("protocol", r) || !nothing_erased()) {
            char tmp[256];
            snprintf(tmp, sizeof(tmp), "extra %.20s: %s", extras[i], g_why);
            strcpy(g_why, tmp);
            return 0;
        }
    }
    return 1;
}

static int t_crc_mismatch(void)
{
    flash_reset();
    uint8_t *img = make_image(5000, 54, 1);
    script_t sc = {NULL, "FILE_CRC:DEADBEEF\n", NULL, NULL};
    server_setup(img, 5000, &sc, 1, 100, 1024);
    memset(fl(k_layout.app_addr), 0x5A, 64); /* "old app" must survive */
    ota_result_t r = run();
    free(img);
    if (!refused("crc", r)) {
        return 0;
    }
    CHECK(fl(k_layout.app_addr)[0] == 0x5A, "app slot touched after a CRC NACK");
    return 1;
}

static int t_short_close(void)
{
    flash_reset();
    uint8_t *img = make_image(8000, 55, 1);
    server_setup(img, 8000, NULL, 1, 100, 1024);
    g_srv.close_at = 4000;
    ota_result_t r = run();
    free(img);
    CHECK(r == OTA_ERR_LINK, "result %d, expected link error", r);
    return refused("short", r);
}

static int t_timeout(void)
{
    flash_reset();
    uint8_t *img = make_image(8000, 56, 1);
    server_setup(img, 8000, NULL, 1, 100, 1024);
    g_srv.stall_at = 4000;
    uint32_t t0 = g_now;
    ota_result_t r = run();
    free(img);
    if (!refused("timeout", r)) {
        return 0;
    }
    CHECK(g_now - t0 >= OTA_RECV_TIMEOUT, "gave up after %u ms", g_now - t0);
    CHECK(g_now - t0 < OTA_RECV_TIMEOUT + 3000u, "waited %u ms", g_now - t0);
    return 1;
}

static int t_scratch_fault(void)
{
    flash_reset();
    uint8_t *img = make_image(8000, 57, 1);
    server_setup(img, 8000, NULL, 1, 100, 1024);
    g_fault_addr = k_layout.scratch_addr + 4096u;
    ota_result_t r = run();
    free(img);
    return refused("flash", r);
}

static int t_copy_fault(void)
{
    flash_reset();
    uint8_t *img = make_image(8000, 58, 1);
    server_setup(img, 8000, NULL, 1, 100, 1024);
    g_fault_addr = k_layout.app_addr + 2048u;
    ota_result_t r = run();
    free(img);
    CHECK(r == OTA_ERR_INSTALL, "a failed copy into the app slot was reported as %d", r);
    ota_config_t c;
    CHECK(config_now(&c) < 0, "config record written after a failed copy");
    return 1;
}

static int t_connect_refused(void)
{
    flash_reset();
    uint8_t *img = make_image(100, 59, 1);
    server_setup(img, 100, NULL, 1, 1, 64);
    g_srv.connect_rc = TR_ERR_REFUSED;
    ota_result_t r = run();
    free(img);
    CHECK(r == OTA_ERR_CONNECT, "result %d", r);
    CHECK(g_srv.n_sent == 0, "sent '%s' without a connection", g_srv.sent);
    return 1;
}

static int t_app_version(void)
{
    if (!install_once(2048, 60, 1, 1024)) {
        return 0;
    }
    ota_config_t c;
    (void)config_now(&c);
    CHECK(c.app_version == 3, "app_version %u, expected 3 (from the OTAH header)", c.app_version);
    return 1;
}

static int t_config_record(void)
{
    ota_config_t c;
    cfg_defaults(&c);
    CHECK(cfg_valid(&c), "defaults not valid");
    CHECK(sizeof(c) == 40, "record is %zu bytes", sizeof(c));
    CHECK(c.server_ip == 0xC0A8010Au && c.server_port == 5000 && c.transport == 0, "defaults wrong");
    uint8_t raw[40];
    memcpy(raw, &c, 40);
    CHECK(raw[0] == 'O' && raw[1] == 'T' && raw[2] == 'A' && raw[3] == 'C', "magic bytes wrong");
    CHECK(c.record_crc == fw_crc32(0, raw, 36), "record_crc is not the CRC of 36 bytes");
    c.app_size = 5;
    CHECK(!cfg_valid(&c), "modified record still valid");
    cfg_seal(&c);
    CHECK(cfg_valid(&c), "sealed record not valid");
    c.transport = 2;
    cfg_seal(&c);
    CHECK(!cfg_valid(&c), "transport 2 accepted");
    /* zlib check value */
    CHECK(fw_crc32(0, "123456789", 9) == 0xCBF43926u, "fw_crc32 check value wrong");
    /* slicing-by-4 against the bitwise definition: every start alignment, lengths around
       the word loop's edges, and a CRC continued across a split */
    static uint8_t buf[5003];
    for (unsigned i = 0; i < sizeof(buf); i++) {
        buf[i] = (uint8_t)(i * 131u + (i >> 7));
    }
    for (unsigned off = 0; off < 4; off++) {
        for (unsigned len = 0; len < 70; len++) {
            CHECK(fw_crc32(0x1234u, buf + off, len) == crc32_bitwise(0x1234u, buf + off, len),
                  "fw_crc32 differs from the bitwise CRC-32");
        }
    }
    uint32_t whole = fw_crc32(0, buf + 1, 5000);
    CHECK(whole == crc32_bitwise(0, buf + 1, 5000), "fw_crc32 of 5000 bytes wrong");
    CHECK(fw_crc32(fw_crc32(0, buf + 1, 1711), buf + 1712, 3289) == whole,
          "fw_crc32 continued across a split differs");
    return 1;
}

/* The config log: records appended slot after slot, never rewritten; a torn record is
   skipped; a full sector is erased and the log starts again at slot 0. */
static int t_config_log(void)
{
    flash_reset();
    static ota_env_t env;
    env = (ota_env_t){&k_tr, &k_flash, &k_layout, m_millis, m_log, 0, g_heap, sizeof(g_heap)};
    ota_config_t a, b, c;
    cfg_defaults(&a);
    a.app_size = 111;
    CHECK(ota_write_config(&env, &a) == 0, "first record not written");
    uint8_t slot0[CFG_SLOT_SIZE];
    memcpy(slot0, fl(k_layout.config_addr), sizeof(slot0));
    b = a;
    b.app_size = 222;
    CHECK(ota_write_config(&env, &b) == 0, "second record not written");
    CHECK(memcmp(slot0, fl(k_layout.config_addr), sizeof(slot0)) == 0, "slot 0 rewritten");
    CHECK(config_now(&c) == 1 && c.app_size == 222, "record in force: slot %d size %u", config_now(&c), c.app_size);
    /* a torn record (power cut after its first word) in slot 2: skipped, slot 1 in force */
    uint32_t magic = CFG_MAGIC;
    CHECK(m_program(k_layout.config_addr + 2u * CFG_SLOT_SIZE, &magic, 4) == 0, "tear");
    CHECK(config_now(&c) == 1 && c.app_size == 222, "torn slot 2 taken: slot %d", config_now(&c));
    b.app_size = 333;
    CHECK(ota_write_config(&env, &b) == 0, "third record not written");
    CHECK(config_now(&c) == 3 && c.app_size == 333, "after the torn slot: slot %d", config_now(&c));
    CHECK(g_n_erased == 0, "the config sector was erased");
    /* full: every slot used -> erase, slot 0 */
    for (uint32_t i = 4; i < 0x20000u / CFG_SLOT_SIZE; i++) {
        memcpy(fl(k_layout.config_addr + i * CFG_SLOT_SIZE), fl(k_layout.config_addr), sizeof(ota_config_t));
    }
    b.app_size = 444;
    CHECK(ota_write_config(&env, &b) == 0, "record after a full log not written");
    CHECK(g_n_erased == 1 && g_erased[0] == k_layout.config_addr, "full log not erased once");
    CHECK(config_now(&c) == 0 && c.app_size == 444, "after the erase: slot %d", config_now(&c));
    return 1;
}

/* The settings a record carries (transport, server) survive an update: the record the
   rig or a factory tool wrote stays byte for byte, the new one keeps them. */
static int t_settings_kept(void)
{
    flash_reset();
    static ota_env_t env;
    env = (ota_env_t){&k_tr, &k_flash, &k_layout, m_millis, m_log, 0, g_heap, sizeof(g_heap)};
    ota_config_t mine;
    cfg_defaults(&mine);
    mine.transport = CFG_TRANSPORT_WIFI; /* the fake server answers the default address only */
    mine.flags = CFG_FLAG_UPDATE_REQUESTED;
    cfg_seal(&mine);
    CHECK(m_program(k_layout.config_addr, &mine, sizeof(mine)) == 0, "setup");
    uint8_t slot0[CFG_SLOT_SIZE];
    memcpy(slot0, fl(k_layout.config_addr), sizeof(slot0));
    uint32_t next_free = 0;
    CHECK(ota_config_find(&k_flash, &k_layout, &g_cfg, &next_free) == 0, "setup record not found");
    uint8_t *img = make_image(9000, 77, 1);
    server_setup(img, 9000, NULL, 9, 100, 1024);
    ota_result_t r = ota_update(&env, &g_cfg, &g_sess);
    free(img);
    CHECK(r == OTA_INSTALLED, "result %d", r);
    CHECK(memcmp(slot0, fl(k_layout.config_addr), sizeof(slot0)) == 0,
          "the record with the settings was erased or rewritten");
    ota_config_t c;
    CHECK(config_now(&c) == 1, "the new record is not appended in slot 1");
    CHECK(c.transport == CFG_TRANSPORT_WIFI && c.server_ip == CFG_DEFAULT_SERVER_IP &&
              c.server_port == CFG_DEFAULT_SERVER_PORT,
          "settings lost: transport %u server %08x:%u", c.transport, c.server_ip, c.server_port);
    return 1;
}

typedef struct {
    const char *name;
    int (*fn)(void);
} test_t;

static const test_t k_tests[] = {
    {"config_record", t_config_record},
    {"random_segmentation", t_random_segmentation},
    {"byte_by_byte", t_byte_by_byte},
    {"clean_chunks", t_clean_chunks},
    {"full_chunks", t_full_chunks},
    {"glued_stream", t_glued_stream},
    {"done_glued_to_data", t_done_glued_to_data},
    {"large_300k", t_large_300k},
    {"large_512k", t_large_512k},
    {"exact_erase", t_exact_erase},
    {"boundary_sizes", t_boundary_sizes},
    {"second_update_small", t_second_update_small},
    {"second_update_large", t_second_update_large},
    {"too_large", t_too_large},
    {"bad_sizes", t_bad_sizes},
    {"missing_size", t_missing_size},
    {"protocol_errors", t_protocol_errors},
    {"crc_mismatch", t_crc_mismatch},
    {"short_close", t_short_close},
    {"timeout", t_timeout},
    {"scratch_fault", t_scratch_fault},
    {"copy_fault", t_copy_fault},
    {"connect_refused", t_connect_refused},
    {"app_version", t_app_version},
    {"config_log", t_config_log},
    {"settings_kept", t_settings_kept},
};

int main(int argc, char **argv)
{
    int pass = 0, failed = 0;
    g_verbose = getenv("OTA_TEST_VERBOSE") != NULL;
    for (size_t i = 0; i < sizeof(k_tests) / sizeof(k_tests[0]); i++) {
        int selected = argc <= 1;
        for (int a = 1; a < argc; a++) {
            selected |= strcmp(argv[a], k_tests[i].name) == 0;
        }
        if (!selected) {
            continue;
        }
        g_why[0] = '\0';
        if (k_tests[i].fn()) {
            printf("PASS %s\n", k_tests[i].name);
            pass++;
        } else {
            printf("FAIL %s: %s\n", k_tests[i].name, g_why);
            failed++;
        }
        fflush(stdout);
    }
    printf("SUMMARY variant=%s pass=%d fail=%d\n", BL_VARIANT_NAME, pass, failed);
    free(g_srv.hdr);
    free(g_srv.body);
    return failed ? 1 : 0;
}
