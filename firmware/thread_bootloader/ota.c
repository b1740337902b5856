/*
 * ota.c - one update with the forum thread's protocol, over Ethernet:
 *
 *   board: REQ_FW            server: FILE_SIZE:<n>   (its own segment)
 *                            server: OTA_UPDATE      (its own segment, a pause later)
 *   board: OTA_READY         server: n data bytes
 *   board: ACK               (after the n-th byte) - or NACK at any point
 *
 * No terminators anywhere, no CRC from the server. The thread's socket_cb took each
 * receive as one message ("if (strncmp(msg, "FILE_SIZE:", 10) == 0) ..."), which breaks as
 * soon as TCP glues or splits them; this one parses the byte stream: FILE_SIZE's digits end
 * at the first byte that is not a digit (OTA_UPDATE's 'O'). The data goes straight into the
 * scratch sectors (not a malloc'ed copy of the whole image), the board counts it, checks
 * the CRC of what it programmed against the CRC of what it received, ACKs, then copies
 * scratch -> app (erasing the app sectors first) and writes the boot record.
 *
 * Build flags (one of the thread's bugs each, firmware/thread_bootloader/thread.mk):
 *   TB_VARIANT_CHUNK_START  each receive is one message, as in the thread's socket_cb
 *   TB_VARIANT_NO_APP_ERASE the copy programs over the old app ("// EraseSectors5and6();")
 */
#include "board.h"
#include "fwlib.h"
#include "stm32f767.h"
#include "tb.h"
#include "transport.h"

#define RX_TIMEOUT_MS 10000u
#define CONNECT_TRIES 3u

enum { HEADER, DATA, DONE, FAILED };

typedef struct {
    int state;
    uint8_t hdr[40];   /* control bytes not parsed yet */
    uint32_t hdr_len;
    int have_size;
    uint32_t size;     /* FILE_SIZE */
    uint32_t received; /* data bytes counted */
    uint32_t crc;      /* of the data received */
    uint8_t word[4];   /* bytes waiting for a whole flash word */
    uint32_t word_len;
    uint32_t wr;       /* next scratch address */
} tb_session_t;

static tb_session_t s_s;
static uint8_t s_rx[1024]; /* the thread's CHUNK_SIZE */

static void send_word(const char *w)
{
    (void)transport_eth.send(w, (uint32_t)strlen(w), 2000);
}

static void refuse(tb_session_t *s, const char *why)
{
    board_printf("TB: NACK (%s)\n", why);
    send_word("NACK");
    s->state = FAILED;
}

/* OTA_UPDATE: check the size before anything is erased, erase the scratch it needs. */
static void start_update(tb_session_t *s)
{
    if (!s->have_size || s->size < 8u) {
        refuse(s, "no usable FILE_SIZE");
        return;
    }
    if (s->size > TB_SCRATCH_SIZE || s->size > TB_APP_SIZE) {
        refuse(s, "image larger than the app slot");
        return;
    }
    board_printf("TB: OTA update start, %lu bytes\n", (unsigned long)s->size);
    if (tb_flash_erase(TB_SCRATCH_ADDR, s->size) != 0) {
        refuse(s, "scratch erase failed");
        return;
    }
    s->received = 0;
    s->crc = 0;
    s->wr = TB_SCRATCH_ADDR;
    s->word_len = 0;
    s->state = DATA;
    send_word("OTA_READY");
}

static int program_word(tb_session_t *s)
{
    int rc = tb_flash_program(s->wr, s->word, 4);
    s->wr += 4;
    s->word_len = 0;
    return rc;
}

