/* The machine's limits (lattice/peak.h): the fp32 FMA peak of register-only
 * kernels (peak_avx2.c, peak_avx512.c; the scalar one is here) and the
 * bandwidth of a memcpy split over the threads. Benchmarks divide by these. */
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "runtime/context.h"
#include "lattice/peak.h"

/* In peak_avx2.c and peak_avx512.c, compiled with their ISA's flags. */
float lt__peak_avx2(int64_t iters);
float lt__peak_avx512(int64_t iters);

/* 12 chains of a = a m + c on one lane: 24 flops per iteration. */
static float peak_scalar(int64_t iters) {
  float a[12] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f, 1.1f, 1.2f};
  const float m = 0.999999f, c = 1e-6f;
  for (int64_t i = 0; i < iters; i++)
    for (int k = 0; k < 12; k++) a[k] = a[k] * m + c;
  float s = 0;
  for (int k = 0; k < 12; k++) s += a[k];
  return s;
}

typedef float (*peak_fn)(int64_t iters);

double lt_peak_gflops(lt_isa isa, int threads, double seconds) {
  if (isa > lt_cpu_isa() || threads < 1) return -1;
  peak_fn fn = isa == LT_ISA_AVX512 ? lt__peak_avx512 : isa == LT_ISA_AVX2 ? lt__peak_avx2 : peak_scalar;
  double flops_per_iter = isa == LT_ISA_AVX512 ? 384 : isa == LT_ISA_AVX2 ? 192 : 24;
  volatile float sink; /* keeps every chain's result observable (local: no shared state) */
  /* Calibrate on one thread: double until a run takes 20 ms. */
  int64_t iters = 1 << 14;
  double t = 0;
  for (;;) {
    double t0 = lt_now();
    sink = fn(iters);
    t = lt_now() - t0;
    if (t >= 0.02 || iters >= ((int64_t)1 << 40)) break;
    iters *= 2;
  }
  int64_t n = (int64_t)((double)iters * seconds / t);
  if (n < iters) n = iters;
  float total = 0;
  int team = 1;
  double t0 = lt_now();
#pragma omp parallel num_threads(threads) reduction(+ : total)
  {
    total += fn(n);
#pragma omp single nowait
    team = omp_get_num_threads();
  }
  double el = lt_now() - t0;
  sink = total;
  (void)sink;
  return flops_per_iter * (double)n * team / el * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* dst = src over nbytes, each thread copying its 64-byte aligned share; with
 * `fill`, both buffers are written instead (their first touch). */
static void parallel_copy(int threads, char *dst, char *src, size_t nbytes, int fill) {
#pragma omp parallel num_threads(threads)
  {
    size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
    size_t share = (nbytes / nt + 63) & ~(size_t)63;
    size_t lo = share * t < nbytes ? share * t : nbytes;
    size_t hi = lo + share < nbytes ? lo + share : nbytes;
    if (fill) {
      memset(dst + lo, 1, hi - lo);
      memset(src + lo, 2, hi - lo);
    } else {
      memcpy(dst + lo, src + lo, hi - lo);
    }
  }
}

lt_status lt_peak_memcpy(lt_ctx *ctx, size_t nbytes, int reps, double *seconds) {
  *seconds = 0;
  if (reps < 1 || reps > 10000)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "bench_memcpy: reps must be in [1, 10000], got %d", reps);
  if (nbytes == 0) return LT_OK;
  char *src = lt_ctx_alloc(ctx, nbytes), *dst = lt_ctx_alloc(ctx, nbytes);
  double *times = lt_ctx_alloc(ctx, (size_t)reps * sizeof(double));
  lt_status st = LT_OK;
  if (!src || !dst || !times) {
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "bench_memcpy: out of memory for %zu bytes", nbytes);
  } else {
    int threads = lt__ctx_threads(ctx);
    parallel_copy(threads, dst, src, nbytes, 1);
    for (int r = 0; r < reps; r++) {
      double t0 = lt_now();
      parallel_copy(threads, dst, src, nbytes, 0);
      times[r] = lt_now() - t0;
    }
    qsort(times, (size_t)reps, sizeof(double), cmp_double);
    *seconds = times[reps / 2];
  }
  if (src) lt_ctx_free(ctx, src, nbytes);
  if (dst) lt_ctx_free(ctx, dst, nbytes);
  if (times) lt_ctx_free(ctx, times, (size_t)reps * sizeof(double));
  return st;
}
