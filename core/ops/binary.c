/* Elementwise binary ops with NumPy broadcasting and dtype promotion.
 * a (...), b (...) -> out (broadcast shape). Floats compute in float32 (float16
 * and bfloat16 are converted on load and store), float64 in double; integers
 * compute in int64 and wrap when narrowed back to their dtype. */
#include <math.h>
#include <string.h>
#include "ops/internal.h"
#include "ops/pool.h"

static const char *const names[LT_BINARY_COUNT] = {[LT_BINARY_ADD] = "add",
                                                   [LT_BINARY_SUB] = "subtract",
                                                   [LT_BINARY_MUL] = "multiply",
                                                   [LT_BINARY_DIV] = "divide",
                                                   [LT_BINARY_POW] = "power",
                                                   [LT_BINARY_MAXIMUM] = "maximum",
                                                   [LT_BINARY_MINIMUM] = "minimum",
                                                   [LT_BINARY_FLOOR_DIVIDE] = "floor_divide",
                                                   [LT_BINARY_REMAINDER] = "remainder",
                                                   [LT_BINARY_EQUAL] = "equal",
                                                   [LT_BINARY_NOT_EQUAL] = "not_equal",
                                                   [LT_BINARY_LESS] = "less",
                                                   [LT_BINARY_LESS_EQUAL] = "less_equal",
                                                   [LT_BINARY_GREATER] = "greater",
                                                   [LT_BINARY_GREATER_EQUAL] = "greater_equal"};

const char *lt_binary_name(lt_binary_op op) { return names[op]; }

static int is_comparison(lt_binary_op op) { return op >= LT_BINARY_EQUAL; }

typedef struct binary_attrs {
  lt_binary_op op;
} binary_attrs;

/* ---- kernels: out[i] = f(a[i*sa], b[i*sb]) with sa, sb in {0, 1} ---- */

typedef void (*kernel_f32)(float *o, const float *a, int64_t sa, const float *b, int64_t sb, int64_t n);
typedef void (*kernel_f64)(double *o, const double *a, int64_t sa, const double *b, int64_t sb, int64_t n);
typedef void (*kernel_i64)(int64_t *o, const int64_t *a, int64_t sa, const int64_t *b, int64_t sb, int64_t n);

/* The three stride cases are spelled out so the compiler vectorises each. */
#define DEFINE_KERNEL(name, T, expr)                                                  \
  static void name(T *o, const T *a, int64_t sa, const T *b, int64_t sb, int64_t n) { \
    if (sa && sb)                                                                     \
      for (int64_t i = 0; i < n; i++) {                                               \
        T x = a[i], y = b[i];                                                         \
        o[i] = (expr);                                                                \
      }                                                                               \
    else if (sa)                                                                      \
      for (int64_t i = 0; i < n; i++) {                                               \
        T x = a[i], y = b[0];                                                         \
        o[i] = (expr);                                                                \
      }                                                                               \
    else if (sb)                                                                      \
      for (int64_t i = 0; i < n; i++) {                                               \
        T x = a[0], y = b[i];                                                         \
        o[i] = (expr);                                                                \
      }                                                                               \
    else                                                                              \
      for (int64_t i = 0; i < n; i++) {                                               \
        T x = a[0], y = b[0];                                                         \
        o[i] = (expr);                                                                \
      }                                                                               \
  }

/* Floor division and its remainder with NumPy's (and Python's) rules, as
 * NumPy's npy_divmod computes them: the remainder takes the divisor's sign
 * (zero included), the quotient is (a - mod) / b rounded to the nearest
 * integer, so that the two agree; x / 0 gives inf or NaN and x % 0 NaN. */
