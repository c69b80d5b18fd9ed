/* The fused gather-GEMM kernels of sparse convolution, float32, row-major:
 *
 *   forward  y (n_out, c_out) [+]= sum_{k < K} x[idx[o*K + k]] (c_in) @ W_k (c_in, c_out)
 *   wgrad    dW_k (c_in, c_out) [+]= sum_{o: idx[o*K + k] >= 0} x[idx[o*K + k]]^T dy[o]
 *
 * idx (n_out, K), int32 as relations store it, holds 0-based input rows, -1
 * where an offset has no input; every entry must be in [-1, n_in) (the
 * callers build it; the spec hooks check it). The forward also computes a conv's input gradient: dx = the
 * forward over the transposed map with W_k^T (pack with the strides swapped).
 *
 * The gather is fused: no gathered copy of x is made. Each output row's sum
 * is one chain of fused multiply-adds in a fixed order (k ascending, then c),
 * and the weight gradient's one chain over o ascending, whatever the ISA and
 * thread count: every variant matches the scalar _ref bit for bit, and 1 or
 * n threads give the same bits. The scalar _ref (gather_gemm.c) is plain
 * loops over fmaf; the AVX2 and AVX-512 variants (gather_gemm_avx2.c,
 * gather_gemm_avx512.c) run the algorithm of gather_gemm_simd.h. */
#ifndef LATTICE_KERNELS_GATHER_GEMM_H
#define LATTICE_KERNELS_GATHER_GEMM_H

#include <stddef.h>
#include <stdint.h>
#include "lattice/cpu.h"
#include "lattice/ctx.h"

/* A weight (K, c_in, c_out) packed for one ISA's microkernel: per offset, the
 * columns cut into blocks of whole vectors (zero-padded past c_out), each
 * block's c_in rows contiguous. For scalar the layout is the plain
 * (K, c_in, c_out). Pack once per call; every row tile and thread reads it. */
typedef struct lt_ggemm_weight {
  float *data;
  size_t bytes;
  lt_isa isa;
  int64_t k, c_in, c_out;
  int64_t ldt; /* c_out rounded up to the ISA's vector width */
} lt_ggemm_weight;

/* Packs W_k[c][j] = w[k*sk + c*sc + j*sj] for the context's ISA. A
 * (K, c_in, c_out) tensor has strides (c_in*c_out, c_out, 1); the seed's
 * conv weight (C_out, K, C_in) has (C_in, 1, K*C_in) for the forward, and
 * its input gradient's W_k^T (c_in = C_out, c_out = C_in) is (C_in, K*C_in, 1).
 * Fails with "<op>: out of memory" on the context. */
lt_status lt__ggemm_pack(lt_ctx *ctx, lt_ggemm_weight *pw, const float *w, int64_t sk, int64_t sc, int64_t sj,
                         int64_t k, int64_t c_in, int64_t c_out, const char *op);
/* The same for a given ISA (lowered to what the CPU has). */
lt_status lt__ggemm_pack_isa(lt_ctx *ctx, lt_ggemm_weight *pw, lt_isa isa, const float *w, int64_t sk, int64_t sc,
                             int64_t sj, int64_t k, int64_t c_in, int64_t c_out, const char *op);
/* Idempotent. */
void lt__ggemm_weight_release(lt_ctx *ctx, lt_ggemm_weight *pw);

/* y (n_out, c_out), rows ldy apart [+]= sum_k x[idx[o*K + k]] @ W_k, with x
 * (n_in, c_in) rows ldx apart and w packed (its ISA runs). accumulate = 0
 * overwrites y, each row's chain starting from bias (c_out floats; 0 where
 * NULL, so a row without inputs becomes the bias or 0); 1 adds to y (bias
 * unused). Parallel over
 * tiles of output rows with the context's threads. order (n_out, a
 * permutation of the rows) or NULL: the tiles take the rows in that order
 * (Morton order, for rows that do not lie in it: the tile's inputs then lie
 * close); it changes no result, each row's sum being its own chain. */
lt_status lt__ggemm(lt_ctx *ctx, float *y, int64_t ldy, const float *x, int64_t ldx, const int32_t *idx,
                    const int32_t *order, const lt_ggemm_weight *w, const float *bias, int64_t n_out, int64_t n_in,
                    int accumulate, const char *op);

/* dw [+]= the weight gradient, for every k:
 *   transposed = 0: dw[k*ldk + c*ldr + j] = sum_o x[i][c] dy[o][j]    (dW_k, c_in x c_out)
 *   transposed = 1: dw[k*ldk + j*ldr + c] = the same sum              (dW_k^T, c_out x c_in)
 * with i = idx[o*K + k] >= 0, dy (n_out, c_out) rows lddy apart, x
 * (n_in, c_in) rows ldx apart; the seed's (C_out, K, C_in) gradient is transposed = 1 with
 * ldk = C_in, ldr = K*C_in. Each dW_k sums o in ascending order; parallel
 * over the offsets. Uses the context's ISA, or `isa` in the _isa form. */
lt_status lt__ggemm_wgrad(lt_ctx *ctx, float *dw, int64_t ldk, int64_t ldr, const float *dy, int64_t lddy,
                          const float *x, int64_t ldx, const int32_t *idx, int64_t n_out, int64_t n_in, int64_t k,
                          int64_t c_in, int64_t c_out, int transposed, int accumulate, const char *op);
lt_status lt__ggemm_wgrad_isa(lt_ctx *ctx, lt_isa isa, float *dw, int64_t ldk, int64_t ldr, const float *dy,
                              int64_t lddy, const float *x, int64_t ldx, const int32_t *idx, int64_t n_out,
                              int64_t n_in, int64_t k, int64_t c_in, int64_t c_out, int transposed, int accumulate,
                              const char *op);

#endif
