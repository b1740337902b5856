/*
 * lwiptest - lwIP (raw API, NO_SYS) on the STM32 ETH MAC + LAN8742A (drivers/lwip_port):
 * DHCP, ARP, TCP servers reached through host -> board forwards, link loss and recovery.
 * Built with `make ETH=mac`. Everything it sees goes to USART3, one line per event:
 *
 *   lwiptest: mac 02:80:e1:xx:xx:xx
 *   lwiptest: link up 100FD | lwiptest: link down
 *   lwiptest: dhcp bound 192.168.1.100 mask 255.255.255.0 gw 192.168.1.10
 *   lwiptest: arp 192.168.1.10 at 52:55:c0:a8:01:0a       (the gateway, asked once per lease)
 *   lwiptest: ready http=80 echo=7 sink=9
 *   lwiptest: http GET <path> -> <status code> <body bytes>
 *   lwiptest: echo closed bytes=<n>
 *   lwiptest: sink bytes=<n> crc=<crc32 hex>
 *
 * Servers (any number of sequential connections, up to MAX_CONNS at once):
 *   :80  HTTP/1.0. GET / -> "lwiptest ip=<ip> link=<..> rx=<frames> ..."; GET /bytes/<n>
 *        -> n bytes of the pattern (i * 7 + 1) & 0xFF (board -> host bulk); else 404.
 *   :7   echo: every byte comes back (both directions on one connection).
 *   :9   sink: counts bytes and their CRC-32 until the client half-closes, then answers
 *        "SINK <n> <crc32 hex>\n" and closes (host -> board bulk).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "board.h"
#include "fwlib.h"
#include "lwip/dhcp.h"
#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "net.h"

#define MAX_CONNS 6u
#define REQ_MAX   128u

enum { KIND_HTTP, KIND_ECHO, KIND_SINK };

typedef struct {
    int used;
    int kind;
    struct tcp_pcb *pcb;
    char req[REQ_MAX];
    uint32_t req_len;
    uint32_t to_send;        /* HTTP body bytes still to queue */
    uint32_t body_pos;       /* pattern index of the next body byte */
    const char *text;        /* HTTP: a fixed body instead of the pattern */
    struct pbuf *pending;    /* echo: received, not yet queued back */
    uint32_t bytes;
    uint32_t crc;
    int closing;
} conn_t;

static conn_t s_conns[MAX_CONNS];
static char s_status[160];

static void ip_str(char *buf, uint32_t size, const ip4_addr_t *a)
{
    uint32_t v = lwip_ntohl(ip4_addr_get_u32(a));
    fw_snprintf(buf, size, "%lu.%lu.%lu.%lu", (unsigned long)(v >> 24),
                (unsigned long)((v >> 16) & 0xFFu), (unsigned long)((v >> 8) & 0xFFu),
                (unsigned long)(v & 0xFFu));
}

static conn_t *conn_new(int kind, struct tcp_pcb *pcb)
{
    for (uint32_t i = 0; i < MAX_CONNS; i++) {
        if (!s_conns[i].used) {
            conn_t *c = &s_conns[i];
            memset(c, 0, sizeof(*c));
            c->used = 1;
            c->kind = kind;
            c->pcb = pcb;
            return c;
        }
    }
    return NULL;
}

static void conn_free(conn_t *c)
{
    if (c->pending != NULL) {
        pbuf_free(c->pending);
    }
    c->used = 0;
    c->pcb = NULL;
}

static void conn_close(conn_t *c)
{
    struct tcp_pcb *pcb = c->pcb;
    if (pcb != NULL) {
        tcp_arg(pcb, NULL);
        tcp_recv(pcb, NULL);
        tcp_sent(pcb, NULL);
        tcp_err(pcb, NULL);
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
        }
    }
    conn_free(c);
}

static void on_err(void *arg, err_t err)
{
    conn_t *c = (conn_t *)arg;
    (void)err;
    if (c != NULL) {
        if (c->kind == KIND_ECHO) {
            board_printf("lwiptest: echo aborted bytes=%lu\n", (unsigned long)c->bytes);
        }
        c->pcb = NULL;   /* already freed by lwIP */
        conn_free(c);
    }
}

/* ---------------------------------------------------------------- HTTP */
static int has_newline(const char *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (s[i] == '\n') {
            return 1;
        }
    }
    return 0;
}

