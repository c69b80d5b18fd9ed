/* BlockConfig and ModelConfig (lattice/transformer.h): the field table, the
 * seed's defaults, the checks and the derived values. JSON is in
 * config_json.c. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "transformer/config.h"

#define B(name, type, range) \
  { #name, LT_CONFIG_##type, offsetof(lt_block_config, name), LT_RANGE_##range }
#define M(name, type, range) \
  { #name, LT_CONFIG_##type, offsetof(lt_model_config, name), LT_RANGE_##range }

/* In the order of the seed's __init__ signature. */
static const lt_config_field block_fields[] = {
    B(attention, STRING, ANY),
    B(ffn, STRING, ANY),
    B(norm, STRING, ANY),
    B(position, STRING, ANY),
    B(d_model, INT, POSITIVE),
    B(n_heads, INT, POSITIVE),
    B(n_kv_heads, OPT_INT, POSITIVE),
    B(d_ff, INT, POSITIVE),
    B(bias, BOOL, ANY),
    B(dropout, FLOAT, UNIT),
    B(norm_eps, FLOAT, NONNEG),
    B(rope_theta, FLOAT, POSITIVE),
    B(max_seq_len, INT, POSITIVE),
    B(pre_norm, BOOL, ANY),
    B(window_size, OPT_INT, POSITIVE),
    B(kv_lora_rank, OPT_INT, POSITIVE),
    B(q_lora_rank, OPT_INT, POSITIVE),
    B(rope_dim, OPT_INT, POSITIVE),
    B(n_experts, OPT_INT, POSITIVE),
    B(top_k_experts, INT, POSITIVE),
    B(n_shared_experts, OPT_INT, POSITIVE),
    B(conv_kernel_size, INT, POSITIVE),
    B(use_short_conv, BOOL, ANY),
    B(mamba_n_heads, OPT_INT, POSITIVE),
    B(mamba_head_dim, OPT_INT, POSITIVE),
    B(ssm_state_size, INT, POSITIVE),
    B(mamba_expand, INT, POSITIVE),
    B(mamba_n_groups, INT, POSITIVE),
    B(mamba_chunk_size, INT, POSITIVE),
    B(mamba_bc_norm, BOOL, ANY),
    B(mamba_trapezoidal, BOOL, ANY),
    B(mamba_complex_a, BOOL, ANY),
    B(moe_latent_size, OPT_INT, POSITIVE),
    B(moe_d_ff, OPT_INT, POSITIVE),
    B(shared_expert_d_ff, OPT_INT, POSITIVE),
    B(moe_routed_scaling_factor, FLOAT, FINITE),
    B(moe_n_groups, INT, POSITIVE),
    B(moe_topk_groups, INT, POSITIVE),
    B(qk_norm, BOOL, ANY),
    B(attention_chunk_size, OPT_INT, POSITIVE),
    B(mup, BOOL, ANY),
    B(sparse_compress_ratio, OPT_INT, POSITIVE),
    B(sparse_select_k, OPT_INT, POSITIVE),
};

