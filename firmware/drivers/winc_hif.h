/*
 * winc_hif.h - WINC3400 boot handshake and host interface (HIF) messages (winc_hif.c).
 * Portable: built on winc_bus.h and two port functions for IRQN.
 *
 * HIF message: {u8 group, u8 opcode, u16 length} + 4 unused bytes, then the payload
 * (length counts the 8 header bytes; at most 1596). Opcode bit 7 marks a message with a
 * separate data part. Host -> chip: the request register 0x108C, 0x1078 <- 2, 0x10AC <- 1,
 * wait for 0x1078 bit 1 to clear, the buffer address from 0x150400, header + control +
 * data written there, 0x106C <- addr << 2 | 2, doorbell 0x10B0 <- 1. Chip -> host: IRQN
 * falls, 0x1070 bit 0 set with the size in bits 13:2, written back with bit 0 clear, the
 * message address in 0x1084, RX done = 0x10A8 <- 1 once the host has read what it needs.
 */
#ifndef WINC_HIF_H
#define WINC_HIF_H

#include <stdint.h>

#define WINC_HIF_HDR        8u
#define WINC_HIF_MAX        1596u
#define WINC_HIF_DATA_PKT   0x80u   /* opcode flag: a data part follows the control part */
#define WINC_HIF_PEEK       20u     /* payload bytes read with the header (the largest
                                       reply structure used: DHCP configuration) */

#define WINC_GID_MAIN  0u
#define WINC_GID_WIFI  1u
#define WINC_GID_IP    2u
#define WINC_GID_HIF   3u

/* HIF level this driver speaks: block 2, major 1 (minor >= 4 for the new connect). */
#define WINC_HIF_BLOCK       2u
#define WINC_HIF_MAJOR       1u
#define WINC_HIF_MINOR_MIN   4u

#define WINC_POLL_MS   5u   /* fallback check of 0x1070 when no IRQN edge was seen */
#define WINC_ALIVE_MS  100u /* check that the chip was not reset (0xE824 keeps 8 KiB packets) */

typedef struct {
    uint32_t chip_id;      /* 0x3400D2 style, as the vendor driver prints it */
    uint32_t rf_rev;
    uint16_t hif_info;     /* firmware's HIF level (0x207AC low half) */
    uint8_t fw_major, fw_minor, fw_patch;
    char build_date[13];
    int is3400;            /* 3400 doorbell registers (0x10A8/0x10AC/0x10B0) */
} winc_chip_t;

extern winc_chip_t winc_chip;

/* Port: 1 if an IRQN falling edge was latched since the last call (the latch is cleared). */
int winc_port_irq_edge(void);
/* Port: 1 while IRQN is low. */
int winc_port_irq_level(void);

/* A message from the chip. head = the first payload bytes (head_len = min(len, PEEK));
   addr/len = where the whole payload is in chip memory (winc_mem_read for more). RX done
   is signalled after the handler returns; the handler must not send. */
typedef void (*winc_hif_handler_t)(uint8_t gid, uint8_t op, const uint8_t *head,
                                   uint32_t head_len, uint32_t addr, uint32_t len);
void winc_hif_set_handler(winc_hif_handler_t h);

/* After winc_bus_init: start the chip's CPU, boot-ROM and firmware-ready handshakes,
   interrupts on, firmware version read and checked. WINC_OK or a WINC_ERR_ code. */
int winc_hif_start(uint32_t bus_chip_id);

/* Send one message: control part ctrl[clen] at +8, data part data[dlen] at +8+doff
   (doff >= clen; the gap is not written). WINC_OK or an error. */
int winc_hif_send(uint8_t gid, uint8_t op, const void *ctrl, uint16_t clen, const void *data,
                  uint16_t dlen, uint16_t doff);

/* Serve the next waiting message if IRQN says so (or the fallback poll is due); every
   WINC_ALIVE_MS also check that the chip was not reset behind the host's back.
   1 = a message was handled, 0 = nothing waiting, WINC_ERR_RESET = the chip was reset (it
   must be started again), other <0 = bus error. */
int winc_hif_poll(void);

/* Forget the chip state (before a new reset). */
void winc_hif_reset_state(void);

#endif /* WINC_HIF_H */
