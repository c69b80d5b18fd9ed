/* The quant area's internals: a quantized matrix as kernels read it, the
 * element formats (E4M3, E2M1, E8M0), the panel order, and the kernel table
 * (kernels.c holds the _ref kernels, kernels_avx2.c and kernels_avx512.c fill
 * theirs from kernels_simd.h).
 *
 * Panel order. The batch kernels dequantize a tile of W into a float panel
 * and the matrix-vector kernel reads W directly; both unpack a 16-byte run of
 * codes into whole vectors by shifting, which leaves the values of one byte
 * in different vectors. Rather than shuffle them back, the input x is
 * permuted once into the same order (a dot product does not care): within
 * each chunk of 16 bytes of codes (nb bytes for a shorter last chunk), code s
 * of byte j, the value at chunk offset j * per + s (per = 8 / bits codes per
 * byte), sits at position s * nb + j. For 8 bits the order is the identity. */
#ifndef LATTICE_QUANT_INTERNAL_H
#define LATTICE_QUANT_INTERNAL_H

#include <string.h>
#include "lattice/quant.h"
#include "ops/internal.h"

/* Rows of tile panels and columns per tile, shared by the drivers and the
 * kernels' blocking. The panel (PANEL_ROWS x PANEL_COLS floats, 192 KB) stays
 * in L2 while every row block of x sweeps it; a row block of x (8 x
 * PANEL_COLS floats, 32 KB) stays in L1. PANEL_COLS is a multiple of every
 * group size and of every chunk (64 values at 2 bits). */
#define LT_QPANEL_ROWS 48
#define LT_QPANEL_COLS 1024

/* A quantized matrix: `rows` rows of `in` values, contiguous parts. */
typedef struct lt__qmat {
  const uint32_t *w;           /* rows x words */
  const void *scales, *biases; /* rows x groups; biases NULL for mxfp8 and nvfp4 */
  lt_dtype sdt;                /* the scales' (and biases') dtype */
  int bits, group_size;
  lt_quant_mode mode;
  int64_t rows, in, words, groups; /* words and groups per row */
} lt__qmat;

/* The view of qw's tensors (contiguous, checked by the caller) as rows of
 * its last axis. */
lt__qmat lt__qmat_of(const lt_qweight *qw);

/* A row of `in` float values quantized into packed words and per-group
 * scales (and biases): MLX's affine quantize (affine.c), and the mxfp8 and
 * nvfp4 round trip storing its codes (fp.c; scales as uint8 codes). */
void lt__affine_quantize_row(const float *w, int64_t in, int bits, int gs, uint32_t *words, float *scales,
                             float *biases);
void lt__fp_quantize_row(const float *w, int64_t in, lt_quant_mode mode, uint32_t *words, uint8_t *scales);
/* Contiguous versions of qw's parts in *out (new references); the caller
 * releases *out with lt_qweight_release. */
lt_status lt__qweight_contig(lt_ctx *ctx, lt_qweight *out, const lt_qweight *qw);

/* ---- element formats (fp.c) ---- */

float lt__e4m3_to_float(uint8_t v); /* OCP E4M3 (e4m3fn): 0x7f and 0xff are NaN */
uint8_t lt__float_to_e4m3(float f); /* round to nearest even, saturating at 448, as MLX's ToFP8 */
float lt__e2m1_to_float(uint8_t v); /* the 16 FP4 values: 0, 0.5, 1, 1.5, 2, 3, 4, 6 and negatives */
uint8_t lt__float_to_e2m1(float f); /* round to nearest even, saturating at 6, as MLX's to_fp4_e2m1 */
float lt__e8m0_to_float(uint8_t v); /* 2^(v - 127), 2^-127 for 0 (as MLX decodes it), NaN for 255 */
/* The smallest E8M0 power of two >= f (f > 0 and finite), as MLX's
 * to_fp8_e8m0_round_up; 127 (2^0) for f == 0. */
uint8_t lt__float_to_e8m0_up(float f);

/* Element i of scales or biases stored as dt, as float. */
static inline float lt__qload(const void *p, lt_dtype dt, int64_t i) {
  switch (dt) {
  case LT_FLOAT16: return lt_f16_to_f32(((const uint16_t *)p)[i]);
  case LT_BFLOAT16: return lt_bf16_to_f32(((const uint16_t *)p)[i]);
  default: return ((const float *)p)[i];
  }
}
/* The scale (and bias) of group g of row r, as float. */
static inline float lt__qscale(const lt__qmat *q, int64_t r, int64_t g) {
  int64_t i = r * q->groups + g;
  if (q->mode == LT_QUANT_MXFP8) return lt__e8m0_to_float(((const uint8_t *)q->scales)[i]);
  if (q->mode == LT_QUANT_NVFP4) return lt__e4m3_to_float(((const uint8_t *)q->scales)[i]);
  return lt__qload(q->scales, q->sdt, i);
}
static inline float lt__qbias(const lt__qmat *q, int64_t r, int64_t g) {
  return q->biases ? lt__qload(q->biases, q->sdt, r * q->groups + g) : 0.0f;
}
/* Row r's values [k0, k0 + n) dequantized into dst in natural order: the
 * definition every kernel agrees with (kernels.c). */