static const lt_config_field model_fields[] = {
    M(block, BLOCK, ANY),          M(vocab_size, INT, POSITIVE),      M(n_layers, INT, POSITIVE),
    M(tie_embeddings, BOOL, ANY),  M(block_configs, BLOCK_LIST, ANY), M(mup_base_width, OPT_INT, POSITIVE),
    M(mtp_n_predict, INT, NONNEG), M(mtp_lambda, FLOAT, FINITE),
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const lt_config_field *lt_config_fields(lt_config_kind kind, int *n) {
  *n = kind == LT_CONFIG_MODEL_KIND ? COUNT(model_fields) : COUNT(block_fields);
  return kind == LT_CONFIG_MODEL_KIND ? model_fields : block_fields;
}

const lt_config_field *lt_config_field_named(lt_config_kind kind, const char *name) {
  int n;
  const lt_config_field *f = lt_config_fields(kind, &n);
  for (int i = 0; i < n; i++)
    if (strcmp(f[i].name, name) == 0) return &f[i];
  return NULL;
}

const char *lt_config_field_expects(const lt_config_field *f) {
  switch (f->type) {
  case LT_CONFIG_STRING: return "a non-empty string of at most 63 bytes";
  case LT_CONFIG_BOOL: return "a boolean";
  case LT_CONFIG_BLOCK: return "a lattice.BlockConfig";
  case LT_CONFIG_BLOCK_LIST: return "a list of lattice.BlockConfig or nil";
  case LT_CONFIG_OPT_INT: return "a positive integer or nil";
  case LT_CONFIG_INT: return f->range == LT_RANGE_NONNEG ? "a non-negative integer" : "a positive integer";
  case LT_CONFIG_FLOAT: break;
  }
  switch (f->range) {
  case LT_RANGE_POSITIVE: return "a positive number";
  case LT_RANGE_NONNEG: return "a non-negative number";
  case LT_RANGE_UNIT: return "a number in [0, 1)";
  default: return "a finite number";
  }
}

/* ---- defaults ---- */

static void set_name(char *dst, const char *s) {
  memset(dst, 0, LT_CONFIG_NAME_MAX);
  strcpy(dst, s);
}

void lt_block_config_init(lt_block_config *c) {
  memset(c, 0, sizeof *c); /* every optional field None, every flag false */
  set_name(c->attention, "mha");
  set_name(c->ffn, "standard");
  set_name(c->norm, "layer_norm");
  set_name(c->position, "sinusoidal");
  c->d_model = 512;
  c->n_heads = 8;
  c->d_ff = 2048;
  c->bias = 1;
  c->dropout = 0.0;
  c->norm_eps = 1e-5;
  c->rope_theta = 10000.0;
  c->max_seq_len = 2048;
  c->pre_norm = 1;
  c->top_k_experts = 2;
  c->conv_kernel_size = 4;
  c->ssm_state_size = 128;
  c->mamba_expand = 2;
  c->mamba_n_groups = 1;
  c->mamba_chunk_size = 128;
  c->moe_routed_scaling_factor = 1.0;
  c->moe_n_groups = 1;
  c->moe_topk_groups = 1;
}

void lt_model_config_init(lt_model_config *m) {
  memset(m, 0, sizeof *m);
  lt_block_config_init(&m->block);
  m->vocab_size = 32000;
  m->n_layers = 6;
  m->tie_embeddings = 1;
  m->mtp_n_predict = 0;
  m->mtp_lambda = 0.1;
}

/* ---- checks ---- */

static int int_ok(const lt_config_field *f, int64_t v) {
  if (f->type == LT_CONFIG_OPT_INT && v == 0) return 1;
  return f->range == LT_RANGE_NONNEG ? v >= 0 : v >= 1;
}

static int float_ok(lt_config_range r, double v) {
  if (!isfinite(v)) return 0;
  switch (r) {
  case LT_RANGE_POSITIVE: return v > 0;
  case LT_RANGE_NONNEG: return v >= 0;
  case LT_RANGE_UNIT: return v >= 0 && v < 1;
  default: return 1;
  }
}

static int name_ok(const char *s) {
  size_t n = strnlen(s, LT_CONFIG_NAME_MAX);
  return n > 0 && n < LT_CONFIG_NAME_MAX;
}

/* One field's value against its range; `who` prefixes the message. */
static lt_status check_field(lt_ctx *ctx, const lt_config_field *f, const void *base, const char *who) {
  const char *p = (const char *)base + f->offset;
  int ok = 1;
  char got[48] = "";
  if (f->type == LT_CONFIG_INT || f->type == LT_CONFIG_OPT_INT) {
    int64_t v;
    memcpy(&v, p, sizeof v);
    ok = int_ok(f, v);
    snprintf(got, sizeof got, "%lld", (long long)v);
  } else if (f->type == LT_CONFIG_FLOAT) {
    double v;
    memcpy(&v, p, sizeof v);
    ok = float_ok(f->range, v);
    snprintf(got, sizeof got, "%.14g", v);
  } else if (f->type == LT_CONFIG_STRING) {
    ok = name_ok(p);
    snprintf(got, sizeof got, "%zu bytes", strnlen(p, LT_CONFIG_NAME_MAX));
  }
  if (ok) return LT_OK;
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be %s, got %s", who, f->name, lt_config_field_expects(f), got);
}

lt_status lt__block_config_check(lt_ctx *ctx, const lt_block_config *c, const char *who) {
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_BLOCK_KIND, &n);
  for (int i = 0; i < n; i++)
    if (check_field(ctx, &f[i], c, who)) return LT_ERR_ARG;
  if (c->d_model % c->n_heads != 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: d_model (%lld) must be divisible by n_heads (%lld)", who,
                       (long long)c->d_model, (long long)c->n_heads);
  if (c->n_kv_heads && c->n_heads % c->n_kv_heads != 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: n_heads (%lld) must be divisible by n_kv_heads (%lld)", who,
                       (long long)c->n_heads, (long long)c->n_kv_heads);
  return LT_OK;
}

