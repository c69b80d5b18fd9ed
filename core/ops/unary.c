/* Elementwise unary ops: x (...) -> y (...), same shape.
 * Floats compute in float32 (float16 and bfloat16 are converted on load and
 * store and keep their dtype), float64 in double (unary_f64.c); integer inputs
 * of neg/abs/square/relu keep their integer dtype, the other ops turn integers
 * into float32. The _ref kernels below read like the math; unary_avx2.c and
 * unary_avx512.c hold the vector variants, picked at run time from the
 * context's ISA. */
#include <math.h>
#include <string.h>
#include "kernels/exp.h"
#include "ops/unary_kernels.h"

static const char *const names[LT_UNARY_COUNT] = {"neg",  "exp",      "log",    "sqrt",       "rsqrt", "abs",
                                                  "tanh", "sigmoid",  "relu",   "leaky_relu", "gelu",  "gelu_approx",
                                                  "silu", "softplus", "square", "sin",        "cos"};

const char *lt_unary_name(lt_unary_op op) { return (unsigned)op < LT_UNARY_COUNT ? names[op] : "?"; }

int lt__unary_uses_output(lt_unary_op op) {
  return op == LT_UNARY_EXP || op == LT_UNARY_SQRT || op == LT_UNARY_RSQRT || op == LT_UNARY_TANH ||
         op == LT_UNARY_SIGMOID;
}

/* ---- forward _ref kernels: y = f(x) ---- */

#define SQRT_2_OVER_PI     0.7978845608028654f
#define GELU_C             0.044715f
#define SOFTPLUS_THRESHOLD 20.0f /* PyTorch's: above it softplus(x) == x in float32 */

static void neg_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = -x[i];
}
static void exp_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = expf(x[i]);
}
static void log_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = logf(x[i]);
}
static void sqrt_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
}
static void rsqrt_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = 1.0f / sqrtf(x[i]);
}
static void abs_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
}
static void tanh_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}
static void sin_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = sinf(x[i]);
}
static void cos_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = cosf(x[i]);
}
static void square_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * x[i];
}

/* 1 / (1 + e^-x), written as e^x / (1 + e^x) for x < 0 so that e^-x never
 * overflows and the negative tail keeps its relative accuracy. */
static inline float sigmoidf(float x) {
  float e = expf(-fabsf(x));
  return (x < 0 ? e : 1.0f) / (1.0f + e);
}

static void sigmoid_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = sigmoidf(x[i]);
}

/* x < 0 rather than !(x > 0), so that NaN passes through as in PyTorch. */
static void relu_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? 0.0f : x[i];
}

static void leaky_relu_ref(float *y, const float *x, int64_t n, float slope) {
  for (int64_t i = 0; i < n; i++) y[i] = x[i] < 0 ? slope * x[i] : x[i];
}

/* x * Phi(x) with Phi(x) = erfc(-x/sqrt 2)/2: erfc rather than 1 + erf keeps the
 * negative tail's relative accuracy; double so the argument's rounding does not
 * cost it either. */
static void gelu_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = (float)(0.5 * x[i] * erfc(-x[i] * M_SQRT1_2));
}

/* x/2 (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3): the
 * sigmoid form has no cancellation for negative x. */
static void gelu_tanh_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) {
    float u = SQRT_2_OVER_PI * (x[i] + GELU_C * x[i] * x[i] * x[i]);
    y[i] = x[i] * sigmoidf(2.0f * u);
  }
}

static void silu_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] * sigmoidf(x[i]);
}

static void softplus_ref(float *y, const float *x, int64_t n, float a) {
  (void)a;
  for (int64_t i = 0; i < n; i++) y[i] = x[i] > SOFTPLUS_THRESHOLD ? x[i] : log1pf(expf(x[i]));
}

const lt__unary_fwd lt__unary_fwd_ref[LT_UNARY_COUNT] = {
    [LT_UNARY_NEG] = neg_ref,       [LT_UNARY_EXP] = exp_ref,
    [LT_UNARY_LOG] = log_ref,       [LT_UNARY_SQRT] = sqrt_ref,
    [LT_UNARY_RSQRT] = rsqrt_ref,   [LT_UNARY_ABS] = abs_ref,
    [LT_UNARY_TANH] = tanh_ref,     [LT_UNARY_SIGMOID] = sigmoid_ref,
    [LT_UNARY_RELU] = relu_ref,     [LT_UNARY_LEAKY_RELU] = leaky_relu_ref,
    [LT_UNARY_GELU] = gelu_ref,     [LT_UNARY_GELU_TANH] = gelu_tanh_ref,
    [LT_UNARY_SILU] = silu_ref,     [LT_UNARY_SOFTPLUS] = softplus_ref,
    [LT_UNARY_SQUARE] = square_ref, [LT_UNARY_SIN] = sin_ref,
    [LT_UNARY_COS] = cos_ref};

