/*
 * winc_bus.c - WINC3400 SPI protocol: command packets with CRC7, responses, data packets
 * with CRC16, register and memory access with the reset-and-retry recovery (winc_bus.h).
 *
 * One chip-select window per access: the command, the response bytes, the data start
 * token, the data and its CRC all go while CS is low; CS goes high at the end. A failed
 * access (no echo of the opcode, no state 0x00, no data token, a data CRC that does not
 * match) sleeps 1 ms, sends the SPI reset command, sleeps 1 ms and repeats, up to
 * WINC_BUS_TRIES attempts in all (like the vendor driver; its retries are unbounded in
 * time only by these counts).
 */
#include <stddef.h>

#include "fwlib.h"
#include "winc_bus.h"

#define WINC_BUS_TRIES   10u   /* attempts per access */
#define WINC_RSP_POLLS   11u   /* bytes read while waiting for the echo, then the state */
#define WINC_TOKEN_POLLS 64u   /* bytes read while waiting for a data start token */

volatile winc_stats_t winc_stats;

static struct {
    int crc;            /* packets carry CRC7 / CRC16 */
    uint32_t pkt_size;  /* data packet size the chip was told */
} bus = { .crc = 1, .pkt_size = 256u };

static uint16_t crc16_table[256];

/* ---------------------------------------------------------------- CRC */
static uint8_t crc7_table[256]; /* CRC7 (x^7 + x^3 + 1) of one byte from 0, in bits 6..0 */

static void crc7_init(void)
{
    for (uint32_t i = 0; i < 256u; i++) {
        uint32_t crc = 0;
        for (int b = 7; b >= 0; b--) {
            uint32_t fb = ((crc >> 6) ^ (i >> b)) & 1u;
            crc = (crc << 1) & 0x7Fu;
            if (fb)
                crc ^= 0x09u;
        }
        crc7_table[i] = (uint8_t)crc;
    }
    crc7_table[0] |= 0x80u; /* built (the entry of 0 is 0: bit 7 marks the table ready) */
}

/* A byte at a time through the table: crc' = T[(crc << 1) ^ b] (CRC7 is linear). */
uint8_t winc_crc7(const uint8_t *p, uint32_t n)
{
    if (!(crc7_table[0] & 0x80u))
        crc7_init();
    uint32_t crc = 0x7Fu;
    while (n--)
        crc = crc7_table[((crc << 1) ^ *p++) & 0xFFu] & 0x7Fu;
    return (uint8_t)(crc << 1);
}

static void crc16_init(void)
{
    for (uint32_t i = 0; i < 256u; i++) {
        uint32_t c = i << 8;
        for (int b = 0; b < 8; b++)
            c = (c & 0x8000u) ? (c << 1) ^ 0x1021u : c << 1;
        crc16_table[i] = (uint16_t)c;
    }
}

uint16_t winc_crc16(uint16_t crc, const uint8_t *p, uint32_t n)
{
    if (crc16_table[1] == 0)
        crc16_init();
    while (n--)
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ *p++) & 0xFFu]);
    return crc;
}

