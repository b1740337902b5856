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
    return cfg->magic == CFG_MAGIC && cfg->version == CFG_VERSION &&
           cfg->record_crc == fw_crc32(0, cfg, offsetof(ota_config_t, record_crc)) &&
           cfg->transport <= CFG_TRANSPORT_WIFI && cfg->server_port >= 1u &&
           cfg->server_port <= 65535u;
}