/* ---- backward _ref kernels: gx = g * f'(x), overwriting gx ---- */

#define BWD(name) static void name(float *gx, const float *g, const float *x, const float *y, int64_t n, float a)

BWD(neg_bwd_ref) {
  (void)x, (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = -g[i];
}
BWD(exp_bwd_ref) {
  (void)x, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * y[i];
}
BWD(log_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] / x[i];
}
/* d sqrt(x) = 1 / (2 sqrt(x)) */
BWD(sqrt_bwd_ref) {
  (void)x, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] / (2.0f * y[i]);
}
/* d x^-1/2 = -x^-3/2 / 2 = -y^3 / 2 */
BWD(rsqrt_bwd_ref) {
  (void)x, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = -0.5f * g[i] * y[i] * y[i] * y[i];
}
/* sign(0) = 0, as in PyTorch */
BWD(abs_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] > 0 ? g[i] : x[i] < 0 ? -g[i] : 0.0f;
}
BWD(tanh_bwd_ref) {
  (void)x, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * (1.0f - y[i] * y[i]);
}
BWD(sigmoid_bwd_ref) {
  (void)x, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * y[i] * (1.0f - y[i]);
}
BWD(relu_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] > 0 ? g[i] : 0.0f;
}
BWD(leaky_relu_bwd_ref) {
  (void)y;
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] > 0 ? g[i] : a * g[i];
}
BWD(square_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = 2.0f * x[i] * g[i];
}
BWD(sin_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = g[i] * cosf(x[i]);
}
BWD(cos_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = -g[i] * sinf(x[i]);
}

/* d x Phi(x) = Phi(x) + x phi(x) */
BWD(gelu_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) {
    double v = x[i], phi = exp(-0.5 * v * v) / sqrt(2 * M_PI);
    gx[i] = (float)(g[i] * (0.5 * erfc(-v * M_SQRT1_2) + v * phi));
  }
}

/* y = x s, s = sigmoid(2u): dy = s + x s (1 - s) 2 u' */
BWD(gelu_tanh_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) {
    float v = x[i], u = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
    float s = sigmoidf(2.0f * u);
    gx[i] = g[i] * (s + v * s * (1.0f - s) * 2.0f * du);
  }
}

/* d x s(x) = s (1 + x (1 - s)) */
BWD(silu_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) {
    float s = sigmoidf(x[i]);
    gx[i] = g[i] * s * (1.0f + x[i] * (1.0f - s));
  }
}

BWD(softplus_bwd_ref) {
  (void)y, (void)a;
  for (int64_t i = 0; i < n; i++) gx[i] = x[i] > SOFTPLUS_THRESHOLD ? g[i] : g[i] * sigmoidf(x[i]);
}

const lt__unary_bwd lt__unary_bwd_ref[LT_UNARY_COUNT] = {
    [LT_UNARY_NEG] = neg_bwd_ref,       [LT_UNARY_EXP] = exp_bwd_ref,
    [LT_UNARY_LOG] = log_bwd_ref,       [LT_UNARY_SQRT] = sqrt_bwd_ref,
    [LT_UNARY_RSQRT] = rsqrt_bwd_ref,   [LT_UNARY_ABS] = abs_bwd_ref,
    [LT_UNARY_TANH] = tanh_bwd_ref,     [LT_UNARY_SIGMOID] = sigmoid_bwd_ref,
    [LT_UNARY_RELU] = relu_bwd_ref,     [LT_UNARY_LEAKY_RELU] = leaky_relu_bwd_ref,
    [LT_UNARY_GELU] = gelu_bwd_ref,     [LT_UNARY_GELU_TANH] = gelu_tanh_bwd_ref,
    [LT_UNARY_SILU] = silu_bwd_ref,     [LT_UNARY_SOFTPLUS] = softplus_bwd_ref,
    [LT_UNARY_SQUARE] = square_bwd_ref, [LT_UNARY_SIN] = sin_bwd_ref,
    [LT_UNARY_COS] = cos_bwd_ref};

/* ---- dispatch ---- */

static lt_isa clamp_isa(lt_isa want) {
  lt_isa best = lt_cpu_isa();
  return want < best ? want : best;
}

