/*
 * transport_lwip.c - transport_eth (transport.h) on lwIP's raw TCP API over the STM32
 * ETH MAC + LAN8742A (net.h). Polled: every blocking call runs net_poll() until its
 * condition or its timeout, so lwIP's timers and the link check keep running.
 *
 * Address: static. The config record names only the server, so the board takes host
 * .100 of the server's /24 (192.168.1.100 next to 192.168.1.10; .101 if the server is
 * .100 itself), netmask 255.255.255.0, the server as gateway. On the twin that is also
 * the address its DHCP server would hand out first and the default target of --hostfwd.
 *
 * Receive: lwIP hands up pbufs in its recv callback; they are queued (the receive window
 * stays closed by what is queued) and copied out by recv(), which returns what is there
 * up to `max` bytes, like a socket. The window opens (tcp_recved) as data is consumed,
 * so a slow consumer (flash programming) back-pressures the sender.
 * Send: copies into lwIP (tcp_write with COPY), waiting for send-buffer space.
 * close(): waits (bounded) until what was sent is acknowledged, then closes with FIN.
 * Link loss (the PHY reports the link down) aborts the connection at once: the caller
 * gets TR_ERR_ABORTED ("link lost") after any data already received, and connects again.
 * A connect nobody answers (no SYN-ACK, no ARP reply) is TR_ERR_REFUSED like a refused
 * one: the host is unreachable.
 */
#include <stddef.h>

#include "board.h"
#include "lwip/ip_addr.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h" /* tcp_active_pcbs: is a closing connection done? */
#include "lwip/tcp.h"
#include "net.h"
#include "transport.h"

#define BOARD_HOST       100u
#define LINK_WAIT_MS     5000u  /* connect() waits this long for link + address at most */
#define CLOSE_FLUSH_MS   2000u
#define CLOSE_LINGER_MS  50u

enum { ST_IDLE, ST_CONNECTING, ST_CONNECTED, ST_PEER_CLOSED, ST_ERROR };

static struct tcp_pcb *s_pcb;
static struct pbuf *s_rxq;
static volatile int s_state = ST_IDLE;
static err_t s_err;
static int s_net_up;

static void drop_rxq(void)
{
    if (s_rxq != NULL) {
        pbuf_free(s_rxq);
        s_rxq = NULL;
    }
}

static int map_err(err_t e)
{
    switch (e) {
    case ERR_RST:
    case ERR_ABRT:
    case ERR_CLSD:
        return TR_ERR_ABORTED;
    case ERR_TIMEOUT:
        return TR_ERR_TIMEOUT;
    default:
        return TR_ERR_ABORTED;
    }
}

/* ---------------------------------------------------------------- lwIP callbacks */
static err_t on_connected(void *arg, struct tcp_pcb *pcb, err_t err)
{
    (void)arg;
    (void)pcb;
    s_state = err == ERR_OK ? ST_CONNECTED : ST_ERROR;
    s_err = err;
    return ERR_OK;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    (void)arg;
    (void)pcb;
    if (p == NULL) {                 /* FIN: queued data is still delivered first */
        if (s_state == ST_CONNECTED) {
            s_state = ST_PEER_CLOSED;
        }
        return ERR_OK;
    }
    if (err != ERR_OK) {
        pbuf_free(p);
        return ERR_OK;
    }
    if (s_rxq == NULL) {
        s_rxq = p;
    } else {
        pbuf_cat(s_rxq, p);
    }
    return ERR_OK;
}

static void on_error(void *arg, err_t err)
{
    (void)arg;
    s_pcb = NULL;                    /* lwIP has freed it */
    s_err = err;
    s_state = ST_ERROR;
}

