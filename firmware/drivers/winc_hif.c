/*
 * winc_hif.c - WINC3400 boot handshake and host interface messages (winc_hif.h).
 *
 * Start-up after the bus negotiation, in the vendor driver's order: WAKE_CLK (0x01)
 * bit 1 cleared; CPU start (0xC000C, 0x108C, 0x207AC cleared, 0x1118 bit 0, 0x150014,
 * NMI_GLB_RESET_0 0x1400 bit 10); efuse loaded (0x1014 bit 31); boot ROM done (0xC000C
 * reads 0x10ADD09E unless 0x207BC bit 0 says skip); chip ID; GP_REG_1 (0x14A0); firmware
 * started by 0xC000C <- 0xEF522F61 and ready when 0x108C reads 0x02532636 (then cleared);
 * IRQ pin mux (0x1408 bit 8) and interrupt enable (0x1A00 bit 16); firmware version
 * from 0x207AC and the revision record GP_REG_0 (0x149C) points to. Every wait has a time
 * budget (the vendor's eFuse wait has none).
 */
#include <stddef.h>

#include "fwlib.h"
#include "winc_bus.h"
#include "winc_hif.h"

#define REG_WAKE_CLK        0x01u
#define REG_EFUSE_STATUS    0x1014u
#define REG_CHIPID          0x1000u
#define REG_RF_REV          0x13F4u
#define REG_BT_CHIPID       0x3B0000u
#define REG_BOOTROM         0xC000Cu
#define REG_NMI_STATE       0x108Cu     /* also the HIF request register */
#define REG_NMI_REV         0x207ACu
#define REG_WAIT_FOR_HOST   0x207BCu
#define REG_CPU_CTRL        0x1118u
#define REG_150014          0x150014u
#define REG_GLB_RESET_0     0x1400u
#define REG_PIN_MUX_0       0x1408u
#define REG_INTR_ENABLE     0x1A00u
#define REG_GP_REG_0        0x149Cu
#define REG_GP_REG_1        0x14A0u
#define REG_RCV_CTRL_0      0x1070u
#define REG_RCV_CTRL_1      0x1084u
#define REG_RCV_CTRL_2      0x1078u
#define REG_RCV_CTRL_3      0x106Cu
#define REG_RCV_CTRL_4      0x150400u
#define REG_IRQ_RX_DONE     0x10A8u     /* 3400: RX done */
#define REG_IRQ_REQ         0x10ACu     /* 3400: buffer request */
#define REG_IRQ_DOORBELL    0x10B0u     /* 3400: message ready */

#define BOOTROM_DONE        0x10ADD09Eu
#define START_FIRMWARE      0xEF522F61u
#define FIRMWARE_READY      0x02532636u
#define PMU_BIT             (1u << 0)   /* GP_REG_1 rHAVE_USE_PMU_BIT (rev 3A0 only) */

#define EFUSE_WAIT_MS       1000u
#define BOOTROM_WAIT_MS     2000u
#define FIRMWARE_WAIT_MS    5000u
#define ALLOC_WAIT_MS       2000u

#define HIF_GET_BLOCK(x)    (((x) >> 14) & 0x3u)
#define HIF_GET_MAJOR(x)    (((x) >> 8) & 0x3Fu)
#define HIF_GET_MINOR(x)    ((x) & 0xFFu)

winc_chip_t winc_chip;

static struct {
    winc_hif_handler_t handler;
    uint32_t last_check;      /* board ms of the last 0x1070 read */
    uint32_t last_alive;      /* board ms of the last reset check */
} hif;

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

void winc_hif_set_handler(winc_hif_handler_t h)
{
    hif.handler = h;
}

void winc_hif_reset_state(void)
{
    memset(&winc_chip, 0, sizeof winc_chip);
    hif.last_check = hif.last_alive = winc_port_millis();
}

/* Poll reg until (value & mask) == want or budget_ms passes; sleep_ms between reads. */
static int wait_reg(uint32_t reg, uint32_t mask, uint32_t want, uint32_t budget_ms, uint32_t sleep_ms)
{
    uint32_t start = winc_port_millis();
    for (;;) {
        uint32_t v = 0;
        if (winc_reg_read(reg, &v) == WINC_OK && (v & mask) == want)
            return WINC_OK;
        if ((uint32_t)(winc_port_millis() - start) >= budget_ms)
            return WINC_ERR_TIME;
        winc_port_delay_ms(sleep_ms);
    }
}

