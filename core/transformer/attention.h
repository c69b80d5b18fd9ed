/* Internal to the attention family (transformer/attention*.c): the problem as
 * every kernel reads it, the per-row key range and bias they share, and the
 * table of one ISA's (or float64's) kernels that the drivers in attention.c
 * call from their parallel loops.
 *
 *   q (B, Hq, T, D), k (B, Hkv, S, D), v (B, Hkv, S, Dv) -> o (B, Hq, T, Dv), lse (B, Hq, T)
 *   backward: + do (B, Hq, T, Dv) -> dq, dk, dv (the shapes of q, k, v)
 *
 * Query head h reads kv head h / G, G = Hq / Hkv. Every tensor is given by
 * its first element and strides (in elements) over (batch, head, position);
 * each row (one position of one head) is contiguous. The float32 kernels
 * read float, the float64 ones double (the same fields, cast). */
#ifndef LATTICE_TRANSFORMER_ATTENTION_H
#define LATTICE_TRANSFORMER_ATTENTION_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include "lattice/cpu.h"

typedef struct lt__attn_job {
  int64_t nb, hq, hkv, t, s, d, dv, group;
  const void *q, *k, *v;
  int64_t qs[3], ks[3], vs[3];
  void *o;
  int64_t os[3];
  void *lse; /* (B, Hq, T) contiguous: log sum_j exp(score), +inf for a row that sees no key */
  double scale;
  int causal; /* also set for window and chunk, which are causal by construction */
  int64_t window, chunk, q_offset;
  const void *alibi; /* (Hq) slopes, or NULL */
  const void *mask;  /* additive, strides ms over (B, Hq, T, S) (0 on broadcast axes), or NULL */
  int64_t ms[4];
  /* the backward's: the output gradient, and dq, dk, dv (contiguous) */
  const void *gout;
  int64_t gs[3];
  void *gq, *gk, *gv;
} lt__attn_job;

/* a / b rounded toward -inf, b > 0 (a query offset may be negative). */
static inline int64_t lt__attn_floordiv(int64_t a, int64_t b) { return a / b - (a % b != 0 && a < 0); }

/* The keys lo .. hi (inclusive) that query t sees; lo > hi when none. lo and
 * hi never decrease with t, so a run of queries sees at most
 * range(first).lo .. range(last).hi. */
static inline void lt__attn_range(const lt__attn_job *j, int64_t t, int64_t *lo, int64_t *hi) {
  int64_t p = j->q_offset + t, l = 0, h = j->s - 1;
  if (j->causal && p < h) h = p;
  if (j->window > 0 && p - j->window + 1 > l) l = p - j->window + 1;
  if (j->chunk > 0 && lt__attn_floordiv(p, j->chunk) * j->chunk > l) l = lt__attn_floordiv(p, j->chunk) * j->chunk;
  *lo = l;
  *hi = h;
}

/* Offsets of row t of head h of batch b, and of mask element (b, h, t, key). */
static inline int64_t lt__attn_at(const int64_t *st, int64_t b, int64_t h, int64_t t) {
  return b * st[0] + h * st[1] + t * st[2];
}
static inline int64_t lt__attn_mask_at(const lt__attn_job *j, int64_t b, int64_t h, int64_t t, int64_t key) {
  return b * j->ms[0] + h * j->ms[1] + t * j->ms[2] + key * j->ms[3];
}

/* One ISA's kernels (or float64's). The drivers give each call its thread's
 * scratch of the size the matching *_scratch returns.
 *   forward   rows t0 .. t0 + rows - 1 (rows <= fwd_rows(j)) of query head h:
 *             o and lse, overwritten
 *   backward  every query head of kv head hkv: dq of those heads, and dk, dv
 *             of hkv summed over them (each query head, then each query, in
 *             order), overwritten; no other task writes them
 *   decode    (NULL: the forward serves every T) keys s0 .. s1 - 1 of kv head
 *             hkv against all its G*T queries: per query (g, t) in that order,
 *             the running max, the sum of exps and the unnormalised output
 *             (2 + Dv floats) into part, for attention.c to combine */
typedef struct lt__attn_kernels {
  lt_isa isa;
  int64_t (*fwd_rows)(const lt__attn_job *j); /* rows per forward call */
  size_t (*fwd_scratch)(const lt__attn_job *j);
  void (*forward)(const lt__attn_job *j, int64_t b, int64_t h, int64_t t0, int64_t rows, void *scratch);
  size_t (*bwd_scratch)(const lt__attn_job *j);
  void (*backward)(const lt__attn_job *j, int64_t b, int64_t hkv, void *scratch);
  size_t (*dec_scratch)(const lt__attn_job *j);
  void (*decode)(const lt__attn_job *j, int64_t b, int64_t hkv, int64_t s0, int64_t s1, float *part, void *scratch);
} lt__attn_kernels;

extern const lt__attn_kernels lt__attn_ref;    /* float32, plain loops (attention_ref.c) */
extern const lt__attn_kernels lt__attn_f64;    /* float64, the same loops in double */
extern const lt__attn_kernels lt__attn_avx2;   /* attention_avx2.c */
extern const lt__attn_kernels lt__attn_avx512; /* attention_avx512.c */

#endif