/* ---------------------------------------------------------------- packets */
uint32_t winc_bus_cmd(uint8_t *out, uint8_t cmd, uint32_t addr, uint32_t arg, int crc)
{
    uint32_t n;
    out[0] = cmd;
    switch (cmd) {
    case WINC_CMD_SINGLE_READ:
        out[1] = (uint8_t)(addr >> 16);
        out[2] = (uint8_t)(addr >> 8);
        out[3] = (uint8_t)addr;
        n = 4;
        break;
    case WINC_CMD_INTERNAL_READ:
        out[1] = (uint8_t)((addr >> 8) | 0x80u);   /* bit 7: clockless */
        out[2] = (uint8_t)addr;
        out[3] = 0;
        n = 4;
        break;
    case WINC_CMD_RESET:
        out[1] = out[2] = out[3] = 0xFFu;
        n = 4;
        break;
    case WINC_CMD_INTERNAL_WRITE:
        out[1] = (uint8_t)((addr >> 8) | 0x80u);
        out[2] = (uint8_t)addr;
        out[3] = (uint8_t)(arg >> 24);
        out[4] = (uint8_t)(arg >> 16);
        out[5] = (uint8_t)(arg >> 8);
        out[6] = (uint8_t)arg;
        n = 7;
        break;
    case WINC_CMD_SINGLE_WRITE:
        out[1] = (uint8_t)(addr >> 16);
        out[2] = (uint8_t)(addr >> 8);
        out[3] = (uint8_t)addr;
        out[4] = (uint8_t)(arg >> 24);
        out[5] = (uint8_t)(arg >> 16);
        out[6] = (uint8_t)(arg >> 8);
        out[7] = (uint8_t)arg;
        n = 8;
        break;
    case WINC_CMD_DMA_EXT_READ:
    case WINC_CMD_DMA_EXT_WRITE:
        out[1] = (uint8_t)(addr >> 16);
        out[2] = (uint8_t)(addr >> 8);
        out[3] = (uint8_t)addr;
        out[4] = (uint8_t)(arg >> 16);
        out[5] = (uint8_t)(arg >> 8);
        out[6] = (uint8_t)arg;
        n = 7;
        break;
    default:
        return 0;
    }
    if (crc) {
        out[n] = winc_crc7(out, n);
        n++;
    }
    return n;
}

/* Response state machine over MISO bytes: echo of the opcode, state 0x00, and for reads
   the data start token. 1 = complete, 0 = needs more, -1 = failed. */
typedef struct {
    uint8_t cmd;
    uint8_t want_token;
    uint8_t phase;      /* 0 echo, 1 state, 2 token */
    uint32_t polls;
} rsp_t;

static int rsp_step(rsp_t *r, uint8_t b)
{
    switch (r->phase) {
    case 0:
        if (b == r->cmd) {
            r->phase = 1;
            r->polls = 0;
            return 0;
        }
        break;
    case 1:
        if (b == 0x00u) {
            if (!r->want_token)
                return 1;
            r->phase = 2;
            r->polls = 0;
            return 0;
        }
        if (b != 0xFFu)
            return -1;   /* 1 unsupported, 2 unexpected data, 3 CRC7 error, ... */
        break;
    default:
        if ((b & 0xF0u) == 0xF0u && b != 0xFFu)   /* 0xFF: nobody is driving MISO */
            return 1;
        break;
    }
    return ++r->polls >= (r->phase == 2 ? WINC_TOKEN_POLLS : WINC_RSP_POLLS) ? -1 : 0;
}

/* Send a command and read its response (and for reads the data start token) in one burst,
   assuming the chip answers on the byte after the command, which it does when it is
   ready; a later answer is polled for byte by byte. An odd burst takes one byte more: a
   harmless fill byte after a write's state, or the first data byte of a read (stored in
   data[0]). CS must be low. Returns the number of data bytes already read (0 or 1), or
   WINC_ERR_BUS. */
static int cmd_phase(uint8_t cmd, uint32_t addr, uint32_t arg, uint8_t *data)
{
    uint8_t tx[12], rx[12];
    rsp_t r = { .cmd = cmd, .want_token = data != NULL };
    uint32_t n = winc_bus_cmd(tx, cmd, addr, arg, bus.crc);
    if (n == 0)
        return WINC_ERR_BUS;
    uint32_t len = n + 2u + (data ? 1u : 0u);
    len += len & 1u;
    memset(tx + n, 0, len - n);
    if (winc_port_xfer(tx, rx, len) != 0)
        return WINC_ERR_BUS;
    for (uint32_t i = n; i < len; i++) {
        int st = rsp_step(&r, rx[i]);
        if (st < 0)
            return WINC_ERR_BUS;
        if (st > 0) {
            if (data && i + 1u < len) {
                data[0] = rx[i + 1u];
                return 1;
            }
            return 0;
        }
    }
    for (;;) {
        int st = rsp_step(&r, winc_port_byte(0));
        if (st < 0)
            return WINC_ERR_BUS;
        if (st > 0)
            return 0;
    }
}

