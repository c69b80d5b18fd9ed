/* Transformer configuration, the fused FFN path and scaled dot-product
 * attention.
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

#include <stdint.h>
#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

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

/* What lt_attention sees besides q, k and v. Zero-initialise it and set what
 * you need ({0} is plain softmax(q k^T / sqrt(D)) v):
 *   has_scale, scale   the factor of q k^T; default 1/sqrt(D) (the seed's
 *                      muP blocks pass 1/D)
 *   causal             query t, at absolute position p = q_offset + t, sees
 *                      keys 0 .. p only
 *   window (> 0)       sliding window: query p sees keys p - window + 1 .. p
 *                      (causal by construction: never a later key)
 *   chunk (> 0)        chunked: query p sees keys of its own chunk of `chunk`
 *                      absolute positions up to itself, floor(p/chunk)*chunk .. p
 *   has_q_offset,      the absolute position of query 0 (default S - T, the
 *   q_offset           last T positions of S keys, as MLX aligns causal
 *                      attention and as decoding with a cache of S keys needs)
 *   mask               optional additive float mask, or boolean (true = keep),
 *                      broadcastable to (B, Hq, T, S); takes no gradient
 *   alibi              optional (Hq) slopes: -slope_h |p - j| is added to the
 *                      score of query position p and key j; takes no gradient
 * A query that sees no key (a causal query before key 0, a window past the
 * cache) gets zeros. */
typedef struct lt_attention_opts {
  int has_scale;
  double scale;
  int causal;
  int64_t window, chunk;
  int has_q_offset;
  int64_t q_offset;
  lt_tensor *mask, *alibi;
} lt_attention_opts;

/* out (B, Hq, T, Dv) = softmax(q k^T * scale + bias) v for q (B, Hq, T, D),
 * k (B, Hkv, S, D), v (B, Hkv, S, Dv), with Hq a multiple of Hkv: query head
 * h reads kv head h / (Hq / Hkv) (grouped-query attention; Hkv = 1 is
 * multi-query). Differentiable in q, k and v. float16/bfloat16 inputs compute
 * in float32 and the result takes the inputs' common dtype; float64 computes
 * in double. opts may be NULL. The result is a (B, Hq, T, Dv) view of a
 * (B, T, Hq, Dv) buffer, so that transposing it back to (B, T, Hq, Dv) and
 * merging the heads is free. Errors are prefixed "attention:". */
lt_status lt_attention(lt_ctx *ctx, lt_tensor **out, lt_tensor *q, lt_tensor *k, lt_tensor *v,
                       const lt_attention_opts *opts);

/* The in-place write of the attention modules' preallocated KV cache:
 * cache[:, :, pos : pos + T] = src for cache (B, H, S, D), contiguous and
 * float, and src (B, H, T, D), any layout and float dtype (converted). The
 * cache is the one tensor written in place after creation: it belongs to its
 * cache object. src must not be tracked (a cache is for inference). Errors
 * are prefixed "kv_cache_write:". */
lt_status lt_kv_cache_write(lt_ctx *ctx, lt_tensor *cache, int64_t pos, lt_tensor *src);

#ifdef __cplusplus
}
#endif

#endif
