/*
 * winc_socket.h - WiFi station + one TCP socket on the WINC3400 (winc_socket.c), the
 * reference bootloader's transport_wifi.
 *
 * init: chip reset, SPI framing (winc_bus), boot handshake (winc_hif), connect to the
 * access point with WPA-PSK (new-format request 0x3D with the credentials not stored in
 * the module's flash), wait for the connected state (0x2C) and the DHCP configuration
 * (0x32). connect/send/recv/close: the IP group's 0x44/0x45/0x46/0x49 with a new session
 * ID per socket; a reply whose session differs is dropped.
 * Receive rules of the module: one reply per RECV request, at most the posted buffer and
 * at most 1400 bytes, TCP data split where the module likes; recv() re-arms after each
 * reply. Sends are cut into pieces of at most 1400 bytes and each waits for its reply.
 *
 * Credentials: WINC_WIFI_SSID / WINC_WIFI_PSK (build defaults, `make WIFI_SSID=...
 * WIFI_PSK=...`). The config record (40 bytes, rig/bootcfg.py) has no room for them.
 */
#ifndef WINC_SOCKET_H
#define WINC_SOCKET_H

#include <stdint.h>

#include "winc_bus.h"

#ifndef WINC_WIFI_SSID
#define WINC_WIFI_SSID "ota-rig"
#endif
#ifndef WINC_WIFI_PSK
#define WINC_WIFI_PSK "ota-rig-wpa2-psk"
#endif

#define WINC_SOCKET_BUFFER_MAX_LENGTH 1400u
#define WINC_TCP_SOCK_MAX   7u

/* WiFi group opcodes */
#define WINC_WIFI_REQ_SET_GAIN_TABLE   0x23u
#define WINC_WIFI_RESP_CON_STATE       0x2Cu
#define WINC_WIFI_REQ_DHCP_CONF        0x32u
#define WINC_WIFI_REQ_CONN             0x3Du
/* IP group opcodes */
#define WINC_SOCK_CMD_CONNECT   0x44u
#define WINC_SOCK_CMD_SEND      0x45u
#define WINC_SOCK_CMD_RECV      0x46u
#define WINC_SOCK_CMD_CLOSE     0x49u

#define WINC_SOCK_ERR_CONN_ABORTED (-12)
#define WINC_SOCK_ERR_TIMEOUT      (-13)

#define WINC_TCP_TX_OFFSET  80u   /* data of a TCP send, from the control part */

/* What the last init found (for logs and test programs). */
typedef struct {
    int stage;           /* 0 ok; else where init stopped (WINC_INIT_*) */
    int err;             /* the bus/HIF error code there */
    uint32_t ip;         /* DHCP address, host order */
} winc_link_t;

#define WINC_INIT_BUS      1
#define WINC_INIT_CHIP     2
#define WINC_INIT_WIFI     3
#define WINC_INIT_DHCP     4

extern winc_link_t winc_link;

#endif /* WINC_SOCKET_H */
