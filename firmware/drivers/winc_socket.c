/*
 * winc_socket.c - transport_wifi on the WINC3400: WiFi station (WPA-PSK, DHCP) and one
 * TCP client socket through the module's host interface (winc_socket.h).
 *
 * Everything is polled: every wait calls winc_hif_poll(), which serves the chip's
 * messages (IRQN edge latched in EXTI1, IRQN low, or a fallback read of 0x1070 every
 * WINC_POLL_MS). Message handlers only record what arrived; requests are sent from the
 * transport calls. A RECV reply goes straight into the caller's buffer while a recv()
 * waits for it, else into a stash that the next recv() hands out first.
 */
#include <stddef.h>

#include "board.h"
#include "transport.h"
#include "winc_bus.h"
#include "winc_hif.h"
#include "winc_socket.h"

#define WIFI_CONNECT_MS   15000u   /* association + WPA handshake */
#define DHCP_MS           10000u
#define RECV_MARGIN_MS    200u     /* beyond the module's own receive timeout */
#define CLOSE_DRAIN_MS    2u

winc_link_t winc_link;

static struct {
    int chip_up;         /* firmware running, HIF usable */
    int wifi_up;         /* associated and addressed */
    volatile int wifi_event, wifi_state, wifi_err;
    volatile int dhcp_done;
    uint32_t ip;

    int sock;            /* socket in use, -1 = none */
    int next_sock;
    uint16_t session;
    uint16_t next_session;
    int connected;
    volatile int lost;   /* connection aborted, WiFi lost or the module gone */

    volatile int conn_done;
    int conn_err;
    volatile int send_done;
    int send_res;

    int rx_pending;      /* a RECV request is outstanding in the module */
    int rx_active;       /* a recv() waits: replies go to rx_buf */
    volatile int rx_done;
    int rx_res;
    uint8_t *rx_buf;
    uint32_t rx_cap;
    uint32_t stash_len, stash_pos;
    int stash_res;       /* a late non-data reply (0 closed, <0 error), 1 = none */
} w = { .sock = -1, .stash_res = 1 };

static uint8_t stash[WINC_HIF_MAX];