lt__unary_fwd lt__unary_pick_fwd(lt_unary_op op, lt_isa isa) {
  if (isa >= LT_ISA_AVX512 && lt__unary_fwd_avx512[op]) return lt__unary_fwd_avx512[op];
  if (isa >= LT_ISA_AVX2 && lt__unary_fwd_avx2[op]) return lt__unary_fwd_avx2[op];
  return lt__unary_fwd_ref[op];
}

lt__unary_bwd lt__unary_pick_bwd(lt_unary_op op, lt_isa isa) {
  if (isa >= LT_ISA_AVX512 && lt__unary_bwd_avx512[op]) return lt__unary_bwd_avx512[op];
  if (isa >= LT_ISA_AVX2 && lt__unary_bwd_avx2[op]) return lt__unary_bwd_avx2[op];
  return lt__unary_bwd_ref[op];
}

/* Blocks of BLOCK elements (a multiple of every vector width, so each block
 * but the last starts aligned) spread over the threads. */
#define BLOCK 16384

static void run_fwd(const lt_ctx *ctx, lt__unary_fwd f, float *y, const float *x, int64_t n, float alpha) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  int64_t nblocks = (n + BLOCK - 1) / BLOCK;
  LT_PARALLEL_FOR(threads, b, nblocks, {
    int64_t lo = b * BLOCK, m = n - lo < BLOCK ? n - lo : BLOCK;
    f(y + lo, x + lo, m, alpha);
  });
}

static void run_bwd(const lt_ctx *ctx, lt__unary_bwd f, float *gx, const float *g, const float *x, const float *y,
                    int64_t n, float alpha) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  int64_t nblocks = (n + BLOCK - 1) / BLOCK;
  LT_PARALLEL_FOR(threads, b, nblocks, {
    int64_t lo = b * BLOCK, m = n - lo < BLOCK ? n - lo : BLOCK;
    f(gx + lo, g + lo, x ? x + lo : NULL, y ? y + lo : NULL, m, alpha);
  });
}

/* ---- integer inputs: neg, abs, square, relu keep the integer dtype ---- */

static int keeps_int(lt_unary_op op) {
  return op == LT_UNARY_NEG || op == LT_UNARY_ABS || op == LT_UNARY_SQUARE || op == LT_UNARY_RELU;
}

/* Wraps v to the width of dt, as NumPy's fixed-width integers do. */
static int64_t wrap(uint64_t v, lt_dtype dt) {
  if (dt == LT_UINT8) return (int64_t)(uint8_t)v;
  if (dt == LT_INT32) return (int64_t)(int32_t)(uint32_t)v;
  if (dt == LT_UINT32) return (int64_t)(uint32_t)v;
  return (int64_t)v;
}

/* Computes in int64 (wrapping, no UB), then narrows to the result dtype
 * (booleans count in int32, as in binary arithmetic). */
static lt_status int_unary(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x) {
  lt_dtype odt = x->dtype == LT_BOOL ? LT_INT32 : x->dtype;
  lt_tensor *xc = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, LT_INT64);
  if (!st) st = lt_tensor_new(ctx, &o, LT_INT64, x->ndim, x->shape);
  if (!st) {
    const int64_t *xi = lt_tensor_data(xc);
    int64_t *yi = lt_tensor_data(o), n = lt_tensor_size(o);
    int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
    LT_PARALLEL_FOR(threads, i, n, {
      uint64_t v = (uint64_t)xi[i];
      uint64_t r = op == LT_UNARY_NEG      ? 0 - v
                   : op == LT_UNARY_SQUARE ? v * v
                                           : (xi[i] < 0 ? (op == LT_UNARY_ABS ? 0 - v : 0) : v);
      yi[i] = wrap(r, odt);
    });
  }
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, odt);
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

/* ---- entry ---- */

