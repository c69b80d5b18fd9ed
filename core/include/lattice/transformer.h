/* Transformer kernels: scaled dot-product attention. */
#ifndef LATTICE_TRANSFORMER_H
#define LATTICE_TRANSFORMER_H

#include <stdint.h>
#include "lattice/tensor.h"

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

#endif
