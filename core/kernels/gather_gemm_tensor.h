/* The gather-GEMM kernels on tensors with one ISA forced (gather_gemm_tensor.c),
 * for lattice.core.ggemm_with_isa and ggemm_wgrad_with_isa. */
#ifndef LATTICE_KERNELS_GATHER_GEMM_TENSOR_H
#define LATTICE_KERNELS_GATHER_GEMM_TENSOR_H

#include "lattice/cpu.h"
#include "lattice/tensor.h"

/* x (n_in, c_in) float32, rows may be strided; w (K, c_in, c_out) float32,
 * any layout; idx int32/int64 (n_out, K), entries in [-1, n_in); y0
 * (n_out, c_out) or NULL -> out = [y0 +] sum_k x[idx[o, k]] @ w[k], computed
 * with `isa`'s kernel (lowered to what the CPU has: *used). */
lt_status lt__ggemm_tensor(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *w, lt_tensor *idx, lt_tensor *y0,
                           lt_isa isa, lt_isa *used, const char *op);
/* x (n_in, c_in), dy (n_out, c_out), idx (n_out, K), dw0 or NULL ->
 * out (K, c_in, c_out) = [dw0 +] sum_o x[idx[o, k]]^T dy[o], or its per-offset
 * transpose (K, c_out, c_in) when transposed. */
lt_status lt__ggemm_wgrad_tensor(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *dy, lt_tensor *idx,
                                 lt_tensor *dw0, int transposed, lt_isa isa, lt_isa *used, const char *op);

/* Benchmarks: the median seconds of `reps` (1 to LT_GGEMM_BENCH_REPS_MAX)
 * calls after a warm-up, each call packing the weight and running the
 * forward (overwriting a reused output), or running the weight gradient;
 * the arguments are checked once, outside the timing. */
#define LT_GGEMM_BENCH_REPS_MAX 100
lt_status lt__ggemm_bench(lt_ctx *ctx, double *seconds, lt_tensor *x, lt_tensor *w, lt_tensor *idx, lt_isa isa,
                          int reps, lt_isa *used, const char *op);
lt_status lt__ggemm_wgrad_bench(lt_ctx *ctx, double *seconds, lt_tensor *x, lt_tensor *dy, lt_tensor *idx, lt_isa isa,
                                int reps, lt_isa *used, const char *op);

#endif
