/* Private to core/transformer: the config checks with the caller's name in
 * front of their messages, shared by config.c and the JSON reader. */
#ifndef LATTICE_TRANSFORMER_CONFIG_H
#define LATTICE_TRANSFORMER_CONFIG_H

#include "lattice/transformer.h"

/* lt_block_config_check and lt_model_config_check with `who` ("BlockConfig",
 * "BlockConfig.load_json: cfg.json") before each message. */
lt_status lt__block_config_check(lt_ctx *ctx, const lt_block_config *c, const char *who);
lt_status lt__model_config_check(lt_ctx *ctx, const lt_model_config *m, int64_t n_block_configs, const char *who);

#endif