static inline float floor_divide_f(float a, float b) {
  if (b == 0) return a / b;
  float mod = fmodf(a, b), div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0f;
  if (div == 0) return copysignf(0.0f, a / b);
  float f = floorf(div);
  return div - f > 0.5f ? f + 1.0f : f;
}
static inline float remainder_f(float a, float b) {
  float mod = fmodf(a, b);
  if (b == 0) return mod;
  if (mod == 0) return copysignf(0.0f, b);
  return (b < 0) != (mod < 0) ? mod + b : mod;
}
static inline double floor_divide_d(double a, double b) {
  if (b == 0) return a / b;
  double mod = fmod(a, b), div = (a - mod) / b;
  if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0) return copysign(0.0, a / b);
  double f = floor(div);
  return div - f > 0.5 ? f + 1.0 : f;
}
static inline double remainder_d(double a, double b) {
  double mod = fmod(a, b);
  if (b == 0) return mod;
  if (mod == 0) return copysign(0.0, b);
  return (b < 0) != (mod < 0) ? mod + b : mod;
}
/* Integers: division by zero gives 0 for both, as NumPy's result is (NumPy
 * also warns); INT64_MIN // -1 wraps to INT64_MIN, its remainder is 0, with
 * no C overflow. */
static inline int64_t floor_divide_i(int64_t a, int64_t b) {
  if (b == 0) return 0;
  if (b == -1) return (int64_t)(0 - (uint64_t)a);
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t remainder_i(int64_t a, int64_t b) {
  if (b == 0 || b == -1) return 0;
  int64_t r = a % b;
  return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r;
}

DEFINE_KERNEL(add_f32, float, x + y)
DEFINE_KERNEL(sub_f32, float, x - y)
DEFINE_KERNEL(mul_f32, float, x *y)
DEFINE_KERNEL(div_f32, float, x / y)
DEFINE_KERNEL(pow_f32, float, powf(x, y))
DEFINE_KERNEL(max_f32, float, (x > y || x != x) ? x : y) /* NaN propagates, as in NumPy */
DEFINE_KERNEL(min_f32, float, (x < y || x != x) ? x : y)
DEFINE_KERNEL(fdiv_f32, float, floor_divide_f(x, y))
DEFINE_KERNEL(mod_f32, float, remainder_f(x, y))
DEFINE_KERNEL(eq_f32, float, x == y)
DEFINE_KERNEL(ne_f32, float, x != y)
DEFINE_KERNEL(lt_f32, float, x < y)
DEFINE_KERNEL(le_f32, float, x <= y)
DEFINE_KERNEL(gt_f32, float, x > y)
DEFINE_KERNEL(ge_f32, float, x >= y)

DEFINE_KERNEL(add_f64, double, x + y)
DEFINE_KERNEL(sub_f64, double, x - y)
DEFINE_KERNEL(mul_f64, double, x *y)
DEFINE_KERNEL(div_f64, double, x / y)
DEFINE_KERNEL(pow_f64, double, pow(x, y))
DEFINE_KERNEL(max_f64, double, (x > y || x != x) ? x : y)
DEFINE_KERNEL(min_f64, double, (x < y || x != x) ? x : y)
DEFINE_KERNEL(fdiv_f64, double, floor_divide_d(x, y))
DEFINE_KERNEL(mod_f64, double, remainder_d(x, y))
DEFINE_KERNEL(eq_f64, double, x == y)
DEFINE_KERNEL(ne_f64, double, x != y)
DEFINE_KERNEL(lt_f64, double, x < y)
DEFINE_KERNEL(le_f64, double, x <= y)
DEFINE_KERNEL(gt_f64, double, x > y)
DEFINE_KERNEL(ge_f64, double, x >= y)

/* x^y for y >= 0 (lt_binary refuses negative integer exponents). */
static int64_t ipow(int64_t x, int64_t y) {
  if (y < 0) return 0;             /* not reached; keeps the loop below finite */
  uint64_t r = 1, b = (uint64_t)x; /* unsigned: wraps like NumPy, no UB */
  for (; y; y >>= 1, b *= b)
    if (y & 1) r *= b;
  return (int64_t)r;
}

DEFINE_KERNEL(add_i64, int64_t, (int64_t)((uint64_t)x + (uint64_t)y)) /* wraps like NumPy, no UB */
DEFINE_KERNEL(sub_i64, int64_t, (int64_t)((uint64_t)x - (uint64_t)y))
DEFINE_KERNEL(mul_i64, int64_t, (int64_t)((uint64_t)x *(uint64_t)y))
DEFINE_KERNEL(pow_i64, int64_t, ipow(x, y))
DEFINE_KERNEL(max_i64, int64_t, x > y ? x : y)
DEFINE_KERNEL(min_i64, int64_t, x < y ? x : y)
DEFINE_KERNEL(fdiv_i64, int64_t, floor_divide_i(x, y))
DEFINE_KERNEL(mod_i64, int64_t, remainder_i(x, y))
DEFINE_KERNEL(eq_i64, int64_t, x == y)
DEFINE_KERNEL(ne_i64, int64_t, x != y)
DEFINE_KERNEL(lt_i64, int64_t, x < y)
DEFINE_KERNEL(le_i64, int64_t, x <= y)
DEFINE_KERNEL(gt_i64, int64_t, x > y)
DEFINE_KERNEL(ge_i64, int64_t, x >= y)

static const kernel_f32 kernels_f32[LT_BINARY_COUNT] = {
    [LT_BINARY_ADD] = add_f32,       [LT_BINARY_SUB] = sub_f32,           [LT_BINARY_MUL] = mul_f32,
    [LT_BINARY_DIV] = div_f32,       [LT_BINARY_POW] = pow_f32,           [LT_BINARY_MAXIMUM] = max_f32,
    [LT_BINARY_MINIMUM] = min_f32,   [LT_BINARY_FLOOR_DIVIDE] = fdiv_f32, [LT_BINARY_REMAINDER] = mod_f32,
    [LT_BINARY_EQUAL] = eq_f32,      [LT_BINARY_NOT_EQUAL] = ne_f32,      [LT_BINARY_LESS] = lt_f32,
    [LT_BINARY_LESS_EQUAL] = le_f32, [LT_BINARY_GREATER] = gt_f32,        [LT_BINARY_GREATER_EQUAL] = ge_f32};
static const kernel_f64 kernels_f64[LT_BINARY_COUNT] = {
    [LT_BINARY_ADD] = add_f64,       [LT_BINARY_SUB] = sub_f64,           [LT_BINARY_MUL] = mul_f64,
    [LT_BINARY_DIV] = div_f64,       [LT_BINARY_POW] = pow_f64,           [LT_BINARY_MAXIMUM] = max_f64,
    [LT_BINARY_MINIMUM] = min_f64,   [LT_BINARY_FLOOR_DIVIDE] = fdiv_f64, [LT_BINARY_REMAINDER] = mod_f64,
    [LT_BINARY_EQUAL] = eq_f64,      [LT_BINARY_NOT_EQUAL] = ne_f64,      [LT_BINARY_LESS] = lt_f64,
    [LT_BINARY_LESS_EQUAL] = le_f64, [LT_BINARY_GREATER] = gt_f64,        [LT_BINARY_GREATER_EQUAL] = ge_f64};
/* Integer division is true division, computed in float32 (no entry). */
static const kernel_i64 kernels_i64[LT_BINARY_COUNT] = {
    [LT_BINARY_ADD] = add_i64,           [LT_BINARY_SUB] = sub_i64,         [LT_BINARY_MUL] = mul_i64,
    [LT_BINARY_POW] = pow_i64,           [LT_BINARY_MAXIMUM] = max_i64,     [LT_BINARY_MINIMUM] = min_i64,
    [LT_BINARY_FLOOR_DIVIDE] = fdiv_i64, [LT_BINARY_REMAINDER] = mod_i64,   [LT_BINARY_EQUAL] = eq_i64,
    [LT_BINARY_NOT_EQUAL] = ne_i64,      [LT_BINARY_LESS] = lt_i64,         [LT_BINARY_LESS_EQUAL] = le_i64,
    [LT_BINARY_GREATER] = gt_i64,        [LT_BINARY_GREATER_EQUAL] = ge_i64};

/* ---- dtype promotion ---- */

/* The dtype of a value computed from a and b (before comparisons turn it to bool). */
static lt_dtype promote(lt_binary_op op, lt_dtype a, lt_dtype b) {
  lt_dtype r = lt__promote(a, b);
  if (op == LT_BINARY_DIV && !lt_dtype_info(r)->is_float) return LT_FLOAT32; /* true division */
  /* arithmetic on booleans counts in int32; max/min and comparisons keep bool */
  int arithmetic = op <= LT_BINARY_POW || op == LT_BINARY_FLOOR_DIVIDE || op == LT_BINARY_REMAINDER;
  if (r == LT_BOOL && arithmetic) r = LT_INT32;
  return r;
}

/* ---- broadcasting ---- */

/* A loop nest over the output: dims merged where both inputs allow it. */
typedef struct plan {
  int nd;
  int64_t shape[LT_MAX_DIMS], sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
} plan;

static void make_plan(plan *p, int nd, const int64_t *shape, const lt_tensor *a, const lt_tensor *b) {
  int64_t sa[LT_MAX_DIMS], sb[LT_MAX_DIMS];
  lt__broadcast_strides(nd, shape, a, sa);
  lt__broadcast_strides(nd, shape, b, sb);
  p->nd = 0;
  for (int i = 0; i < nd; i++) {
    if (shape[i] == 1) continue;
    int k = p->nd - 1;
    if (k >= 0 && p->sa[k] == sa[i] * shape[i] && p->sb[k] == sb[i] * shape[i]) {
      p->shape[k] *= shape[i]; /* merge into the previous dim */
      p->sa[k] = sa[i];
      p->sb[k] = sb[i];
    } else {
      p->shape[p->nd] = shape[i];
      p->sa[p->nd] = sa[i];
      p->sb[p->nd] = sb[i];
      p->nd++;
    }
  }
  if (p->nd == 0) {
    p->nd = 1;
    p->shape[0] = 1;
    p->sa[0] = p->sb[0] = 1;
  }
}

/* Offsets of row r (all dims but the last) in a and b. */
static void row_offsets(const plan *p, int64_t r, int64_t *oa, int64_t *ob) {
  int64_t a = 0, b = 0;
  for (int i = p->nd - 2; i >= 0; i--) {
    int64_t idx = r % p->shape[i];
    r /= p->shape[i];
    a += idx * p->sa[i];
    b += idx * p->sb[i];
  }
  *oa = a;
  *ob = b;
}

/* One kernel of the compute type: exactly one member is set. */
typedef struct kernel {
  kernel_f32 f32;
  kernel_f64 f64;
  kernel_i64 i64;
} kernel;

static void run_block(const kernel *k, char *o, const char *a, int64_t sa, const char *b, int64_t sb, int64_t n) {
  if (k->f32)
    k->f32((float *)o, (const float *)a, sa, (const float *)b, sb, n);
  else if (k->f64)
    k->f64((double *)o, (const double *)a, sa, (const double *)b, sb, n);
  else
    k->i64((int64_t *)o, (const int64_t *)a, sa, (const int64_t *)b, sb, n);
}

/* Runs the kernel over the plan; `es` is the element size of the compute type. */
static void run(const lt_ctx *ctx, const plan *p, void *out, const void *a, const void *b, size_t es, const kernel *k) {
  int64_t inner = p->shape[p->nd - 1], rows = lt__numel(p->nd - 1, p->shape);
  int64_t ia = p->sa[p->nd - 1], ib = p->sb[p->nd - 1];
  int threads = rows * inner >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  /* Few long rows: split each row into blocks; many rows: one row per iteration. */
  int64_t blocks = rows >= threads ? 1 : (inner + LT_GRAIN - 1) / LT_GRAIN;
  int64_t bsize = (inner + blocks - 1) / blocks;
  LT_PARALLEL_FOR(threads, t, rows * blocks, {
    int64_t r = t / blocks, lo = (t % blocks) * bsize, oa, ob;
    int64_t n = inner - lo < bsize ? inner - lo : bsize;
    row_offsets(p, r, &oa, &ob);
    oa += lo * ia;
    ob += lo * ib;
    char *o = (char *)out + (r * inner + lo) * (int64_t)es;
    run_block(k, o, (const char *)a + oa * (int64_t)es, ia, (const char *)b + ob * (int64_t)es, ib, n);
  });
}

/* ---- backward rules ---- */

static lt_status add_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  gin[0] = lt__pkeep(&p, lt__psum_to(&p, g, n->in[0]));
  gin[1] = lt__pkeep(&p, lt__psum_to(&p, g, n->in[1]));
  return lt__pool_drain(&p);
}