static void http_fill(conn_t *c)
{
    uint8_t chunk[512];
    while (c->to_send > 0) {
        uint32_t room = tcp_sndbuf(c->pcb);
        uint32_t n = c->to_send < sizeof(chunk) ? c->to_send : sizeof(chunk);
        if (room < n || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 1u) {
            break;
        }
        if (c->text != NULL) {
            memcpy(chunk, c->text + c->body_pos, n);
        } else {
            for (uint32_t i = 0; i < n; i++) {
                chunk[i] = (uint8_t)((c->body_pos + i) * 7u + 1u);
            }
        }
        if (tcp_write(c->pcb, chunk, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) {
            break;
        }
        c->body_pos += n;
        c->to_send -= n;
    }
    (void)tcp_output(c->pcb);
    if (c->to_send == 0 && c->pcb->unsent == NULL && c->pcb->unacked == NULL) {
        conn_close(c);
    }
}

static void http_answer(conn_t *c)
{
    char head[128];
    const char *status = "404 Not Found";
    uint32_t len = 0;
    char path[64];
    uint32_t i = 0;
    const char *p = c->req + 4;   /* after "GET " */
    while (*p != ' ' && *p != '\r' && *p != '\n' && *p != 0 && i < sizeof(path) - 1u) {
        path[i++] = *p++;
    }
    path[i] = 0;
    if (strncmp(c->req, "GET ", 4) != 0) {
        status = "400 Bad Request";
        c->text = "";
    } else if (strlen(path) == 1 && path[0] == '/') {
        char link[96];
        net_describe(link, sizeof(link));
        char ip[16];
        ip_str(ip, sizeof(ip), netif_ip4_addr(net_netif()));
        fw_snprintf(s_status, sizeof(s_status), "lwiptest ip=%s %s\n", ip, link);
        status = "200 OK";
        c->text = s_status;
        len = strlen(s_status);
    } else if (strncmp(path, "/bytes/", 7) == 0) {
        status = "200 OK";
        len = (uint32_t)atoi(path + 7);
    } else {
        c->text = "not found\n";
        len = strlen(c->text);
    }
    board_printf("lwiptest: http GET %s -> %c%c%c %lu\n", path, status[0], status[1], status[2],
                 (unsigned long)len);
    int n = fw_snprintf(head, sizeof(head),
                        "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %lu\r\n\r\n", status,
                        c->text != NULL ? "text/plain" : "application/octet-stream",
                        (unsigned long)len);
    (void)tcp_write(c->pcb, head, (u16_t)n, TCP_WRITE_FLAG_COPY);
    c->to_send = len;
    c->body_pos = 0;
    c->closing = 1;
    http_fill(c);
}

/* ---------------------------------------------------------------- echo */
static void echo_flush(conn_t *c)
{
    while (c->pending != NULL) {
        struct pbuf *q = c->pending;
        uint32_t room = tcp_sndbuf(c->pcb);
        uint32_t n = q->len < room ? q->len : room;
        if (n == 0 || tcp_sndqueuelen(c->pcb) >= TCP_SND_QUEUELEN - 1u) {
            break;
        }
        if (tcp_write(c->pcb, q->payload, (u16_t)n, TCP_WRITE_FLAG_COPY) != ERR_OK) {
            break;
        }
        tcp_recved(c->pcb, (u16_t)n);
        c->pending = pbuf_free_header(q, (u16_t)n);
    }
    (void)tcp_output(c->pcb);
    if (c->closing && c->pending == NULL) {
        board_printf("lwiptest: echo closed bytes=%lu\n", (unsigned long)c->bytes);
        conn_close(c);
    }
}

/* ---------------------------------------------------------------- callbacks */
static err_t on_sent(void *arg, struct tcp_pcb *pcb, u16_t len)
{
    conn_t *c = (conn_t *)arg;
    (void)pcb;
    (void)len;
    if (c == NULL) {
        return ERR_OK;
    }
    if (c->kind == KIND_HTTP && c->closing) {
        http_fill(c);
    } else if (c->kind == KIND_ECHO) {
        echo_flush(c);
    } else if (c->kind == KIND_SINK && c->closing && pcb->unsent == NULL &&
               pcb->unacked == NULL) {
        conn_close(c);
    }
    return ERR_OK;
}

static err_t on_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err)
{
    conn_t *c = (conn_t *)arg;
    if (c == NULL || err != ERR_OK) {
        if (p != NULL) {
            pbuf_free(p);
        }
        return ERR_OK;
    }
    if (p == NULL) {   /* the client half-closed */
        if (c->kind == KIND_SINK) {
            char line[48];
            int n = fw_snprintf(line, sizeof(line), "SINK %lu %08lx\n", (unsigned long)c->bytes,
                                (unsigned long)c->crc);
            board_printf("lwiptest: sink bytes=%lu crc=%08lx\n", (unsigned long)c->bytes,
                         (unsigned long)c->crc);
            (void)tcp_write(pcb, line, (u16_t)n, TCP_WRITE_FLAG_COPY);
            (void)tcp_output(pcb);
            c->closing = 1;
        } else if (c->kind == KIND_ECHO) {
            c->closing = 1;
            echo_flush(c);
        } else if (!c->closing) {
            conn_close(c);
        }
        return ERR_OK;
    }
    c->bytes += p->tot_len;
    if (c->kind == KIND_SINK) {
        for (struct pbuf *q = p; q != NULL; q = q->next) {
            c->crc = fw_crc32(c->crc, q->payload, q->len);
        }
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
    } else if (c->kind == KIND_ECHO) {
        if (c->pending == NULL) {
            c->pending = p;
        } else {
            pbuf_cat(c->pending, p);
        }
        echo_flush(c);
    } else {
        uint32_t n = p->tot_len;
        if (c->req_len + n > REQ_MAX - 1u) {
            n = REQ_MAX - 1u - c->req_len;
        }
        (void)pbuf_copy_partial(p, c->req + c->req_len, (u16_t)n, 0);
        c->req_len += n;
        c->req[c->req_len] = 0;
        tcp_recved(pcb, p->tot_len);
        pbuf_free(p);
        if (!c->closing && (has_newline(c->req, c->req_len) || c->req_len >= REQ_MAX - 1u)) {
            http_answer(c);
        }
    }
    return ERR_OK;
}

