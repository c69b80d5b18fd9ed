/* The dense sgemm's driver (kernels/sgemm.h): blocking, packing, threads,
 * and the portable variants (the _ref and the scalar macro-kernel). */
#include "kernels/sgemm.h"
#include "kernels/sgemm_pack.h"
#include "kernels/sgemm_plain.h"
#include "kernels/sgemv.h"
#include "runtime/context.h"
#include "runtime/parallel.h"

/* Block sizes for a core with 48 KiB of L1 and 1 MiB of L2 (tuned here, on
 * Zen 5): a kc x NR panel of b (32 KiB for 256 x 32) stays in L1 while the
 * MC x kc block of a (336 KiB) streams from L2; the kc x NC block of b (2 MiB)
 * sits in L3. MC and NC are multiples of every ISA's MR and NR. */
#define SG_KC 256
#define SG_MC 336
#define SG_NC 2048
/* Products of at most SG_SMALL multiply-adds run unpacked on one thread;
 * threads start from SG_THREADED (below it a fork and join costs more than
 * the second core gives). Each thread packs its own b rather than share
 * one block: sharing saves ~3% of the work but needs two barriers per
 * panel, and on a loaded machine each barrier costs a wake-up of the other
 * thread (milliseconds, measured here: 10-50x slower products). */
#define SG_SMALL    32768
#define SG_THREADED (1 << 20)

void lt__sgemm_ref(const lt__sgemm_args *g) { sgemm_plain(g); }

/* The scalar macro-kernel: 4 x 4 tiles of fmaf chains over the packed panels. */
static void macro_scalar(int64_t mc, int64_t nc, int64_t kc, const float *ap, const float *bp, float *c, int64_t ldc,
                         int accumulate, const float *bias) {
  for (int64_t i = 0; i < mc; i++)
    for (int64_t j = 0; j < nc; j++) {
      const float *a = ap + (i / 4) * 4 * kc + i % 4, *b = bp + (j / 4) * 4 * kc + j % 4;
      float acc = bias ? bias[j] : accumulate ? c[i * ldc + j] : 0.0f;
      for (int64_t p = 0; p < kc; p++) acc = fmaf(a[p * 4], b[p * 4], acc);
      c[i * ldc + j] = acc;
    }
}

static void pack_a_scalar(const lt__sgemm_args *g, int64_t i0, int64_t mc, int64_t p0, int64_t kc, float *dst) {
  sg_pack_a(4, g, i0, mc, p0, kc, dst);
}
static void pack_b_scalar(const lt__sgemm_args *g, int64_t p0, int64_t kc, int64_t j0, int64_t nc, float *dst) {
  sg_pack_b(4, g, p0, kc, j0, nc, dst);
}

