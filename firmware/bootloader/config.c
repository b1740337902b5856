/* config.c - boot configuration record: defaults, validation, sealing (portable). */
#include "config.h"

#include <stddef.h>

#include "fwlib.h"

void cfg_defaults(ota_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->magic = CFG_MAGIC;
    cfg->version = CFG_VERSION;
    cfg->transport = CFG_TRANSPORT_ETH;
    cfg->server_ip = CFG_DEFAULT_SERVER_IP;
    cfg->server_port = CFG_DEFAULT_SERVER_PORT;
    cfg_seal(cfg);
}

void cfg_seal(ota_config_t *cfg)
{
    cfg->magic = CFG_MAGIC;
    cfg->version = CFG_VERSION;
    cfg->record_crc = fw_crc32(0, cfg, offsetof(ota_config_t, record_crc));
}

int cfg_valid(const ota_config_t *cfg)
{
#ifdef BL_VARIANT_CONFIG_MAGIC_ONLY
    /* "if (cfg->magic == CFG_MAGIC) use it": a record torn by a power cut while it was
       written (magic programmed, the rest still erased: flags, server address and port all
       0xFFFFFFFF) is taken as valid. */
    return cfg->magic == CFG_MAGIC;
#endif
    return cfg->magic == CFG_MAGIC && cfg->version == CFG_VERSION &&
           cfg->record_crc == fw_crc32(0, cfg, offsetof(ota_config_t, record_crc)) &&
           cfg->transport <= CFG_TRANSPORT_WIFI && cfg->server_port >= 1u &&
           cfg->server_port <= 65535u;
}
