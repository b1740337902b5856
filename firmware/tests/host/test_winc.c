/*
 * test_winc.c - host unit tests of the WINC3400 host driver (drivers/winc_bus.c,
 * winc_hif.c, winc_socket.c): SPI framing and CRC against literal byte vectors, the CRC
 * negotiation, recovery from lost and corrupted transfers, and every HIF exchange from
 * power-up to a received TCP payload, against a fake module written here from the
 * protocol description (docs/twin-network.md): an SPI slave that parses command packets
 * (CRC7 checked while on), answers with echo + state + data packets (CRC16), a register
 * file with the boot handshakes, chip memory, and a small firmware that allocates HIF
 * buffers, serves WiFi connect, DHCP and one TCP peer, and presents its messages one at a
 * time with an IRQN edge, the next one only after RX done.
 *
 * Built twice: WINC_SPI_CRC=1 (test_winc) and WINC_SPI_CRC=0 (test_winc-nocrc).
 * Usage: test_winc [name...]  prints "PASS <name>" / "FAIL <name>: <why>", then
 *                              "SUMMARY crc=<0|1> pass=N fail=M"; exit 1 if any failed.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "board.h"
#include "transport.h"
#include "winc_bus.h"
#include "winc_hif.h"
#include "winc_socket.h"

static char g_why[512];
static int g_failed;
#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            if (!g_failed) {                                                               \
                int o_ = snprintf(g_why, sizeof g_why, "line %d: %s: ", __LINE__, #cond);  \
                snprintf(g_why + o_, sizeof g_why - (size_t)o_, __VA_ARGS__);              \
            }                                                                              \
            g_failed = 1;                                                                  \
            return;                                                                        \
        }                                                                                  \
    } while (0)

/* ------------------------------------------------------------------ time and board */
static uint64_t g_us;   /* virtual time: every SPI byte costs 1 us, delays what they say */

uint32_t board_millis(void)
{
    g_us += 5;   /* reading the clock takes time too */
    return (uint32_t)(g_us / 1000u);
}
void delay_ms(uint32_t ms) { g_us += (uint64_t)ms * 1000u; }
void board_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (getenv("WINC_TEST_VERBOSE"))
        vprintf(fmt, ap);
    va_end(ap);
}
uint32_t winc_port_millis(void) { return board_millis(); }
void winc_port_delay_ms(uint32_t ms) { delay_ms(ms); }

/* ------------------------------------------------------------------ the fake module */
#define MEM_SIZE   0x60000u
#define TX_BUF     0x40000u      /* where the firmware puts host->chip messages */
#define RX_BUF     0x50000u      /* where it presents chip->host messages */
#define GP0        0x0100u       /* GP_REG_0 -> gp regs at 0x30100 */
#define REV_OFF    0x0200u       /* firmware revision record at 0x30200 */
#define HIF_INFO   0x8104u       /* block 2, major 1, minor 4 */
#define PEER_IP    0xC0A8010Au
#define PEER_PORT  5000u

typedef struct { uint8_t b[1700]; uint32_t n; } msg_t;

/* test knobs and the network side: they survive a chip reset */
static struct {
    int latency;                 /* 0xFF bytes before each response */
    uint32_t split;              /* the module delivers at most this much per reply (0 = 1400) */
    int refuse;                  /* connects are refused */
    uint16_t hif_info;           /* firmware HIF level */
    uint8_t to_host[70000];      /* what the TCP peer sends */
    uint32_t to_host_len, to_host_pos;
    int peer_closed;
} k;

static struct {
    /* SPI slave */
    uint8_t cmd[9];
    uint32_t cmd_len, cmd_need;
    uint8_t out[9000];
    uint32_t out_len, out_pos;
    int wr_active, wr_phase;     /* block write: 0 token, 1 data, 2 crc */
    uint8_t wr_order;
    uint8_t wr_pkt[2048];
    int flip_next_write;
    uint32_t wr_addr, wr_left, wr_done_crc;
    uint8_t wr_crc[2];
    uint16_t wr_calc;
    uint32_t wr_start;
    int selected;
    /* faults */
    int drop_commands;           /* the next N complete commands get no answer */
    int flip_next_read;          /* flip a data bit of the next read packet */
    int bad_crc7_seen, bad_crc16_seen, resets_seen;
    /* MOSI / MISO log */
    uint8_t mosi[8192], miso[8192];
    uint32_t log_len;
    int logging;
    /* registers */
    uint32_t proto;
    uint32_t wake_clk, bootrom, state, rev, cpu_ctrl, glb_reset, pin_mux, intr_en, gp1;
    uint32_t ctrl0, ctrl1, ctrl2, ctrl3, reg_150014;
    int cpu_started, fw_started, fw_ready_polls, fw_ready_taken;
    uint32_t ctrl0_acks;         /* 0x1070 written back with bit 0 clear */
    uint32_t reg_writes;
    uint32_t last_req;           /* 0x108C request word */
    uint8_t mem[MEM_SIZE];
    /* firmware */
    msg_t q[64];
    uint32_t qn;
    int presenting;
    int irqn_low, edge;
    int wifi_connected;
    char ssid[40], psk[80];
    uint32_t gain_msgs;
    /* the TCP peer */
    int sock, connected;
    uint16_t session;
    uint8_t from_host[4096];
    uint32_t from_host_len;
    int recv_pending;
    uint16_t recv_buflen, recv_session;
    uint32_t replies;
    uint32_t max_reply;
    uint32_t closes;
    uint32_t hif_sent[16];       /* opcodes the host sent (group 2) */
    uint32_t n_hif_sent;
} m;

static void fake_reset(void)
{
    memset(&m, 0, sizeof m);
    m.proto = WINC_PROTO_CRC7 | WINC_PROTO_CRC16;
    m.fw_ready_polls = 3;
    m.sock = -1;
}

static int crc7_on(void) { return (m.proto & WINC_PROTO_CRC7) != 0; }
static int crc16_on(void) { return (m.proto & WINC_PROTO_CRC16) != 0; }

static void out_push(const uint8_t *p, uint32_t n)
{
    if (m.out_pos == m.out_len)
        m.out_pos = m.out_len = 0;
    memcpy(&m.out[m.out_len], p, n);
    m.out_len += n;
}

static void out_byte(uint8_t b) { out_push(&b, 1); }

static void put_le16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t le16(const uint8_t *p) { return (uint32_t)(p[0] | (p[1] << 8)); }