static lt_status sub_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  gin[0] = lt__pkeep(&p, lt__psum_to(&p, g, n->in[0]));
  gin[1] = lt__pkeep(&p, lt__psum_to(&p, lt__pun(&p, LT_UNARY_NEG, g, 0), n->in[1]));
  return lt__pool_drain(&p);
}

static lt_status mul_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *a = n->in[0], *b = n->in[1];
  if (lt__needs(n, 0)) gin[0] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_MUL, g, b), a));
  if (lt__needs(n, 1)) gin[1] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_MUL, g, a), b));
  return lt__pool_drain(&p);
}

/* d(a/b) = g/b, -g*out/b */
static lt_status div_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *a = n->in[0], *b = n->in[1], *gb = lt__pbin(&p, LT_BINARY_DIV, g, b);
  if (lt__needs(n, 0)) gin[0] = lt__pkeep(&p, lt__psum_to(&p, gb, a));
  if (lt__needs(n, 1))
    gin[1] = lt__pkeep(
        &p, lt__psum_to(&p, lt__pun(&p, LT_UNARY_NEG, lt__pbin(&p, LT_BINARY_MUL, gb, lt__saved(n, 0)), 0), b));
  return lt__pool_drain(&p);
}

/* d(a^b) = g*b*a^(b-1), g*out*log(a) */
static lt_status pow_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *a = n->in[0], *b = n->in[1], *out = lt__saved(n, 0);
  if (lt__needs(n, 0)) {
    lt_tensor *bm1 = lt__pbin(&p, LT_BINARY_SUB, b, lt__pscalar(&p, 1, b->dtype));
    lt_tensor *d = lt__pbin(&p, LT_BINARY_MUL, b, lt__pbin(&p, LT_BINARY_POW, a, bm1));
    gin[0] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_MUL, g, d), a));
  }
  if (lt__needs(n, 1)) {
    lt_tensor *d = lt__pbin(&p, LT_BINARY_MUL, out, lt__pun(&p, LT_UNARY_LOG, a, 0));
    gin[1] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_MUL, g, d), b));
  }
  return lt__pool_drain(&p);
}