static int rmw(uint32_t reg, uint32_t clear, uint32_t set)
{
    uint32_t v;
    int rc = winc_reg_read(reg, &v);
    if (rc != WINC_OK)
        return rc;
    return winc_reg_write(reg, (v & ~clear) | set);
}

static int read_chip_id(uint32_t bus_id)
{
    uint32_t id = bus_id, rf = 0;
    if (id == 0 && winc_reg_read(REG_CHIPID, &id) != WINC_OK)
        return WINC_ERR_BUS;
    if (winc_reg_read(REG_RF_REV, &rf) != WINC_OK)
        return WINC_ERR_BUS;
    if (id == 0x1000F0u) {   /* a WINC3400: the WiFi ID register; the BT one says which */
        if (winc_reg_read(REG_BT_CHIPID, &id) != WINC_OK)
            return WINC_ERR_BUS;
        if (id == 0x3000D0u)
            id = rf == 6u ? 0x3000D1u : (rf == 2u ? 0x3000D2u : id);
    }
    /* chips with SPI flash: 3400 family -> 0x34xxxx, 1500 family -> 0x15xxxx */
    id = (id & ~0x0F0000u) | (((id & 0xF00000u) == 0x300000u) ? 0x040000u : 0x050000u);
    winc_chip.chip_id = id;
    winc_chip.rf_rev = rf;
    winc_chip.is3400 = (id & 0xFFF0F000u) == 0x300000u;
    return WINC_OK;
}

static int read_firmware_version(void)
{
    uint32_t rev, gp0;
    uint8_t gp[8], r[28];
    if (winc_reg_read(REG_NMI_REV, &rev) != WINC_OK || winc_reg_read(REG_GP_REG_0, &gp0) != WINC_OK)
        return WINC_ERR_BUS;
    winc_chip.hif_info = (uint16_t)rev;
    if (HIF_GET_BLOCK(rev) != WINC_HIF_BLOCK || gp0 == 0)
        return WINC_ERR_PROTO;
    if (winc_mem_read((gp0 & 0xFFFFu) | 0x30000u, gp, sizeof gp) != WINC_OK)
        return WINC_ERR_BUS;
    uint32_t off = get_le32(&gp[4]) & 0xFFFFu;   /* u32Firmware_Ota_rev, firmware half */
    if (off == 0)
        return WINC_ERR_PROTO;
    if (winc_mem_read(off | 0x30000u, r, sizeof r) != WINC_OK)
        return WINC_ERR_BUS;
    /* tstrM2mRev: u16 hif_info, u8 major, u8 -, u8 minor, u8 patch, date[12], time[9] */
    if ((uint16_t)(r[0] | (r[1] << 8)) != winc_chip.hif_info)
        return WINC_ERR_PROTO;
    winc_chip.fw_major = r[2];
    winc_chip.fw_minor = r[4];
    winc_chip.fw_patch = r[5];
    memcpy(winc_chip.build_date, &r[6], 12);
    winc_chip.build_date[12] = '\0';
    if (HIF_GET_MAJOR(rev) != WINC_HIF_MAJOR || HIF_GET_MINOR(rev) < WINC_HIF_MINOR_MIN)
        return WINC_ERR_PROTO;
    return WINC_OK;
}

