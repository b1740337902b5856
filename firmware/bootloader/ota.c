/*
 * ota.c - portable OTA protocol and install logic (see ota.h, docs/protocol.md).
 */
#include "ota.h"

#include <stddef.h>

#include "app_header.h"
#include "fwlib.h"

#define LOG(...) s->env->log(__VA_ARGS__)

/* ------------------------------------------------------------------ helpers */
uint32_t ota_app_crc_area(const ota_layout_t *l)
{
#ifdef BL_VARIANT_CRC_WRONG_AREA
    /* Thread: "uint32_t crc_app = Compute_CRC32_For_Flash(FLASH_SECTOR_10_ADDR,
       ota_received_bytes);" - the CRC "of the app" is taken over the scratch area. */
    return l->scratch_addr;
#else
    return l->app_addr;
#endif
}

int ota_sectors_for(const ota_layout_t *l, uint32_t addr, uint32_t len, uint32_t *first,
                    uint32_t *count)
{
    uint32_t end = addr + len;
    uint32_t n = 0;
    for (uint32_t i = 0; i < l->n_sectors; i++) {
        uint32_t s0 = l->sectors[i].addr;
        uint32_t s1 = s0 + l->sectors[i].size;
        if (s1 > addr && s0 < end) {
            if (n == 0) {
                *first = i;
            }
            n++;
        }
    }
#ifdef BL_VARIANT_SECTOR_COUNT_ON_BOUNDARY
    if (n > 0) {
        /* Two idioms mixed: "(len - 1) / size" (the index of the sector holding the last
           byte) plus "len % size != 0" (one more for a partial last sector). Right for
           every length but a whole number of sectors, where it counts one sector too few:
           none for an image of exactly 256 KiB, one for 512 KiB. */
        uint32_t size = l->sectors[*first].size;
        uint32_t k = (len - 1u) / size + (len % size != 0u ? 1u : 0u);
        n = k < n ? k : n;
        *count = n;
        return 0;
    }
#endif
    *count = n;
    return n > 0 ? 0 : -1;
}

static int erase_range(ota_session_t *s, const char *what, uint32_t addr, uint32_t len,
                       uint32_t max_sectors)
{
    const ota_layout_t *l = s->env->layout;
    uint32_t first = 0;
    uint32_t count = 0;
    if (ota_sectors_for(l, addr, len, &first, &count) != 0) {
        return -1;
    }
    if (count > max_sectors) {
        count = max_sectors;
    }
    LOG("OTA: erasing %s: %lu sector(s) from 0x%08lx\n", what, (unsigned long)count,
        (unsigned long)l->sectors[first].addr);
    for (uint32_t i = first; i < first + count; i++) {
        if (s->env->flash->erase(l->sectors[i].addr, l->sectors[i].size) != 0) {
            LOG("OTA: erase of sector at 0x%08lx failed\n", (unsigned long)l->sectors[i].addr);
            return -1;
        }
    }
    return 0;
}

static void send_str(ota_session_t *s, const char *msg)
{
    const transport_t *tr = s->env->tr;
    (void)tr->send(msg, (uint32_t)strlen(msg), 2000);
}

static void fail(ota_session_t *s, const char *reason)
{
    char msg[32];
    (void)fw_snprintf(msg, sizeof(msg), "NACK:%s\n", reason);
    LOG("OTA: NACK:%s\n", reason);
    send_str(s, msg);
    s->nack = reason;
    s->state = OTA_ST_FAILED;
}

