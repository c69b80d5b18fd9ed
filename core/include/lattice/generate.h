/* Choosing tokens from logits, for generation: the next-token draw of
 * lmxlab's models/generate.py and the top-k selection beam search needs.
 * Both work on rows of the last axis. */
#ifndef LATTICE_GENERATE_H
#define LATTICE_GENERATE_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How lt_sample picks a token from a row of logits, in the seed's order:
 *   repetition_penalty  p (> 0; 1: none): every token that occurs in the
 *                       row's history has its logit l replaced by l / p when
 *                       l > 0, else l * p (once, however often it occurs)
 *   temperature         t <= 0: greedy, the argmax (ties to the lower id);
 *                       else the logits are divided by t and one token drawn
 *   top_k               k > 0: the draw is among the k largest logits only
 *   top_p               with top_k == 0 and top_p < 1: among the smallest
 *                       prefix of the tokens sorted by probability whose
 *                       mass before the token is at most top_p (nucleus)
 *   history             (R, n) or, for 1-D logits, (n) integer token ids in
 *                       [0, V), or NULL: the tokens the penalty applies to */
typedef struct lt_sample_opts {
  double repetition_penalty;
  double temperature;
  int64_t top_k;
  double top_p;
  lt_tensor *history;
} lt_sample_opts;

/* out (R) int64 = one token id per row of logits (R, V) or (V) -> (), any
 * float dtype, computed in double. A draw takes one uniform per row from the
 * context's generator (greedy takes none), so a seed reproduces it. Logits
 * may be -inf (never drawn); NaN or +inf is an error, and so is a row with no
 * finite logit among the candidates. Takes no gradient. Errors are prefixed
 * "sample:". */
lt_status lt_sample(lt_ctx *ctx, lt_tensor **out, lt_tensor *logits, const lt_sample_opts *opts);

/* out (..., k) int64 = the positions of the k largest entries of each row of
 * x's last axis, largest first, ties to the lower position; k <= the axis
 * length. NaN is an error. Errors are prefixed "topk:". */
lt_status lt_topk_indices(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int64_t k);

#ifdef __cplusplus
}
#endif

#endif