int winc_hif_start(uint32_t bus_chip_id)
{
    uint32_t v = 0;
    int rc;
    winc_hif_reset_state();

    /* chip_idle: no wake clock request pending */
    if (winc_reg_read(REG_WAKE_CLK, &v) != WINC_OK)
        return WINC_ERR_BUS;
    if ((v & (1u << 1)) && winc_reg_write(REG_WAKE_CLK, v & ~(1u << 1)) != WINC_OK)
        return WINC_ERR_BUS;

    /* start the CPU */
    if (winc_reg_write(REG_BOOTROM, 0) != WINC_OK || winc_reg_write(REG_NMI_STATE, 0) != WINC_OK ||
        winc_reg_write(REG_NMI_REV, 0) != WINC_OK || rmw(REG_CPU_CTRL, 0, 1u) != WINC_OK ||
        winc_reg_write(REG_150014, 1u) != WINC_OK || winc_reg_read(REG_GLB_RESET_0, &v) != WINC_OK)
        return WINC_ERR_BUS;
    if (v & (1u << 10)) {
        v &= ~(1u << 10);
        if (winc_reg_write(REG_GLB_RESET_0, v) != WINC_OK)
            return WINC_ERR_BUS;
    }
    if (winc_reg_write(REG_GLB_RESET_0, v | (1u << 10)) != WINC_OK)
        return WINC_ERR_BUS;
    winc_port_delay_ms(1);

    /* boot ROM */
    rc = wait_reg(REG_EFUSE_STATUS, 0x80000000u, 0x80000000u, EFUSE_WAIT_MS, 1);
    if (rc != WINC_OK)
        return rc;
    if (winc_reg_read(REG_WAIT_FOR_HOST, &v) != WINC_OK)
        return WINC_ERR_BUS;
    if ((v & 1u) == 0) {
        rc = wait_reg(REG_BOOTROM, 0xFFFFFFFFu, BOOTROM_DONE, BOOTROM_WAIT_MS, 1);
        if (rc != WINC_OK)
            return rc;
    }
    rc = read_chip_id(bus_chip_id);
    if (rc != WINC_OK)
        return rc;
    uint32_t conf = (winc_chip.chip_id & 0xFFFu) == 0x3A0u ? PMU_BIT : 0u;
    if (winc_reg_write(REG_GP_REG_1, conf) != WINC_OK)
        return WINC_ERR_BUS;
    if (conf != 0) {
        rc = wait_reg(REG_GP_REG_1, 0xFFFFFFFFu, conf, 100, 1);
        if (rc != WINC_OK)
            return rc;
    }
    if (winc_reg_write(REG_BOOTROM, START_FIRMWARE) != WINC_OK)
        return WINC_ERR_BUS;

    /* firmware */
    rc = wait_reg(REG_NMI_STATE, 0xFFFFFFFFu, FIRMWARE_READY, FIRMWARE_WAIT_MS, 2);
    if (rc != WINC_OK)
        return rc;
    if (winc_reg_write(REG_NMI_STATE, 0) != WINC_OK)
        return WINC_ERR_BUS;

    /* interrupts: IRQN pin mux, then the interrupt enable */
    if (rmw(REG_PIN_MUX_0, 0, 1u << 8) != WINC_OK || rmw(REG_INTR_ENABLE, 0, 1u << 16) != WINC_OK)
        return WINC_ERR_BUS;
    (void)winc_port_irq_edge();   /* edges seen while booting mean nothing */
    return read_firmware_version();
}

int winc_hif_send(uint8_t gid, uint8_t op, const void *ctrl, uint16_t clen, const void *data,
                  uint16_t dlen, uint16_t doff)
{
    uint8_t head[WINC_HIF_HDR + 64u];
    uint32_t len = WINC_HIF_HDR + clen;
    if (clen > sizeof head - WINC_HIF_HDR)
        return WINC_ERR_ARG;
    if (data != NULL) {
        if (doff < clen)
            return WINC_ERR_ARG;
        len = WINC_HIF_HDR + (uint32_t)doff + dlen;
    }
    if (len > WINC_HIF_MAX)
        return WINC_ERR_ARG;

    /* ask for a buffer */
    if (winc_reg_write(REG_NMI_STATE, (uint32_t)gid | ((uint32_t)op << 8) | (len << 16)) != WINC_OK ||
        winc_reg_write(REG_RCV_CTRL_2, 2u) != WINC_OK)
        return WINC_ERR_BUS;
    if (winc_chip.is3400 && winc_reg_write(REG_IRQ_REQ, 1u) != WINC_OK)
        return WINC_ERR_BUS;
    uint32_t start = winc_port_millis(), v = 0, addr = 0;
    for (uint32_t polls = 0;; polls++) {
        if (winc_reg_read(REG_RCV_CTRL_2, &v) != WINC_OK)
            return WINC_ERR_BUS;
        if ((v & 2u) == 0)
            break;
        if ((uint32_t)(winc_port_millis() - start) >= ALLOC_WAIT_MS)
            return WINC_ERR_TIME;
        if (polls >= 100u)
            winc_port_delay_ms(1);
    }
    if (winc_reg_read(REG_RCV_CTRL_4, &addr) != WINC_OK)
        return WINC_ERR_BUS;
    if (addr == 0)
        return WINC_ERR_PROTO;   /* the chip has no buffer */

    /* header + control part in one block, the data part in another */
    memset(head, 0, WINC_HIF_HDR);
    head[0] = gid;
    head[1] = (uint8_t)(op & 0x7Fu);
    head[2] = (uint8_t)len;
    head[3] = (uint8_t)(len >> 8);
    if (clen)
        memcpy(&head[WINC_HIF_HDR], ctrl, clen);
    if (winc_mem_write(addr, head, WINC_HIF_HDR + clen) != WINC_OK)
        return WINC_ERR_BUS;
    if (data != NULL && dlen &&
        winc_mem_write(addr + WINC_HIF_HDR + doff, (const uint8_t *)data, dlen) != WINC_OK)
        return WINC_ERR_BUS;

    /* hand it over */
    if (winc_reg_write(REG_RCV_CTRL_3, (addr << 2) | 2u) != WINC_OK)
        return WINC_ERR_BUS;
    if (winc_chip.is3400 && winc_reg_write(REG_IRQ_DOORBELL, 1u) != WINC_OK)
        return WINC_ERR_BUS;
    return WINC_OK;
}

