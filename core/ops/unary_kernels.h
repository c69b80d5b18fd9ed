/* Internal to the unary op family: the kernel tables, one per ISA, and entries
 * that force an ISA so the specs can run every variant against the _ref one.
 * unary.c holds the _ref kernels and picks a table from the context's ISA;
 * unary_avx2.c and unary_avx512.c each fill theirs from the shared vector
 * algorithms in unary_simd.h. */
#ifndef LATTICE_UNARY_KERNELS_H
#define LATTICE_UNARY_KERNELS_H

#include "ops/internal.h"

/* x (n) -> y (n): y[i] = f(x[i]); alpha is leaky_relu's slope (ignored elsewhere). */
typedef void (*lt__unary_fwd)(float *y, const float *x, int64_t n, float alpha);
/* g (n), x (n), y (n) -> gx (n): gx[i] = g[i] * f'(x[i]), overwriting gx.
 * y = f(x) is the saved output, read only by the ops lt__unary_uses_output
 * names (NULL for the others). */
typedef void (*lt__unary_bwd)(float *gx, const float *g, const float *x, const float *y, int64_t n, float alpha);

/* The ops whose derivative is cheaper from the output: exp, sqrt, rsqrt, tanh, sigmoid. */
int lt__unary_uses_output(lt_unary_op op);

/* Tables indexed by lt_unary_op. A NULL entry in an ISA table means "use the
 * next lower ISA's kernel"; the _ref tables are complete. */
extern const lt__unary_fwd lt__unary_fwd_ref[LT_UNARY_COUNT];
extern const lt__unary_bwd lt__unary_bwd_ref[LT_UNARY_COUNT];
extern const lt__unary_fwd lt__unary_fwd_avx2[LT_UNARY_COUNT];
extern const lt__unary_bwd lt__unary_bwd_avx2[LT_UNARY_COUNT];
extern const lt__unary_fwd lt__unary_fwd_avx512[LT_UNARY_COUNT];
extern const lt__unary_bwd lt__unary_bwd_avx512[LT_UNARY_COUNT];

/* The kernel of op for `isa`: its table's entry, or the next lower ISA's. */
lt__unary_fwd lt__unary_pick_fwd(lt_unary_op op, lt_isa isa);
lt__unary_bwd lt__unary_pick_bwd(lt_unary_op op, lt_isa isa);

/* The float64 path (unary_f64.c): plain loops in double through libm, for
 * references and gradient checks; same contracts as the kernels above, y
 * (the saved output) read only by the ops lt__unary_uses_output names. */
void lt__unary_fwd_f64(const lt_ctx *ctx, lt_unary_op op, double *y, const double *x, int64_t n, double alpha);
void lt__unary_bwd_f64(const lt_ctx *ctx, lt_unary_op op, double *gx, const double *g, const double *x, const double *y,
                       int64_t n, double alpha);

/* lt_unary computed with the kernels of `isa`, lowered to what lt_cpu_isa()
 * allows; records nothing. *used is the ISA whose table was consulted. */
lt_status lt__unary_isa(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha, lt_isa isa,
                        lt_isa *used);
/* The fused backward kernel alone: out = g * f'(x), g with x's shape, computed
 * with `isa`'s kernels. y = f(x) may be NULL (it is then computed). The result
 * has x's float dtype. */
lt_status lt__unary_grad_isa(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *g, lt_tensor *x, lt_tensor *y,
                             double alpha, lt_isa isa, lt_isa *used);

/* exp(x - shift) through kernels/exp.c's variant for `isa` (lowered to what
 * the CPU allows): the exp inside softmax, logsumexp and cross_entropy, for
 * the specs to compare. x is float32; *used is the ISA that ran. */
lt_status lt__exp_shift_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, float shift, lt_isa isa, lt_isa *used);

#endif