/* chip -> host messages */
static void queue_msg(uint8_t gid, uint8_t op, const uint8_t *payload, uint32_t n)
{
    msg_t *q = &m.q[m.qn++];
    memset(q->b, 0, 8);
    q->b[0] = gid;
    q->b[1] = op;
    put_le16(&q->b[2], 8 + n);
    memcpy(&q->b[8], payload, n);
    q->n = 8 + n;
}

static void present(void)
{
    if (m.presenting || m.qn == 0)
        return;
    msg_t *q = &m.q[0];
    memcpy(&m.mem[RX_BUF], q->b, q->n);
    m.ctrl0 = (((q->n + 3u) & ~3u) << 2) | 1u;
    m.ctrl1 = RX_BUF;
    memmove(&m.q[0], &m.q[1], (m.qn - 1) * sizeof(msg_t));
    m.qn--;
    m.presenting = 1;
    m.irqn_low = 1;
    m.edge = 1;
}

static void try_deliver(void)
{
    if (!m.recv_pending)
        return;
    uint32_t avail = k.to_host_len - k.to_host_pos;
    if (avail == 0 && !k.peer_closed)
        return;
    uint32_t n = avail;
    uint32_t cap = k.split ? k.split : 1400u;
    if (n > cap)
        n = cap;
    if (n > m.recv_buflen)
        n = m.recv_buflen;
    uint8_t p[16 + 1400];
    memset(p, 0, 16);
    put_le16(&p[8], n);          /* 0 = peer closed */
    put_le16(&p[10], 16);        /* data right after the reply struct */
    p[12] = (uint8_t)m.sock;
    put_le16(&p[14], m.recv_session);
    memcpy(&p[16], &k.to_host[k.to_host_pos], n);
    k.to_host_pos += n;
    m.recv_pending = 0;
    m.replies++;
    if (n > m.max_reply)
        m.max_reply = n;
    queue_msg(2, 0x46, p, 16 + n);
}

static void firmware_message(void)
{
    const uint8_t *h = &m.mem[TX_BUF];
    uint8_t gid = h[0], op = h[1];
    uint32_t len = le16(&h[2]);
    const uint8_t *p = h + 8;
    uint32_t req_len = m.last_req >> 16;
    if (req_len != len || (m.last_req & 0xFF) != gid || ((m.last_req >> 8) & 0x7F) != op)
        return;   /* header does not match the request register: ignored */
    if (gid == 1 && op == 0x23) {
        m.gain_msgs++;
    } else if (gid == 1 && op == 0x3D) {
        /* conn header 48 + psk 108 */
        if (len != 8 + 48 + 108 || le16(p) != 152 || p[44] != 2)
            return;
        memcpy(m.ssid, &p[5], p[4]);
        m.ssid[p[4]] = 0;
        memcpy(m.psk, &p[49], p[48]);
        m.psk[p[48]] = 0;
        int ok = !strcmp(m.ssid, WINC_WIFI_SSID) && !strcmp(m.psk, WINC_WIFI_PSK);
        uint8_t st[4] = { (uint8_t)ok, (uint8_t)(ok ? 0 : 1), 0, 0 };
        queue_msg(1, 0x2C, st, 4);
        if (ok) {
            uint8_t dh[20] = { 192, 168, 1, 100, 192, 168, 1, 1, 192, 168, 1, 1, 255, 255, 255, 0 };
            put_le32(&dh[16], 3600);
            queue_msg(1, 0x32, dh, 20);
            m.wifi_connected = 1;
        }
    } else if (gid == 2) {
        if (m.n_hif_sent < 16)
            m.hif_sent[m.n_hif_sent++] = op;
        if (op == 0x44) {
            uint32_t port = (uint32_t)(p[2] << 8 | p[3]);
            uint32_t ip = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
            m.sock = p[8];
            m.session = (uint16_t)le16(&p[10]);
            int ok = le16(p) == 2 && ip == PEER_IP && port == PEER_PORT && !k.refuse;
            uint8_t r[4] = { (uint8_t)m.sock, (uint8_t)(ok ? 0 : (uint8_t)-12), 0, 0 };
            m.connected = ok;
            queue_msg(2, 0x44, r, 4);
        } else if (op == 0x45) {
            uint32_t n = le16(&p[2]);
            if (len != 8 + 80 + n || p[0] != m.sock || le16(&p[12]) != m.session)
                return;
            memcpy(&m.from_host[m.from_host_len], p + 80, n);
            m.from_host_len += n;
            uint8_t r[8] = { (uint8_t)m.sock, 0 };
            put_le16(&r[2], n);
            put_le16(&r[4], m.session);
            queue_msg(2, 0x45, r, 8);
        } else if (op == 0x46) {
            if (len != 8 + 12 || p[4] != m.sock)
                return;
            m.recv_pending = 1;
            m.recv_session = (uint16_t)le16(&p[6]);
            m.recv_buflen = (uint16_t)le16(&p[8]);
            try_deliver();
        } else if (op == 0x49) {
            m.closes++;
            m.connected = 0;
            m.recv_pending = 0;
        }
    }
    present();
}

static uint32_t reg_read(uint32_t a)
{
    switch (a) {
    case 0xE824: return m.proto;
    case 0x1000: return 0x1000F0u;
    case 0x13F4: return 2u;
    case 0x3B0000: return 0x3000D0u;
    case 0x01: return m.wake_clk;
    case 0x1014: return m.cpu_started ? 0x80000000u : 0u;
    case 0x207BC: return 0;
    case 0xC000C: return m.bootrom;
    case 0x108C:
        if (m.fw_started && !m.fw_ready_taken && m.fw_ready_polls-- <= 0) {
            m.state = 0x02532636u;
            m.fw_ready_taken = 1;
        }
        return m.state;
    case 0x207AC: return m.rev;
    case 0x1118: return m.cpu_ctrl;
    case 0x1400: return m.glb_reset;
    case 0x1408: return m.pin_mux;
    case 0x1A00: return m.intr_en;
    case 0x149C: return m.fw_started ? GP0 : 0u;
    case 0x14A0: return m.gp1;
    case 0x1070: return m.ctrl0;
    case 0x1084: return m.ctrl1;
    case 0x1078: return m.ctrl2;
    case 0x150400: return TX_BUF;
    default: return 0xDEADBEEFu;
    }
}