/* Read data packets (token, data, CRC16 unless clockless or CRC off). The first packet's
   token and `got` data bytes came with the command. */
static int data_in(uint8_t *buf, uint32_t n, int clockless, uint32_t got)
{
    for (int first = 1; n; first = 0) {
        uint32_t chunk = n < bus.pkt_size ? n : bus.pkt_size;
        if (!first) {
            rsp_t r = { .want_token = 1, .phase = 2 };
            int st;
            while ((st = rsp_step(&r, winc_port_byte(0))) == 0) {
            }
            if (st < 0)
                return WINC_ERR_BUS;
            got = 0;
        }
        if (chunk > got && winc_port_xfer(NULL, buf + got, chunk - got) != 0)
            return WINC_ERR_BUS;
        if (bus.crc && !clockless) {
            uint8_t c[2];
            if (winc_port_xfer(NULL, c, 2) != 0)
                return WINC_ERR_BUS;
            if ((uint16_t)((c[0] << 8) | c[1]) != winc_crc16(0xFFFFu, buf, chunk)) {
                winc_stats.crc_errors++;
                return WINC_ERR_BUS;
            }
        }
        buf += chunk;
        n -= chunk;
    }
    return WINC_OK;
}

/* Write data packets (token 0xF0|order, data, CRC16 while CRC is on). */
static int data_out(const uint8_t *buf, uint32_t n)
{
    int first = 1;
    while (n) {
        uint32_t chunk = n < bus.pkt_size ? n : bus.pkt_size;
        uint8_t order = chunk == n ? 3u : (first ? 1u : 2u);
        uint8_t tok = (uint8_t)(0xF0u | order);
        if (winc_port_xfer(&tok, NULL, 1) != 0 || winc_port_xfer(buf, NULL, chunk) != 0)
            return WINC_ERR_BUS;
        if (bus.crc) {
            /* CRC16, then the chip's answer to the packet: C<order> and a state byte
               (0 ok, 4 CRC16 error: the packet was discarded), in one burst when the
               answer comes right after the CRC */
            uint16_t crc = winc_crc16(0xFFFFu, buf, chunk);
            uint8_t c[4] = { (uint8_t)(crc >> 8), (uint8_t)crc, 0, 0 }, a[4];
            if (winc_port_xfer(c, a, 4) != 0)
                return WINC_ERR_BUS;
            rsp_t r = { .cmd = (uint8_t)(0xC0u | order) };
            int st = rsp_step(&r, a[2]);
            if (st == 0)
                st = rsp_step(&r, a[3]);
            while (st == 0)
                st = rsp_step(&r, winc_port_byte(0));
            if (st < 0) {
                winc_stats.crc_errors++;
                return WINC_ERR_BUS;
            }
        }
        first = 0;
        buf += chunk;
        n -= chunk;
    }
    return WINC_OK;
}

/* SPI reset command after a failed access (its response is read but not required). */
static void bus_recover(void)
{
    winc_stats.retries++;
    winc_port_delay_ms(1);
    winc_port_select(1);
    (void)cmd_phase(WINC_CMD_RESET, 0, 0, NULL);
    winc_port_select(0);
    winc_port_delay_ms(1);
}

/* One access with retries: command, response, then read rd[rn] or write wr[wn]. */
static int bus_access(uint8_t cmd, uint32_t addr, uint32_t arg, uint8_t *rd, uint32_t rn,
                      const uint8_t *wr, uint32_t wn, int clockless)
{
    for (uint32_t attempt = 0;; attempt++) {
        winc_port_select(1);
        int rc = cmd_phase(cmd, addr, arg, rd);
        if (rc >= 0 && rd)
            rc = data_in(rd, rn, clockless, (uint32_t)rc);
        if (rc >= 0 && wr)
            rc = data_out(wr, wn);
        winc_port_select(0);
        if (rc >= 0)
            return WINC_OK;
        if (attempt + 1u >= WINC_BUS_TRIES)
            return rc;
        bus_recover();
    }
}