void lt__qdequant_row(const lt__qmat *q, int64_t r, int64_t k0, int64_t n, float *dst);

/* ---- the panel order ---- */

/* The position of value e of a run of n values that starts at a chunk
 * boundary (n a multiple of 16). */
static inline int64_t lt__qpos(int bits, int64_t n, int64_t e) {
  int per = 8 / bits;
  int64_t chunk = 16 * per, c = e / chunk, rem = e % chunk;
  int64_t nb = (n - c * chunk) / per;
  if (nb > 16) nb = 16;
  return c * chunk + (rem % per) * nb + rem / per;
}
/* xp (n) <- x (n) in panel order, and back. */
void lt__qpermute(int bits, float *xp, const float *x, int64_t n);
void lt__qunpermute(int bits, float *x, const float *xp, int64_t n);

/* ---- the kernel table ---- */

struct lt__qi8x;
typedef struct lt__qkernels {
  int lanes; /* of dot's accumulators */
  /* dst (nr rows of ld floats) <- rows [r0, r0 + nr) of q, values [k0, k0 + kn)
   * (k0 a multiple of LT_QPANEL_COLS), in panel order. */
  void (*dequant_panel)(const lt__qmat *q, int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *dst, int64_t ld);
  /* xp (m, ldx) . p (n, ldp)^T over kn columns (kn a multiple of 16), added
   * lane by lane into acc (m rows of lda vectors of lanes floats): y[i][j]
   * is the sum of the lanes of acc[i][j] once every tile of k is in. */
  void (*dot)(float *acc, int64_t lda, const float *xp, int64_t ldx, const float *p, int64_t ldp, int64_t m, int64_t n,
              int64_t kn);
  /* What dot computes with p = rows [r0, r0 + nr) of q, values [k0, k0 +
   * kn), dequantized in registers instead of a panel; for the q that
   * lt__qmatvec_fits (NULL in the _ref table: the panel and dot instead). */
  void (*dot_codes)(const lt__qmat *q, int64_t r0, int64_t nr, int64_t k0, int64_t kn, float *acc, int64_t lda,
                    const float *xp, int64_t ldx, int64_t m);
  /* d (m, ldd) += g (m, ldg) @ p (n, ldp) over kn columns (kn a multiple of 16). */
  void (*dot_t)(float *d, int64_t ldd, const float *g, int64_t ldg, const float *p, int64_t ldp, int64_t m, int64_t n,
                int64_t kn);
  /* y[r] = W[r] . x for rows [r0, r1), xp in panel order; NULL where the
   * table has no matrix-vector kernel for q (see lt__qmatvec_fits). */
  void (*matvec)(const lt__qmat *q, const float *xp, float *y, int64_t r0, int64_t r1);
  /* y (x->m, q->rows) for the outputs of tiles [t0, t1), int8 activations
   * (above): the _ref kernel reads q, the SIMD ones the pack. */
  void (*int8_tiles)(const lt__qmat *q, const uint8_t *pack, const struct lt__qi8x *x, float *y, int64_t t0,
                     int64_t t1);
  /* lt__qi8_quantize_row's results (the same bits: IEEE operations only);
   * NULL: that function. */
  void (*int8_quantize_row)(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs);
} lt__qkernels;

/* ---- int8 activations (int8.c) ----
 *
 * The batched product y = x @ W^T can run on integers: each row of x is
 * quantized per group of W (the same group_size along the input) to int8,
 * x_k ~ d * xi_k with d = amax / 127 and xi_k = rint(x_k * (127 / amax)) in
 * [-127, 127]; then a group's part of y[i][o] is
 *   s * d * (sum_k q_k xi_k) + b * (d * sum_k xi_k)
 * = the sum of w_k (d xi_k) over the group, the dequantized W times the
 * rounded x. The integer sums are exact; the float epilogue runs group by
 * group in one order in every kernel:
 *   acc = fmaf((float)isum, fl(s * d), acc); acc = fmaf(b, xs, acc)
 * with xs = fl(d * (float)sum xi), so every ISA and thread count gives the
 * same bits. docs/quantization.md states the error this adds. */

/* x (m, in) quantized per group: codes q, steps d and sums xs (m, groups).
 * The codes of 8 rows at a time are interleaved by quads of values, so that
 * a kernel finds the 8 rows' quads for values [4c, 4c + 4) in 32 bytes:
 * row i's value k is q[(i / 8) * 8 * in + (k / 4) * 32 + (i % 8) * 4 + k % 4]
 * (lt__qi8x_at; m rounded up to 8 rows). */
typedef struct lt__qi8x {
  const int8_t *q;
  const float *d, *xs;
  int64_t m, in, groups;
} lt__qi8x;
#define LT_QI8_ROWS 8
static inline int64_t lt__qi8x_index(int64_t in, int64_t i, int64_t k) {
  return i / LT_QI8_ROWS * LT_QI8_ROWS * in + k / 4 * 4 * LT_QI8_ROWS + i % LT_QI8_ROWS * 4 + k % 4;
}
static inline int8_t lt__qi8x_at(const lt__qi8x *x, int64_t i, int64_t k) { return x->q[lt__qi8x_index(x->in, i, k)]; }