static void reg_write(uint32_t a, uint32_t v)
{
    m.reg_writes++;
    switch (a) {
    case 0xE824: m.proto = v; break;   /* effective from the next command */
    case 0x01: m.wake_clk = v; break;
    case 0xC000C:
        m.bootrom = v;
        if (v == 0xEF522F61u && m.cpu_started) {
            m.fw_started = 1;
            m.rev = k.hif_info;
        }
        break;
    case 0x108C:
        if (m.fw_started && m.state == 0x02532636u && v == 0)
            m.state = 0;
        else
            m.last_req = v;
        break;
    case 0x207AC: m.rev = v; break;
    case 0x1118: m.cpu_ctrl = v; break;
    case 0x150014: m.reg_150014 = v; break;
    case 0x1400:
        m.glb_reset = v;
        if (v & (1u << 10)) {
            m.cpu_started = 1;
            m.bootrom = 0x10ADD09Eu;
        }
        break;
    case 0x1408: m.pin_mux = v; break;
    case 0x1A00: m.intr_en = v; break;
    case 0x14A0: m.gp1 = v; break;
    case 0x1070:
        if ((m.ctrl0 & 1u) && !(v & 1u))
            m.ctrl0_acks++;
        m.ctrl0 = v;
        break;
    case 0x1078: if (v & 2u) m.ctrl2 = 0; break;   /* buffer allocated at once */
    case 0x106C: m.ctrl3 = v; break;
    case 0x10AC: break;
    case 0x10B0: firmware_message(); break;
    case 0x10A8:
        m.presenting = 0;
        m.irqn_low = 0;
        present();
        break;
    default: break;
    }
}

static void respond_data(const uint8_t *d, uint32_t n, int clockless)
{
    uint8_t tmp[1700];
    memcpy(tmp, d, n);
    if (m.flip_next_read) {
        tmp[n / 2] ^= 0x10u;
        m.flip_next_read = 0;
    }
    out_byte(0xF3);
    out_push(tmp, n);
    if (crc16_on() && !clockless) {
        uint16_t c = winc_crc16(0xFFFFu, d, n);   /* over the clean data */
        out_byte((uint8_t)(c >> 8));
        out_byte((uint8_t)c);
    }
}

static void command_done(uint32_t n)
{
    uint8_t op = m.cmd[0];
    if (crc7_on()) {
        if (winc_crc7(m.cmd, n - 1) != m.cmd[n - 1]) {
            m.bad_crc7_seen++;
            return;   /* a packet with a bad CRC7 gets no answer */
        }
    }
    if (m.drop_commands > 0 && op != WINC_CMD_RESET) {
        m.drop_commands--;
        return;
    }
    for (int i = 0; i < k.latency; i++)
        out_byte(0xFF);
    out_byte(op);
    out_byte(0x00);
    const uint8_t *c = m.cmd;
    uint32_t a24 = (uint32_t)c[1] << 16 | (uint32_t)c[2] << 8 | c[3];
    uint32_t a16 = (uint32_t)(c[1] & 0x7F) << 8 | c[2];
    uint32_t v32 = 0, size = 0;
    uint8_t b[4];
    switch (op) {
    case WINC_CMD_RESET:
        m.resets_seen++;
        m.wr_active = 0;
        break;
    case WINC_CMD_SINGLE_READ:
        put_le32(b, reg_read(a24));
        respond_data(b, 4, 0);
        break;
    case WINC_CMD_INTERNAL_READ:
        put_le32(b, reg_read(a16));
        respond_data(b, 4, 1);
        break;
    case WINC_CMD_SINGLE_WRITE:
        v32 = (uint32_t)c[4] << 24 | (uint32_t)c[5] << 16 | (uint32_t)c[6] << 8 | c[7];
        reg_write(a24, v32);
        break;
    case WINC_CMD_INTERNAL_WRITE:
        v32 = (uint32_t)c[3] << 24 | (uint32_t)c[4] << 16 | (uint32_t)c[5] << 8 | c[6];
        reg_write(a16, v32);
        break;
    case WINC_CMD_DMA_EXT_READ:
        size = (uint32_t)c[4] << 16 | (uint32_t)c[5] << 8 | c[6];
        if (a24 + size <= MEM_SIZE)
            respond_data(&m.mem[a24], size, 0);
        break;
    case WINC_CMD_DMA_EXT_WRITE:
        size = (uint32_t)c[4] << 16 | (uint32_t)c[5] << 8 | c[6];
        m.wr_active = 1;
        m.wr_phase = 0;
        m.wr_addr = m.wr_start = a24;
        m.wr_left = size;
        break;
    default:
        break;
    }
}

static uint32_t cmd_length(uint8_t op)
{
    switch (op) {
    case WINC_CMD_SINGLE_READ:
    case WINC_CMD_INTERNAL_READ:
    case WINC_CMD_RESET: return 4;
    case WINC_CMD_INTERNAL_WRITE:
    case WINC_CMD_DMA_EXT_READ:
    case WINC_CMD_DMA_EXT_WRITE: return 7;
    case WINC_CMD_SINGLE_WRITE: return 8;
    default: return 0;
    }
}

