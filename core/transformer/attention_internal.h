/* The attention op's steps as attention.c runs them, for the binding's test
 * hooks, which run them with a chosen ISA and path (spec/attention_spec.lua
 * compares each ISA's kernels with the _ref). Errors are prefixed "attention:". */
#ifndef LATTICE_TRANSFORMER_ATTENTION_INTERNAL_H
#define LATTICE_TRANSFORMER_ATTENTION_INTERNAL_H

#include "lattice/transformer.h"
#include "tensor/internal.h"
#include "transformer/attention.h"

/* The arguments checked and resolved: sizes, dtypes (the result's and the
 * compute dtype), the scale and the structural mask. */
typedef struct lt__attn_plan {
  int64_t nb, hq, hkv, t, s, d, dv;
  lt_dtype odt, cdt;
  double scale;
  int causal;
  int64_t window, chunk, q_offset;
} lt__attn_plan;

/* Inputs in the compute dtype with contiguous rows (new references); ms: the
 * mask's strides over (B, Hq, T, S). */
typedef struct lt__attn_staged {
  lt_tensor *q, *k, *v, *mask, *alibi;
  int64_t ms[4];
} lt__attn_staged;

/* Which forward kernel runs: the default choice by T, or one forced. */
typedef enum lt__attn_path { LT__ATTN_AUTO, LT__ATTN_TILED, LT__ATTN_DECODE } lt__attn_path;

lt_status lt__attn_check(lt_ctx *ctx, lt__attn_plan *p, lt_tensor *q, lt_tensor *k, lt_tensor *v,
                         const lt_attention_opts *o);
lt_status lt__attn_stage(lt_ctx *ctx, lt__attn_staged *s, const lt__attn_plan *p, lt_tensor *q, lt_tensor *k,
                         lt_tensor *v, lt_tensor *mask, lt_tensor *alibi);
void lt__attn_unstage(lt__attn_staged *s);
void lt__attn_job_of(lt__attn_job *j, const lt__attn_plan *p, const lt__attn_staged *s, lt_tensor *out, lt_tensor *lse);
const lt__attn_kernels *lt__attn_kernels_for(lt_dtype cdt, lt_isa isa);
lt_status lt__attn_new_out(lt_ctx *ctx, lt_tensor **out, const lt__attn_plan *p, lt_dtype dt);
lt_status lt__attn_run_forward(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn, lt__attn_path path);
lt_status lt__attn_run_backward(lt_ctx *ctx, const lt__attn_job *j, const lt__attn_kernels *kn);

/* The forward untracked, in the compute dtype: y (B, Hq, T, Dv) and lse
 * (B, Hq, T), with `isa`'s kernels (one the CPU has). */
lt_status lt__attn_forward(lt_ctx *ctx, lt_tensor **y, lt_tensor **lse, const lt__attn_plan *p, lt_tensor *q,
                           lt_tensor *k, lt_tensor *v, lt_tensor *mask, lt_tensor *alibi, lt_isa isa,
                           lt__attn_path path);
/* grads = {dq, dk, dv}, new contiguous tensors of the compute dtype, from the
 * output gradient g and the forward's y and lse. */
lt_status lt__attn_backward(lt_ctx *ctx, lt_tensor **grads, const lt__attn_plan *p, lt_tensor *q, lt_tensor *k,
                            lt_tensor *v, lt_tensor *mask, lt_tensor *alibi, lt_tensor *y, lt_tensor *lse, lt_tensor *g,
                            lt_isa isa);

#endif
