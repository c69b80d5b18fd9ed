/* The tensor and its storage as the core's areas see them, and the untracked
 * helpers every op builds on (views, staging copies, broadcasting, dtype
 * promotion). Nothing here records on the autograd tape; the differentiable
 * layout ops are in ops/layout.c and ops/join.c. */
#ifndef LATTICE_TENSOR_INTERNAL_H
#define LATTICE_TENSOR_INTERNAL_H

#include "base.h"

typedef struct lt_storage {
  int64_t refcount;
  void *data;
  size_t nbytes;
  lt_ctx *ctx; /* retained; its allocator owns `data` unless wrapped */
  int wrapped; /* a host buffer: released through `release`, if any */
  void (*release)(void *ud);
  void *release_ud;
} lt_storage;

struct lt_tensor {
  int64_t refcount;
  lt_storage *storage;
  int64_t offset; /* elements */
  int ndim;
  lt_dtype dtype;
  int64_t shape[LT_MAX_DIMS];
  int64_t strides[LT_MAX_DIMS]; /* elements */
  /* autograd: tracked when tape_gen equals the context's recording generation */
  uint64_t tape_gen;
  int64_t slot;
};

/* A new header viewing `base`'s storage with the given layout (untracked). */
lt_status lt__view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *base, int ndim, const int64_t *shape,
                   const int64_t *strides, int64_t offset);
/* An untracked view of x[start:stop:step] along the 0-based axis, with
 * resolved bounds (as lt_slice leaves them: no negatives counted from the end;
 * for a negative step, stop may be -1, before the first element). */
lt_status lt__slice_view(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, int axis, int64_t start, int64_t stop,
                         int64_t step);
void lt__release_all(int n, lt_tensor **ts);
/* True when nobody but the holder of this one reference can see t's elements:
 * one reference to the header, one to the storage, not a host buffer. Such a
 * tensor may be written in place (gradient accumulation, optimizer steps). */
int lt__uniquely_owned(const lt_tensor *t);

/* Contiguous version of x in dtype dt: a new reference (x itself when already so). */
lt_status lt__as_contig(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt);
static inline lt_status lt__as_f32(lt_ctx *ctx, lt_tensor **out, lt_tensor *x) {
  return lt__as_contig(ctx, out, x, LT_FLOAT32);
}
/* A new contiguous copy of x in dtype dt (never x itself). */
lt_status lt__copy_as(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x, lt_dtype dt);
/* Replaces *t (contiguous) by its conversion to dt, releasing the old one
 * (nothing to do when it already has dt). On failure *t is NULL. */
lt_status lt__to_dtype(lt_ctx *ctx, lt_tensor **t, lt_dtype dt);
/* Writes src (same shape, any layout and dtype) into the view dst. */
void lt__assign(lt_tensor *dst, const lt_tensor *src);
static inline float *lt__f32(const lt_tensor *t) { return (float *)t->storage->data + t->offset; }
static inline double *lt__f64(const lt_tensor *t) { return (double *)t->storage->data + t->offset; }

/* The dtype float results take for a given input dtype (ints compute in float32). */
static inline lt_dtype lt__float_result(lt_dtype dt) {
  return (dt == LT_FLOAT16 || dt == LT_BFLOAT16 || dt == LT_FLOAT64) ? dt : LT_FLOAT32;
}
/* The dtype a float op computes in: float64 stays float64 (the reference
 * path, plain loops in double); every other dtype computes in float32. */
static inline lt_dtype lt__compute_dtype(lt_dtype dt) { return dt == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32; }
/* v truncated toward zero and saturated at the int64 range, NaN to 0 (exact
 * at the bounds, which a double cannot hold). (dtype.c) */
int64_t lt__double_to_i64(double v);
/* The common dtype of two operands: float64 wins over everything, then any
 * float (two different other floats meet in float32), else the wider integer
 * (bool < uint8 < int32 < uint32 < int64; int32 with uint32 meet in int64). */
lt_dtype lt__promote(lt_dtype a, lt_dtype b);

/* Broadcast result shape of a and b; returns 0 and fails ctx when incompatible. */
int lt__broadcast_shape(lt_ctx *ctx, const char *op, int *ndim, int64_t *shape, const lt_tensor *a, const lt_tensor *b);
/* Strides (in elements) of contiguous t read in the broadcast shape (nd,
 * shape): 0 on broadcast axes. */
void lt__broadcast_strides(int nd, const int64_t *shape, const lt_tensor *t, int64_t *strides);

#endif
