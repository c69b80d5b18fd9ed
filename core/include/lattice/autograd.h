/* Define-by-run autograd. Between lt_tape_begin and lt_tape_end, ops whose
 * inputs are tracked record a node (inputs, saved values, backward rule) on the
 * context's tape; ops on untracked tensors record nothing. lt_tape_backward
 * walks the nodes in reverse and returns the gradient of every requested leaf.
 * lt_tape_end frees the tape and everything it retained. */
#ifndef LATTICE_AUTOGRAD_H
#define LATTICE_AUTOGRAD_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Starts recording. Fails when a tape is already recording. */
lt_status lt_tape_begin(lt_ctx *ctx);
/* A new view of `x` that the tape tracks as a leaf (same storage). */
lt_status lt_tape_watch(lt_ctx *ctx, lt_tensor **leaf, lt_tensor *x);
/* Gradients of the scalar `y` with respect to `leaves`; grads[i] is a new
 * reference (zeros when leaves[i] does not influence y). */
lt_status lt_tape_backward(lt_ctx *ctx, lt_tensor *y, int nleaves, lt_tensor *const *leaves, lt_tensor **grads);
/* Stops recording and frees the tape. Safe to call when not recording. */
void lt_tape_end(lt_ctx *ctx);
int lt_tape_is_recording(const lt_ctx *ctx);
/* The recording tape's generation (distinct for every tape of a context), or 0. */
uint64_t lt_tape_generation(const lt_ctx *ctx);
/* Nodes on the recording tape (0 when none records). */
int64_t lt_tape_size(lt_ctx *ctx);
/* A view of `x` that the tape does not track. */
lt_status lt_stop_gradient(lt_ctx *ctx, lt_tensor **out, lt_tensor *x);

#ifdef __cplusplus
}
#endif

#endif