/* The gradient goes to the larger (smaller) input; ties split it evenly, as PyTorch does. */
static lt_status extremum_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *a = n->in[0], *b = n->in[1];
  const binary_attrs *at = n->attrs;
  lt_binary_op wins = at->op == LT_BINARY_MAXIMUM ? LT_BINARY_GREATER : LT_BINARY_LESS;
  lt_tensor *half = lt__pscalar(&p, 0.5, g->dtype);
  lt_tensor *wa =
      lt__pbin(&p, LT_BINARY_ADD, lt__pbin(&p, LT_BINARY_MUL, lt__pbin(&p, wins, a, b), lt__pscalar(&p, 1, g->dtype)),
               lt__pbin(&p, LT_BINARY_MUL, lt__pbin(&p, LT_BINARY_EQUAL, a, b), half));
  lt_tensor *ga = lt__pbin(&p, LT_BINARY_MUL, g, wa);
  if (lt__needs(n, 0)) gin[0] = lt__pkeep(&p, lt__psum_to(&p, ga, a));
  if (lt__needs(n, 1)) gin[1] = lt__pkeep(&p, lt__psum_to(&p, lt__pbin(&p, LT_BINARY_SUB, g, ga), b));
  return lt__pool_drain(&p);
}

/* floor_divide is flat almost everywhere: no gradient to either input, as in PyTorch. */
static lt_status floor_divide_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  (void)ctx, (void)n, (void)gouts, (void)gin;
  return LT_OK;
}