/* Strict decimal: 1..10 digits, value fits 32 bits. */
__attribute__((unused)) static int parse_dec(const char *p, uint32_t *out)
{
    uint64_t v = 0;
    uint32_t n = 0;
    for (; p[n] != '\0'; n++) {
        if (p[n] < '0' || p[n] > '9' || n >= 10) {
            return -1;
        }
        v = v * 10u + (uint32_t)(p[n] - '0');
    }
    if (n == 0 || v > 0xFFFFFFFFu) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_hex8(const char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (uint32_t i = 0; i < 8; i++) {
        char c = p[i];
        uint32_t d;
        if (c >= '0' && c <= '9') {
            d = (uint32_t)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (uint32_t)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (uint32_t)(c - 'A' + 10);
        } else {
            return -1;
        }
        v = (v << 4) | d;
    }
    if (p[8] != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

/* atoi() as in the thread: leading digits, anything else gives 0. */
__attribute__((unused)) static uint32_t thread_atoi(const char *p)
{
    uint32_t v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10u + (uint32_t)(*p++ - '0');
    }
    return v;
}

#ifdef BL_VARIANT_MALLOC_WHOLE_IMAGE
/* The thread's malloc(OTA_MAX_SIZE): a bump allocator over the RAM left after .bss. */
static uint8_t *bump_malloc(ota_session_t *s, uint32_t size)
{
    if (s->env->heap == NULL || size > s->env->heap_size) {
        return NULL;
    }
    return s->env->heap;
}
#endif

/* ------------------------------------------------------------------ receive side */
void ota_session_init(ota_session_t *s, const ota_env_t *env)
{
    memset(s, 0, sizeof(*s));
    s->env = env;
    s->state = OTA_ST_HEADER;
    s->wr_addr = env->layout->scratch_addr;
}

#ifdef BL_VARIANT_ERASES_SETTINGS_AT_START
static void erase_settings(ota_session_t *s);
#endif

static void start_update(ota_session_t *s)
{
    const ota_layout_t *l = s->env->layout;
#ifndef BL_VARIANT_SIZE_UNPARSED
    if (!s->have_size) {
        fail(s, "bad_size");
        return;
    }
#endif
#ifdef BL_VARIANT_SIZE_CHECK_AFTER_ERASE
    /* "Prepare flash on OTA_UPDATE", then check the size: the scratch area is erased (up to
       its end) before an image that does not fit is refused. */
    (void)erase_range(s, "scratch", l->scratch_addr, s->size, 0xFFFFFFFFu);
#endif
    if (s->size > l->scratch_size || s->size > l->app_size) {
        LOG("OTA: image of %lu bytes is larger than the scratch area (%lu)\n",
            (unsigned long)s->size, (unsigned long)l->scratch_size);
        fail(s, "too_large");
        return;
    }
    LOG("OTA: OTA_UPDATE, %lu bytes\n", (unsigned long)s->size);
#ifdef BL_VARIANT_ERASES_SETTINGS_AT_START
    erase_settings(s);
#endif
#ifdef BL_VARIANT_MALLOC_WHOLE_IMAGE
    /* Thread: "ota_ram_buffer = (uint8_t *)malloc(OTA_MAX_SIZE); if (ota_ram_buffer == NULL)
       { printf("OTA buffer allocation failed!"); return; }" - no NACK, nothing more. */
    s->ram_image = bump_malloc(s, s->size);
    if (s->ram_image == NULL) {
        LOG("OTA: OTA buffer allocation failed! (%lu bytes)\n", (unsigned long)s->size);
        s->state = OTA_ST_STUCK;
        return;
    }
    LOG("OTA: OTA buffer allocated at %p\n", (void *)s->ram_image);
#else
    uint32_t erase_len = s->size;
#ifdef BL_VARIANT_SIZE_UNPARSED
    if (erase_len == 0) {
        erase_len = l->scratch_size; /* size unknown: the thread erased a fixed OTA area */
    }
#endif
    if (erase_range(s, "scratch", l->scratch_addr, erase_len, 0xFFFFFFFFu) != 0) {
        fail(s, "flash");
        return;
    }
#endif
    s->received = 0;
    s->sw_crc = 0;
    s->wr_addr = l->scratch_addr;
    s->state = OTA_ST_DATA;
    send_str(s, "OTA_READY\n");
    LOG("OTA: OTA_READY, receiving\n");
}

static int line_is(const char *line, const char *word)
{
    size_t n = strlen(word);
    return strncmp(line, word, n) == 0 && line[n] == '\0';
}

/* One complete control line (without '\n') while waiting for the header. */
static void header_line(ota_session_t *s, const char *line)
{
    if (strncmp(line, "FILE_SIZE:", 10) == 0) {
        uint32_t v = 0;
#ifdef BL_VARIANT_SIZE_UNPARSED
        /* Thread: "expected_Bytes = (uint32_t)atoi(msg + 10);" - garbage parses as 0 and
           nobody checks it. */
        v = thread_atoi(line + 10);
#else
        if (s->have_size) {
            fail(s, "protocol");
            return;
        }
        if (parse_dec(line + 10, &v) != 0 || v == 0) {
            fail(s, "bad_size");
            return;
        }
#endif
        s->size = v;
        s->have_size = 1;
        LOG("OTA: FILE_SIZE %lu\n", (unsigned long)v);
        return;
    }
    if (strncmp(line, "FILE_CRC:", 9) == 0) {
        uint32_t v = 0;
        if (s->have_crc || parse_hex8(line + 9, &v) != 0) {
            fail(s, "protocol");
            return;
        }
        s->file_crc = v;
        s->have_crc = 1;
        LOG("OTA: FILE_CRC %08lx\n", (unsigned long)v);
        return;
    }
    if (line_is(line, "OTA_UPDATE")) {
        start_update(s);
        return;
    }
    LOG("OTA: unexpected message '%s'\n", line);
    fail(s, "protocol");
}

/* Program whole words from the image stream into scratch (or RAM for the malloc variant). */
static int store(ota_session_t *s, const uint8_t *data, uint32_t len)
{
    const ota_layout_t *l = s->env->layout;
    if (s->wr_addr + s->tail_len + len > l->scratch_addr + l->scratch_size) {
        return -1;
    }
#ifdef BL_VARIANT_MALLOC_WHOLE_IMAGE
    if (s->received + len > s->size) {
        return -1;
    }
    memcpy(s->ram_image + s->received, data, len);
    return 0;
#else
    while (len > 0 && (s->tail_len > 0 || len < 4)) {
        s->tail[s->tail_len++] = *data++;
        len--;
        if (s->tail_len == 4) {
            if (s->env->flash->program(s->wr_addr, s->tail, 4) != 0) {
                return -1;
            }
            s->wr_addr += 4;
            s->tail_len = 0;
        }
    }
    uint32_t words = len & ~3u;
    if (words > 0) {
        if (s->env->flash->program(s->wr_addr, data, words) != 0) {
            return -1;
        }
        s->wr_addr += words;
        data += words;
        len -= words;
    }
    while (len > 0) {
        s->tail[s->tail_len++] = *data++;
        len--;
    }
    return 0;
#endif
}

static void data_bytes(ota_session_t *s, const uint8_t *data, uint32_t len)
{
    if (store(s, data, len) != 0) {
        LOG("OTA: programming scratch at 0x%08lx failed\n", (unsigned long)s->wr_addr);
        fail(s, "flash");
        return;
    }
    s->sw_crc = fw_crc32(s->sw_crc, data, len);
    s->received += len;
}

/* OTA_DONE seen after all data: flush the tail, verify scratch, ACK. */
static void finish_data(ota_session_t *s)
{
    const ota_layout_t *l = s->env->layout;
    const ota_flash_t *fl = s->env->flash;
#ifdef BL_VARIANT_SIZE_UNPARSED
    if (0) { /* the thread never compares what it got with what was announced */
#else
    if (s->received != s->size) {
#endif
        LOG("OTA: OTA_DONE after %lu of %lu bytes\n", (unsigned long)s->received,
            (unsigned long)s->size);
        fail(s, "short");
        return;
    }
    uint32_t n = s->received;
#ifdef BL_VARIANT_MALLOC_WHOLE_IMAGE
    /* Thread: the whole image sits in RAM; only now scratch is erased and written. */
    if (erase_range(s, "scratch", l->scratch_addr, n, 0xFFFFFFFFu) != 0 ||
        fl->program(l->scratch_addr, s->ram_image, n & ~3u) != 0) {
        fail(s, "flash");
        return;
    }
    s->wr_addr = l->scratch_addr + (n & ~3u);
    s->tail_len = n & 3u;
    memcpy(s->tail, s->ram_image + (n & ~3u), s->tail_len);
#endif
    if (s->tail_len > 0) {
        uint8_t word[4] = {0xFF, 0xFF, 0xFF, 0xFF};
        memcpy(word, s->tail, s->tail_len);
        if (fl->program(s->wr_addr, word, 4) != 0) {
            fail(s, "flash");
            return;
        }
        s->wr_addr += 4;
        s->tail_len = 0;
    }
    LOG("OTA: OTA_DONE, %lu bytes received, CRC %08lx\n", (unsigned long)n,
        (unsigned long)s->sw_crc);
    if (s->have_crc && s->sw_crc != s->file_crc) {
        LOG("OTA: CRC mismatch: received %08lx, FILE_CRC %08lx\n", (unsigned long)s->sw_crc,
            (unsigned long)s->file_crc);
        fail(s, "crc");
        return;
    }
    uint32_t scratch_crc = fl->crc32(l->scratch_addr, n);
    if (scratch_crc != s->sw_crc) {
        LOG("OTA: scratch verify failed: CRC unit %08lx, stream %08lx\n",
            (unsigned long)scratch_crc, (unsigned long)s->sw_crc);
        fail(s, "flash");
        return;
    }
    LOG("OTA: scratch CRC %08lx OK\n", (unsigned long)scratch_crc);
    s->size = n;
    send_str(s, "ACK\n");
    LOG("OTA: ACK\n");
    s->state = OTA_ST_FINISHED;
}

__attribute__((unused)) static void feed_line_byte(ota_session_t *s, uint8_t c)
{
    if (c == '\n') {
        s->line[s->line_len] = '\0';
        s->line_len = 0;
        if (s->state == OTA_ST_HEADER) {
            header_line(s, s->line);
        } else if (line_is(s->line, "OTA_DONE")) {
            finish_data(s);
        } else {
            LOG("OTA: expected OTA_DONE, got '%s'\n", s->line);
            fail(s, "protocol");
        }
        return;
    }
    if (c == '\0' || c == '\r' || s->line_len >= OTA_LINE_MAX - 1u) {
        LOG("OTA: malformed or over-long control line\n");
        fail(s, "protocol");
        return;
    }
    s->line[s->line_len++] = (char)c;
}

#ifdef BL_VARIANT_TOKEN_AT_CHUNK_START
/* Thread: each receive buffer is one message, matched with
   "if (strncmp(msg, "FILE_SIZE:", 10) == 0) ... else if (strncmp(msg, "OTA_DONE", 8) == 0)
   ... else if (ota_in_progress) { memcpy(...) }" - a token not at the start of a chunk
   is never seen, and a token glued to data is taken as data. */
static int feed_chunk_start(ota_session_t *s, const uint8_t *data, uint32_t len)
{
    char msg[OTA_LINE_MAX];
    uint32_t n = len < OTA_LINE_MAX - 1u ? len : OTA_LINE_MAX - 1u;
    memcpy(msg, data, n);
    msg[n] = '\0';
    for (uint32_t i = 0; i < n; i++) {
        if (msg[i] == '\n') {
            msg[i] = '\0';
            break;
        }
    }
    if (s->state == OTA_ST_HEADER) {
        if (strncmp(msg, "FILE_SIZE:", 10) == 0) {
            s->size = thread_atoi(msg + 10);
            s->have_size = s->size != 0;
            LOG("OTA: FILE_SIZE %lu\n", (unsigned long)s->size);
        } else if (strncmp(msg, "FILE_CRC:", 9) == 0) {
            s->have_crc = parse_hex8(msg + 9, &s->file_crc) == 0;
        } else if (strncmp(msg, "OTA_UPDATE", 10) == 0) {
            start_update(s);
        }
        return s->state; /* the rest of the chunk is lost */
    }
    if (s->state == OTA_ST_DATA) {
        if (len >= 8 && strncmp(msg, "OTA_DONE", 8) == 0) {
            finish_data(s);
        } else {
            data_bytes(s, data, len);
        }
    }
    return s->state;
}
#endif

int ota_feed(ota_session_t *s, const uint8_t *data, uint32_t len)
{
#ifdef BL_VARIANT_TOKEN_AT_CHUNK_START
    return feed_chunk_start(s, data, len);
#else
    while (len > 0 && s->state != OTA_ST_FAILED && s->state != OTA_ST_FINISHED) {
        if (s->state == OTA_ST_STUCK) {
            return s->state; /* malloc variant after a failed allocation: ignore everything */
        }
        if (s->state == OTA_ST_DATA) {
#ifdef BL_VARIANT_SIZE_UNPARSED
            /* Thread: "if (ota_received_bytes >= expected_Bytes) { ... send(sock, "ACK") }"
               checked after appending the whole chunk; with FILE_SIZE never parsed,
               expected is 0 and the first chunk completes the "image". */
            data_bytes(s, data, len);
            if (s->state == OTA_ST_DATA && s->received >= s->size) {
                finish_data(s);
            }
            return s->state;
#else
            uint32_t take = s->size - s->received;
            if (take > len) {
                take = len;
            }
            data_bytes(s, data, take);
            data += take;
            len -= take;
            if (s->state == OTA_ST_DATA && s->received == s->size) {
                s->state = OTA_ST_DONE_WAIT;
            }
            continue;
#endif
        }
        feed_line_byte(s, *data++);
        len--;
    }
    return s->state;
#endif
}

/* ------------------------------------------------------------------ config log */
static uint32_t config_slots(const ota_layout_t *l, uint32_t *sector)
{
    uint32_t first = 0;
    uint32_t count = 0;
    if (ota_sectors_for(l, l->config_addr, sizeof(ota_config_t), &first, &count) != 0) {
        return 0;
    }
    *sector = first;
    return (l->sectors[first].addr + l->sectors[first].size - l->config_addr) / CFG_SLOT_SIZE;
}

static int slot_erased(const uint8_t *slot)
{
    for (uint32_t i = 0; i < CFG_SLOT_SIZE; i++) {
        if (slot[i] != 0xFFu) {
            return 0;
        }
    }
    return 1;
}

int ota_config_find(const ota_flash_t *fl, const ota_layout_t *l, ota_config_t *cfg,
                    uint32_t *next_free)
{
    uint32_t sector = 0;
    uint32_t n = config_slots(l, &sector);
    int found = -1;
    uint32_t i = 0;
    for (; i < n; i++) {
        uint8_t slot[CFG_SLOT_SIZE];
        fl->read(l->config_addr + i * CFG_SLOT_SIZE, slot, sizeof(slot));
        if (slot_erased(slot)) {
            break;
        }
        ota_config_t c;
        memcpy(&c, slot, sizeof(c));
        if (cfg_valid(&c)) { /* a torn record (power cut while it was written) is skipped */
            *cfg = c;
            found = (int)i;
        }
    }
    *next_free = i;
    return found;
}

int ota_write_config(const ota_env_t *env, ota_config_t *cfg)
{
    const ota_layout_t *l = env->layout;
    uint32_t sector = 0;
    uint32_t n = config_slots(l, &sector);
    uint32_t next = 0;
    ota_config_t current;
    if (n == 0) {
        return -1;
    }
    cfg_seal(cfg);
    (void)ota_config_find(env->flash, l, &current, &next);
    if (next >= n) { /* every slot used: start the log again (the one unsafe moment) */
        if (env->flash->erase(l->sectors[sector].addr, l->sectors[sector].size) != 0) {
            return -1;
        }
        next = 0;
    }
    return env->flash->program(l->config_addr + next * CFG_SLOT_SIZE, cfg, sizeof(*cfg)) != 0 ? -1
                                                                                              : 0;
}

#ifdef BL_VARIANT_ERASES_SETTINGS_AT_START
/* "Clear the update flag first, so a failed update does not loop": the config sector is
   erased when the update starts and the record written again only after the install. A
   power cut in between leaves no record at all: the settings (transport, server) are gone
   and the bootloader falls back to its defaults. */
static void erase_settings(ota_session_t *s)
{
    const ota_layout_t *l = s->env->layout;
    uint32_t sector = 0;
    if (config_slots(l, &sector) != 0) {
        LOG("OTA: clearing the update request (config sector erased)\n");
        (void)s->env->flash->erase(l->sectors[sector].addr, l->sectors[sector].size);
    }
}
#endif

/* ------------------------------------------------------------------ install */

ota_result_t ota_install(ota_session_t *s, ota_config_t *cfg)
{
    const ota_layout_t *l = s->env->layout;
    const ota_flash_t *fl = s->env->flash;
    uint32_t n = s->size;
    uint32_t padded = (n + 3u) & ~3u;

#if defined(BL_VARIANT_NO_APP_ERASE)
    /* Thread: "// EraseSectors5and6();" - commented out: the copy programs over the old
       app, so only the first update (onto erased flash) works. */
    LOG("OTA: (app sectors not erased)\n");
#elif defined(BL_VARIANT_ERASE_FIRST_SECTOR_ONLY)
    /* Thread: "if it exceeds 256KB, it cannot jump" - only the first app sector (S5,
       256 KiB) is erased before the copy. */
    if (erase_range(s, "app", l->app_addr, padded, 1) != 0) {
        return OTA_ERR_INSTALL;
    }
#else
    if (erase_range(s, "app", l->app_addr, padded, 0xFFFFFFFFu) != 0) {
        return OTA_ERR_INSTALL;
    }
#endif
    LOG("OTA: copying %lu bytes 0x%08lx -> 0x%08lx\n", (unsigned long)n,
        (unsigned long)l->scratch_addr, (unsigned long)l->app_addr);
    uint32_t buf[OTA_COPY_CHUNK / 4u];
    uint32_t copy_end = padded;
#ifdef BL_VARIANT_RECORD_BEFORE_LAST_WORD
    /* "Write the boot record while the last chunk is still in the buffer": the record
       saying the new app is installed goes to flash before the copy's last word, and the
       boot check trusts the record (no CRC at boot). A power cut at exactly that one
       program leaves a recorded app without its last word, which boots unverified. */
    copy_end = padded - 4u;
#endif
    for (uint32_t off = 0; off < copy_end; off += OTA_COPY_CHUNK) {
        uint32_t k = copy_end - off < OTA_COPY_CHUNK ? copy_end - off : OTA_COPY_CHUNK;
        fl->read(l->scratch_addr + off, buf, k);
        if (fl->program(l->app_addr + off, buf, k) != 0) {
            LOG("OTA: programming app at 0x%08lx failed\n", (unsigned long)(l->app_addr + off));
#ifndef BL_VARIANT_CRC_WRONG_AREA
            return OTA_ERR_INSTALL;
#endif
        }
    }
#ifdef BL_VARIANT_RECORD_BEFORE_LAST_WORD
    {
        ota_config_t early = *cfg;
        early.flags &= ~CFG_FLAG_UPDATE_REQUESTED;
        early.app_size = n;
        early.app_crc = s->sw_crc;
        if (ota_write_config(s->env, &early) != 0) {
            return OTA_ERR_INSTALL;
        }
        fl->read(l->scratch_addr + copy_end, buf, 4u);
        if (fl->program(l->app_addr + copy_end, buf, 4u) != 0) {
            return OTA_ERR_INSTALL;
        }
        *cfg = early;
        LOG("OTA: config written before the last word (variant): app %lu bytes\n",
            (unsigned long)n);
    }
#endif
    uint32_t crc = fl->crc32(ota_app_crc_area(l), n);
    if (crc != s->sw_crc) {
        LOG("OTA: copy verify failed: app CRC %08lx, expected %08lx\n", (unsigned long)crc,
            (unsigned long)s->sw_crc);
        return OTA_ERR_INSTALL;
    }
    LOG("OTA: copy verified, CRC %08lx\n", (unsigned long)crc);

    app_header_t hdr;
    uint32_t version = 0;
    if (n >= APP_HEADER_OFFSET + sizeof(hdr)) {
        fl->read(l->app_addr + APP_HEADER_OFFSET, &hdr, sizeof(hdr));
        if (hdr.magic == APP_HEADER_MAGIC) {
            version = hdr.app_version;
        }
    }
    cfg->flags &= ~CFG_FLAG_UPDATE_REQUESTED;
    cfg->app_size = n;
    cfg->app_crc = s->sw_crc;
    cfg->app_version = version;
#ifndef BL_VARIANT_RECORD_BEFORE_LAST_WORD
    if (ota_write_config(s->env, cfg) != 0) {
        LOG("OTA: writing the config record failed\n");
        return OTA_ERR_INSTALL;
    }
#endif
    LOG("OTA: config written: app v%lu, %lu bytes, CRC %08lx\n", (unsigned long)version,
        (unsigned long)n, (unsigned long)s->sw_crc);
    return OTA_INSTALLED;
}

/* ------------------------------------------------------------------ session */
ota_result_t ota_update(const ota_env_t *env, ota_config_t *cfg, ota_session_t *s)
{
    const transport_t *tr = env->tr;
    uint32_t limit = env->recv_timeout_ms != 0 ? env->recv_timeout_ms : OTA_RECV_TIMEOUT;
    ota_session_init(s, env);

    int rc = tr->connect(cfg->server_ip, (uint16_t)cfg->server_port, 5000);
    if (rc != TR_OK) {
        env->log("OTA: connect failed (%d)\n", rc);
        return OTA_ERR_CONNECT;
    }
    env->log("OTA: connected, REQ_FW\n");
    send_str(s, "REQ_FW\n");

    uint32_t last = env->millis();
    while (s->state != OTA_ST_FAILED && s->state != OTA_ST_FINISHED) {
        uint32_t idle = env->millis() - last;
        if (idle >= limit) {
            env->log("OTA: nothing received for %lu ms\n", (unsigned long)idle);
            fail(s, "timeout");
            break;
        }
        uint32_t wait = limit - idle < 1000u ? limit - idle : 1000u;
        int n = tr->recv(s->rx, sizeof(s->rx), wait);
        if (n > 0) {
#ifdef BL_VARIANT_NUL_PAST_BUFFER
            /* Thread: "msg[pstrRecv->s16BufferSize] = '\0';" on a buffer of exactly the
               receive size: a full chunk writes the NUL one byte past ota_buf, into what
               follows it in RAM (here: the scratch write address). */
            uint8_t *msg = s->rx;
            msg[n] = '\0';
#endif
            last = env->millis();
            (void)ota_feed(s, s->rx, (uint32_t)n);
        } else if (n == 0) {
            env->log("OTA: server closed the connection\n");
            if (s->state == OTA_ST_DATA || s->state == OTA_ST_DONE_WAIT) {
                fail(s, "short");
            }
            tr->close();
            return OTA_ERR_LINK;
        } else if (n != TR_ERR_TIMEOUT) {
            env->log("OTA: receive error %d\n", n);
            tr->close();
            return OTA_ERR_LINK;
        }
    }
    tr->close();
    if (s->state != OTA_ST_FINISHED) {
        return OTA_ERR_REFUSED;
    }
    return ota_install(s, cfg);
}
