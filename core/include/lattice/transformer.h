/* Transformer configuration and the fused FFN path.
 *
 * lt_block_config and lt_model_config are lmxlab's BlockConfig and
 * ModelConfig (src/lmxlab/core/config.py): every field, its name, its default.
 * They are plain structs so that kernels read them directly (the attention
 * kernel takes its window, chunk and scale from a block config). A field the
 * seed types `int | None` is 0 here when it is None and at least 1 when set;
 * the registry names (attention, ffn, norm, position) are NUL-terminated.
 *
 * The field table (lt_config_fields) lists every field in the seed's order
 * with its type, offset and the range it must lie in: the Lua binding, the
 * JSON reader and writer and tostring all walk it, so a field added to the
 * struct and the table is known everywhere at once. */
#ifndef LATTICE_TRANSFORMER_H
#define LATTICE_TRANSFORMER_H

#include "lattice/tensor.h"

/* Room for a registry name, its NUL included. */
#define LT_CONFIG_NAME_MAX 64

typedef struct lt_block_config {
  char attention[LT_CONFIG_NAME_MAX];                                     /* "mha" */
  char ffn[LT_CONFIG_NAME_MAX];                                           /* "standard" */
  char norm[LT_CONFIG_NAME_MAX];                                          /* "layer_norm" */
  char position[LT_CONFIG_NAME_MAX];                                      /* "sinusoidal" */
  int64_t d_model;                                                        /* 512 */
  int64_t n_heads;                                                        /* 8 */
  int64_t n_kv_heads;                                                     /* None: n_heads */
  int64_t d_ff;                                                           /* 2048 */
  int bias;                                                               /* true */
  double dropout;                                                         /* 0.0 */
  double norm_eps;                                                        /* 1e-5 */
  double rope_theta;                                                      /* 10000.0 */
  int64_t max_seq_len;                                                    /* 2048 */
  int pre_norm;                                                           /* true */
  int64_t window_size;                                                    /* None: global attention */
  int64_t kv_lora_rank, q_lora_rank, rope_dim;                            /* MLA; None */
  int64_t n_experts, top_k_experts, n_shared_experts;                     /* MoE; None, 2, None */
  int64_t conv_kernel_size;                                               /* 4 */
  int use_short_conv;                                                     /* false */
  int64_t mamba_n_heads, mamba_head_dim;                                  /* None */
  int64_t ssm_state_size, mamba_expand, mamba_n_groups, mamba_chunk_size; /* 128, 2, 1, 128 */
  int mamba_bc_norm, mamba_trapezoidal, mamba_complex_a;                  /* false */
  int64_t moe_latent_size, moe_d_ff, shared_expert_d_ff;                  /* None */
  double moe_routed_scaling_factor;                                       /* 1.0 */
  int64_t moe_n_groups, moe_topk_groups;                                  /* 1, 1 */
  int qk_norm;                                                            /* false */
  int64_t attention_chunk_size;                                           /* None: global attention */
  int mup;                                        /* false: scale 1/sqrt(head_dim), true: 1/head_dim */
  int64_t sparse_compress_ratio, sparse_select_k; /* None */
} lt_block_config;

typedef struct lt_model_config {
  lt_block_config block;
  int64_t vocab_size; /* 32000 */
  int64_t n_layers;   /* 6 */
  int tie_embeddings; /* true */
  /* Per-layer configs, n_layers of them, or NULL (None: every layer uses
   * `block`). Borrowed: whoever fills the struct owns the array. */
  const lt_block_config *block_configs;
  int64_t mup_base_width; /* None */
  int64_t mtp_n_predict;  /* 0 */
  double mtp_lambda;      /* 0.1 */
} lt_model_config;

/* ---- the field table ---- */

typedef enum lt_config_type {
  LT_CONFIG_STRING,     /* char[LT_CONFIG_NAME_MAX], non-empty */
  LT_CONFIG_INT,        /* int64_t */
  LT_CONFIG_OPT_INT,    /* int64_t, 0 for None */
  LT_CONFIG_FLOAT,      /* double */
  LT_CONFIG_BOOL,       /* int, 0 or 1 */
  LT_CONFIG_BLOCK,      /* lt_block_config (ModelConfig.block) */
  LT_CONFIG_BLOCK_LIST, /* const lt_block_config * (ModelConfig.block_configs) */
} lt_config_type;

/* The values a number field accepts. */
typedef enum lt_config_range {
  LT_RANGE_ANY,      /* strings, booleans, configs */
  LT_RANGE_POSITIVE, /* > 0 (an optional integer may also be None) */
  LT_RANGE_NONNEG,   /* >= 0 */
  LT_RANGE_UNIT,     /* in [0, 1): a probability that keeps something */
  LT_RANGE_FINITE,   /* any finite number */
} lt_config_range;

typedef struct lt_config_field {
  const char *name;
  lt_config_type type;
  size_t offset; /* into the struct */
  lt_config_range range;
} lt_config_field;

typedef enum lt_config_kind { LT_CONFIG_BLOCK_KIND, LT_CONFIG_MODEL_KIND } lt_config_kind;

