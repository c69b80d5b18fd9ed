/* Dense ops. Each checks its arguments, names itself in its error message,
 * returns a new reference through `out`, and records its backward rule on the
 * context's tape when an input is being differentiated. Axes are 0-based and
 * may be negative; the Lua binding converts from Lua's 1-based axes. */
#ifndef LATTICE_OPS_H
#define LATTICE_OPS_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Elementwise binary ops with NumPy broadcasting and dtype promotion. */
typedef enum lt_binary_op {
  LT_BINARY_ADD,
  LT_BINARY_SUB,
  LT_BINARY_MUL,
  LT_BINARY_DIV,
  LT_BINARY_POW,
  LT_BINARY_MAXIMUM,
  LT_BINARY_MINIMUM,
  LT_BINARY_FLOOR_DIVIDE, /* NumPy's floor_divide (//): the quotient rounded toward -inf; integer x // 0 is 0 */
  LT_BINARY_REMAINDER,    /* NumPy's remainder (%): the sign of the divisor; integer x % 0 is 0 */
  LT_BINARY_EQUAL,
  LT_BINARY_NOT_EQUAL,
  LT_BINARY_LESS,
  LT_BINARY_LESS_EQUAL,
  LT_BINARY_GREATER,
  LT_BINARY_GREATER_EQUAL,
  LT_BINARY_COUNT
} lt_binary_op;
lt_status lt_binary(lt_ctx *ctx, lt_tensor **out, lt_binary_op op, lt_tensor *a, lt_tensor *b);
const char *lt_binary_name(lt_binary_op op);

/* Elementwise unary ops; `alpha` parametrises leaky_relu (slope). */
typedef enum lt_unary_op {
  LT_UNARY_NEG,
  LT_UNARY_EXP,
  LT_UNARY_LOG,
  LT_UNARY_SQRT,
  LT_UNARY_RSQRT,
  LT_UNARY_ABS,
  LT_UNARY_TANH,
  LT_UNARY_SIGMOID,
  LT_UNARY_RELU,
  LT_UNARY_LEAKY_RELU,
  LT_UNARY_GELU,
  LT_UNARY_GELU_TANH,
  LT_UNARY_SILU,
  LT_UNARY_SOFTPLUS,
  LT_UNARY_SQUARE,
  LT_UNARY_SIN,
  LT_UNARY_COS,
  LT_UNARY_COUNT
} lt_unary_op;
lt_status lt_unary(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha);
const char *lt_unary_name(lt_unary_op op);

lt_status lt_where(lt_ctx *ctx, lt_tensor **out, lt_tensor *cond, lt_tensor *a, lt_tensor *b);
/* Either bound may be NAN, meaning none. */
lt_status lt_clip(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double lo, double hi);

/* Reductions over a set of axes (naxes == 0: all axes). */
typedef enum lt_reduce_op {
  LT_REDUCE_SUM,
  LT_REDUCE_MEAN,
  LT_REDUCE_MAX,
  LT_REDUCE_MIN,
  LT_REDUCE_VAR,
  LT_REDUCE_LOGSUMEXP,
  LT_REDUCE_COUNT
} lt_reduce_op;
lt_status lt_reduce(lt_ctx *ctx, lt_tensor **out, lt_reduce_op op, lt_tensor *x, int naxes, const int *axes,
                    int keepdims, int ddof);
const char *lt_reduce_name(lt_reduce_op op);
/* Index of the max/min along `axis` (LT_ALL_AXES: over the flattened tensor), int64. */
lt_status lt_argmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims);
lt_status lt_argmin(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims);

lt_status lt_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis);
lt_status lt_log_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis);

/* Batched, broadcasting matrix product (NumPy matmul rules, 1-D operands too). */
lt_status lt_matmul(lt_ctx *ctx, lt_tensor **out, lt_tensor *a, lt_tensor *b);

/* Normalisation over the last axis; weight/bias may be NULL. */
lt_status lt_layer_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias, double eps);
lt_status lt_rms_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, double eps);

/* Rotary position embedding, MLX's mx.fast.rope: x (..., T, ..., D) -> y, the
 * same shape and dtype, with the leading `dims` features of each row rotated
 * pair by pair by theta_i = p * scale * base^(-2i/dims), p the row's position
 * (core/ops/rope.c). Differentiable in x. */
typedef struct lt_rope_opts {
  int64_t dims;         /* features rotated: even, at most x's last axis */
  int traditional;      /* 1: pairs (2i, 2i+1); 0: rotate-half pairs (i, i + dims/2), MLX's default */
  double base;          /* 10000 in nn.RoPE */
  double scale;         /* positions are multiplied by it; 1 in nn.RoPE */
  int64_t offset;       /* the position of the first row (cached decoding) */
  int seq_axis;         /* the axis positions run along, 0-based or negative, not the last: -2 for (B, H, T, D) */
  lt_tensor *positions; /* NULL, or int32/int64 (T): each row's position, replacing offset + t */
} lt_rope_opts;
lt_status lt_rope(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_rope_opts *opts);

/* NumPy take: out.shape = x.shape[:axis] + idx.shape + x.shape[axis+1:].
 * axis LT_ALL_AXES takes from the flattened tensor. Indices are 0-based,
 * negative ones count from the end. */
lt_status lt_take(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis);
/* torch.gather / take_along_axis: indices has x's rank. */
lt_status lt_take_along_axis(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis);
/* weight (V,D), ids (...) -> (..., D); ids out of [0, V) are an error. */
lt_status lt_embedding(lt_ctx *ctx, lt_tensor **out, lt_tensor *weight, lt_tensor *ids);

/* x (..., in), weight (out, in), bias (out) or NULL -> x @ weight^T + bias (..., out). */
lt_status lt_linear(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias);

/* Batch normalisation over the last (channel) axis; every other axis is rows.
 * training: normalises with the rows' biased mean and variance, which it also
 * returns (new references, (C), float64 when x, weight or bias is float64 and
 * float32 otherwise; either pointer may be NULL) for the caller's running
 * averages; otherwise normalises with running_mean and running_var, which must
 * be given. weight and bias may be NULL. */
lt_status lt_batch_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor **batch_mean, lt_tensor **batch_var, lt_tensor *x,
                        lt_tensor *weight, lt_tensor *bias, lt_tensor *running_mean, lt_tensor *running_var,
                        int training, double eps);

/* Zeroes each element with probability p and scales the rest by 1 / (1 - p);
 * the mask comes from the context's generator (a seed reproduces it). */
lt_status lt_dropout(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double p);

typedef enum lt_reduction { LT_REDUCTION_NONE, LT_REDUCTION_MEAN, LT_REDUCTION_SUM } lt_reduction;
/* logits (..., C) with class axis last, targets (...) integer class ids. */
lt_status lt_cross_entropy(lt_ctx *ctx, lt_tensor **out, lt_tensor *logits, lt_tensor *targets, int64_t ignore_index,
                           double label_smoothing, lt_reduction reduction);
lt_status lt_mse_loss(lt_ctx *ctx, lt_tensor **out, lt_tensor *pred, lt_tensor *target, lt_reduction reduction);

#ifdef __cplusplus
}
#endif

#endif
