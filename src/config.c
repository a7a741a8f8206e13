/* PLACEHOLDER: replaced by the table-driven implementation. */
#include <errno.h>
#include <string.h>
#include "sealtap/config.h"
#include "sealtap/log.h"

void config_defaults(struct st_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->log.level = LOG_LEVEL_INFO;
	cfg->eal.memory_mb = 512;
	cfg->capture.workers = 1;
	cfg->capture.burst = 32;
	cfg->capture.ring_size = 4096;
	cfg->capture.mbuf_data_size = 2048 + 128;
	cfg->capture.rx_desc = 1024;
	cfg->decode = (struct decode_cfg)DECODE_CFG_DEFAULT;
	cfg->flow = (struct flow_table_cfg)FLOW_TABLE_CFG_DEFAULT;
	cfg->reasm = (struct reasm_cfg)REASM_CFG_DEFAULT;
}

int config_load(const char *path, struct st_config *cfg, char *err, size_t errlen)
{
	(void)path; (void)err; (void)errlen;
	config_defaults(cfg);
	return 0;
}

int config_validate(const struct st_config *cfg, char *err, size_t errlen)
{
	(void)cfg; (void)err; (void)errlen;
	return 0;
}

void config_free(struct st_config *cfg) { config_defaults(cfg); }
void config_write_reference(FILE *out) { (void)out; }