static lt__sgemm_kernel kernel_for(lt_isa isa) {
  if (isa >= LT_ISA_AVX512)
    return (lt__sgemm_kernel){
        14, 32, lt__sgemm_macro_avx512, lt__sgemm_small_avx512, lt__sgemm_pack_a_avx512, lt__sgemm_pack_b_avx512};
  if (isa >= LT_ISA_AVX2)
    return (lt__sgemm_kernel){
        6, 16, lt__sgemm_macro_avx2, lt__sgemm_small_avx2, lt__sgemm_pack_a_avx2, lt__sgemm_pack_b_avx2};
  return (lt__sgemm_kernel){4, 4, macro_scalar, lt__sgemm_ref, pack_a_scalar, pack_b_scalar};
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

/* A share of c for one thread: rows [i0, i1) x columns [j0, j1), with the
 * whole reduction. */
typedef struct rect {
  int64_t i0, i1, j0, j1;
} rect;

/* The depth of the reduction panels: k in equal slices of at most SG_KC (a
 * k of 384 is two panels of 192, not 256 and 128), a multiple of 8. */
static int64_t panel_depth(int64_t k) {
  int64_t panels = (k + SG_KC - 1) / SG_KC;
  return min64(SG_KC, round_up((k + panels - 1) / panels, 8));
}

/* c *= beta over r (beta neither 0 nor 1: those fold into the first panel). */
static void scale_c(const lt__sgemm_args *g, rect r) {
  if (g->beta == 0 || g->beta == 1) return;
  for (int64_t i = r.i0; i < r.i1; i++)
    for (int64_t j = r.j0; j < r.j1; j++) g->c[i * g->ldc + j] *= g->beta;
}

/* Rows [i0, i1) of c's columns [jc, jc + nc) against the packed b panel of
 * depth kc at pc, through the thread's own a block. The first panel starts
 * the chains (from 0, c or the bias), the others add to them. */
static void run_rows(const lt__sgemm_kernel *kr, const lt__sgemm_args *g, int64_t i0, int64_t i1, int64_t jc,
                     int64_t nc, int64_t pc, int64_t kc, const float *bpack, float *apack) {
  int accumulate = pc > 0 || g->beta != 0;
  const float *bias = pc == 0 && g->bias ? g->bias + jc : NULL;
  for (int64_t ic = i0; ic < i1; ic += SG_MC) {
    int64_t mc = min64(SG_MC, i1 - ic);
    kr->pack_a(g, ic, mc, pc, kc, apack);
    kr->macro(mc, nc, kc, apack, bpack, g->c + ic * g->ldc + jc, g->ldc, accumulate, bias);
  }
}

/* One thread alone on r, packing its own b. */
static void run_rect(const lt__sgemm_kernel *kr, const lt__sgemm_args *g, rect r, float *apack, float *bpack) {
  int64_t kp = panel_depth(g->k);
  scale_c(g, r);
  for (int64_t jc = r.j0; jc < r.j1; jc += SG_NC) {
    int64_t nc = min64(SG_NC, r.j1 - jc);
    for (int64_t pc = 0; pc < g->k; pc += kp) {
      int64_t kc = min64(kp, g->k - pc);
      kr->pack_b(g, pc, kc, jc, nc, bpack);
      run_rows(kr, g, r.i0, r.i1, jc, nc, pc, kc, bpack, apack);
    }
  }
}

/* c split into at most `threads` parts: row ranges (whole MR panels) when
 * there are rows enough, else column ranges (whole NR panels). */
static int split(const lt__sgemm_kernel *kr, const lt__sgemm_args *g, int threads, rect *parts) {
  int64_t work = g->m * g->n * g->k;
  int t = work < SG_THREADED ? 1 : threads;
  int by_rows = g->m >= (int64_t)t * 4 * kr->mr;
  if (!by_rows && g->n < (int64_t)t * 2 * kr->nr) t = 1, by_rows = 1;
  int64_t len = by_rows ? g->m : g->n, unit = by_rows ? kr->mr : kr->nr;
  int64_t step = round_up((len + t - 1) / t, unit);
  int used = 0;
  for (int q = 0; q < t; q++) {
    int64_t lo = min64(len, q * step), hi = min64(len, lo + step);
    if (lo >= hi) break;
    parts[used++] = by_rows ? (rect){lo, hi, 0, g->n} : (rect){0, g->m, lo, hi};
  }
  return used;
}

#define SG_MAX_PARTS 64

static float *aligned(char *p) { return (float *)(((uintptr_t)p + LT_ALIGN - 1) & ~(uintptr_t)(LT_ALIGN - 1)); }

void lt__sgemm_with(lt_ctx *ctx, lt_isa isa, int threads, const lt__sgemm_args *g) {
  if (g->m <= 0 || g->n <= 0) return;
  if (isa > lt_cpu_isa()) isa = lt_cpu_isa();
  if (g->m == 1 && g->k > 0) { /* one row: no packing (kernels/sgemv.h) */
    lt__sgemv_with(ctx, isa, threads, g);
    return;
  }
  lt__sgemm_kernel kr = kernel_for(isa);
  if (g->k == 0 || g->m * g->n * g->k <= SG_SMALL) {
    kr.small(g);
    return;
  }
  rect parts[SG_MAX_PARTS];
  int np = split(&kr, g, threads < 1 ? 1 : threads > SG_MAX_PARTS ? SG_MAX_PARTS : threads, parts);
  int64_t rows = 0, cols = 0, kc = panel_depth(g->k);
  for (int q = 0; q < np; q++) {
    rows = rows > parts[q].i1 - parts[q].i0 ? rows : parts[q].i1 - parts[q].i0;
    cols = cols > parts[q].j1 - parts[q].j0 ? cols : parts[q].j1 - parts[q].j0;
  }
  /* scratch: an a block and a b block per part */
  size_t an = (size_t)round_up(min64(SG_MC, round_up(rows, kr.mr)) * kc, 16) * sizeof(float) + LT_ALIGN;
  size_t bn = (size_t)(min64(SG_NC, round_up(cols, kr.nr)) * kc) * sizeof(float) + LT_ALIGN;
  size_t bytes = (an + bn) * (size_t)np;
  char *scratch = lt_ctx_alloc(ctx, bytes);
  if (!scratch) { /* no memory for the panels: the same bits, unpacked */
    lt__sgemm_ref(g);
    return;
  }
  float *apack[SG_MAX_PARTS];
  for (int q = 0; q < np; q++) apack[q] = aligned(scratch + (size_t)q * an);
  char *bbase = scratch + (size_t)np * an;
  LT_PARALLEL_FOR(np, q, np, { run_rect(&kr, g, parts[q], apack[q], aligned(bbase + (size_t)q * bn)); });
  lt_ctx_free(ctx, scratch, bytes);
}

void lt__sgemm_batch(lt_ctx *ctx, const lt__sgemm_args *gs, int64_t count) {
  int threads = lt__ctx_threads(ctx);
  const lt__sgemm_args *g = gs;
  if (count <= 1 || threads <= 1 || g->m <= 0 || g->n <= 0 || g->k == 0 || g->m * g->n * g->k <= SG_SMALL) {
    for (int64_t q = 0; q < count; q++) lt__sgemm(ctx, gs + q);
    return;
  }
  lt_isa isa = lt__ctx_isa(ctx);
  if (g->m == 1) { /* rows: each thread whole products, unpacked */
    LT_PARALLEL_FOR(threads > count ? (int)count : threads, q, count, { lt__sgemv_with(ctx, isa, 1, gs + q); });
    return;
  }
  lt__sgemm_kernel kr = kernel_for(isa > lt_cpu_isa() ? lt_cpu_isa() : isa);
  int64_t kc = panel_depth(g->k);
  size_t an = (size_t)round_up(min64(SG_MC, round_up(g->m, kr.mr)) * kc, 16) * sizeof(float) + LT_ALIGN;
  size_t bn = (size_t)(min64(SG_NC, round_up(g->n, kr.nr)) * kc) * sizeof(float) + LT_ALIGN;
  if (threads > count) threads = (int)count;
  size_t bytes = (an + bn) * (size_t)threads;
  char *scratch = lt_ctx_alloc(ctx, bytes);
  if (!scratch) {
    for (int64_t q = 0; q < count; q++) lt__sgemm(ctx, gs + q);
    return;
  }
  LT_PARALLEL_FOR(threads, q, count, {
    char *mine = scratch + (size_t)lt__thread_id() * (an + bn);
    rect whole = {0, gs[q].m, 0, gs[q].n};
    run_rect(&kr, gs + q, whole, aligned(mine), aligned(mine + an));
  });
  lt_ctx_free(ctx, scratch, bytes);
}

void lt__sgemm(lt_ctx *ctx, const lt__sgemm_args *g) { lt__sgemm_with(ctx, lt__ctx_isa(ctx), lt__ctx_threads(ctx), g); }