/* ---------------------------------------------------------------- registers, memory */
int winc_reg_read(uint32_t addr, uint32_t *val)
{
    uint8_t b[4];
    int clockless = addr <= 0xFFu;
    int rc = bus_access(clockless ? WINC_CMD_INTERNAL_READ : WINC_CMD_SINGLE_READ, addr, 0, b, 4,
                    NULL, 0, clockless);
    if (rc == WINC_OK)
        *val = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) |
               ((uint32_t)b[3] << 24);
    return rc;
}

int winc_reg_write(uint32_t addr, uint32_t val)
{
    int clockless = addr <= 0x30u;
    return bus_access(clockless ? WINC_CMD_INTERNAL_WRITE : WINC_CMD_SINGLE_WRITE, addr, val, NULL,
                  0, NULL, 0, clockless);
}

int winc_mem_read(uint32_t addr, uint8_t *buf, uint32_t n)
{
    if (n == 0 || n > 0xFFFFFFu)
        return WINC_ERR_ARG;
    if (n == 1) {   /* single-byte transfers are not reliable on the chip: read two */
        uint8_t tmp[2];
        int rc = bus_access(WINC_CMD_DMA_EXT_READ, addr, 2, tmp, 2, NULL, 0, 0);
        if (rc == WINC_OK)
            buf[0] = tmp[0];
        return rc;
    }
    return bus_access(WINC_CMD_DMA_EXT_READ, addr, n, buf, n, NULL, 0, 0);
}

int winc_mem_write(uint32_t addr, const uint8_t *buf, uint32_t n)
{
    if (n == 0 || n > 0xFFFFFFu)
        return WINC_ERR_ARG;
    if (n == 1) {   /* two bytes: the one asked for and the one after it, unchanged */
        uint8_t tmp[2];
        int rc = winc_mem_read(addr, tmp, 2);
        if (rc != WINC_OK)
            return rc;
        tmp[0] = buf[0];
        return bus_access(WINC_CMD_DMA_EXT_WRITE, addr, 2, NULL, 0, tmp, 2, 0);
    }
    return bus_access(WINC_CMD_DMA_EXT_WRITE, addr, n, NULL, 0, buf, n, 0);
}

/* ---------------------------------------------------------------- negotiation */
int winc_bus_crc(void)
{
    return bus.crc;
}

void winc_bus_reset_state(void)
{
    bus.crc = 1;
    bus.pkt_size = 256u;
}

int winc_bus_init(uint32_t *chip_id)
{
    uint32_t reg = 0;
    winc_bus_reset_state();
    if (winc_reg_read(WINC_REG_SPI_PROTOCOL, &reg) != WINC_OK) {
        /* The chip may have CRC off already (the host restarted, the chip did not). */
        bus.crc = 0;
        if (winc_reg_read(WINC_REG_SPI_PROTOCOL, &reg) != WINC_OK) {
            bus.crc = 1;
            return WINC_ERR_BUS;
        }
    }
    reg &= ~(WINC_PROTO_CRC7 | WINC_PROTO_CRC16 | WINC_PROTO_PKT_MASK);
    reg |= WINC_PROTO_PKT_8K;
#if WINC_SPI_CRC
    reg |= WINC_PROTO_CRC7 | WINC_PROTO_CRC16;
#endif
    /* written in the framing the chip uses now; it switches after this access */
    if (winc_reg_write(WINC_REG_SPI_PROTOCOL, reg) != WINC_OK)
        return WINC_ERR_BUS;
    bus.crc = WINC_SPI_CRC;
    bus.pkt_size = WINC_DATA_PKT_MAX;
    uint32_t id = 0;
    if (winc_reg_read(0x1000u, &id) != WINC_OK)
        return WINC_ERR_BUS;
    if (chip_id)
        *chip_id = id;
    return WINC_OK;
}
