/*
 * winc_spi.c - transport_wifi: the WINC3400-like module on SPI1 + EXTI1 (winc_spi.h).
 *
 * Polled: the driver watches IRQN (PB1 low = events waiting) and, as a fallback for a
 * lost interrupt, reads the event queue every WINC_POLL_MS anyway. EXTI1 is configured
 * (falling edge, IMR set) so the pending flags behave as with an interrupt-driven
 * driver; NVIC line 7 is never enabled here, and deinit clears all of it.
 * Rules of the module the OTA logic must live with: a receive event carries at most
 * the posted buffer size and at most 1400 bytes, split wherever the module likes; a
 * receive must be re-armed after each event; sends are cut into <= 1400-byte pieces.
 */
#include <stddef.h>

#include "board.h"
#include "stm32f767.h"
#include "transport.h"
#include "winc_spi.h"

#define GPIOF_PORT        GPIO_PORT(5)
#define WINC_RCC_GPIOFEN  (1u << 5)   /* RCC_AHB1ENR.GPIOFEN */
#define PIN_CS       14u  /* PD14 */
#define PIN_RESET_N  12u  /* PF12 */
#define PIN_CHIP_EN  13u  /* PF13 */
#define PIN_IRQN     1u   /* PB1, EXTI1 */
#define PIN_SCK      5u   /* PA5 AF5 */
#define PIN_MISO     6u   /* PA6 AF5 */
#define PIN_MOSI     5u   /* PB5 AF5 */
#define SPI_AF       5u
#define EXTI_LINE    (1u << 1)

#define WINC_POLL_MS       5u
#define WINC_READY_MS      200u
#define WINC_CMD_TRIES     4u
#define SPI_WAIT_LOOPS     20000u
#define EV_HDR             6u

volatile winc_stats_t winc_stats;

static struct {
    int up;
    int sock;            /* socket in use, -1 = none */
    int next_sock;
    int connected;
    int lost;            /* module reset or connection aborted */
    int ready_seen;
    volatile int conn_done;
    int conn_err;
    volatile int send_done;
    int send_res;
    int rx_armed;        /* a receive is armed in the module */
    volatile int rx_done;
    int rx_res;
    uint8_t *rx_buf;
    uint32_t rx_cap;
    uint32_t last_poll;
    int spi_error;
} w = { .sock = -1 };

static uint16_t crc_table[256];
static uint8_t scratch[WINC_SOCKET_BUFFER_MAX_LENGTH];

/* ---------------------------------------------------------------- helpers */
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint16_t c = (uint16_t)(i << 8);
        for (int b = 0; b < 8; b++)
            c = (c & 0x8000u) ? (uint16_t)((c << 1) ^ 0x1021u) : (uint16_t)(c << 1);
        crc_table[i] = c;
    }
}

uint16_t winc_crc16(uint16_t crc, const uint8_t *p, uint32_t len)
{
    if (crc_table[1] == 0)
        crc_init();
    while (len--)
        crc = (uint16_t)((crc << 8) ^ crc_table[((crc >> 8) ^ *p++) & 0xFFu]);
    return crc;
}

static void pin_mode(gpio_t *g, unsigned pin, unsigned mode)
{
    g->MODER = (g->MODER & ~(3u << (2u * pin))) | (mode << (2u * pin));
}

static void pin_af(gpio_t *g, unsigned pin, unsigned af)
{
    volatile uint32_t *afr = &g->AFR[pin >> 3];
    unsigned shift = (pin & 7u) * 4u;
    *afr = (*afr & ~(0xFu << shift)) | (af << shift);
    pin_mode(g, pin, GPIO_MODE_AF);
}

static void pin_pull(gpio_t *g, unsigned pin, unsigned pull)
{
    g->PUPDR = (g->PUPDR & ~(3u << (2u * pin))) | (pull << (2u * pin));
}

static void pin_write(gpio_t *g, unsigned pin, int level)
{
    g->BSRR = level ? (1u << pin) : (1u << (pin + 16u));
}

static void cs(int active) { pin_write(GPIOD, PIN_CS, !active); }

static int irqn_low(void) { return !(GPIOB->IDR & (1u << PIN_IRQN)); }

