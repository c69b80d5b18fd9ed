/* What the dense ops share: the tape, the parallel loop, the context, and the
 * helpers several op families call. */
#ifndef LATTICE_OPS_INTERNAL_H
#define LATTICE_OPS_INTERNAL_H

#include "autograd/tape.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

/* Gradient reduced from a broadcast shape back to `ndim/shape` by summing (reduce.c). */
lt_status lt__sum_to_shape(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int ndim, const int64_t *shape);

#endif