static void data_bytes(tb_session_t *s, const uint8_t *p, uint32_t n)
{
    uint32_t take = s->size - s->received < n ? s->size - s->received : n;
    s->crc = fw_crc32(s->crc, p, take);
    for (uint32_t i = 0; i < take; i++) {
        s->word[s->word_len++] = p[i];
        if (s->word_len == 4 && program_word(s) != 0) {
            refuse(s, "programming the scratch failed");
            return;
        }
    }
    s->received += take;
    if (s->received < s->size) {
        return;
    }
    if (s->word_len > 0) { /* the last partial word, padded with erased bytes */
        for (uint32_t i = s->word_len; i < 4; i++) {
            s->word[i] = 0xFFu;
        }
        if (program_word(s) != 0) {
            refuse(s, "programming the scratch failed");
            return;
        }
    }
    uint32_t stored = tb_flash_crc(TB_SCRATCH_ADDR, s->size);
    if (stored != s->crc) {
        board_printf("TB: scratch CRC %08lx, received %08lx\n", (unsigned long)stored, (unsigned long)s->crc);
        refuse(s, "scratch verify failed");
        return;
    }
    board_printf("TB: Full firmware received (%lu bytes), CRC %08lx\n", (unsigned long)s->received,
                 (unsigned long)s->crc);
    send_word("ACK");
    s->state = DONE;
}

#ifdef TB_VARIANT_CHUNK_START
/* The thread's socket_cb: "msg[pstrRecv->s16BufferSize] = '\0'; if (strncmp(msg,
   "FILE_SIZE:", 10) == 0) { expected_Bytes = atoi(msg + 10); } else if (strncmp(msg,
   "OTA_UPDATE", 10) == 0) { ... } else if (ota_in_progress) { memcpy(...) }" - one
   message per receive; whatever else the receive held is lost. */
static void feed(tb_session_t *s, const uint8_t *p, uint32_t n)
{
    if (s->state == DATA) {
        data_bytes(s, p, n);
        return;
    }
    char msg[24];
    uint32_t k = n < sizeof(msg) - 1u ? n : sizeof(msg) - 1u;
    memcpy(msg, p, k);
    msg[k] = '\0';
    if (strncmp(msg, "FILE_SIZE:", 10) == 0) {
        uint32_t v = 0;
        for (const char *c = msg + 10; *c >= '0' && *c <= '9'; c++) {
            v = v * 10u + (uint32_t)(*c - '0');
        }
        s->size = v;
        s->have_size = 1;
        board_printf("TB: Firmware size: %lu bytes\n", (unsigned long)v);
    } else if (strncmp(msg, "OTA_UPDATE", 10) == 0) {
        start_update(s);
    }
}
#else
static int is_prefix(const uint8_t *p, uint32_t n, const char *word)
{
    uint32_t w = (uint32_t)strlen(word);
    return memcmp(p, word, n < w ? n : w) == 0;
}

/* Control bytes while no update runs: FILE_SIZE:<digits> and OTA_UPDATE, however TCP cut
   or glued them. Returns how many of p's bytes it used (the rest is data). */
static uint32_t header_bytes(tb_session_t *s, const uint8_t *p, uint32_t n)
{
    uint32_t used = 0;
    while (used < n && s->state == HEADER) {
        if (s->hdr_len == sizeof(s->hdr)) {
            refuse(s, "control message too long");
            break;
        }
        s->hdr[s->hdr_len++] = p[used++];
        const uint8_t *h = s->hdr;
        uint32_t len = s->hdr_len;
        if (len >= 10 && memcmp(h, "FILE_SIZE:", 10) == 0) {
            uint8_t last = h[len - 1];
            if (len == 10 || (last >= '0' && last <= '9')) {
                continue; /* the digits, or more of them, may follow */
            }
            if (len == 11 || s->have_size) {
                refuse(s, "malformed or repeated FILE_SIZE");
                break;
            }
            uint32_t v = 0;
            for (uint32_t i = 10; i < len - 1; i++) {
                if (v > 0x19999999u) {
                    v = 0xFFFFFFFFu; /* too large for anything: refused below */
                    break;
                }
                v = v * 10u + (uint32_t)(h[i] - '0');
            }
            s->size = v;
            s->have_size = 1;
            board_printf("TB: Firmware size: %lu bytes\n", (unsigned long)v);
            s->hdr[0] = last; /* the first byte of the next message */
            s->hdr_len = 1;
        } else if (len == 10 && memcmp(h, "OTA_UPDATE", 10) == 0) {
            s->hdr_len = 0;
            start_update(s);
        } else if (!is_prefix(h, len, "FILE_SIZE:") && !is_prefix(h, len, "OTA_UPDATE")) {
            refuse(s, "unexpected message");
            break;
        }
    }
    return used;
}

