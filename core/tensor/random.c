/* Random tensors from a counter-based generator: element i of a draw uses
 * counter base+i, so results do not depend on the thread count or the order
 * of evaluation, and a seed reproduces them exactly. */
#include <math.h>
#include "runtime/context.h"
#include "runtime/parallel.h"
#include "tensor/internal.h"

/* splitmix64's finaliser: a strong 64-bit mix. */
static uint64_t mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static uint64_t bits(uint64_t key, uint64_t counter) {
  return mix(mix(key + 0x9e3779b97f4a7c15ull) ^ (counter * 0xd1342543de82ef95ull + 1));
}

/* Uniform in [0, 1) with 53 random bits. */
static double unit(uint64_t key, uint64_t counter) { return (double)(bits(key, counter) >> 11) * 0x1.0p-53; }

static lt_status fill(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, int kind, double p0,
                      double p1) {
  lt_status st = lt_tensor_new(ctx, out, dt, ndim, shape);
  if (st) return st;
  int64_t n = lt_tensor_size(*out);
  /* a normal draw spends two counters per element (kind 0: normal, 1: uniform) */
  uint64_t key, base = lt__ctx_rng_take(ctx, (uint64_t)n * (kind == 0 ? 2 : 1), &key);
  const lt_dtype_traits *tr = lt_dtype_info(dt);
  char *p = lt_tensor_data(*out);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    double v;
    if (kind == 0) { /* normal: Box-Muller on two uniforms of this element's counter pair */
      double u1 = unit(key, base + 2 * (uint64_t)i), u2 = unit(key, base + 2 * (uint64_t)i + 1);
      v = p0 + p1 * sqrt(-2.0 * log1p(-u1)) * cos(6.283185307179586 * u2);
    } else { /* uniform */
      v = p0 + (p1 - p0) * unit(key, base + (uint64_t)i);
    }
    tr->store(p + i * (int64_t)tr->size, v);
  });
  return LT_OK;
}

/* Integers in [low, high) of dtype dt: 64 random bits scaled by the range,
 * unbiased to 2^-64. The range and the sum are unsigned, so a range past
 * INT64_MAX (a full int64 draw) works; the values are written exactly. */
static lt_status fill_int(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, int64_t low,
                          int64_t high) {
  lt_status st = lt_tensor_new(ctx, out, dt, ndim, shape);
  if (st) return st;
  int64_t n = lt_tensor_size(*out);
  uint64_t key, base = lt__ctx_rng_take(ctx, (uint64_t)n, &key), range = (uint64_t)high - (uint64_t)low;
  size_t es = lt_dtype_info(dt)->size;
  char *p = lt_tensor_data(*out);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n, {
    uint64_t r = (uint64_t)(((unsigned __int128)bits(key, base + (uint64_t)i) * range) >> 64);
    int64_t v = (int64_t)((uint64_t)low + r); /* in [low, high): no wrap once converted back */
    lt_dtype_convert(p + i * (int64_t)es, dt, &v, LT_INT64, 1);
  });
  return LT_OK;
}

/* The values integer dtype dt holds. */
static void int_range(lt_dtype dt, int64_t *min, int64_t *max) {
  *min = dt == LT_INT32 ? INT32_MIN : dt == LT_INT64 ? INT64_MIN : 0;
  *max = dt == LT_INT32 ? INT32_MAX : dt == LT_INT64 ? INT64_MAX : dt == LT_UINT32 ? UINT32_MAX : UINT8_MAX;
}

lt_status lt_random_normal(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double mean,
                           double std) {
  *out = NULL;
  if (!lt_dtype_info(dt)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.normal: dtype must be a float type, got %s", lt_dtype_info(dt)->name);
  if (!(std >= 0)) return lt_ctx_fail(ctx, LT_ERR_ARG, "random.normal: scale must be non-negative");
  return fill(ctx, out, dt, ndim, shape, 0, mean, std);
}

lt_status lt_random_uniform(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double low,
                            double high) {
  *out = NULL;
  if (!lt_dtype_info(dt)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.uniform: dtype must be a float type, got %s", lt_dtype_info(dt)->name);
  if (!(low <= high)) return lt_ctx_fail(ctx, LT_ERR_ARG, "random.uniform: low must not exceed high");
  return fill(ctx, out, dt, ndim, shape, 1, low, high);
}

lt_status lt_random_randint(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, int64_t low,
                            int64_t high) {
  *out = NULL;
  if (lt_dtype_info(dt)->is_float || dt == LT_BOOL)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.randint: dtype must be an integer type, got %s",
                       lt_dtype_info(dt)->name);
  if (low >= high)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.randint: low (%lld) must be below high (%lld)", (long long)low,
                       (long long)high);
  int64_t min, max;
  int_range(dt, &min, &max);
  const char *name = lt_dtype_info(dt)->name;
  if (low < min || low > max)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.randint: low (%lld) is out of bounds for %s", (long long)low, name);
  if (high - 1 > max) /* high is exclusive: int32 takes high = 2^31 */
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.randint: high (%lld) is out of bounds for %s", (long long)high, name);
  return fill_int(ctx, out, dt, ndim, shape, low, high);
}

/* Fisher-Yates from the top: position i swaps with j uniform in [0, i],
 * drawn from counter base + i (64 bits scaled by i + 1, unbiased to 2^-64). */
lt_status lt_random_permutation(lt_ctx *ctx, lt_tensor **out, int64_t n, const uint64_t *seed) {
  *out = NULL;
  if (n < 0 || n > INT32_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "random.permutation: n must be in [0, 2^31), got %lld", (long long)n);
  lt_status st = lt_tensor_new(ctx, out, LT_INT32, 1, &n);
  if (st) return st;
  uint64_t key = seed ? *seed : 0, base = 0;
  if (!seed) base = lt__ctx_rng_take(ctx, (uint64_t)n, &key);
  int32_t *p = lt_tensor_data(*out);
  for (int64_t i = 0; i < n; i++) p[i] = (int32_t)i;
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)(((unsigned __int128)bits(key, base + (uint64_t)i) * (uint64_t)(i + 1)) >> 64);
    int32_t t = p[i];
    p[i] = p[j];
    p[j] = t;
  }
  return LT_OK;
}