/* a % b = a - b floor(a / b): d/da = 1, d/db = -floor(a / b), as PyTorch (away from the jumps). */
static lt_status remainder_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_pool p = LT_POOL(ctx);
  lt_tensor *a = n->in[0], *b = n->in[1];
  if (lt__needs(n, 0)) gin[0] = lt__pkeep(&p, lt__psum_to(&p, g, a));
  if (lt__needs(n, 1)) {
    lt_tensor *q = lt__pbin(&p, LT_BINARY_FLOOR_DIVIDE, a, b);
    gin[1] = lt__pkeep(&p, lt__psum_to(&p, lt__pun(&p, LT_UNARY_NEG, lt__pbin(&p, LT_BINARY_MUL, g, q), 0), b));
  }
  return lt__pool_drain(&p);
}

static const lt_backward_fn backward[LT_BINARY_COUNT] = {[LT_BINARY_ADD] = add_backward,
                                                         [LT_BINARY_SUB] = sub_backward,
                                                         [LT_BINARY_MUL] = mul_backward,
                                                         [LT_BINARY_DIV] = div_backward,
                                                         [LT_BINARY_POW] = pow_backward,
                                                         [LT_BINARY_MAXIMUM] = extremum_backward,
                                                         [LT_BINARY_MINIMUM] = extremum_backward,
                                                         [LT_BINARY_FLOOR_DIVIDE] = floor_divide_backward,
                                                         [LT_BINARY_REMAINDER] = remainder_backward};