static int rx_done(void)
{
    if (winc_chip.is3400)
        return winc_reg_write(REG_IRQ_RX_DONE, 1u);
    return rmw(REG_RCV_CTRL_0, 0, 1u << 1);
}

int winc_hif_poll(void)
{
    uint32_t now = winc_port_millis();
    if ((uint32_t)(now - hif.last_alive) >= WINC_ALIVE_MS) {
        /* A chip reset (power glitch, watchdog) holds its CPU and puts 0xE824 back to its
           reset value (256-byte packets): the host must start it again. */
        uint32_t proto;
        hif.last_alive = now;
        if (winc_reg_read(WINC_REG_SPI_PROTOCOL, &proto) != WINC_OK)
            return WINC_ERR_BUS;
        if ((proto & WINC_PROTO_PKT_MASK) != WINC_PROTO_PKT_8K)
            return WINC_ERR_RESET;
    }
    int edge = winc_port_irq_edge();
    int due = (uint32_t)(now - hif.last_check) >= WINC_POLL_MS;
    if (!edge && !due && !(winc_port_irq_level() && now != hif.last_check))
        return 0;
    hif.last_check = now;

    uint32_t ctrl0;
    if (winc_reg_read(REG_RCV_CTRL_0, &ctrl0) != WINC_OK)
        return WINC_ERR_BUS;
    if ((ctrl0 & 1u) == 0)
        return 0;   /* nothing waiting ("false interrupt") */
    if (!edge && !winc_port_irq_level())
        winc_stats.polls_without_irq++;
    if (winc_reg_write(REG_RCV_CTRL_0, ctrl0 & ~1u) != WINC_OK)
        return WINC_ERR_BUS;
    uint32_t size = (ctrl0 >> 2) & 0xFFFu;
    uint32_t addr = 0;
    uint8_t buf[WINC_HIF_HDR + WINC_HIF_PEEK];
    if (size < WINC_HIF_HDR) {
        winc_stats.bad_frames++;
        (void)rx_done();
        return WINC_ERR_PROTO;
    }
    if (winc_reg_read(REG_RCV_CTRL_1, &addr) != WINC_OK)
        return WINC_ERR_BUS;
    uint32_t peek = size < sizeof buf ? size : (uint32_t)sizeof buf;
    if (winc_mem_read(addr, buf, peek) != WINC_OK)
        return WINC_ERR_BUS;
    uint32_t len = (uint32_t)buf[2] | ((uint32_t)buf[3] << 8);
    /* size is len rounded up to 4 */
    if (len < WINC_HIF_HDR || len > size || size - len > 4u) {
        winc_stats.bad_frames++;
        (void)rx_done();
        return WINC_ERR_PROTO;
    }
    winc_stats.events++;
    uint32_t head_len = len - WINC_HIF_HDR;
    if (head_len > peek - WINC_HIF_HDR)
        head_len = peek - WINC_HIF_HDR;
    if (hif.handler)
        hif.handler(buf[0], buf[1], &buf[WINC_HIF_HDR], head_len, addr + WINC_HIF_HDR,
                    len - WINC_HIF_HDR);
    if (rx_done() != WINC_OK)
        return WINC_ERR_BUS;
    return 1;
}