static uint8_t exchange(uint8_t mosi)
{
    uint8_t miso = 0xFF;
    g_us += 1;
    if (!m.selected)
        return 0xFF;
    if (m.cmd_len) {                       /* collecting a command */
        m.cmd[m.cmd_len++] = mosi;
        if (m.cmd_len == m.cmd_need) {
            uint32_t n = m.cmd_len;
            m.cmd_len = 0;
            command_done(n);
        }
    } else if (m.wr_active && m.out_pos >= m.out_len) {   /* block write data */
        if (m.wr_phase == 0) {
            if ((mosi & 0xF0u) == 0xF0u) {
                m.wr_phase = 1;
                m.wr_order = mosi & 3u;
                m.wr_calc = 0xFFFF;
            }
        } else if (m.wr_phase == 1) {
            if (m.flip_next_write && m.wr_addr == m.wr_start + 3) {
                mosi ^= 0x01u;   /* damaged on the wire, after the host computed its CRC */
                m.flip_next_write = 0;
            }
            if (m.wr_addr - m.wr_start < sizeof m.wr_pkt)
                m.wr_pkt[m.wr_addr - m.wr_start] = mosi;
            m.wr_calc = winc_crc16(m.wr_calc, &mosi, 1);
            m.wr_addr++;
            if (--m.wr_left == 0) {
                m.wr_done_crc = 0;
                if (crc16_on()) {
                    m.wr_phase = 2;
                } else {   /* kept as it came; answer one byte later: FF C<order> 00 */
                    memcpy(&m.mem[m.wr_start], m.wr_pkt, m.wr_addr - m.wr_start);
                    uint8_t a[3] = { 0xFF, (uint8_t)(0xC0u | m.wr_order), 0 };
                    out_push(a, 3);
                    m.wr_phase = 3;
                }
            }
        } else if (m.wr_phase == 2) {
            m.wr_crc[m.wr_done_crc++] = mosi;
            if (m.wr_done_crc == 2) {
                int bad = (uint16_t)(m.wr_crc[0] << 8 | m.wr_crc[1]) != m.wr_calc;
                if (bad)   /* the packet is discarded */
                    m.bad_crc16_seen++;
                else
                    memcpy(&m.mem[m.wr_start], m.wr_pkt, m.wr_addr - m.wr_start);
                uint8_t a[2] = { (uint8_t)(0xC0u | m.wr_order), (uint8_t)(bad ? 4 : 0) };
                out_push(a, 2);
                m.wr_phase = 3;
            }
        }
        if (m.wr_phase == 3)
            m.wr_active = 0;
    } else if (mosi >= 0xC1u && mosi <= 0xCFu && cmd_length(mosi)) {   /* a new command */
        m.out_pos = m.out_len = 0;
        m.wr_active = 0;
        m.cmd[0] = mosi;
        m.cmd_len = 1;
        m.cmd_need = cmd_length(mosi) + (crc7_on() ? 1u : 0u);
    } else if (m.out_pos < m.out_len) {
        miso = m.out[m.out_pos++];
    }
    if (m.logging && m.log_len < sizeof m.mosi) {
        m.mosi[m.log_len] = mosi;
        m.miso[m.log_len++] = miso;
    }
    return miso;
}

/* port functions of the driver */
void winc_port_select(int on) { m.selected = on; }
uint8_t winc_port_byte(uint8_t out) { return exchange(out); }
int winc_port_xfer(const uint8_t *tx, uint8_t *rx, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        uint8_t v = exchange(tx ? tx[i] : 0);
        if (rx)
            rx[i] = v;
    }
    return 0;
}
int winc_port_irq_edge(void)
{
    int e = m.edge;
    m.edge = 0;
    return e;
}
int winc_port_irq_level(void) { return m.irqn_low; }
int winc_port_open(void) { return 0; }
void winc_port_chip_reset(void)
{
    fake_reset();
    /* firmware revision record the host reads at start-up */
    put_le32(&m.mem[0x30000 + GP0 + 0], 0);
    put_le32(&m.mem[0x30000 + GP0 + 4], REV_OFF);
    uint8_t *r = &m.mem[0x30000 + REV_OFF];
    put_le16(r, k.hif_info);
    r[2] = 1; r[4] = 4; r[5] = 2;
    memcpy(&r[6], "Dec  4 2026", 12);
}
void winc_port_close(void) {}

/* ------------------------------------------------------------------ helpers */
static void log_start(void) { m.log_len = 0; m.logging = 1; }
static void log_stop(void) { m.logging = 0; }

static int hexeq(const uint8_t *got, const char *hex, uint32_t *n_out)
{
    uint32_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') { p++; continue; }
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1)
            return 0;
        if (got[n++] != (uint8_t)v)
            return 0;
        p += 2;
    }
    if (n_out)
        *n_out = n;
    return 1;
}

static void dump(char *buf, size_t sz, const uint8_t *p, uint32_t n)
{
    size_t o = 0;
    for (uint32_t i = 0; i < n && o + 4 < sz; i++)
        o += (size_t)snprintf(buf + o, sz - o, "%02X ", p[i]);
}

/* Power-up to a running firmware with the chip's bus negotiated. */
static int bring_up(void)
{
    winc_port_chip_reset();
    winc_bus_reset_state();
    uint32_t id = 0;
    if (winc_bus_init(&id) != WINC_OK)
        return -1;
    return winc_hif_start(id);
}

/* start again without a chip reset: only the version check can differ */
static int read_version_again(void)
{
    m.cpu_started = 0;
    m.fw_ready_taken = 0;
    return winc_hif_start(0x1000F0u);
}

/* ------------------------------------------------------------------ tests */
static void t_crc7_vectors(void)
{
    static const uint8_t a[] = { 0xCA, 0x00, 0xE8, 0x24 }, b[] = { 0xCF, 0xFF, 0xFF, 0xFF };
    CHECK(winc_crc7(a, 4) == 0xBC, "got %02X", winc_crc7(a, 4));
    CHECK(winc_crc7(b, 4) == 0xAA, "got %02X", winc_crc7(b, 4));
}

static void t_crc16_vectors(void)
{
    CHECK(winc_crc16(0xFFFFu, (const uint8_t *)"123456789", 9) == 0x29B1, "CCITT-FALSE check value");
    uint16_t c = winc_crc16(0xFFFFu, (const uint8_t *)"1234", 4);
    CHECK(winc_crc16(c, (const uint8_t *)"56789", 5) == 0x29B1, "chained");
}

static void t_command_packets(void)
{
    uint8_t b[9];
    uint32_t n, k;
    char d[64];
    n = winc_bus_cmd(b, WINC_CMD_SINGLE_READ, 0xE824, 0, 1);
    dump(d, sizeof d, b, n);
    CHECK(n == 5 && hexeq(b, "CA 00 E8 24 BC", &k), "%s", d);
    n = winc_bus_cmd(b, WINC_CMD_SINGLE_READ, 0xE824, 0, 0);
    CHECK(n == 4 && hexeq(b, "CA 00 E8 24", &k), "no CRC");
    n = winc_bus_cmd(b, WINC_CMD_RESET, 0, 0, 1);
    CHECK(n == 5 && hexeq(b, "CF FF FF FF AA", &k), "reset");
    n = winc_bus_cmd(b, WINC_CMD_SINGLE_READ, 0x1000, 0, 1);
    CHECK(n == 5 && hexeq(b, "CA 00 10 00 CA", &k), "chip id read");
    n = winc_bus_cmd(b, WINC_CMD_INTERNAL_READ, 0x01, 0, 0);
    CHECK(n == 4 && hexeq(b, "C4 80 01 00", &k), "clockless read: bit 7 of the address");
    n = winc_bus_cmd(b, WINC_CMD_SINGLE_WRITE, 0x1118, 0x01020304u, 0);
    CHECK(n == 8 && hexeq(b, "C9 00 11 18 01 02 03 04", &k), "value big-endian");
    n = winc_bus_cmd(b, WINC_CMD_INTERNAL_WRITE, 0x01, 0x00000002u, 0);
    CHECK(n == 7 && hexeq(b, "C3 80 01 00 00 00 02", &k), "clockless write");
    n = winc_bus_cmd(b, WINC_CMD_DMA_EXT_READ, 0x030100, 8, 0);
    CHECK(n == 7 && hexeq(b, "C8 03 01 00 00 00 08", &k), "block read, size 24 bit");
    n = winc_bus_cmd(b, WINC_CMD_DMA_EXT_WRITE, 0x040000, 0x5A4, 0);
    CHECK(n == 7 && hexeq(b, "C7 04 00 00 00 05 A4", &k), "block write");
    n = winc_bus_cmd(b, WINC_CMD_DMA_EXT_WRITE, 0x040000, 0x5A4, 1);
    CHECK(n == 8 && b[7] == winc_crc7(b, 7) && (b[7] & 1u) == 0, "CRC7 shifted left");
}