static void feed(tb_session_t *s, const uint8_t *p, uint32_t n)
{
    if (s->state == HEADER) {
        uint32_t used = header_bytes(s, p, n);
        p += used;
        n -= used;
    }
    if (s->state == DATA && n > 0) {
        data_bytes(s, p, n);
    }
}
#endif

/* Scratch -> app slot, verified, then the boot record. */
static int install(const tb_session_t *s)
{
    uint32_t n = s->size;
    uint32_t padded = (n + 3u) & ~3u;
#ifdef TB_VARIANT_NO_APP_ERASE
    board_printf("TB: (application sectors not erased)\n"); /* "// EraseSectors5and6();" */
#else
    if (tb_flash_erase(TB_APP_ADDR, padded) != 0) {
        board_printf("TB: erasing the application failed\n");
        return -1;
    }
#endif
    board_printf("TB: Copying from scratch to application area 0x%08lx -> 0x%08lx size=%lu\n",
                 (unsigned long)TB_SCRATCH_ADDR, (unsigned long)TB_APP_ADDR, (unsigned long)n);
    for (uint32_t off = 0; off < padded; off += 1024u) {
        uint32_t k = padded - off < 1024u ? padded - off : 1024u;
        if (tb_flash_program(TB_APP_ADDR + off, (const void *)(uintptr_t)(TB_SCRATCH_ADDR + off), k) != 0) {
            board_printf("TB: Copy failed at 0x%08lx\n", (unsigned long)(TB_APP_ADDR + off));
            return -1;
        }
    }
    uint32_t crc = tb_flash_crc(TB_APP_ADDR, n);
    if (crc != s->crc) {
        board_printf("TB: application CRC %08lx after the copy, expected %08lx\n", (unsigned long)crc,
                     (unsigned long)s->crc);
        return -1;
    }
    tb_record_t rec = {TB_RECORD_MAGIC, n, s->crc, ~n};
    if (tb_flash_erase(TB_RECORD_ADDR, sizeof(rec)) != 0 ||
        tb_flash_program(TB_RECORD_ADDR, &rec, sizeof(rec)) != 0) {
        board_printf("TB: writing the boot record failed\n");
        return -1;
    }
    board_printf("TB: Copy successful, application CRC %08lx\n", (unsigned long)crc);
    return 0;
}

static int connect_server(uint32_t ip, uint16_t port)
{
    for (uint32_t i = 1; i <= CONNECT_TRIES; i++) {
        board_printf("TB: connecting to %lu.%lu.%lu.%lu:%u (try %lu)\n", (unsigned long)(ip >> 24),
                     (unsigned long)((ip >> 16) & 0xFFu), (unsigned long)((ip >> 8) & 0xFFu),
                     (unsigned long)(ip & 0xFFu), (unsigned)port, (unsigned long)i);
        if (transport_eth.connect(ip, port, 5000) == TR_OK) {
            return 0;
        }
        delay_ms(300u * i);
    }
    return -1;
}

int tb_ota_update(uint32_t server_ip, uint16_t server_port)
{
    tb_session_t *s = &s_s;
    memset(s, 0, sizeof(*s));
    if (transport_eth.init() != TR_OK) {
        board_printf("TB: Ethernet init failed\n");
        return -1;
    }
    if (connect_server(server_ip, server_port) != 0) {
        board_printf("TB: Connection failed\n");
        transport_eth.deinit();
        return -1;
    }
    board_printf("TB: Connected, requesting firmware...\n");
    send_word("REQ_FW");
    uint32_t last = board_millis();
    while (s->state == HEADER || s->state == DATA) {
        int n = transport_eth.recv(s_rx, sizeof(s_rx), 500);
        if (n > 0) {
            last = board_millis();
            feed(s, s_rx, (uint32_t)n);
        } else if (n == 0 || n != TR_ERR_TIMEOUT) {
            board_printf("TB: Server closed connection (%d) after %lu of %lu bytes\n", n,
                         (unsigned long)s->received, (unsigned long)s->size);
            s->state = FAILED;
        } else if ((uint32_t)(board_millis() - last) >= RX_TIMEOUT_MS) {
            refuse(s, "nothing received for 10 s");
        }
    }
    transport_eth.close();
    transport_eth.deinit();
    if (s->state != DONE) {
        return -1;
    }
    return install(s);
}