lt_status lt_block_config_check(lt_ctx *ctx, const lt_block_config *c) {
  return lt__block_config_check(ctx, c, "BlockConfig");
}

lt_status lt__model_config_check(lt_ctx *ctx, const lt_model_config *m, int64_t n_block_configs, const char *who) {
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_MODEL_KIND, &n);
  for (int i = 0; i < n; i++)
    if (check_field(ctx, &f[i], m, who)) return LT_ERR_ARG;
  char where[400];
  snprintf(where, sizeof where, "%s: block", who);
  if (lt__block_config_check(ctx, &m->block, where)) return LT_ERR_ARG;
  if (!m->block_configs) return LT_OK;
  if (n_block_configs != m->n_layers)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: block_configs has %lld %s, n_layers is %lld", who,
                       (long long)n_block_configs, n_block_configs == 1 ? "entry" : "entries", (long long)m->n_layers);
  for (int64_t i = 0; i < n_block_configs; i++) {
    snprintf(where, sizeof where, "%s: block_configs[%lld]", who, (long long)i + 1); /* 1-based, as Lua lists */
    if (lt__block_config_check(ctx, &m->block_configs[i], where)) return LT_ERR_ARG;
  }
  return LT_OK;
}

lt_status lt_model_config_check(lt_ctx *ctx, const lt_model_config *m, int64_t n_block_configs) {
  return lt__model_config_check(ctx, m, n_block_configs, "ModelConfig");
}

/* ---- derived values ---- */

int64_t lt_block_config_head_dim(const lt_block_config *c) { return c->d_model / c->n_heads; }

int64_t lt_block_config_kv_heads(const lt_block_config *c) { return c->n_kv_heads ? c->n_kv_heads : c->n_heads; }

double lt_block_config_attention_scale(const lt_block_config *c) {
  double d = (double)lt_block_config_head_dim(c);
  return c->mup ? 1.0 / d : 1.0 / sqrt(d);
}

double lt_model_config_width_mult(const lt_model_config *m) {
  return m->mup_base_width ? (double)m->block.d_model / (double)m->mup_base_width : 1.0;
}

const lt_block_config *lt_model_config_layer(const lt_model_config *m, int64_t i) {
  return m->block_configs ? &m->block_configs[i] : &m->block;
}

/* ---- equality ---- */

static int field_equal(const lt_config_field *f, const void *a, const void *b) {
  const char *pa = (const char *)a + f->offset, *pb = (const char *)b + f->offset;
  switch (f->type) {
  case LT_CONFIG_STRING: return strncmp(pa, pb, LT_CONFIG_NAME_MAX) == 0;
  case LT_CONFIG_INT:
  case LT_CONFIG_OPT_INT: return memcmp(pa, pb, sizeof(int64_t)) == 0;
  case LT_CONFIG_BOOL: return *(const int *)pa == *(const int *)pb;
  case LT_CONFIG_FLOAT: return *(const double *)pa == *(const double *)pb;
  default: return 1; /* the nested configs are compared by lt_model_config_equal */
  }
}

int lt_block_config_equal(const lt_block_config *a, const lt_block_config *b) {
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_BLOCK_KIND, &n);
  for (int i = 0; i < n; i++)
    if (!field_equal(&f[i], a, b)) return 0;
  return 1;
}

int lt_model_config_equal(const lt_model_config *a, const lt_model_config *b) {
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_MODEL_KIND, &n);
  for (int i = 0; i < n; i++)
    if (!field_equal(&f[i], a, b)) return 0;
  if (!lt_block_config_equal(&a->block, &b->block)) return 0;
  if (!a->block_configs != !b->block_configs) return 0;
  for (int64_t i = 0; a->block_configs && i < a->n_layers; i++)
    if (!lt_block_config_equal(&a->block_configs[i], &b->block_configs[i])) return 0;
  return 1;
}