/* The first access after reset, byte by byte on the wire: CRC is on in the chip. */
static void t_first_access_bytes(void)
{
    winc_port_chip_reset();
    winc_bus_reset_state();
    uint32_t v = 0;
    log_start();
    int rc = winc_reg_read(0xE824, &v);
    log_stop();
    CHECK(rc == WINC_OK, "rc %d", rc);
    CHECK(v == (WINC_PROTO_CRC7 | WINC_PROTO_CRC16), "value %08X", v);
    uint16_t c = winc_crc16(0xFFFF, (const uint8_t[]){ 0x0C, 0, 0, 0 }, 4);
    char want[128];
    snprintf(want, sizeof want, "CA 00 E8 24 BC 00 00 00 00 00 00 00 00 00");
    char d[128];
    dump(d, sizeof d, m.mosi, m.log_len);
    CHECK(m.log_len == 14 && hexeq(m.mosi, want, NULL), "MOSI %s", d);
    dump(d, sizeof d, m.miso, m.log_len);
    uint8_t miso_want[14] = { 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xCA, 0x00, 0xF3, 0x0C, 0, 0, 0,
                              (uint8_t)(c >> 8), (uint8_t)c };
    CHECK(!memcmp(m.miso, miso_want, 14), "MISO %s", d);
}

static void t_negotiation(void)
{
    winc_port_chip_reset();
    winc_bus_reset_state();
    uint32_t id = 0;
    CHECK(winc_bus_init(&id) == WINC_OK, "init");
    CHECK(id == 0x1000F0u, "chip id %06X", id);
    CHECK((m.proto & WINC_PROTO_PKT_MASK) == WINC_PROTO_PKT_8K, "packet size bits %08X", m.proto);
#if WINC_SPI_CRC
    CHECK((m.proto & (WINC_PROTO_CRC7 | WINC_PROTO_CRC16)) == (WINC_PROTO_CRC7 | WINC_PROTO_CRC16),
          "CRC kept on: %08X", m.proto);
    CHECK(winc_bus_crc() == 1, "host framing");
#else
    CHECK((m.proto & (WINC_PROTO_CRC7 | WINC_PROTO_CRC16)) == 0, "CRC negotiated off: %08X", m.proto);
    CHECK(winc_bus_crc() == 0, "host framing");
#endif
    /* next access: command packet length says which framing is used */
    uint32_t v;
    log_start();
    CHECK(winc_reg_read(0x1000, &v) == WINC_OK && v == 0x1000F0u, "read after negotiation");
    log_stop();
    CHECK(m.mosi[0] == 0xCA && (WINC_SPI_CRC ? m.mosi[4] == 0xCA : m.mosi[4] == 0x00),
          "CRC7 byte present iff CRC on");
    CHECK(m.bad_crc7_seen == 0, "bad CRC7 seen by the chip");
}

/* The chip was left with CRC off (host restarted, chip not): the first read fails with CRC,
   succeeds without, and the host puts its own choice back. */
static void t_negotiation_chip_crc_off(void)
{
    winc_port_chip_reset();
    m.proto = 0x50;   /* CRC off, 8 KiB */
    winc_bus_reset_state();
    uint32_t id = 0;
    CHECK(winc_bus_init(&id) == WINC_OK, "init");
    CHECK(m.resets_seen > 0, "the failed CRC read was followed by SPI resets");
    CHECK(((m.proto & (WINC_PROTO_CRC7 | WINC_PROTO_CRC16)) != 0) == WINC_SPI_CRC, "proto %08X", m.proto);
}

static void t_register_write_bytes(void)
{
    winc_port_chip_reset();
    winc_bus_reset_state();
    uint32_t id;
    CHECK(winc_bus_init(&id) == WINC_OK, "init");
    log_start();
    CHECK(winc_reg_write(0x1118, 0x00000001u) == WINC_OK, "write");
    log_stop();
    uint8_t want[9] = { 0xC9, 0x00, 0x11, 0x18, 0, 0, 0, 1 };
    uint32_t n = 8;
    if (WINC_SPI_CRC)
        want[n++] = winc_crc7(want, 8);
    uint32_t burst = (n + 2u + 1u) & ~1u;   /* command, echo, state; even for data packing */
    CHECK(m.log_len == burst && !memcmp(m.mosi, want, n), "command bytes");
    CHECK(m.miso[n] == 0xC9 && m.miso[n + 1] == 0x00, "echo and state");
    CHECK(m.cpu_ctrl == 1, "value arrived");
}

