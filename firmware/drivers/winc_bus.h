/*
 * winc_bus.h - the WINC3400's SPI protocol: command packets, responses, data packets,
 * CRC7/CRC16, register and memory access (winc_bus.c). Portable C: the hardware sits
 * behind the winc_port_* functions (drivers/winc_port_stm32.c on the board; a fake
 * module in firmware/tests/host/test_winc.c on the host).
 *
 * Wire format (written from the WINC3400 host driver's behaviour, see
 * docs/twin-network.md and /work/shared/docs/winc3400-host-driver.md):
 *   command   opcode, address big-endian, [value big-endian | size 24 bit big-endian],
 *             then CRC7 (x^7+x^3+1, seed 0x7F, shifted left one bit) while CRC is on
 *   response  the chip echoes the opcode, then a state byte: 0x00 ok, anything but 0xFF
 *             (not yet) an error (1 unsupported, 3 CRC7 error)
 *   read data a start token 0xF1..0xF3 (high nibble F), the data, and while CRC is on
 *             and the access is not clockless, CRC16 (CRC-16/CCITT-FALSE = crc_itu_t
 *             with seed 0xFFFF, poly 0x1021, most significant byte first)
 *   write data token 0xF0|order (3 only/last, 1 first, 2 middle), the data, and while CRC
 *             is on CRC16 followed by the chip's answer C<order> <state> (state 4: the
 *             packet failed its CRC16 and was discarded); with CRC off nothing is read
 *             (Microchip's driver never reads that answer)
 * Register values arrive little-endian in read data but are sent big-endian in writes.
 * Register 0xE824 (SPI protocol config) bit 2 = CRC7 enable, bit 3 = CRC16 enable,
 * bits 6:4 = data packet size (5 = 8 KiB). The chip starts with CRC on.
 *
 * Build options: WINC_SPI_CRC (default 1): keep the chip's CRC7/CRC16 on and check every
 * data CRC (a mismatch is refused and the access repeated); 0 negotiates CRC off the way
 * Microchip's nm_spi_init does (the protocol register written once with CRC, then every
 * packet without), and nothing is checked.
 */
#ifndef WINC_BUS_H
#define WINC_BUS_H

#include <stdint.h>

#ifndef WINC_SPI_CRC
#define WINC_SPI_CRC 1
#endif

/* SPI command opcodes */
#define WINC_CMD_INTERNAL_WRITE 0xC3u  /* clockless register write (address <= 0x30) */
#define WINC_CMD_INTERNAL_READ  0xC4u  /* clockless register read (address <= 0xFF) */
#define WINC_CMD_DMA_EXT_WRITE  0xC7u  /* block write, 24-bit size */
#define WINC_CMD_DMA_EXT_READ   0xC8u  /* block read, 24-bit size */
#define WINC_CMD_SINGLE_WRITE   0xC9u  /* 32-bit register write */
#define WINC_CMD_SINGLE_READ    0xCAu  /* 32-bit register read */
#define WINC_CMD_RESET          0xCFu  /* SPI protocol reset (address FF FF FF) */

#define WINC_REG_SPI_PROTOCOL   0xE824u
#define WINC_PROTO_CRC7         (1u << 2)
#define WINC_PROTO_CRC16        (1u << 3)
#define WINC_PROTO_PKT_MASK     (7u << 4)
#define WINC_PROTO_PKT_8K       (5u << 4)
#define WINC_DATA_PKT_MAX       8192u

/* Return codes of the bus functions */
#define WINC_OK        0
#define WINC_ERR_BUS  (-1)   /* no response / refused after every retry */
#define WINC_ERR_ARG  (-2)
#define WINC_ERR_TIME (-3)   /* a handshake did not complete in time */
#define WINC_ERR_PROTO (-4)  /* the chip answered something impossible */
#define WINC_ERR_RESET (-5)  /* the chip was reset: its SPI protocol register is back at reset */

/* Driver counters (nettest prints them with STATS). */
typedef struct {
    uint32_t events;            /* HIF messages received from the chip */
    uint32_t recv_events;       /* socket RECV replies */
    uint32_t crc_errors;        /* data packets whose CRC16 did not match (refused, read again) */
    uint32_t retries;           /* bus accesses repeated after an SPI reset command */
    uint32_t bad_frames;        /* impossible messages (size, header) dropped */
    uint32_t resets_seen;       /* WiFi or the module lost while a socket was open */
    uint32_t polls_without_irq; /* messages found by the fallback poll, no IRQN edge seen */
} winc_stats_t;

extern volatile winc_stats_t winc_stats;

/* ---------------------------------------------------------------- port (hardware glue) */
/* Clocks, pins, SPI and the IRQN line; the chip held in reset. 0 or -1. */
int winc_port_open(void);
/* Power-up sequence: CHIP_EN and RESET_N low, CHIP_EN high, RESET_N high, boot time. */
void winc_port_chip_reset(void);
/* Everything back to its reset state (chip held in reset first). */
void winc_port_close(void);
/* Chip select: 1 = CS low (selected). */
void winc_port_select(int on);
/* Full-duplex transfer of n bytes: tx NULL sends 0x00, rx NULL discards. 0 or -1 (the SPI
   peripheral stopped answering). */
int winc_port_xfer(const uint8_t *tx, uint8_t *rx, uint32_t n);
/* One byte each way (response and token polling). */
uint8_t winc_port_byte(uint8_t out);
void winc_port_delay_ms(uint32_t ms);
uint32_t winc_port_millis(void);

/* ---------------------------------------------------------------- CRC */
/* CRC7 byte as sent on the wire (crc << 1) over n bytes. */
uint8_t winc_crc7(const uint8_t *p, uint32_t n);
/* CRC-16/CCITT-FALSE: start with 0xFFFF, chain by passing the previous value. */
uint16_t winc_crc16(uint16_t crc, const uint8_t *p, uint32_t n);

/* ---------------------------------------------------------------- bus */
/* Build a command packet into out[9] with or without CRC7; returns its length (0 for an
   unknown opcode). arg is the register value (writes) or the block size (block access). */
uint32_t winc_bus_cmd(uint8_t *out, uint8_t cmd, uint32_t addr, uint32_t arg, int crc);

/* After the chip's reset: negotiate the framing (read 0xE824 with CRC, else without; write
   it back with WINC_SPI_CRC's choice and 8 KiB packets; read the chip ID at 0x1000). */
int winc_bus_init(uint32_t *chip_id);
/* 1 while packets carry CRC7/CRC16. */
int winc_bus_crc(void);
/* Forget the negotiated framing (the chip was reset: CRC is on again). */
void winc_bus_reset_state(void);

int winc_reg_read(uint32_t addr, uint32_t *val);
int winc_reg_write(uint32_t addr, uint32_t val);
/* Memory (block) access at a 24-bit chip address; any length >= 1. */
int winc_mem_read(uint32_t addr, uint8_t *buf, uint32_t n);
int winc_mem_write(uint32_t addr, const uint8_t *buf, uint32_t n);

#endif /* WINC_BUS_H */