static void put16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static int16_t get_s16(const uint8_t *p)
{
    return (int16_t)(uint16_t)(p[0] | (p[1] << 8));
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static void fail_waiters(void)
{
    w.lost = 1;
    if (w.rx_pending) {
        w.rx_pending = 0;
        w.rx_res = WINC_SOCK_ERR_CONN_ABORTED;
        w.rx_done = 1;
    }
    if (!w.send_done) {
        w.send_res = WINC_SOCK_ERR_CONN_ABORTED;
        w.send_done = 1;
    }
    if (!w.conn_done) {
        w.conn_err = WINC_SOCK_ERR_CONN_ABORTED;
        w.conn_done = 1;
    }
}

/* ---------------------------------------------------------------- messages */
static void on_recv(const uint8_t *h, uint32_t hl, uint32_t addr, uint32_t len)
{
    /* tstrRecvReply: addr[8], s16 status, u16 data offset, u8 sock, u8 -, u16 session */
    if (hl < 16u)
        return;
    winc_stats.recv_events++;
    int sock = h[12];
    if (sock != w.sock || get_u16(&h[14]) != w.session || !w.rx_pending)
        return;   /* an earlier socket's reply */
    w.rx_pending = 0;
    int status = get_s16(&h[8]);
    uint32_t off = get_u16(&h[10]);
    if (status > 0 && (uint32_t)status < len && off + (uint32_t)status <= len) {
        uint32_t n = (uint32_t)status;
        if (w.rx_active && n <= w.rx_cap) {
            if (winc_mem_read(addr + off, w.rx_buf, n) != WINC_OK) {
                fail_waiters();
                return;
            }
            w.rx_res = (int)n;
        } else {
            /* nobody waits, or more than the buffer now offered: keep it for recv() */
            if (n > sizeof stash)
                n = sizeof stash;
            if (winc_mem_read(addr + off, stash, n) != WINC_OK) {
                fail_waiters();
                return;
            }
            w.stash_len = n;
            w.stash_pos = 0;
            w.rx_res = WINC_SOCK_ERR_TIMEOUT;   /* the caller takes it from the stash */
        }
    } else if (status > 0) {
        winc_stats.bad_frames++;                 /* data outside the message */
        w.rx_res = WINC_SOCK_ERR_CONN_ABORTED;
    } else {
        w.rx_res = status;
        if (!w.rx_active && status != WINC_SOCK_ERR_TIMEOUT)
            w.stash_res = status;
    }
    w.rx_done = 1;
}

static void on_message(uint8_t gid, uint8_t op, const uint8_t *h, uint32_t hl, uint32_t addr,
                       uint32_t len)
{
    if (gid == WINC_GID_WIFI) {
        if (op == WINC_WIFI_RESP_CON_STATE && hl >= 2u) {
            w.wifi_state = h[0];
            w.wifi_err = h[1];
            w.wifi_event = 1;
            if (h[0] == 0 && w.wifi_up) {   /* disconnected from the access point */
                w.wifi_up = 0;
                if (w.sock >= 0) {
                    winc_stats.resets_seen++;
                    fail_waiters();
                }
            }
        } else if (op == WINC_WIFI_REQ_DHCP_CONF && hl >= 4u) {
            /* address in network order in memory: h[0] is the first octet */
            w.ip = ((uint32_t)h[0] << 24) | ((uint32_t)h[1] << 16) | ((uint32_t)h[2] << 8) | h[3];
            w.dhcp_done = 1;
        }
        return;
    }
    if (gid != WINC_GID_IP || w.sock < 0)
        return;
    if (op == WINC_SOCK_CMD_CONNECT && hl >= 2u) {
        /* tstrConnectReply: s8 sock, s8 error, u16 app data offset (no session) */
        if ((int8_t)h[0] == w.sock && !w.conn_done) {
            w.conn_err = (int8_t)h[1];
            w.conn_done = 1;
        }
    } else if (op == WINC_SOCK_CMD_SEND && hl >= 6u) {
        /* tstrSendReply: u8 sock, u8 -, s16 sent, u16 session, u16 - */
        if (h[0] == w.sock && get_u16(&h[4]) == w.session && !w.send_done) {
            w.send_res = get_s16(&h[2]);
            w.send_done = 1;
        }
    } else if (op == WINC_SOCK_CMD_RECV) {
        on_recv(h, hl, addr, len);
    }
}

/* The chip was reset or its bus stopped answering: the connection is gone, and the next
   connect starts the module again. */
static void chip_lost(void)
{
    w.chip_up = 0;
    w.wifi_up = 0;
    if (w.sock >= 0) {
        winc_stats.resets_seen++;
        fail_waiters();
    }
}

/* Serve messages. */
static void service(void)
{
    if (!w.chip_up)
        return;
    int rc = winc_hif_poll();
    if (rc == WINC_ERR_RESET) {
        board_printf("WINC: the module was reset\n");
        chip_lost();
    } else if (rc < 0 && winc_hif_poll() < 0) {
        chip_lost();
    }
}

static int wait_flag(volatile int *flag, uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    for (;;) {
        service();
        if (*flag)
            return 1;
        if ((uint32_t)(board_millis() - start) >= timeout_ms)
            return *flag;
    }
}

/* ---------------------------------------------------------------- WiFi */
static int wifi_associate(void)
{
    static const char ssid[] = WINC_WIFI_SSID;
    static const char psk[] = WINC_WIFI_PSK;
    uint8_t hdr[48], cred[108], gain[4] = {0};
    _Static_assert(sizeof ssid - 1u <= 32u, "SSID longer than 32 bytes");
    _Static_assert(sizeof psk - 1u >= 8u && sizeof psk - 1u <= 63u, "WPA passphrase: 8..63 characters");

    /* gain table 0 (no reply) */
    (void)winc_hif_send(WINC_GID_WIFI, WINC_WIFI_REQ_SET_GAIN_TABLE, gain, sizeof gain, NULL, 0, 0);

    /* tstrM2mWifiConnHdr: u16 cred size, u8 store flags (0: not saved), u8 channel (255 =
       all), then u8 ssid len, ssid[32], u8 options, bssid[6], u8 auth (2 = WPA-PSK), rsv[3] */
    memset(hdr, 0, sizeof hdr);
    memset(cred, 0, sizeof cred);
    put16(&hdr[0], 44u + sizeof cred);
    hdr[2] = 0;
    hdr[3] = 255u;
    hdr[4] = (uint8_t)(sizeof ssid - 1u);
    memcpy(&hdr[5], ssid, sizeof ssid - 1u);
    hdr[44] = 2u;
    /* tstrM2mWifiPsk: u8 len, passphrase[64], psk[40], u8 calculated, rsv[2] */
    cred[0] = (uint8_t)(sizeof psk - 1u);
    memcpy(&cred[1], psk, sizeof psk - 1u);

    w.wifi_event = 0;
    w.dhcp_done = 0;
    int rc = winc_hif_send(WINC_GID_WIFI, WINC_WIFI_REQ_CONN | WINC_HIF_DATA_PKT, hdr, sizeof hdr,
                           cred, sizeof cred, sizeof hdr);
    if (rc != WINC_OK)
        return rc;
    uint32_t start = board_millis();
    for (;;) {
        if (!wait_flag(&w.wifi_event, WIFI_CONNECT_MS - (board_millis() - start)))
            return WINC_ERR_TIME;
        w.wifi_event = 0;
        if (w.wifi_state == 1)
            break;
        return WINC_ERR_PROTO;    /* the module reports the connection failed */
    }
    w.wifi_up = 1;
    winc_link.stage = WINC_INIT_DHCP;
    if (!wait_flag(&w.dhcp_done, DHCP_MS))
        return WINC_ERR_TIME;
    return WINC_OK;
}

/* ---------------------------------------------------------------- transport */

static int wifi_init(void)
{
    memset(&winc_link, 0, sizeof winc_link);
    w.chip_up = w.wifi_up = w.connected = w.rx_pending = w.rx_done = 0;
    w.sock = -1;
    w.stash_len = w.stash_pos = 0;
    w.stash_res = 1;
    winc_hif_set_handler(on_message);

    if (winc_port_open() != 0)
        return TR_ERR_DEVICE;
    winc_port_chip_reset();
    uint32_t id = 0;
    int rc = winc_bus_init(&id);
    if (rc != WINC_OK) {
        winc_link.stage = WINC_INIT_BUS;
        winc_link.err = rc;
        board_printf("WINC: no answer on SPI (%d)\n", rc);
        return TR_ERR_DEVICE;
    }
    rc = winc_hif_start(id);
    if (rc != WINC_OK) {
        winc_link.stage = WINC_INIT_CHIP;
        winc_link.err = rc;
        board_printf("WINC: chip start failed (%d), chip 0x%lx firmware HIF 0x%x\n", rc,
                     (unsigned long)winc_chip.chip_id, winc_chip.hif_info);
        return TR_ERR_DEVICE;
    }
    w.chip_up = 1;
    board_printf("WINC: chip 0x%lx firmware %u.%u.%u HIF 0x%04x, SPI CRC %s, %s\n",
                 (unsigned long)winc_chip.chip_id, winc_chip.fw_major, winc_chip.fw_minor,
                 winc_chip.fw_patch, winc_chip.hif_info, winc_bus_crc() ? "on" : "off",
#if WINC_SPI_DMA
                 "SPI DMA"
#else
                 "SPI polled"
#endif
    );
    winc_link.stage = WINC_INIT_WIFI;
    rc = wifi_associate();
    if (rc != WINC_OK) {
        winc_link.err = rc;
        board_printf("WINC: WiFi %s failed (%d, state %d err %d)\n",
                     winc_link.stage == WINC_INIT_DHCP ? "DHCP" : "connect to \"" WINC_WIFI_SSID "\"",
                     rc, w.wifi_state, w.wifi_err);
        return TR_ERR_REFUSED;
    }
    winc_link.stage = 0;
    winc_link.ip = w.ip;
    board_printf("WINC: WiFi \"%s\" up, IP %lu.%lu.%lu.%lu\n", WINC_WIFI_SSID,
                 (unsigned long)(w.ip >> 24), (unsigned long)((w.ip >> 16) & 0xFFu),
                 (unsigned long)((w.ip >> 8) & 0xFFu), (unsigned long)(w.ip & 0xFFu));
    return TR_OK;
}

static void wifi_close(void)
{
    if (w.chip_up && w.sock >= 0) {
        uint8_t c[4] = { (uint8_t)w.sock, 0 };
        put16(&c[2], w.session);
        (void)winc_hif_send(WINC_GID_IP, WINC_SOCK_CMD_CLOSE, c, sizeof c, NULL, 0, 0);
    }
    w.sock = -1;
    w.connected = 0;
    w.rx_pending = 0;
    w.rx_done = 0;
    w.stash_len = w.stash_pos = 0;
    w.stash_res = 1;
    w.lost = 0;
}

static int wifi_connect(uint32_t ip, uint16_t port, uint32_t timeout_ms)
{
    if (w.sock >= 0)
        wifi_close();
    if (!w.chip_up || !w.wifi_up) {
        /* the module was reset or left the access point since init: start it again */
        int rc = wifi_init();
        if (rc != TR_OK)
            return rc;
    }
    uint32_t until = board_millis() + CLOSE_DRAIN_MS;
    while ((int32_t)(until - board_millis()) > 0)
        service();   /* replies of the last socket leave before the new one exists */

    w.sock = w.next_sock;
    w.next_sock = (w.next_sock + 1) % (int)WINC_TCP_SOCK_MAX;
    if (++w.next_session == 0)
        ++w.next_session;
    w.session = w.next_session;
    w.conn_done = 0;
    w.send_done = 1;
    w.lost = 0;
    /* tstrConnectCmd: u16 family 2, u16 port and u32 address in network order, u8 sock,
       u8 ssl flags, u16 session */
    uint8_t c[12] = { 2, 0, (uint8_t)(port >> 8), (uint8_t)port, (uint8_t)(ip >> 24),
                      (uint8_t)(ip >> 16), (uint8_t)(ip >> 8), (uint8_t)ip, (uint8_t)w.sock, 0 };
    put16(&c[10], w.session);
    if (winc_hif_send(WINC_GID_IP, WINC_SOCK_CMD_CONNECT, c, sizeof c, NULL, 0, 0) != WINC_OK) {
        w.sock = -1;
        chip_lost();
        return TR_ERR_DEVICE;
    }
    if (!wait_flag(&w.conn_done, timeout_ms)) {
        wifi_close();
        return TR_ERR_TIMEOUT;
    }
    if (w.conn_err != 0) {
        int aborted = w.lost;
        wifi_close();
        return aborted ? TR_ERR_ABORTED : TR_ERR_REFUSED;
    }
    w.connected = 1;
    return TR_OK;
}

static int wifi_send(const void *buf, uint32_t len, uint32_t timeout_ms)
{
    const uint8_t *p = (const uint8_t *)buf;
    uint32_t done = 0, start = board_millis();
    if (!w.connected)
        return TR_ERR_STATE;
    while (done < len) {
        if (w.lost)
            return TR_ERR_ABORTED;
        uint32_t n = len - done;
        if (n > WINC_SOCKET_BUFFER_MAX_LENGTH)
            n = WINC_SOCKET_BUFFER_MAX_LENGTH;
        /* tstrSendCmd: u8 sock, u8 -, u16 size, 8-byte address (unused for TCP), u16 session,
           u16 -; the data goes 80 bytes after it */
        uint8_t c[16] = { (uint8_t)w.sock, 0 };
        put16(&c[2], n);
        put16(&c[12], w.session);
        w.send_done = 0;
        if (winc_hif_send(WINC_GID_IP, WINC_SOCK_CMD_SEND | WINC_HIF_DATA_PKT, c, sizeof c, p + done,
                          (uint16_t)n, WINC_TCP_TX_OFFSET) != WINC_OK) {
            w.send_done = 1;
            chip_lost();
            w.lost = 1;
            return TR_ERR_ABORTED;
        }
        uint32_t spent = board_millis() - start;
        if (!wait_flag(&w.send_done, spent < timeout_ms ? timeout_ms - spent : 0))
            return done ? (int)done : TR_ERR_TIMEOUT;
        if (w.send_res <= 0) {
            w.lost = 1;
            return TR_ERR_ABORTED;
        }
        done += (uint32_t)w.send_res < n ? (uint32_t)w.send_res : n;
    }
    return (int)done;
}

static int take_stash(uint8_t *buf, uint32_t max)
{
    uint32_t n = w.stash_len - w.stash_pos;
    if (n > max)
        n = max;
    memcpy(buf, stash + w.stash_pos, n);
    w.stash_pos += n;
    if (w.stash_pos >= w.stash_len)
        w.stash_len = w.stash_pos = 0;
    return (int)n;
}

static int wifi_recv(void *buf, uint32_t max, uint32_t timeout_ms)
{
    if (!w.connected)
        return TR_ERR_STATE;
    if (max == 0)
        return 0;
    if (w.stash_len)
        return take_stash((uint8_t *)buf, max);
    if (w.stash_res != 1) {
        int r = w.stash_res;
        w.stash_res = 1;
        if (r < 0)
            w.lost = 1;
        return r == 0 ? 0 : TR_ERR_ABORTED;
    }
    if (w.lost)
        return TR_ERR_ABORTED;
    if (max > 0xFFFFu)
        max = 0xFFFFu;
    w.rx_buf = (uint8_t *)buf;
    w.rx_cap = max;
    if (!w.rx_pending) {
        /* tstrRecvCmd (12 bytes): u32 timeout ms, u8 sock, u8 -, u16 session, u16 buffer
           length, 2 bytes of padding */
        uint8_t c[12];
        uint32_t t = timeout_ms ? timeout_ms : 1u;
        c[0] = (uint8_t)t;
        c[1] = (uint8_t)(t >> 8);
        c[2] = (uint8_t)(t >> 16);
        c[3] = (uint8_t)(t >> 24);
        c[4] = (uint8_t)w.sock;
        c[5] = 0;
        put16(&c[6], w.session);
        put16(&c[8], max);
        c[10] = c[11] = 0;
        w.rx_done = 0;
        w.rx_pending = 1;
        if (winc_hif_send(WINC_GID_IP, WINC_SOCK_CMD_RECV, c, sizeof c, NULL, 0, 0) != WINC_OK) {
            w.rx_pending = 0;
            chip_lost();
            w.lost = 1;
            return TR_ERR_ABORTED;
        }
    }
    w.rx_active = 1;
    int got = wait_flag(&w.rx_done, timeout_ms + RECV_MARGIN_MS);
    w.rx_active = 0;
    if (!got)
        return TR_ERR_TIMEOUT;   /* still armed: its reply lands in the stash */
    w.rx_done = 0;
    if (w.stash_len)
        return take_stash((uint8_t *)buf, max);
    if (w.rx_res == WINC_SOCK_ERR_TIMEOUT)
        return TR_ERR_TIMEOUT;
    if (w.rx_res < 0) {
        w.lost = 1;
        return TR_ERR_ABORTED;
    }
    return w.rx_res;
}

static void wifi_deinit(void)
{
    wifi_close();
    w.chip_up = 0;
    w.wifi_up = 0;
    winc_port_close();
}

const transport_t transport_wifi = {
    .name = "wifi",
    .init = wifi_init,
    .connect = wifi_connect,
    .send = wifi_send,
    .recv = wifi_recv,
    .close = wifi_close,
    .deinit = wifi_deinit,
};
