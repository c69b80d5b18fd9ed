/* A register-tiled float32 product for the small tiles inside other kernels
 * (attention's score, value and gradient products), row-major:
 *
 *   c (m, n) [+]= a (m, k) @ b (k, n)
 *
 * a is read one element at a time and broadcast, so it may be any strided
 * view: a(i, p) = a[i*lda + p] (row-major), or with a_trans = 1, a[p*lda + i]
 * (a given as its transpose, (k, m) row-major: a value tile read by columns).
 * b's and c's rows (ldb, ldc apart) are read and written as whole vectors:
 * n must be a multiple of lt__gemm_tile_width(isa), the caller padding b's
 * and c's rows to it. accumulate = 0 overwrites c, 1 adds to it.
 *
 * Every element of c is one chain of fused multiply-adds over p ascending,
 * starting from c's value (accumulate) or zero, whatever the ISA: each
 * variant gives the bits of the scalar _ref (plain fmaf loops, gemm_tile.c).
 * The vector variants (gemm_tile_avx2.c, gemm_tile_avx512.c) run the kernel
 * of gemm_tile_simd.h, which kernels of one ISA may also include to inline it. */
#ifndef LATTICE_KERNELS_GEMM_TILE_H
#define LATTICE_KERNELS_GEMM_TILE_H

#include <stdint.h>
#include "lattice/cpu.h"

typedef void (*lt__gemm_tile_fn)(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans,
                                 const float *b, int64_t ldb, float *c, int64_t ldc, int accumulate);

void lt__gemm_tile_ref(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans, const float *b,
                       int64_t ldb, float *c, int64_t ldc, int accumulate);
void lt__gemm_tile_avx2(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans, const float *b,
                        int64_t ldb, float *c, int64_t ldc, int accumulate);
void lt__gemm_tile_avx512(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, int a_trans, const float *b,
                          int64_t ldb, float *c, int64_t ldc, int accumulate);

/* The variant for an ISA (scalar: the _ref), and the n multiple it needs. */
lt__gemm_tile_fn lt__gemm_tile_for(lt_isa isa);
int lt__gemm_tile_width(lt_isa isa);

#endif