/* ---- entry ---- */

/* NumPy's rule: an integer to a negative integer power is an error, whatever
 * the base (the result would not be an integer). b is contiguous int64. */
static lt_status check_int_power(lt_ctx *ctx, const lt_tensor *b) {
  const int64_t *e = lt_tensor_data(b);
  for (int64_t i = 0, n = lt_tensor_size(b); i < n; i++)
    if (e[i] < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "power: integers to negative integer powers are not allowed, got %lld",
                         (long long)e[i]);
  return LT_OK;
}

static lt_status compute(lt_ctx *ctx, lt_tensor **out, lt_binary_op op, lt_tensor *a, lt_tensor *b, lt_dtype value_dt,
                         int nd, const int64_t *shape) {
  int is_float = lt_dtype_info(value_dt)->is_float;
  lt_dtype cdt = is_float ? lt__compute_dtype(value_dt) : LT_INT64;
  kernel k = {NULL, NULL, NULL};
  if (cdt == LT_FLOAT32) k.f32 = kernels_f32[op];
  if (cdt == LT_FLOAT64) k.f64 = kernels_f64[op];
  if (cdt == LT_INT64) k.i64 = kernels_i64[op];
  lt_tensor *ca = NULL, *cb = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &ca, a, cdt);
  if (!st) st = lt__as_contig(ctx, &cb, b, cdt);
  if (!st && op == LT_BINARY_POW && cdt == LT_INT64) st = check_int_power(ctx, cb);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, nd, shape);
  if (!st && lt_tensor_size(o) > 0) {
    plan p;
    make_plan(&p, nd, shape, ca, cb);
    run(ctx, &p, lt_tensor_data(o), lt_tensor_data(ca), lt_tensor_data(cb), lt_dtype_info(cdt)->size, &k);
  }
  lt_tensor_release(ca);
  lt_tensor_release(cb);
  lt_dtype out_dt = is_comparison(op) ? LT_BOOL : value_dt;
  if (!st) st = lt__to_dtype(ctx, &o, out_dt);
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

lt_status lt_binary(lt_ctx *ctx, lt_tensor **out, lt_binary_op op, lt_tensor *a, lt_tensor *b) {
  *out = NULL;
  if ((unsigned)op >= LT_BINARY_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "binary: unknown op %d", (int)op);
  int nd;
  int64_t shape[LT_MAX_DIMS];
  if (!lt__broadcast_shape(ctx, names[op], &nd, shape, a, b)) return LT_ERR_ARG;
  lt_dtype value_dt = promote(op, a->dtype, b->dtype);
  lt_status st = compute(ctx, out, op, a, b, value_dt, nd, shape);
  if (st || is_comparison(op) || !lt_dtype_info(value_dt)->is_float) return st;
  lt_tensor *ins[2] = {a, b};
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP(names[op], backward[op], binary_attrs, 1), out, 2, ins);
  if (node) {
    *(binary_attrs *)node->attrs = (binary_attrs){op};
    if (op == LT_BINARY_DIV || op == LT_BINARY_POW) lt__node_save(node, 0, *out);
  }
  return st;
}
