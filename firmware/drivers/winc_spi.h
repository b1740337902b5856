/*
 * winc_spi.h - the WINC3400-like WiFi module on SPI1 (driver: winc_spi.c, transport_wifi).
 *
 * Shield wiring of the thread (the twin models exactly this): SPI1 SCK PA5, MISO PA6,
 * MOSI PB5 (AF5), CS PD14 (Arduino D10, software NSS, active low), IRQN PB1 -> EXTI1
 * (falling edge, active low), RESET_N PF12 (D8), CHIP_EN PF13 (D7).
 * SPI framing and commands: docs/twin-network.md.
 */
#ifndef WINC_SPI_H
#define WINC_SPI_H

#include <stdint.h>

#define WINC_FRAME_CMD   0xC1u
#define WINC_FRAME_EVT   0xC2u

#define WINC_ST_ACK      0xACu
#define WINC_ST_CRC      0xE1u
#define WINC_ST_ARG      0xE2u
#define WINC_ST_STATE    0xE3u
#define WINC_ST_OPCODE   0xE5u
#define WINC_ST_NONE     0xFFu   /* nobody answered (module off, transfer lost) */

#define WINC_OP_NOP      0x00u
#define WINC_OP_CONNECT  0x10u   /* sock u8, ip u32 (host order), port u16 */
#define WINC_OP_SEND     0x11u   /* sock u8, len u16 (1..1400), data */
#define WINC_OP_RECV     0x12u   /* sock u8, buflen u16, timeout_ms u32 (0 = none) */
#define WINC_OP_CLOSE    0x13u   /* sock u8 */

#define WINC_EV_CONNECT  5u      /* sock u8, err s8 (0 ok, -12 refused, -13 no answer) */
#define WINC_EV_RECV     6u      /* sock u8, size s16 (>0 data, 0 closed, <0 error), remaining u16, data */
#define WINC_EV_SEND     7u      /* sock u8, sent s16 */
#define WINC_EV_READY    0x80u   /* module (re)started: every socket is gone */

#define WINC_SOCKET_BUFFER_MAX_LENGTH 1400u
#define WINC_TCP_SOCK_MAX 7u
#define WINC_SOCK_ERR_CONN_ABORTED (-12)
#define WINC_SOCK_ERR_TIMEOUT      (-13)

/* Driver counters (read by test programs). */
typedef struct {
    uint32_t events;          /* events read */
    uint32_t recv_events;
    uint32_t crc_errors;      /* events whose CRC-16 did not match (data still delivered) */
    uint32_t retries;         /* commands or event reads repeated (no answer / CRC) */
    uint32_t bad_frames;      /* event reads with an impossible length */
    uint32_t resets_seen;     /* WINC_EV_READY while a socket was open */
    uint32_t polls_without_irq; /* event reads done by the fallback poll, IRQN high */
} winc_stats_t;

extern volatile winc_stats_t winc_stats;

/* Compute CRC-16/CCITT-FALSE (init 0xFFFF); chain by passing the previous value. */
uint16_t winc_crc16(uint16_t crc, const uint8_t *p, uint32_t len);

#endif /* WINC_SPI_H */
