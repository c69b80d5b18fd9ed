/* Sparse 3D tensors: coordinate maps, kernel relations and sparse convolution.
 *
 * A coordinate map (lt_coords) is an immutable list of N distinct rows
 * (batch, x, y, z) of int32 indices on the lattice of its tensor stride, with
 * a hash table for lookups. Maps are reference counted and carry an id that
 * is unique per context: two maps are the same coordinate identity exactly
 * when they are the same object. The coordinate manager (on the context)
 * interns maps by content, so building a map from the same rows and stride
 * twice gives the same object, and caches kernel relations between maps.
 *
 * A relation (lt_relation) connects the rows of an input map to those of an
 * output map through the offsets of a kernel: for output row o and kernel
 * offset k, idx[o * K + k] is the input row (or -1). Its transpose idxT
 * (n_in, K) serves the input gradient.
 *
 * Kernel offsets follow mlx-lattice: per axis, an odd size r is centred
 * (-(r/2) .. r/2), an even size is 0 .. r-1, times the dilation; kernel id
 * k = (ix * Ky + iy) * Kz + iz, x slowest. */
#ifndef LATTICE_SPARSE_H
#define LATTICE_SPARSE_H

#include "lattice/quant.h"
#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_coords lt_coords;
typedef struct lt_relation lt_relation;

/* Builds (or finds, interned by content) the map of `coords`, an int32 (N, 4)
 * tensor of distinct rows with batch >= 0, at tensor stride `stride` (3
 * values >= 1). A new reference in *out. Fails with "<op>: ..." on duplicate
 * rows, a wrong shape or dtype, a negative batch. */
lt_status lt_coords_new(lt_ctx *ctx, lt_coords **out, lt_tensor *coords, const int *stride, const char *op);
lt_coords *lt_coords_retain(lt_coords *c);
void lt_coords_release(lt_coords *c);
/* The rows as an int32 (N, 4) tensor (borrowed: valid while c lives). */
lt_tensor *lt_coords_tensor(const lt_coords *c);
int64_t lt_coords_count(const lt_coords *c);
const int *lt_coords_stride(const lt_coords *c);
uint64_t lt_coords_id(const lt_coords *c);
/* 1 when a and b hold the same rows in the same order at the same stride (the
 * same map, or two maps built apart, e.g. after the manager forgot one). */
int lt_coords_equal(const lt_coords *a, const lt_coords *b);
/* The row holding (b, x, y, z), or -1. */
int64_t lt_coords_find(const lt_coords *c, const int32_t *row);

/* The coordinate manager's caches (interned maps and relations): their bytes,
 * a bound on them (least recently used relations go first), and emptying them.
 * Maps and relations in use elsewhere stay alive until released. */
size_t lt_sparse_cache_bytes(lt_ctx *ctx);
void lt_sparse_set_cache_limit(lt_ctx *ctx, size_t bytes);
void lt_sparse_clear_cache(lt_ctx *ctx);

typedef enum lt_relation_kind {
  LT_RELATION_CONV,       /* out = floor(in / s) of the input rows, in = out s + off - padding */
  LT_RELATION_SUBM,       /* out = in's rows, in = out + off (odd kernels) */
  LT_RELATION_TRANSPOSED, /* out = in s + off - padding (finer lattice), in = (out - off + padding) / s */
  LT_RELATION_GENERATIVE, /* out = in s + off, every one reached */
  LT_RELATION_KINDS
} lt_relation_kind;

typedef struct lt_kernel_spec {
  int size[3], stride[3], padding[3], dilation[3];
} lt_kernel_spec;

/* The tensor stride the output of `kind` has for input `in`. Checks the spec
 * (sizes 1..7, odd for subm, positive strides and dilations, non-negative
 * paddings) and fails when a transposed stride does not divide the input's. */
lt_status lt_relation_output_stride(lt_ctx *ctx, lt_relation_kind kind, const lt_coords *in, const lt_kernel_spec *spec,
                                    int *stride, const char *op);
/* The relation of `kind` from `in` onto `target` (NULL: the support the kind
 * makes), from the manager's cache when it was built before. *out is a new
 * reference; lt_relation_output gives the output map. */
lt_status lt_relation_get(lt_ctx *ctx, lt_relation **out, lt_relation_kind kind, lt_coords *in, lt_coords *target,
                          const lt_kernel_spec *spec, const char *op);
lt_relation *lt_relation_retain(lt_relation *r);
void lt_relation_release(lt_relation *r);
lt_coords *lt_relation_input(const lt_relation *r);  /* borrowed */
lt_coords *lt_relation_output(const lt_relation *r); /* borrowed */
int lt_relation_volume(const lt_relation *r);        /* K */
/* idx (n_out, K) and idxT (n_in, K) as int32 tensors (borrowed), and the
 * number of edges of each kernel offset (K entries, borrowed). idxT is NULL
 * for a mirrored relation (submanifold, or a stride-1 conv without padding,
 * odd kernel and onto its own input), whose transpose is idx read with the
 * offsets reversed: idxT[i, k] = idx[i, K-1-k]. */
lt_tensor *lt_relation_index(const lt_relation *r);
lt_tensor *lt_relation_index_transposed(const lt_relation *r);
int lt_relation_mirrored(const lt_relation *r);
const int64_t *lt_relation_counts(const lt_relation *r);
int64_t lt_relation_edges(const lt_relation *r);
/* The kernel offsets (K rows of 3), borrowed. */
const int *lt_relation_offsets(const lt_relation *r);

/* y (n_out, C_out) = sum over edges (i, o, k) of x[i] @ w[k]^T (+ bias):
 * x (n_in, C_in) the input features, weight (C_out, Kx, Ky, Kz, C_in) as the
 * seed lays it out, bias (C_out) or NULL. Differentiable in x, weight, bias;
 * float32, float16, bfloat16 features and weights (accumulated in float32),
 * float64 computed in double. `op` names the caller in messages. */
lt_status lt_sparse_conv(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias, lt_relation *r,
                         const char *op);

/* lt_sparse_conv with a quantized weight qw of logical shape (C_out, Kx, Ky,
 * Kz, C_in), as lattice.quantize_weight makes it from a dense conv weight:
 * each (output channel, kernel offset) row of C_in values is quantized in
 * groups of group_size input channels (any mode). The result equals
 * lt_sparse_conv with the weight lt_dequantize gives, bit for bit. The weight
 * is dequantized whole for the call (as large as a dense weight's repacked
 * copy the float path makes anyway) and freed after it; the backward
 * dequantizes it again from the packed parts it keeps. Differentiable in x
 * and bias; the weight is frozen (a tracked part is an error). */
lt_status lt_sparse_conv_quantized(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                                   lt_relation *r, const char *op);

#ifdef __cplusplus
}
#endif

#endif