static void t_block_write_read(void)
{
    uint8_t data[300], back[300];
    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    CHECK(bring_up() == WINC_OK, "bring up");
    log_start();
    CHECK(winc_mem_write(0x44000, data, sizeof data) == WINC_OK, "write");
    log_stop();
    uint32_t cl = 7 + (WINC_SPI_CRC ? 1u : 0u);
    uint32_t hd = (cl + 2u + 1u) & ~1u;   /* command, echo, state (+ a fill byte) */
    CHECK(m.mosi[hd] == 0xF3, "data token 0xF3 after echo + state, got %02X", m.mosi[hd]);
    CHECK(!memcmp(&m.mosi[hd + 1], data, 300), "data follows the token");
    uint32_t total = hd + 1 + 300 + (WINC_SPI_CRC ? 4u : 0u);
    CHECK(m.log_len == total, "length %u, want %u (CRC16 + answer iff CRC on)", m.log_len, total);
    if (WINC_SPI_CRC)
        CHECK(m.miso[total - 2] == 0xC3 && m.miso[total - 1] == 0x00, "packet answer C3 00");
    CHECK(m.bad_crc16_seen == 0, "CRC16 of the written data");
    CHECK(!memcmp(&m.mem[0x44000], data, 300), "memory");
    CHECK(winc_mem_read(0x44000, back, sizeof back) == WINC_OK && !memcmp(back, data, 300), "read back");
    /* a one-byte access is two bytes on the wire; the byte after it is kept */
    m.mem[0x44001] = 0x5A;
    uint8_t one = 0xA5;
    CHECK(winc_mem_write(0x44000, &one, 1) == WINC_OK, "1-byte write");
    CHECK(m.mem[0x44000] == 0xA5 && m.mem[0x44001] == 0x5A, "neighbour kept");
    CHECK(winc_mem_read(0x44001, &one, 1) == WINC_OK && one == 0x5A, "1-byte read");
}

static void t_latency_and_drops(void)
{
    CHECK(bring_up() == WINC_OK, "bring up");
    k.latency = 3;   /* the chip answers three bytes late */
    uint32_t v = 0;
    CHECK(winc_reg_read(0x1000, &v) == WINC_OK && v == 0x1000F0u, "late response accepted");
    for (int lat = 0; lat <= 4; lat++) {   /* the burst's guess wrong by 0..4 bytes */
        uint8_t want[10], got[10];
        for (int i = 0; i < 10; i++)
            want[i] = (uint8_t)(lat * 16 + i);
        memcpy(&m.mem[0x47000], want, 10);
        k.latency = lat;
        CHECK(winc_mem_read(0x47000, got, 10) == WINC_OK && !memcmp(got, want, 10), "latency %d", lat);
        CHECK(winc_mem_write(0x47100, want, 10) == WINC_OK && !memcmp(&m.mem[0x47100], want, 10),
              "write, latency %d", lat);
    }
    k.latency = 0;
    uint32_t r0 = winc_stats.retries;
    int resets = m.resets_seen;
    m.drop_commands = 2;
    CHECK(winc_reg_read(0x1000, &v) == WINC_OK && v == 0x1000F0u, "read after two lost commands");
    CHECK(winc_stats.retries == r0 + 2 && m.resets_seen == resets + 2, "two resets and retries");
    m.drop_commands = 100;
    CHECK(winc_reg_read(0x1000, &v) == WINC_ERR_BUS, "gives up after the retries");
    m.drop_commands = 0;
}

/* A data bit flipped on MISO: refused and read again with CRC on, silently taken with CRC
   off (the thread's failure mode). */
static void t_corrupted_read(void)
{
    uint8_t data[64], back[64];
    for (int i = 0; i < 64; i++)
        data[i] = (uint8_t)i;
    CHECK(bring_up() == WINC_OK, "bring up");
    memcpy(&m.mem[0x45000], data, 64);
    uint32_t e0 = winc_stats.crc_errors;
    m.flip_next_read = 1;
    CHECK(winc_mem_read(0x45000, back, 64) == WINC_OK, "read");
#if WINC_SPI_CRC
    CHECK(!memcmp(back, data, 64), "the corrupted packet was refused and read again");
    CHECK(winc_stats.crc_errors == e0 + 1, "counted");
#else
    CHECK(memcmp(back, data, 64) != 0, "CRC off: the damage reaches the host");
    CHECK(winc_stats.crc_errors == e0, "nothing counted");
#endif
}

/* A data bit flipped on MOSI: with CRC on the chip discards the packet and says so
   (C3 04), the driver writes it again; with CRC off the damage lands in chip memory. */
static void t_corrupted_write(void)
{
    uint8_t data[64];
    for (int i = 0; i < 64; i++)
        data[i] = (uint8_t)(0xA0 + i);
    CHECK(bring_up() == WINC_OK, "bring up");
    uint32_t e0 = winc_stats.crc_errors, r0 = winc_stats.retries;
    (void)e0;
    m.flip_next_write = 1;
    CHECK(winc_mem_write(0x46000, data, 64) == WINC_OK, "write");
#if WINC_SPI_CRC
    CHECK(m.bad_crc16_seen == 1, "the chip saw the bad CRC16");
    CHECK(winc_stats.crc_errors == e0 + 1 && winc_stats.retries == r0 + 1, "refused, written again");
    CHECK(!memcmp(&m.mem[0x46000], data, 64), "memory holds the clean data");
#else
    CHECK(winc_stats.retries == r0, "nothing noticed");
    CHECK(m.mem[0x46003] == (data[3] ^ 1u), "CRC off: the damage reached the chip");
#endif
}

static void t_boot_handshake(void)
{
    CHECK(bring_up() == WINC_OK, "start");
    CHECK(m.cpu_started && m.fw_started, "CPU and firmware started");
    CHECK(m.state == 0, "0x108C cleared after firmware ready");
    CHECK(m.pin_mux & (1u << 8), "IRQ pin mux");
    CHECK(m.intr_en & (1u << 16), "interrupt enable");
    CHECK(m.reg_150014 == 1 && (m.cpu_ctrl & 1u), "0x150014 and 0x1118");
    CHECK(winc_chip.chip_id == 0x3400D2u, "chip %06X", winc_chip.chip_id);
    CHECK(winc_chip.is3400, "3400 path");
    CHECK(winc_chip.hif_info == HIF_INFO && winc_chip.fw_major == 1 && winc_chip.fw_minor == 4 &&
              winc_chip.fw_patch == 2,
          "firmware %u.%u.%u", winc_chip.fw_major, winc_chip.fw_minor, winc_chip.fw_patch);
}

static void t_old_firmware_refused(void)
{
    k.hif_info = 0x8103;   /* HIF minor 3: no new-format connect request */
    CHECK(bring_up() == WINC_ERR_PROTO, "refused");
    CHECK(winc_chip.hif_info == 0x8103, "read %04X", winc_chip.hif_info);
    k.hif_info = 0x8204;   /* major 2 */
    CHECK(bring_up() == WINC_ERR_PROTO, "major 2 refused");
    k.hif_info = HIF_INFO;
    CHECK(bring_up() == WINC_OK, "1.4 accepted");
    put_le16(&m.mem[0x30000 + REV_OFF], 0x8105);   /* record disagrees with the register */
    m.fw_started = 0;
    CHECK(read_version_again() == WINC_ERR_PROTO, "inconsistent record refused");
}