/* The fields of a kind in the seed's order; *n gets their count. */
const lt_config_field *lt_config_fields(lt_config_kind kind, int *n);
/* The field called `name`, or NULL. */
const lt_config_field *lt_config_field_named(lt_config_kind kind, const char *name);
/* "a positive integer", "a number in [0, 1)", ...: what the field must be. */
const char *lt_config_field_expects(const lt_config_field *f);

/* ---- defaults, checks, derived values ---- */

/* The seed's defaults. A model config's block_configs is NULL. */
void lt_block_config_init(lt_block_config *c);
void lt_model_config_init(lt_model_config *m);

/* Checks every field's range and the relations between fields:
 *   "BlockConfig: d_model must be a positive integer, got 0"
 *   "BlockConfig: d_model (100) must be divisible by n_heads (3)"
 *   "BlockConfig: n_heads (8) must be divisible by n_kv_heads (3)"
 * A model config checks its block, each of its block_configs and
 *   "ModelConfig: block_configs has 2 entries, n_layers is 3";
 * it cannot see the array's length, so the caller passes it. */
lt_status lt_block_config_check(lt_ctx *ctx, const lt_block_config *c);
lt_status lt_model_config_check(lt_ctx *ctx, const lt_model_config *m, int64_t n_block_configs);

int64_t lt_block_config_head_dim(const lt_block_config *c); /* d_model / n_heads */
int64_t lt_block_config_kv_heads(const lt_block_config *c); /* effective_n_kv_heads */
/* The attention's score scale: 1/head_dim with mup (muP), else 1/sqrt(head_dim). */
double lt_block_config_attention_scale(const lt_block_config *c);
double lt_model_config_width_mult(const lt_model_config *m); /* d_model / mup_base_width, 1 without muP */
/* The config of layer i (0-based, i < n_layers): block_configs[i] or block. */
const lt_block_config *lt_model_config_layer(const lt_model_config *m, int64_t i);

/* Fields compare equal (dataclass equality). */
int lt_block_config_equal(const lt_block_config *a, const lt_block_config *b);
int lt_model_config_equal(const lt_model_config *a, const lt_model_config *b);

/* ---- JSON, beside a checkpoint ----
 * The object dataclasses.asdict gives: every field by name, None as null,
 * a model's block and block_configs as nested objects. Numbers are written so
 * that they read back exactly (floats with a '.', as Python's json writes
 * them). Reading accepts any subset of the fields (the rest take their
 * defaults), refuses unknown or repeated names and values of the wrong type,
 * and checks the result as lt_*_config_check does; messages name `who`
 * ("BlockConfig.load_json: cfg.json: d_model must be ..."). */

/* A new NUL-terminated text (free() it), or NULL when out of memory. */
char *lt_block_config_to_json(const lt_block_config *c);
char *lt_model_config_to_json(const lt_model_config *m);
/* text[0..n) into *out. For a model, *layers receives the block_configs
 * array (malloc'd, free() it; NULL when None) and out->block_configs points
 * into it. On failure nothing is left allocated. */
lt_status lt_block_config_from_json(lt_ctx *ctx, lt_block_config *out, const char *text, size_t n, const char *who);
lt_status lt_model_config_from_json(lt_ctx *ctx, lt_model_config *out, lt_block_config **layers, const char *text,
                                    size_t n, const char *who);
/* Writes text to path atomically (a temporary file beside it, renamed onto
 * it): "<who>: <path>: <reason>" on failure. */
lt_status lt_config_write_file(lt_ctx *ctx, const char *path, const char *text, const char *who);
/* Reads the whole file (at most 16 MB) into a new NUL-terminated buffer
 * (free() it); *n gets its length. */
lt_status lt_config_read_file(lt_ctx *ctx, const char *path, char **text, size_t *n, const char *who);

/* ---- the fused FFN path ----
 * x (..., K), weight (N, K), bias (N) or NULL -> y:
 *   relu, gelu (exact), silu:  y = act(x @ weight^T + bias)      (..., N)
 *   glu:     [a, b] = x @ weight^T + bias split at N/2,  y = a * sigmoid(b)   (..., N/2)
 *   swiglu:  [a, b] likewise,                            y = silu(a) * b     (..., N/2)
 * (glu and swiglu as nn.MLP's gated activations: torch.nn.functional.glu
 * gates with the second half, SwiGLU with the first.) One call: the GEMM
 * runs over blocks of rows and each block's activation is applied while the
 * block is still in cache, so the pre-activation (N wide) never makes a pass
 * through memory of its own; it is kept, as the backward needs it, only
 * while a gradient is taken. */
typedef enum lt_linear_act_op {
  LT_LINEAR_ACT_RELU,
  LT_LINEAR_ACT_GELU,
  LT_LINEAR_ACT_SILU,
  LT_LINEAR_ACT_GLU,
  LT_LINEAR_ACT_SWIGLU,
  LT_LINEAR_ACT_COUNT
} lt_linear_act_op;
const char *lt_linear_act_name(lt_linear_act_op op);
lt_status lt_linear_act(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias,
                        lt_linear_act_op op);

#endif