/* Outputs per tile of the pack. */
#define LT_QI8_TILE 16
/* The pack: W rearranged for the SIMD kernel, tile after tile of 16 outputs
 * (the last padded with zero codes, scales and biases), each tile group after
 * group, each group `block` bytes: the codes, then 16 float32 scales and 16
 * biases. Codes as 64-byte vectors of 16 int32 lanes, lane o for output o:
 *   8 bits: vector j holds bytes q[o][4j + b], b = 0..3;
 *   4 bits: vector j holds q[o][8j + b] | q[o][8j + 4 + b] << 4, so the low
 *           nibbles are values 8j..8j+3 and the high ones 8j+4..8j+7.
 * (j counts from the group's first value.) */
static inline int64_t lt__qi8_block(int bits, int gs) { return LT_QI8_TILE * gs * bits / 8 + 2 * LT_QI8_TILE * 4; }
static inline int64_t lt__qi8_tiles(int64_t rows) { return (rows + LT_QI8_TILE - 1) / LT_QI8_TILE; }
static inline int64_t lt__qi8_pack_bytes(const lt__qmat *q) {
  return lt__qi8_tiles(q->rows) * q->groups * lt__qi8_block(q->bits, q->group_size);
}
/* The weights the int8 path takes: affine, 4 or 8 bits. */
static inline int lt__qi8_fits(const lt__qmat *q) {
  return q->mode == LT_QUANT_AFFINE && (q->bits == 4 || q->bits == 8);
}
/* dst (lt__qi8_pack_bytes) <- q rearranged, tiles [t0, t1). */
void lt__qi8_pack(const lt__qmat *q, uint8_t *dst, int64_t t0, int64_t t1);
/* Row i of x (in) quantized into the codes q (laid out as lt__qi8x's), d
 * and xs (in / gs). */
void lt__qi8_quantize_row(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs);
/* y (m, n) = x @ W^T with int8 x for float32 x (m >= 1): pack is q's pack
 * (NULL: one is built for this call). */
lt_status lt__qmatmul_int8(lt_ctx *ctx, const struct lt__qkernels *kt, const lt__qmat *q, const uint8_t *pack,
                           const float *x, int64_t m, float *y);

extern const lt__qkernels lt__qkernels_ref;
/* int8_avx512.c: the VNNI kernel (the AVX2 one where the CPU has no VNNI);
 * int8_avx2.c: the same integers with vpmaddubsw and vpmaddwd. */
void lt__qi8_tiles_avx2(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0, int64_t t1);
void lt__qi8_tiles_avx512(const lt__qmat *q, const uint8_t *pack, const lt__qi8x *x, float *y, int64_t t0, int64_t t1);
void lt__qi8_quantize_row_avx2(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs);
void lt__qi8_quantize_row_avx512(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs);
extern const lt__qkernels lt__qkernels_avx2;
extern const lt__qkernels lt__qkernels_avx512;
/* The table for isa, lowered to what lt_cpu_isa() allows; *used says which. */
const lt__qkernels *lt__qkernels_for(lt_isa isa, lt_isa *used);
/* The SIMD matrix-vector kernels read affine 4- and 8-bit weights. */
static inline int lt__qmatvec_fits(const lt__qmat *q) {
  return q->mode == LT_QUANT_AFFINE && (q->bits == 4 || q->bits == 8);
}

/* The products (matmul.c): y (m, n) = x (m, k) @ W^T and dx (m, k) = g (m,
 * n) @ W for W (n, k), both overwriting, in dt (float32, or float64 through
 * the blas way). path 0 chooses; 1 is the matrix-vector kernel (a row of x at
 * a time; the tiles where the table has none for q), 2 the tiles, 3 blas. */
lt_status lt__qmatmul_forward(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype dt, const void *x,
                              int64_t m, void *y, int path);
lt_status lt__qmatmul_grad(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, lt_dtype dt, const void *g,
                           int64_t m, void *dx, int path);

/* lt_quant_linear's forward computed with `isa`'s kernels (lowered to what
 * the CPU allows), for the specs to compare: records nothing. path 0 picks
 * as lt_quant_linear does, 1 forces the matrix-vector kernel (one row of x
 * at a time), 2 the tile kernels, 3 the BLAS path, 4 the int8 kernel for
 * every number of rows (an affine 4- or 8-bit weight; others as 0). */
lt_status lt__quant_linear_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias,
                               lt_isa isa, int path, lt_isa *used);
/* The input gradient g (..., out) @ W -> (..., in) with `isa`'s kernels;
 * path 2 the tile kernels, 3 the BLAS path, 0 as the backward picks. */
lt_status lt__quant_linear_grad_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, const lt_qweight *qw, lt_isa isa,
                                    int path, lt_isa *used);

#endif