static void t_hif_send_exchange(void)
{
    CHECK(bring_up() == WINC_OK, "start");
    uint8_t ctrl[4] = { 7, 0, 0, 0 };
    uint32_t w0 = m.reg_writes;
    CHECK(winc_hif_send(1, 0x23, ctrl, 4, NULL, 0, 0) == WINC_OK, "send");
    CHECK(m.last_req == (1u | 0x23u << 8 | 12u << 16), "request word %08X", m.last_req);
    CHECK(m.gain_msgs == 1, "message seen by the firmware");
    CHECK(m.ctrl3 == (TX_BUF << 2 | 2u), "0x106C %08X", m.ctrl3);
    /* request, 0x1078, 0x10AC, 0x106C, 0x10B0 */
    CHECK(m.reg_writes - w0 == 5, "register writes %u", m.reg_writes - w0);
    const uint8_t *h = &m.mem[TX_BUF];
    CHECK(h[0] == 1 && h[1] == 0x23 && le16(&h[2]) == 12 && h[8] == 7, "header and control");
    /* a data part goes at +8+offset; the opcode loses bit 7 in the header */
    uint8_t data[5] = "abcde";
    m.last_req = 0;
    CHECK(winc_hif_send(2, 0x45 | 0x80, ctrl, 4, data, 5, 80) == WINC_OK, "send with data");
    CHECK(m.last_req == (2u | 0xC5u << 8 | (8u + 80u + 5u) << 16), "request word %08X", m.last_req);
    CHECK(h[1] == 0x45 && !memcmp(&m.mem[TX_BUF + 8 + 80], "abcde", 5), "data at +88");
}

static uint32_t g_got_gid, g_got_op, g_got_len, g_got_n;
static uint8_t g_got_head[64];
static void record(uint8_t gid, uint8_t op, const uint8_t *h, uint32_t hl, uint32_t addr, uint32_t len)
{
    (void)addr;
    g_got_gid = gid;
    g_got_op = op;
    g_got_len = len;
    memcpy(g_got_head, h, hl);
    g_got_n++;
}

static void t_hif_receive_exchange(void)
{
    CHECK(bring_up() == WINC_OK, "start");
    winc_hif_set_handler(record);
    g_got_n = 0;
    uint8_t p1[4] = { 1, 0, 0, 0 }, p2[20] = { 10, 0, 0, 9 };
    queue_msg(1, 0x2C, p1, 4);
    queue_msg(1, 0x32, p2, 20);
    present();
    CHECK(winc_hif_poll() == 1, "first message served");
    CHECK(g_got_gid == 1 && g_got_op == 0x2C && g_got_len == 4 && g_got_head[0] == 1, "state changed");
    CHECK(m.ctrl0_acks == 1, "0x1070 written back with bit 0 clear");
    CHECK(winc_hif_poll() == 1 && g_got_op == 0x32 && g_got_len == 20 && g_got_head[3] == 9,
          "the second only after RX done, with its own edge");
    CHECK(winc_hif_poll() == 0, "nothing more");
    /* no edge at all (lost interrupt): the fallback poll finds it within WINC_POLL_MS */
    queue_msg(1, 0x2C, p1, 4);
    present();
    m.edge = 0;
    m.irqn_low = 0;
    uint32_t t0 = board_millis(), p0 = winc_stats.polls_without_irq;
    while (g_got_n < 3 && board_millis() - t0 < 50)
        (void)winc_hif_poll(), delay_ms(1);
    CHECK(g_got_n == 3, "found by the fallback poll");
    CHECK(winc_stats.polls_without_irq == p0 + 1, "counted");
    winc_hif_set_handler(NULL);
}

/* init -> WiFi -> DHCP -> TCP connect -> send -> recv (re-armed) -> peer close -> close */
static void t_transport_end_to_end(void)
{
    static uint8_t payload[5000];
    for (uint32_t i = 0; i < sizeof payload; i++)
        payload[i] = (uint8_t)(i * 31 + 7);
    memcpy(k.to_host, payload, sizeof payload);
    k.to_host_len = sizeof payload;
    k.split = 1000;   /* the module cuts where it likes */
    const transport_t *t = &transport_wifi;
    int rc = t->init();
    CHECK(rc == TR_OK, "init %d (stage %d err %d)", rc, winc_link.stage, winc_link.err);
    CHECK(m.wifi_connected && !strcmp(m.ssid, WINC_WIFI_SSID), "associated with %s", m.ssid);
    CHECK(m.gain_msgs == 1, "gain table sent");
    CHECK(winc_link.ip == 0xC0A80164u, "DHCP address %08X", winc_link.ip);
    rc = t->connect(PEER_IP, PEER_PORT, 2000);
    CHECK(rc == TR_OK, "connect %d", rc);
    CHECK(m.session != 0, "session id");
    rc = t->send("REQ_FW\n", 7, 1000);
    CHECK(rc == 7 && m.from_host_len == 7 && !memcmp(m.from_host, "REQ_FW\n", 7), "send %d", rc);
    static uint8_t got[6000];
    uint32_t total = 0, chunks = 0, biggest = 0;
    while (total < sizeof payload) {
        uint8_t buf[1024];
        rc = t->recv(buf, sizeof buf, 1000);
        CHECK(rc > 0, "recv %d after %u bytes", rc, total);
        CHECK((uint32_t)rc <= sizeof buf, "more than the buffer: %d", rc);
        memcpy(&got[total], buf, (uint32_t)rc);
        total += (uint32_t)rc;
        chunks++;
        if ((uint32_t)rc > biggest)
            biggest = (uint32_t)rc;
    }
    CHECK(total == sizeof payload && !memcmp(got, payload, total), "payload");
    CHECK(m.max_reply <= 1000 && biggest <= 1000, "replies cut by the module");
    CHECK(m.replies == chunks, "one reply per request: %u replies, %u chunks", m.replies, chunks);
    /* a big send is cut into 1400-byte pieces */
    static uint8_t big[3000];
    memset(big, 0x42, sizeof big);
    m.from_host_len = 0;
    rc = t->send(big, sizeof big, 2000);
    CHECK(rc == 3000 && m.from_host_len == 3000, "big send %d", rc);
    /* nothing more: the module's own timeout would answer -13; here the peer closes */
    k.peer_closed = 1;
    try_deliver();
    present();
    uint8_t b[16];
    rc = t->recv(b, sizeof b, 1000);
    CHECK(rc == 0, "peer close gives 0, got %d", rc);
    uint32_t closes = m.closes;
    t->close();
    CHECK(m.closes == closes + 1, "close sent");
    CHECK(m.hif_sent[0] == 0x44 && m.hif_sent[1] == 0x45 && m.hif_sent[2] == 0x46, "op order");
    t->deinit();
}

