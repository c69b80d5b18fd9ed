/* Dense tensors: a reference-counted header (shape, strides, offset, dtype) over
 * a reference-counted storage. Views share storage. Every function that returns
 * a tensor through `lt_tensor **out` hands the caller a new reference; inputs
 * are borrowed. Axes here are 0-based; the Lua binding converts. */
#ifndef LATTICE_TENSOR_H
#define LATTICE_TENSOR_H

#include <stdint.h>
#include "lattice/ctx.h"
#include "lattice/dtype.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LT_MAX_DIMS 8

typedef struct lt_tensor lt_tensor;

lt_tensor *lt_tensor_retain(lt_tensor *t);
void lt_tensor_release(lt_tensor *t);

/* A new contiguous tensor; its contents are unspecified (`new`) or zero. */
lt_status lt_tensor_new(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape);
lt_status lt_tensor_zeros(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape);
lt_status lt_tensor_full(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double value);
/* A copy of `n` host elements laid out row-major in `shape`. */
lt_status lt_tensor_from_data(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape,
                              const void *data);
/* Zero-copy: wraps a host buffer, aligned to the dtype's size. `release(ud)` is
 * called when the last view of it is dropped; until then the buffer must stay
 * valid and must not move. When the call fails, release is not called. */
lt_status lt_tensor_wrap(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, void *data,
                         void (*release)(void *ud), void *ud);
lt_status lt_tensor_arange(lt_ctx *ctx, lt_tensor **out, double start, double stop, double step, lt_dtype dt);
lt_status lt_tensor_eye(lt_ctx *ctx, lt_tensor **out, int64_t n, int64_t m, int64_t k, lt_dtype dt);

/* Random tensors from the context's generator. */
lt_status lt_random_normal(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double mean,
                           double std);
lt_status lt_random_uniform(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double low,
                            double high);
lt_status lt_random_randint(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, int64_t low,
                            int64_t high);
/* A uniformly random permutation of 0 .. n-1 (int32, n < 2^31): a
 * Fisher-Yates shuffle whose swap i draws counter i of the draw. With seed ==
 * NULL it draws from the context's generator (n counters); with a seed it uses
 * a generator of its own keyed by *seed from counter 0 and leaves the
 * context's as it was, so a data loader's order depends on its seed alone. */
lt_status lt_random_permutation(lt_ctx *ctx, lt_tensor **out, int64_t n, const uint64_t *seed);

/* Accessors. */
int lt_tensor_ndim(const lt_tensor *t);
const int64_t *lt_tensor_shape(const lt_tensor *t);
const int64_t *lt_tensor_strides(const lt_tensor *t); /* in elements */
lt_dtype lt_tensor_dtype(const lt_tensor *t);
int64_t lt_tensor_size(const lt_tensor *t); /* number of elements */
int lt_tensor_is_contiguous(const lt_tensor *t);
/* Address of element 0 (after the view's offset). */
void *lt_tensor_data(const lt_tensor *t);
/* Element at a flat row-major index, as a double. */
double lt_tensor_get(const lt_tensor *t, int64_t flat_index);
/* Copies all elements row-major into `dst` converted to `dt`. */
void lt_tensor_read(const lt_tensor *t, void *dst, lt_dtype dt);
/* True when the two share storage. */
int lt_tensor_shares_storage(const lt_tensor *a, const lt_tensor *b);

/* Views and layout (differentiable). `axis` may be negative (counted from the end). */
lt_status lt_reshape(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape);
lt_status lt_transpose(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const int *perm);
lt_status lt_expand_dims(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis);
lt_status lt_squeeze(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis); /* axis -1000: all size-1 */
#define LT_ALL_AXES (-1000)
/* x[start:stop:step] along axis with Python's rules (step non-zero, may be
 * negative; bounds counted from the end when negative, then clamped). */
lt_status lt_slice(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
lt_status lt_broadcast_to(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape);
lt_status lt_contiguous(lt_ctx *ctx, lt_tensor **out, lt_tensor *x);
lt_status lt_astype(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_dtype dt);
lt_status lt_concatenate(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis);
lt_status lt_stack(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis);
/* Splits into `n` pieces at the sorted indices `at[0..n-2]` along `axis`. */
lt_status lt_split(lt_ctx *ctx, lt_tensor **outs, lt_tensor *x, int n, const int64_t *at, int axis);

#ifdef __cplusplus
}
#endif

#endif