/* One byte each way; 0xFF and w.spi_error on a stuck peripheral. */
static uint8_t xfer(uint8_t out)
{
    *(volatile uint8_t *)&SPI1->DR = out;
    for (uint32_t n = SPI_WAIT_LOOPS; !(SPI1->SR & SPI_SR_RXNE);) {
        if (--n == 0) {
            w.spi_error = 1;
            return 0xFFu;
        }
    }
    return *(volatile uint8_t *)&SPI1->DR;
}

/* Bulk transfer with SPI data packing: a 16-bit DR access moves two 8-bit frames, and
   with FRXTH=0 RXNE means "two bytes in the RX FIFO" (RM0410 data packing). `out` may be
   NULL (dummy zeros), `in` may be NULL (discard). Halves the register accesses per byte. */
static void xfer_block(const uint8_t *out, uint8_t *in, uint32_t n)
{
    SPI1->CR2 &= ~SPI_CR2_FRXTH;
    while (n >= 2) {
        uint16_t o = out ? (uint16_t)(out[0] | (out[1] << 8)) : 0u;
        *(volatile uint16_t *)&SPI1->DR = o;
        for (uint32_t k = SPI_WAIT_LOOPS; !(SPI1->SR & SPI_SR_RXNE);) {
            if (--k == 0) {
                w.spi_error = 1;
                break;
            }
        }
        uint16_t v = *(volatile uint16_t *)&SPI1->DR;
        if (in) {
            in[0] = (uint8_t)v;
            in[1] = (uint8_t)(v >> 8);
            in += 2;
        }
        if (out)
            out += 2;
        n -= 2;
    }
    SPI1->CR2 |= SPI_CR2_FRXTH;
    if (n) {
        uint8_t v = xfer(out ? out[0] : 0u);
        if (in)
            in[0] = v;
    }
}

static void put_le(uint8_t *p, uint32_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8u * i));
}

/* Send one command frame; returns the module's status byte (WINC_ST_*). */
static uint8_t command(const uint8_t *hdr, uint32_t hlen, const uint8_t *data, uint32_t dlen)
{
    uint8_t st = WINC_ST_NONE;
    uint32_t len = hlen + dlen;
    uint16_t crc = winc_crc16(winc_crc16(0xFFFFu, hdr, hlen), data, dlen);
    for (unsigned attempt = 0; attempt < WINC_CMD_TRIES; attempt++) {
        cs(1);
        xfer(WINC_FRAME_CMD);
        xfer((uint8_t)len);
        xfer((uint8_t)(len >> 8));
        for (uint32_t i = 0; i < hlen; i++)
            xfer(hdr[i]);
        if (dlen)
            xfer_block(data, NULL, dlen);
        xfer((uint8_t)crc);
        xfer((uint8_t)(crc >> 8));
        st = xfer(0);
        cs(0);
        if (st == WINC_ST_ACK || st == WINC_ST_ARG || st == WINC_ST_STATE || st == WINC_ST_OPCODE)
            return st;
        winc_stats.retries++;
        delay_ms(1);   /* let the module see CS high and finish booting */
    }
    return st;
}