static void t_transport_refused_and_stale(void)
{
    const transport_t *t = &transport_wifi;
    CHECK(t->init() == TR_OK, "init");
    k.refuse = 1;
    CHECK(t->connect(PEER_IP, PEER_PORT, 2000) == TR_ERR_REFUSED, "refused");
    k.refuse = 0;
    CHECK(t->recv((uint8_t[4]){ 0 }, 4, 10) == TR_ERR_STATE, "recv before connect");
    CHECK(t->connect(PEER_IP, PEER_PORT, 2000) == TR_OK, "connect");
    /* a reply with another session id (an earlier socket's) is dropped */
    uint8_t p[16 + 4] = { 0 };
    put_le16(&p[8], 4);
    put_le16(&p[10], 16);
    p[12] = (uint8_t)m.sock;
    put_le16(&p[14], (uint16_t)(m.session + 5));
    memcpy(&p[16], "XXXX", 4);
    queue_msg(2, 0x46, p, sizeof p);
    present();
    memcpy(k.to_host, "good", 4);
    k.to_host_len = 4;
    uint8_t b[8];
    int rc = t->recv(b, sizeof b, 1000);
    CHECK(rc == 4 && !memcmp(b, "good", 4), "got %d %.4s", rc, (const char *)b);
    t->deinit();
}

static void t_recv_timeout_then_late_data(void)
{
    const transport_t *t = &transport_wifi;
    CHECK(t->init() == TR_OK, "init");
    CHECK(t->connect(PEER_IP, PEER_PORT, 2000) == TR_OK, "connect");
    uint8_t b[32];
    int rc = t->recv(b, sizeof b, 50);   /* nothing comes; this fake never answers -13 */
    CHECK(rc == TR_ERR_TIMEOUT, "timeout %d", rc);
    CHECK(m.recv_pending, "the request stays armed in the module");
    memcpy(k.to_host, "late!", 5);
    k.to_host_len = 5;
    try_deliver();
    present();
    uint8_t c[4];
    rc = t->recv(c, sizeof c, 1000);
    CHECK(rc == 4 && !memcmp(c, "late", 4), "late reply handed out: %d", rc);
    rc = t->recv(c, sizeof c, 1000);
    CHECK(rc == 1 && c[0] == '!', "rest of it: %d", rc);
    t->deinit();
}

/* The module resets behind the driver's back (CPU held, 0xE824 back at its reset value):
   the waiting recv ends with TR_ERR_ABORTED, and the next connect starts it again. */
static void t_module_reset_recovered(void)
{
    const transport_t *t = &transport_wifi;
    CHECK(t->init() == TR_OK, "init");
    CHECK(t->connect(PEER_IP, PEER_PORT, 2000) == TR_OK, "connect");
    fake_reset();   /* the chip is back at power-up: CRC on, 256-byte packets, no firmware */
    uint8_t b[16];
    uint32_t t0 = board_millis();
    int rc = t->recv(b, sizeof b, 1000);
    CHECK(rc == TR_ERR_ABORTED, "recv %d", rc);
    CHECK(board_millis() - t0 <= 2u * WINC_ALIVE_MS + 50u, "noticed in %u ms", board_millis() - t0);
    CHECK(winc_stats.resets_seen > 0, "counted");
    t->close();
    rc = t->connect(PEER_IP, PEER_PORT, 2000);
    CHECK(rc == TR_OK, "connect after the reset %d", rc);
    CHECK(m.fw_started && m.wifi_connected, "started and associated again");
    memcpy(k.to_host, "back", 4);
    k.to_host_len = 4;
    rc = t->recv(b, sizeof b, 1000);
    CHECK(rc == 4 && !memcmp(b, "back", 4), "data after the reset: %d", rc);
    t->deinit();
}

/* ------------------------------------------------------------------ main */
typedef struct { const char *name; void (*fn)(void); } test_t;
static const test_t k_tests[] = {
    { "crc7_vectors", t_crc7_vectors },
    { "crc16_vectors", t_crc16_vectors },
    { "command_packets", t_command_packets },
    { "first_access_bytes", t_first_access_bytes },
    { "negotiation", t_negotiation },
    { "negotiation_chip_crc_off", t_negotiation_chip_crc_off },
    { "register_write_bytes", t_register_write_bytes },
    { "block_write_read", t_block_write_read },
    { "latency_and_drops", t_latency_and_drops },
    { "corrupted_read", t_corrupted_read },
    { "corrupted_write", t_corrupted_write },
    { "boot_handshake", t_boot_handshake },
    { "old_firmware_refused", t_old_firmware_refused },
    { "hif_send_exchange", t_hif_send_exchange },
    { "hif_receive_exchange", t_hif_receive_exchange },
    { "transport_end_to_end", t_transport_end_to_end },
    { "transport_refused_and_stale", t_transport_refused_and_stale },
    { "recv_timeout_then_late_data", t_recv_timeout_then_late_data },
    { "module_reset_recovered", t_module_reset_recovered },
};

int main(int argc, char **argv)
{
    int pass = 0, failed = 0;
    for (size_t i = 0; i < sizeof k_tests / sizeof k_tests[0]; i++) {
        if (argc > 1) {
            int want = 0;
            for (int a = 1; a < argc; a++)
                want |= !strcmp(argv[a], k_tests[i].name);
            if (!want)
                continue;
        }
        memset(&k, 0, sizeof k);
        k.hif_info = HIF_INFO;
        fake_reset();
        g_failed = 0;
        g_why[0] = 0;
        k_tests[i].fn();
        if (!g_failed) {
            printf("PASS %s\n", k_tests[i].name);
            pass++;
        } else {
            printf("FAIL %s: %s\n", k_tests[i].name, g_why);
            failed++;
        }
    }
    printf("SUMMARY crc=%d pass=%d fail=%d\n", WINC_SPI_CRC, pass, failed);
    return failed ? 1 : 0;
}
