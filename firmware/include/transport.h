/*
 * transport.h - the byte-stream interface the bootloader's OTA logic uses.
 *
 * Two implementations: transport_eth (lwIP's raw TCP API on the STM32 ETH MAC + LAN8742A,
 * drivers/lwip_port/transport_lwip.c) and transport_wifi (the WINC3400 module on SPI1 +
 * EXTI1, drivers/winc_*.c). The OTA logic never touches a network register itself, so
 * other drivers can be put behind this header.
 *
 * All calls are blocking with a timeout and never wait forever.
 */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <stdint.h>

/* Negative return codes (mirroring the WINC driver's socket errors where they exist). */
#define TR_OK              0
#define TR_ERR_TIMEOUT    (-13)  /* SOCK_ERR_TIMEOUT: nothing arrived in time; link still open */
#define TR_ERR_ABORTED    (-12)  /* SOCK_ERR_CONN_ABORTED: reset by peer / link lost */
#define TR_ERR_REFUSED    (-3)   /* connect refused or host unreachable */
#define TR_ERR_STATE      (-9)   /* call not valid in this state (send before connect...) */
#define TR_ERR_DEVICE     (-20)  /* device absent / not responding */

typedef struct transport {
    const char *name;                                  /* "eth" or "wifi" */
    /* Bring up the device (clocks, pins, reset). 0 or negative error. */
    int  (*init)(void);
    /* Open a TCP connection to ip (host order, 192.168.1.10 = 0xC0A8010A):port. */
    int  (*connect)(uint32_t ip, uint16_t port, uint32_t timeout_ms);
    /* Send len bytes (implementations split into device-sized pieces). Bytes sent or error. */
    int  (*send)(const void *buf, uint32_t len, uint32_t timeout_ms);
    /* Receive up to max bytes: >0 bytes delivered (one device chunk; may be fewer than
       max and split an application message anywhere), 0 = peer closed, <0 = error. */
    int  (*recv)(void *buf, uint32_t max, uint32_t timeout_ms);
    /* Close the connection (idempotent). */
    void (*close)(void);
    /* Quiesce the device before jumping to the application: no IRQ line left enabled
       or pending, peripheral clocks off, pins back to reset state. */
    void (*deinit)(void);
} transport_t;

extern const transport_t transport_eth;
extern const transport_t transport_wifi;

/* Millisecond time base the drivers use for their timeouts (provided by the board layer). */
uint32_t board_millis(void);

#endif /* TRANSPORT_H */