/* The link went down under an open connection: abort it (the RST does not get out). */
static void check_link_lost(void)
{
    if (s_pcb != NULL && !net_link_up() &&
        (s_state == ST_CONNECTED || s_state == ST_PEER_CLOSED || s_state == ST_CONNECTING)) {
        tcp_arg(s_pcb, NULL);
        tcp_recv(s_pcb, NULL);
        tcp_err(s_pcb, NULL);
        tcp_abort(s_pcb);
        s_pcb = NULL;
        s_err = ERR_ABRT;
        s_state = ST_ERROR;
    }
}

static int connect_done(void)
{
    check_link_lost();
    return s_state != ST_CONNECTING;
}

static int have_rx_or_end(void)
{
    check_link_lost();
    return s_rxq != NULL || s_state != ST_CONNECTED;
}

static int nothing_unacked(void)
{
    check_link_lost();
    return s_pcb == NULL || s_state == ST_ERROR ||
           (s_pcb->unsent == NULL && s_pcb->unacked == NULL);
}

static int still_active(const struct tcp_pcb *pcb)
{
    for (const struct tcp_pcb *p = tcp_active_pcbs; p != NULL && pcb != NULL; p = p->next) {
        if (p == pcb) {
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- transport */
static void abort_pcb(void)
{
    if (s_pcb != NULL) {
        tcp_arg(s_pcb, NULL);
        tcp_recv(s_pcb, NULL);
        tcp_err(s_pcb, NULL);
        tcp_abort(s_pcb);            /* sends RST */
        s_pcb = NULL;
    }
    drop_rxq();
    s_state = ST_IDLE;
}

static int lwip_tr_init(void)
{
    /* The address is set in connect(), from the server's subnet. */
    static const net_config_t unset = {0, 0, 0, 0};
    abort_pcb();
    s_net_up = 0;
    int rc = net_init(&unset);
    if (rc != NET_OK) {
        return TR_ERR_DEVICE;
    }
    s_net_up = 1;
    return TR_OK;
}

static int lwip_tr_connect(uint32_t ip, uint16_t port, uint32_t timeout_ms)
{
    if (!s_net_up) {
        return TR_ERR_DEVICE;
    }
    abort_pcb();
    uint32_t start = board_millis();
    if (net_ip() == 0) {
        uint32_t host = (ip & 0xFFu) == BOARD_HOST ? BOARD_HOST + 1u : BOARD_HOST;
        ip4_addr_t a, m, g;
        ip4_addr_set_u32(&a, lwip_htonl((ip & 0xFFFFFF00u) | host));
        ip4_addr_set_u32(&m, lwip_htonl(0xFFFFFF00u));
        ip4_addr_set_u32(&g, lwip_htonl(ip));
        netif_set_addr(net_netif(), &a, &m, &g);
    }
    uint32_t link_wait = timeout_ms < LINK_WAIT_MS ? timeout_ms : LINK_WAIT_MS;
    if (!net_wait(net_ready, link_wait)) {
        return TR_ERR_REFUSED;       /* no link: like an unreachable host */
    }
    s_pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (s_pcb == NULL) {
        return TR_ERR_DEVICE;
    }
    tcp_arg(s_pcb, NULL);
    tcp_recv(s_pcb, on_recv);
    tcp_err(s_pcb, on_error);
    tcp_nagle_disable(s_pcb);        /* protocol lines go out at once */
    ip_addr_t dst;
    ip_addr_set_ip4_u32_val(dst, lwip_htonl(ip));
    s_state = ST_CONNECTING;
    s_err = ERR_OK;
    if (tcp_connect(s_pcb, &dst, port, on_connected) != ERR_OK) {
        abort_pcb();
        return TR_ERR_DEVICE;
    }
    uint32_t spent = (uint32_t)(board_millis() - start);
    (void)net_wait(connect_done, spent < timeout_ms ? timeout_ms - spent : 0u);
    if (s_state == ST_CONNECTED) {
        return TR_OK;
    }
    abort_pcb();
    return TR_ERR_REFUSED;   /* refused (RST), or nobody answered: unreachable */
}

static int lwip_tr_send(const void *buf, uint32_t len, uint32_t timeout_ms)
{
    const uint8_t *p = (const uint8_t *)buf;
    uint32_t done = 0;
    uint32_t start = board_millis();
    if (s_pcb == NULL || (s_state != ST_CONNECTED && s_state != ST_PEER_CLOSED)) {
        return s_state == ST_ERROR ? map_err(s_err) : TR_ERR_STATE;
    }
    while (done < len) {
        check_link_lost();
        if (s_pcb == NULL || s_state == ST_ERROR) {
            return map_err(s_err);
        }
        uint32_t room = tcp_sndbuf(s_pcb);
        if (room > 0 && tcp_sndqueuelen(s_pcb) < TCP_SND_QUEUELEN) {
            uint32_t n = len - done < room ? len - done : room;
            err_t e = tcp_write(s_pcb, p + done, (u16_t)n, TCP_WRITE_FLAG_COPY);
            if (e == ERR_OK) {
                done += n;
                (void)tcp_output(s_pcb);
                continue;
            }
            if (e != ERR_MEM) {
                return map_err(e);
            }
        }
        (void)tcp_output(s_pcb);
        net_poll();
        if ((uint32_t)(board_millis() - start) >= timeout_ms) {
            return done > 0 ? (int)done : TR_ERR_TIMEOUT;
        }
    }
    return (int)done;
}

static int lwip_tr_recv(void *buf, uint32_t max, uint32_t timeout_ms)
{
    if (s_state == ST_IDLE || s_state == ST_CONNECTING) {
        return TR_ERR_STATE;
    }
    if (max == 0) {
        return 0;
    }
    (void)net_wait(have_rx_or_end, timeout_ms);
    if (s_rxq != NULL) {
        uint32_t n = max < s_rxq->tot_len ? max : s_rxq->tot_len;
        (void)pbuf_copy_partial(s_rxq, buf, (u16_t)n, 0);
        s_rxq = pbuf_free_header(s_rxq, (u16_t)n);
        if (s_pcb != NULL) {
            tcp_recved(s_pcb, (u16_t)n);
        }
        return (int)n;
    }
    if (s_state == ST_PEER_CLOSED) {
        return 0;
    }
    if (s_state == ST_ERROR) {
        return map_err(s_err);
    }
    return TR_ERR_TIMEOUT;
}

static void lwip_tr_close(void)
{
    if (s_pcb != NULL && (s_state == ST_CONNECTED || s_state == ST_PEER_CLOSED)) {
        (void)net_wait(nothing_unacked, CLOSE_FLUSH_MS);
        if (s_pcb != NULL) {
            struct tcp_pcb *closing = s_pcb;
            tcp_arg(s_pcb, NULL);
            tcp_recv(s_pcb, NULL);
            tcp_err(s_pcb, NULL);
            if (tcp_close(s_pcb) != ERR_OK) {
                tcp_abort(s_pcb);
                closing = NULL;
            }
            s_pcb = NULL;
            /* let the FIN leave (lwIP finishes the close on its own while polled): until
               the connection leaves the active list (TIME_WAIT or freed after LAST_ACK: our
               FIN was acknowledged) or CLOSE_LINGER_MS passed; the pointer is only
               compared, never followed */
            uint32_t start = board_millis();
            while (still_active(closing) && (uint32_t)(board_millis() - start) < CLOSE_LINGER_MS) {
                net_poll();
            }
        }
        drop_rxq();
        s_state = ST_IDLE;
        return;
    }
    abort_pcb();
}

static void lwip_tr_deinit(void)
{
    lwip_tr_close();
    abort_pcb();
    s_net_up = 0;
    net_deinit();
}

const transport_t transport_eth = {
    .name = "eth",
    .init = lwip_tr_init,
    .connect = lwip_tr_connect,
    .send = lwip_tr_send,
    .recv = lwip_tr_recv,
    .close = lwip_tr_close,
    .deinit = lwip_tr_deinit,
};