/* The forward with the kernels of `isa` (one the CPU has). */
static lt_status forward(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha, lt_isa isa) {
  *out = NULL;
  if ((unsigned)op >= LT_UNARY_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "unary: unknown op %d", (int)op);
  if (!lt_dtype_info(x->dtype)->is_float && keeps_int(op)) return int_unary(ctx, out, op, x);
  lt_dtype cdt = lt__compute_dtype(x->dtype);
  lt_tensor *xc = NULL, *o = NULL;
  lt_status st = lt__as_contig(ctx, &xc, x, cdt);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    lt__unary_fwd_f64(ctx, op, lt__f64(o), lt__f64(xc), lt_tensor_size(o), alpha);
  else if (!st)
    run_fwd(ctx, lt__unary_pick_fwd(op, isa), lt__f32(o), lt__f32(xc), lt_tensor_size(o), (float)alpha);
  lt_tensor_release(xc);
  if (!st) st = lt__to_dtype(ctx, &o, lt__float_result(x->dtype));
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

/* Stages t as contiguous dtype cdt (NULL stays NULL). */
static lt_status stage(lt_ctx *ctx, lt_tensor **out, lt_tensor *t, lt_dtype cdt) {
  *out = NULL;
  return t ? lt__as_contig(ctx, out, t, cdt) : LT_OK;
}

lt_status lt__unary_isa(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha, lt_isa isa,
                        lt_isa *used) {
  *used = clamp_isa(isa);
  return forward(ctx, out, op, x, alpha, *used);
}

/* gx = g f'(x) with the kernels of `isa` (one the CPU has). */
static lt_status backward_kernel(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *g, lt_tensor *x, lt_tensor *y,
                                 double alpha, lt_isa isa) {
  *out = NULL;
  if ((unsigned)op >= LT_UNARY_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "unary: unknown op %d", (int)op);
  if (lt_tensor_size(g) != lt_tensor_size(x))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: gradient has %lld elements, input has %lld", names[op],
                       (long long)lt_tensor_size(g), (long long)lt_tensor_size(x));
  lt_tensor *yown = NULL, *gc = NULL, *xc = NULL, *yc = NULL, *o = NULL;
  lt_status st = LT_OK;
  if (lt__unary_uses_output(op) && !y) st = forward(ctx, &yown, op, x, alpha, isa), y = yown;
  if (!lt__unary_uses_output(op)) y = NULL;
  lt_dtype cdt = lt__compute_dtype(x->dtype); /* the input's precision decides, as in the forward */
  if (!st) st = stage(ctx, &gc, g, cdt);
  if (!st) st = stage(ctx, &xc, x, cdt);
  if (!st) st = stage(ctx, &yc, y, cdt);
  if (!st) st = lt_tensor_new(ctx, &o, cdt, x->ndim, x->shape);
  if (!st && cdt == LT_FLOAT64)
    lt__unary_bwd_f64(ctx, op, lt__f64(o), lt__f64(gc), lt__f64(xc), yc ? lt__f64(yc) : NULL, lt_tensor_size(o), alpha);
  else if (!st)
    run_bwd(ctx, lt__unary_pick_bwd(op, isa), lt__f32(o), lt__f32(gc), lt__f32(xc), yc ? lt__f32(yc) : NULL,
            lt_tensor_size(o), (float)alpha);
  lt_tensor *tmp[4] = {yown, gc, xc, yc};
  lt__release_all(4, tmp);
  if (!st) st = lt__to_dtype(ctx, &o, lt__float_result(x->dtype));
  if (st) {
    lt_tensor_release(o);
    return st;
  }
  *out = o;
  return LT_OK;
}

lt_status lt__exp_shift_isa(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, float shift, lt_isa isa, lt_isa *used) {
  *used = clamp_isa(isa);
  lt_tensor *xc = NULL;
  lt_status st = lt__as_f32(ctx, &xc, x);
  if (!st) st = lt_tensor_new(ctx, out, LT_FLOAT32, x->ndim, x->shape);
  if (!st) lt__exp_shift(*used, lt__f32(*out), lt__f32(xc), shift, lt_tensor_size(x));
  lt_tensor_release(xc);
  return st;
}

lt_status lt__unary_grad_isa(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *g, lt_tensor *x, lt_tensor *y,
                             double alpha, lt_isa isa, lt_isa *used) {
  *used = clamp_isa(isa);
  return backward_kernel(ctx, out, op, g, x, y, alpha, *used);
}

typedef struct unary_attrs {
  lt_unary_op op;
  double alpha;
} unary_attrs;

static lt_status unary_backward(lt_ctx *ctx, const lt_node *node, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  const unary_attrs *at = node->attrs;
  return backward_kernel(ctx, &gin[0], at->op, g, node->in[0], lt__saved(node, 0), at->alpha, lt__ctx_isa(ctx));
}

lt_status lt_unary(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha) {
  lt_status st = forward(ctx, out, op, x, alpha, lt__ctx_isa(ctx));
  if (st || !lt_dtype_info(x->dtype)->is_float) return st;
  lt_node *node;
  st = lt__record(ctx, &node, LT_OP(names[op], unary_backward, unary_attrs, 1), out, 1, &x);
  if (node) {
    *(unary_attrs *)node->attrs = (unary_attrs){op, alpha};
    if (lt__unary_uses_output(op)) lt__node_save(node, 0, *out);
  }
  return st;
}