static err_t on_accept(void *arg, struct tcp_pcb *pcb, err_t err)
{
    int kind = (int)(uintptr_t)arg;
    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }
    conn_t *c = conn_new(kind, pcb);
    if (c == NULL) {
        tcp_abort(pcb);
        return ERR_ABRT;
    }
    tcp_arg(pcb, c);
    tcp_recv(pcb, on_recv);
    tcp_sent(pcb, on_sent);
    tcp_err(pcb, on_err);
    tcp_nagle_disable(pcb);
    return ERR_OK;
}

static int listen_on(uint16_t port, int kind)
{
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (pcb == NULL || tcp_bind(pcb, IP4_ADDR_ANY, port) != ERR_OK) {
        return -1;
    }
    struct tcp_pcb *lpcb = tcp_listen(pcb);
    if (lpcb == NULL) {
        return -1;
    }
    tcp_arg(lpcb, (void *)(uintptr_t)kind);
    tcp_accept(lpcb, on_accept);
    return 0;
}

/* ---------------------------------------------------------------- main loop */
static void report_changes(void)
{
    static int link_was = 0;
    static uint32_t addr_was = 0;
    static int arp_asked = 0, arp_told = 0;
    struct netif *nif = net_netif();
    int link = net_link_up();
    if (link != link_was) {
        link_was = link;
        if (link) {
            char d[96];
            net_describe(d, sizeof(d));
            board_printf("lwiptest: link up %s\n", d + 5);   /* after "link " */
        } else {
            board_printf("lwiptest: link down\n");
        }
    }
    /* a lease is (re)confirmed after every link up: REBOOTING is not "supplied" */
    uint32_t addr = dhcp_supplied_address(nif) ? ip4_addr_get_u32(netif_ip4_addr(nif)) : 0u;
    if (addr != addr_was) {
        addr_was = addr;
        arp_asked = arp_told = 0;
        if (addr != 0) {
            char ip[16], mask[16], gw[16];
            ip_str(ip, sizeof(ip), netif_ip4_addr(nif));
            ip_str(mask, sizeof(mask), netif_ip4_netmask(nif));
            ip_str(gw, sizeof(gw), netif_ip4_gw(nif));
            board_printf("lwiptest: dhcp bound %s mask %s gw %s\n", ip, mask, gw);
        } else {
            board_printf("lwiptest: dhcp no lease\n");
        }
    }
    if (addr != 0 && link && !arp_asked) {
        arp_asked = 1;
        (void)etharp_request(nif, netif_ip4_gw(nif));
    }
    if (arp_asked && !arp_told) {
        struct eth_addr *mac = NULL;
        const ip4_addr_t *ip = NULL;
        if (etharp_find_addr(nif, netif_ip4_gw(nif), &mac, &ip) >= 0 && mac != NULL) {
            char gw[16];
            ip_str(gw, sizeof(gw), ip);
            board_printf("lwiptest: arp %s at %02x:%02x:%02x:%02x:%02x:%02x\n", gw,
                         mac->addr[0], mac->addr[1], mac->addr[2], mac->addr[3], mac->addr[4],
                         mac->addr[5]);
            arp_told = 1;
        }
    }
}

int main(void)
{
    board_init();
    board_printf("\nlwiptest: lwIP %s on the STM32 ETH MAC + LAN8742A\n", LWIP_VERSION_STRING);
    static const net_config_t cfg = {0, 0, 0, 1};
    int rc = net_init(&cfg);
    const uint8_t *m = net_mac();
    board_printf("lwiptest: mac %02x:%02x:%02x:%02x:%02x:%02x\n", m[0], m[1], m[2], m[3], m[4],
                 m[5]);
    if (rc != NET_OK) {
        board_printf("lwiptest: net init failed (%d)\n", rc);
        for (;;) {
        }
    }
    if (listen_on(80, KIND_HTTP) != 0 || listen_on(7, KIND_ECHO) != 0 ||
        listen_on(9, KIND_SINK) != 0) {
        board_printf("lwiptest: listen failed\n");
    } else {
        board_printf("lwiptest: ready http=80 echo=7 sink=9\n");
    }
    for (;;) {
        net_poll();
        report_changes();
    }
}