static void fail_waiters(int rx_code)
{
    if (w.rx_armed) {
        w.rx_armed = 0;
        w.rx_res = rx_code;
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

static void dispatch(const uint8_t *h, uint32_t hlen)
{
    uint8_t type = h[0];
    int sock = hlen > 1 ? h[1] : -1;
    winc_stats.events++;
    if (type == WINC_EV_READY) {
        w.ready_seen = 1;
        if (w.sock >= 0) {
            winc_stats.resets_seen++;
            w.lost = 1;
            fail_waiters(WINC_SOCK_ERR_CONN_ABORTED);
        }
        return;
    }
    if (sock != w.sock || w.sock < 0)
        return;                         /* stale event of an earlier socket */
    if (type == WINC_EV_CONNECT && hlen >= 3) {
        w.conn_err = (int8_t)h[2];
        w.conn_done = 1;
    } else if (type == WINC_EV_SEND && hlen >= 4) {
        w.send_res = (int16_t)(h[2] | (h[3] << 8));
        w.send_done = 1;
    } else if (type == WINC_EV_RECV && hlen >= EV_HDR) {
        winc_stats.recv_events++;
        int16_t size = (int16_t)(h[2] | (h[3] << 8));
        if (w.rx_armed) {
            w.rx_armed = 0;
            w.rx_res = size > (int)w.rx_cap ? (int)w.rx_cap : size;
            w.rx_done = 1;
        }
    }
}

/* Read one event: 1 handled, 0 queue empty, -1 unreadable frame. */
static int read_event(void)
{
    uint8_t hdr[EV_HDR];
    cs(1);
    xfer(WINC_FRAME_EVT);
    uint32_t n = xfer(0);
    n |= (uint32_t)xfer(0) << 8;
    if (n == 0) {
        cs(0);
        return 0;
    }
    if (n < 2 || n > EV_HDR + WINC_SOCKET_BUFFER_MAX_LENGTH) {
        cs(0);
        winc_stats.bad_frames++;
        delay_ms(1);   /* the module resynchronises when it sees CS high */
        return -1;
    }
    uint32_t hn = n < EV_HDR ? n : EV_HDR;
    for (uint32_t i = 0; i < hn; i++)
        hdr[i] = xfer(0);
    uint16_t crc = winc_crc16(0xFFFFu, hdr, hn);
    uint32_t data_len = n - hn;
    if (data_len) {
        /* receive data goes straight into the armed buffer when it fits (DMA-like) */
        int to_user = hdr[0] == WINC_EV_RECV && w.rx_armed && (int)hdr[1] == w.sock;
        uint8_t *dst = (to_user && data_len <= w.rx_cap) ? w.rx_buf : scratch;
        xfer_block(NULL, dst, data_len);
        crc = winc_crc16(crc, dst, data_len);
        if (to_user && dst == scratch)
            memcpy(w.rx_buf, scratch, w.rx_cap);   /* more than posted: clamp */
    }
    uint16_t got = xfer(0);
    got |= (uint16_t)(xfer(0) << 8);
    cs(0);
    EXTI->PR = EXTI_LINE;
    if (got != crc)
        winc_stats.crc_errors++;
    dispatch(hdr, hn);
    return 1;
}

static void poll_events(void)
{
    int handled = 0;
    while (irqn_low() && handled < 8) {
        if (read_event() <= 0)
            break;
        handled++;
    }
    uint32_t now = board_millis();
    if (!handled && (uint32_t)(now - w.last_poll) >= WINC_POLL_MS) {
        w.last_poll = now;
        if (read_event() > 0)
            winc_stats.polls_without_irq++;
    }
}

/* Handle every event already queued (IRQN low). An event is older than any command issued
   after it: a READY from a module reset still in the queue must be seen before a new
   connect (it would otherwise "abort" the new socket) and explains a command the module
   refuses as out of state (its socket is gone). */
static void drain_events(void)
{
    for (int n = 0; n < 32 && irqn_low(); n++) {
        if (read_event() <= 0)
            break;
    }
}

/* A command was refused with status st: after a module reset (READY queued) the socket is
   gone, which the caller must see as the connection aborted, not as its own misuse. */
static int refused(uint8_t st)
{
    if (st == WINC_ST_STATE) {
        drain_events();
        if (w.lost)
            return TR_ERR_ABORTED;
        return TR_ERR_STATE;
    }
    return TR_ERR_DEVICE;
}

static int wait_flag(volatile int *flag, uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    for (;;) {
        poll_events();
        if (*flag)
            return 1;
        if ((uint32_t)(board_millis() - start) >= timeout_ms)
            return *flag;
    }
}

/* ---------------------------------------------------------------- transport */
static int wifi_init(void)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOAEN | RCC_AHB1ENR_GPIOBEN | RCC_AHB1ENR_GPIODEN | WINC_RCC_GPIOFEN;
    RCC->APB2ENR |= RCC_APB2ENR_SPI1EN | RCC_APB2ENR_SYSCFGEN;
    (void)RCC->APB2ENR;

    pin_write(GPIOD, PIN_CS, 1);
    pin_mode(GPIOD, PIN_CS, GPIO_MODE_OUTPUT);
    pin_write(GPIOF_PORT, PIN_RESET_N, 0);
    pin_mode(GPIOF_PORT, PIN_RESET_N, GPIO_MODE_OUTPUT);
    pin_write(GPIOF_PORT, PIN_CHIP_EN, 1);
    pin_mode(GPIOF_PORT, PIN_CHIP_EN, GPIO_MODE_OUTPUT);
    pin_pull(GPIOB, PIN_IRQN, 1u);                 /* pull-up */
    pin_mode(GPIOB, PIN_IRQN, GPIO_MODE_INPUT);
    pin_af(GPIOA, PIN_SCK, SPI_AF);
    pin_af(GPIOA, PIN_MISO, SPI_AF);
    pin_af(GPIOB, PIN_MOSI, SPI_AF);

    SYSCFG->EXTICR[0] = (SYSCFG->EXTICR[0] & ~(0xFu << 4)) | (1u << 4);   /* EXTI1 <- port B */
    EXTI->RTSR &= ~EXTI_LINE;
    EXTI->FTSR |= EXTI_LINE;
    EXTI->IMR |= EXTI_LINE;
    EXTI->PR = EXTI_LINE;

    SPI1->CR1 = 0;
    SPI1->CR2 = SPI_CR2_DS_8BIT | SPI_CR2_FRXTH;
    SPI1->CR1 = SPI_CR1_MSTR | SPI_CR1_SSM | SPI_CR1_SSI | (1u << SPI_CR1_BR_POS);
    SPI1->CR1 |= SPI_CR1_SPE;

    /* reset pulse: CHIP_EN high, RESET_N low >= 1 ms, then high; wait for the ready event */
    delay_ms(2);
    w.ready_seen = 0;
    w.sock = -1;
    w.connected = 0;
    w.rx_armed = 0;
    w.spi_error = 0;
    pin_write(GPIOF_PORT, PIN_RESET_N, 1);
    /* The module answers nothing (0xFF) while it boots: wait for IRQN (READY queued), or
       try every WINC_POLL_MS in case that interrupt is lost. Those expected unanswered
       reads are not counted as bad frames. */
    uint32_t start = board_millis(), last = start, bad = winc_stats.bad_frames;
    while (!w.ready_seen) {
        uint32_t now = board_millis();
        if (irqn_low() || (uint32_t)(now - last) >= WINC_POLL_MS) {
            last = now;
            (void)read_event();
        }
        if ((uint32_t)(now - start) >= WINC_READY_MS) {
            winc_stats.bad_frames = bad;
            return TR_ERR_DEVICE;
        }
    }
    winc_stats.bad_frames = bad;
    w.up = 1;
    return TR_OK;
}

static void wifi_close(void)
{
    if (w.up && w.sock >= 0) {
        uint8_t hdr[2] = { WINC_OP_CLOSE, (uint8_t)w.sock };
        (void)command(hdr, sizeof hdr, NULL, 0);
    }
    w.sock = -1;
    w.connected = 0;
    w.rx_armed = 0;
    w.lost = 0;
}

static int wifi_connect(uint32_t ip, uint16_t port, uint32_t timeout_ms)
{
    if (!w.up)
        return TR_ERR_DEVICE;
    if (w.sock >= 0)
        wifi_close();
    drain_events();    /* w.sock < 0 here: a queued READY aborts nothing */
    w.sock = w.next_sock;
    w.next_sock = (w.next_sock + 1) % (int)WINC_TCP_SOCK_MAX;
    w.conn_done = 0;
    w.send_done = 1;
    w.lost = 0;
    uint8_t hdr[8] = { WINC_OP_CONNECT, (uint8_t)w.sock };
    put_le(&hdr[2], ip, 4);
    put_le(&hdr[6], port, 2);
    uint8_t st = command(hdr, sizeof hdr, NULL, 0);
    if (st != WINC_ST_ACK) {
        w.sock = -1;
        return st == WINC_ST_STATE ? TR_ERR_STATE : TR_ERR_DEVICE;
    }
    if (!wait_flag(&w.conn_done, timeout_ms)) {
        wifi_close();
        return TR_ERR_TIMEOUT;
    }
    if (w.conn_err != 0) {
        w.sock = -1;       /* the module freed the socket */
        return TR_ERR_REFUSED;
    }
    w.connected = 1;
    return TR_OK;
}

static int wifi_send(const void *buf, uint32_t len, uint32_t timeout_ms)
{
    const uint8_t *p = (const uint8_t *)buf;
    uint32_t done = 0;
    uint32_t start = board_millis();
    if (!w.connected)
        return TR_ERR_STATE;
    while (done < len) {
        if (w.lost)
            return TR_ERR_ABORTED;
        uint32_t n = len - done;
        if (n > WINC_SOCKET_BUFFER_MAX_LENGTH)
            n = WINC_SOCKET_BUFFER_MAX_LENGTH;
        uint8_t hdr[4] = { WINC_OP_SEND, (uint8_t)w.sock, (uint8_t)n, (uint8_t)(n >> 8) };
        w.send_done = 0;
        uint8_t st = command(hdr, sizeof hdr, p + done, n);
        if (st != WINC_ST_ACK) {
            w.send_done = 1;
            return refused(st);
        }
        uint32_t spent = (uint32_t)(board_millis() - start);
        if (!wait_flag(&w.send_done, spent < timeout_ms ? timeout_ms - spent : 0))
            return TR_ERR_TIMEOUT;
        if (w.send_res < 0) {
            w.lost = 1;
            return TR_ERR_ABORTED;
        }
        done += (uint32_t)w.send_res;
    }
    return (int)done;
}

static int wifi_recv(void *buf, uint32_t max, uint32_t timeout_ms)
{
    if (!w.connected)
        return TR_ERR_STATE;
    if (w.lost)
        return TR_ERR_ABORTED;
    if (max == 0)
        return 0;
    if (max > 0xFFFFu)
        max = 0xFFFFu;
    w.rx_buf = (uint8_t *)buf;
    w.rx_cap = max;
    if (!w.rx_armed) {
        uint8_t hdr[8] = { WINC_OP_RECV, (uint8_t)w.sock };
        put_le(&hdr[2], max, 2);
        put_le(&hdr[4], timeout_ms ? timeout_ms : 1u, 4);
        w.rx_done = 0;
        uint8_t st = command(hdr, sizeof hdr, NULL, 0);
        if (st != WINC_ST_ACK)
            return refused(st);
        w.rx_armed = 1;
    }
    /* the module answers -13 itself at timeout_ms; the extra margin covers a lost IRQ */
    if (!wait_flag(&w.rx_done, timeout_ms + 50u))
        return TR_ERR_TIMEOUT;
    w.rx_done = 0;
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
    w.up = 0;
    SPI1->CR1 = 0;
    SPI1->CR2 = 0x0700u;
    EXTI->IMR &= ~EXTI_LINE;
    EXTI->FTSR &= ~EXTI_LINE;
    EXTI->PR = EXTI_LINE;
    SYSCFG->EXTICR[0] &= ~(0xFu << 4);
    nvic_disable_irq(IRQN_EXTI1);
    nvic_clear_pending(IRQN_EXTI1);
    nvic_disable_irq(IRQN_SPI1);
    nvic_clear_pending(IRQN_SPI1);
    /* pins back to their reset mode (input, no pull, AF0) */
    GPIOA->AFR[0] &= ~((0xFu << (PIN_SCK * 4u)) | (0xFu << (PIN_MISO * 4u)));
    GPIOB->AFR[0] &= ~(0xFu << (PIN_MOSI * 4u));
    pin_mode(GPIOA, PIN_SCK, GPIO_MODE_INPUT);
    pin_mode(GPIOA, PIN_MISO, GPIO_MODE_INPUT);
    pin_mode(GPIOB, PIN_MOSI, GPIO_MODE_INPUT);
    pin_pull(GPIOB, PIN_IRQN, 0u);
    pin_mode(GPIOD, PIN_CS, GPIO_MODE_INPUT);
    pin_mode(GPIOF_PORT, PIN_RESET_N, GPIO_MODE_INPUT);
    pin_mode(GPIOF_PORT, PIN_CHIP_EN, GPIO_MODE_INPUT);
    GPIOD->ODR &= ~(1u << PIN_CS);
    GPIOF_PORT->ODR &= ~((1u << PIN_RESET_N) | (1u << PIN_CHIP_EN));
    RCC->APB2ENR &= ~(RCC_APB2ENR_SPI1EN | RCC_APB2ENR_SYSCFGEN);
    RCC->AHB1ENR &= ~(RCC_AHB1ENR_GPIOAEN | WINC_RCC_GPIOFEN);
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
