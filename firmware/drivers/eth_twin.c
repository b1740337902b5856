/*
 * eth_twin.c - transport_eth: the twin's socket-offload Ethernet device (eth_twin.h).
 *
 * Polled, blocking with timeouts from board_millis(). The device writes received data
 * straight into the caller's buffer (DMA style) and reads sent data from it, so every
 * buffer passed here must be in RAM. IER stays 0, but ISR flags (and so the IRQ 61
 * pending state, if a caller enables IER) behave as on interrupt-driven use.
 */
#include <stddef.h>

#include "eth_twin.h"
#include "stm32f767.h"
#include "transport.h"

static int eth_connected;

/* Wait until one of `flags` is set in ISR; 1 if seen, 0 on timeout. */
static int wait_isr(uint32_t flags, uint32_t timeout_ms)
{
    uint32_t start = board_millis();
    for (;;) {
        if (ETHT->ISR & flags)
            return 1;
        if ((uint32_t)(board_millis() - start) >= timeout_ms)
            return (ETHT->ISR & flags) ? 1 : 0;
    }
}

static int map_err(int32_t code)
{
    switch (code) {
    case ETHT_E_REFUSED:
    case ETHT_E_UNREACHABLE: return TR_ERR_REFUSED;
    case ETHT_E_ABORTED:     return TR_ERR_ABORTED;
    case ETHT_E_TIMEOUT:     return TR_ERR_TIMEOUT;
    case ETHT_E_STATE:       return TR_ERR_STATE;
    default:                 return TR_ERR_DEVICE;
    }
}

/* Issue a command; a rejection shows at once in ISR.ERR (the device decides synchronously). */
static int command(uint32_t cmd)
{
    ETHT->ISR = ETHT_IF_ERR;
    ETHT->CMD = cmd;
    if (ETHT->ISR & ETHT_IF_ERR) {
        int32_t code = ETHT->ERR;
        ETHT->ISR = ETHT_IF_ERR;
        return map_err(code);
    }
    return TR_OK;
}

static int eth_init(void)
{
    if (ETHT->ID != ETHT_ID_VALUE)
        return TR_ERR_DEVICE;
    ETHT->CTRL = 0;             /* drops any connection a previous stage left open */
    ETHT->IER = 0;
    ETHT->ISR = ETHT_IF_ALL;
    ETHT->CTRL = ETHT_CTRL_EN;
    eth_connected = 0;
    return TR_OK;
}

static int eth_connect(uint32_t ip, uint16_t port, uint32_t timeout_ms)
{
    if (!(ETHT->CTRL & ETHT_CTRL_EN))
        return TR_ERR_DEVICE;
    if (ETHT->STATUS & (ETHT_ST_CONNECTED | ETHT_ST_CONNECTING | ETHT_ST_ABORTED))
        (void)command(ETHT_CMD_CLOSE);
    ETHT->ISR = ETHT_IF_ALL;
    ETHT->IP = ip;
    ETHT->PORT = port;
    int rc = command(ETHT_CMD_CONNECT);
    if (rc < 0)
        return rc;
    if (!wait_isr(ETHT_IF_CONN, timeout_ms)) {
        (void)command(ETHT_CMD_ABORT);
        return TR_ERR_TIMEOUT;
    }
    ETHT->ISR = ETHT_IF_CONN;
    int32_t res = ETHT->CONN_RES;
    if (res != 0)
        return TR_ERR_REFUSED;
    eth_connected = 1;
    return TR_OK;
}

static int eth_send(const void *buf, uint32_t len, uint32_t timeout_ms)
{
    const uint8_t *p = (const uint8_t *)buf;
    uint32_t done = 0;
    uint32_t start = board_millis();
    if (!eth_connected)
        return TR_ERR_STATE;
    while (done < len) {
        uint32_t n = len - done;
        if (n > 0xFFFFu)
            n = 0xFFFFu;
        ETHT->ISR = ETHT_IF_TX;
        ETHT->TX_ADDR = (uint32_t)(uintptr_t)(p + done);
        ETHT->TX_LEN = n;
        int rc = command(ETHT_CMD_SEND);
        if (rc < 0)
            return rc;
        uint32_t spent = (uint32_t)(board_millis() - start);
        if (!wait_isr(ETHT_IF_TX, spent < timeout_ms ? timeout_ms - spent : 0))
            return TR_ERR_TIMEOUT;
        ETHT->ISR = ETHT_IF_TX;
        int32_t res = ETHT->TX_RES;
        if (res < 0)
            return map_err(res);
        done += (uint32_t)res;
    }
    return (int)done;
}

static int eth_recv(void *buf, uint32_t max, uint32_t timeout_ms)
{
    if (!eth_connected)
        return TR_ERR_STATE;
    if (max == 0)
        return 0;
    ETHT->ISR = ETHT_IF_RX;
    ETHT->RX_ADDR = (uint32_t)(uintptr_t)buf;
    ETHT->RX_MAX = max;
    int rc = command(ETHT_CMD_RECV);
    if (rc < 0)
        return rc;
    if (!wait_isr(ETHT_IF_RX, timeout_ms)) {
        ETHT->CMD = ETHT_CMD_RX_CANCEL;
        if (!(ETHT->ISR & ETHT_IF_RX))      /* data may have landed just before the cancel */
            return TR_ERR_TIMEOUT;
    }
    ETHT->ISR = ETHT_IF_RX;
    int32_t res = ETHT->RX_RES;
    return res < 0 ? map_err(res) : (int)res;
}

static void eth_close(void)
{
    if (ETHT->CTRL & ETHT_CTRL_EN)
        ETHT->CMD = ETHT_CMD_CLOSE;
    ETHT->ISR = ETHT_IF_ALL;
    eth_connected = 0;
}

static void eth_deinit(void)
{
    eth_close();
    ETHT->IER = 0;
    ETHT->ISR = ETHT_IF_ALL;
    ETHT->CTRL = 0;
    nvic_disable_irq(ETHT_IRQN);
    nvic_clear_pending(ETHT_IRQN);
}

const transport_t transport_eth = {
    .name = "eth",
    .init = eth_init,
    .connect = eth_connect,
    .send = eth_send,
    .recv = eth_recv,
    .close = eth_close,
    .deinit = eth_deinit,
};
