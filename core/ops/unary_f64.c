/* The float64 path of the unary ops: x (n) -> y (n) and g, x, y (n) -> gx (n),
 * plain loops in double through libm. It exists for references and
 * finite-difference gradient checks, so each op is one line of math, written
 * as the float32 _ref kernels in unary.c are (the same stable forms, the same
 * thresholds), and correctness wins over speed: one call per element. */
#include <math.h>
#include "ops/unary_kernels.h"

#define SQRT_2_OVER_PI     0.7978845608028654
#define GELU_C             0.044715
#define SOFTPLUS_THRESHOLD 20.0 /* PyTorch's, whatever the dtype */

/* e^x / (1 + e^x) for x < 0, so that e^-x never overflows. */
static double sigmoid(double x) {
  double e = exp(-fabs(x));
  return (x < 0 ? e : 1.0) / (1.0 + e);
}
static double gelu_u(double x) { return SQRT_2_OVER_PI * (x + GELU_C * x * x * x); }

/* ---- y = f(x); leaky_relu, the one op with a parameter, is in the loop ---- */

typedef double (*fwd_fn)(double x);

static double f_neg(double x) { return -x; }
static double f_rsqrt(double x) { return 1.0 / sqrt(x); }
static double f_relu(double x) { return x < 0 ? 0.0 : x; } /* NaN passes */
static double f_gelu(double x) { return 0.5 * x * erfc(-x * M_SQRT1_2); }
static double f_gelu_tanh(double x) { return x * sigmoid(2.0 * gelu_u(x)); }
static double f_silu(double x) { return x * sigmoid(x); }
static double f_softplus(double x) { return x > SOFTPLUS_THRESHOLD ? x : log1p(exp(x)); }
static double f_square(double x) { return x * x; }

static const fwd_fn fwd[LT_UNARY_COUNT] = {[LT_UNARY_NEG] = f_neg,
                                           [LT_UNARY_EXP] = exp,
                                           [LT_UNARY_LOG] = log,
                                           [LT_UNARY_SQRT] = sqrt,
                                           [LT_UNARY_RSQRT] = f_rsqrt,
                                           [LT_UNARY_ABS] = fabs,
                                           [LT_UNARY_TANH] = tanh,
                                           [LT_UNARY_SIGMOID] = sigmoid,
                                           [LT_UNARY_RELU] = f_relu,
                                           [LT_UNARY_GELU] = f_gelu,
                                           [LT_UNARY_GELU_TANH] = f_gelu_tanh,
                                           [LT_UNARY_SILU] = f_silu,
                                           [LT_UNARY_SOFTPLUS] = f_softplus,
                                           [LT_UNARY_SQUARE] = f_square,
                                           [LT_UNARY_SIN] = sin,
                                           [LT_UNARY_COS] = cos};

/* ---- f'(x) as a function of v: the output y = f(x) for the ops that
 * lt__unary_uses_output names, x for the others ---- */

typedef double (*deriv_fn)(double v);

static double d_neg(double x) {
  (void)x;
  return -1.0;
}
static double d_exp(double y) { return y; }
static double d_log(double x) { return 1.0 / x; }
static double d_sqrt(double y) { return 0.5 / y; }
static double d_rsqrt(double y) { return -0.5 * y * y * y; }
static double d_abs(double x) { return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0; } /* sign(0) = 0, as PyTorch */
static double d_tanh(double y) { return 1.0 - y * y; }
static double d_sigmoid(double y) { return y * (1.0 - y); }
static double d_relu(double x) { return x > 0 ? 1.0 : 0.0; }
static double d_square(double x) { return 2.0 * x; }
static double d_sin(double x) { return cos(x); }
static double d_cos(double x) { return -sin(x); }

/* d x Phi(x) = Phi(x) + x phi(x) */
static double d_gelu(double x) { return 0.5 * erfc(-x * M_SQRT1_2) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI); }

/* y = x s, s = sigmoid(2u): dy = s + x s (1 - s) 2 u' */
static double d_gelu_tanh(double x) {
  double s = sigmoid(2.0 * gelu_u(x)), du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * x * x);
  return s + x * s * (1.0 - s) * 2.0 * du;
}

/* d x s(x) = s (1 + x (1 - s)) */
static double d_silu(double x) {
  double s = sigmoid(x);
  return s * (1.0 + x * (1.0 - s));
}

static double d_softplus(double x) { return x > SOFTPLUS_THRESHOLD ? 1.0 : sigmoid(x); }

static const deriv_fn deriv[LT_UNARY_COUNT] = {[LT_UNARY_NEG] = d_neg,
                                               [LT_UNARY_EXP] = d_exp,
                                               [LT_UNARY_LOG] = d_log,
                                               [LT_UNARY_SQRT] = d_sqrt,
                                               [LT_UNARY_RSQRT] = d_rsqrt,
                                               [LT_UNARY_ABS] = d_abs,
                                               [LT_UNARY_TANH] = d_tanh,
                                               [LT_UNARY_SIGMOID] = d_sigmoid,
                                               [LT_UNARY_RELU] = d_relu,
                                               [LT_UNARY_GELU] = d_gelu,
                                               [LT_UNARY_GELU_TANH] = d_gelu_tanh,
                                               [LT_UNARY_SILU] = d_silu,
                                               [LT_UNARY_SOFTPLUS] = d_softplus,
                                               [LT_UNARY_SQUARE] = d_square,
                                               [LT_UNARY_SIN] = d_sin,
                                               [LT_UNARY_COS] = d_cos};

/* ---- loops ---- */

void lt__unary_fwd_f64(const lt_ctx *ctx, lt_unary_op op, double *y, const double *x, int64_t n, double alpha) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (op == LT_UNARY_LEAKY_RELU) {
    LT_PARALLEL_FOR(threads, i, n, { y[i] = x[i] < 0 ? alpha * x[i] : x[i]; });
    return;
  }
  fwd_fn f = fwd[op];
  LT_PARALLEL_FOR(threads, i, n, { y[i] = f(x[i]); });
}

void lt__unary_bwd_f64(const lt_ctx *ctx, lt_unary_op op, double *gx, const double *g, const double *x, const double *y,
                       int64_t n, double alpha) {
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (op == LT_UNARY_LEAKY_RELU) {
    LT_PARALLEL_FOR(threads, i, n, { gx[i] = x[i] > 0 ? g[i] : alpha * g[i]; });
    return;
  }
  deriv_fn d = deriv[op];
  const double *v = lt__unary_uses_output(op) ? y : x;
  LT_PARALLEL_FOR(threads, i, n, { gx[i] = g[i] * d(v[i]); });
}
