/* The vector algorithms of the unary ops, written once over a small set of
 * primitives that the including ISA file defines (unary_avx2.c: 8 lanes,
 * unary_avx512.c: 16 lanes) before including this file:
 *   LT_W, vf (float vector), vm (lane mask), vset, vload, vstore, vadd, vsub,
 *   vmul, vdiv, vfma(a,b,c) = a*b+c, vmin/vmax (the SECOND argument is
 *   returned when either is NaN, as minps/maxps do), vsqrt, vround (to nearest),
 *   vabs, vcopysign(mag, sign), vpow2i (2^n for integral n in [-126, 127]),
 *   vlt, vgt, vsel(m, if_true, if_false), vkeep (an optimisation barrier),
 * and LT_SIMD_FWD / LT_SIMD_BWD, the names of the tables to define.
 * Every algorithm is compared with the _ref kernel of unary.c by
 * spec/isa_spec.lua. Not a public header: included by those two files only. */
#include <string.h>

/* ---- math on one vector ---- */

/* e^x. Cody-Waite reduction x = q ln2 + s with |s| <= ln2/2 and SLEEF's expf
 * polynomial (<= 1 ulp). 2^q is applied as two factors so that q from -150
 * (subnormal results) to 128 (overflow to inf) needs no special case; x is
 * clamped to [-104, 88.8] (0 and inf beyond), NaN passes through the clamp. */
static inline vf v_exp(vf x) {
  x = vmax(vset(-104.0f), vmin(vset(88.8f), x));
  vf q = vround(vmul(x, vset(1.44269504088896341f)));
  vf s = vfma(q, vset(-0.693145751953125f), x);
  s = vfma(q, vset(-1.428606765330187045e-06f), s);
  vf u = vset(0.000198527617612853646278381f);
  u = vfma(u, s, vset(0.00139304355252534151077271f));
  u = vfma(u, s, vset(0.00833336077630519866943359f));
  u = vfma(u, s, vset(0.0416664853692054748535156f));
  u = vfma(u, s, vset(0.166666671633720397949219f));
  u = vfma(u, s, vset(0.5f));
  u = vadd(vset(1.0f), vfma(vmul(s, s), u, s));
  vf q1 = vround(vmul(q, vset(0.5f)));
  return vmul(vmul(u, vpow2i(q1)), vpow2i(vsub(q, q1)));
}

/* sigmoid(x) = num / den: 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0 with
 * e = e^-|x|, so that e^-x never overflows and the negative tail keeps its
 * relative accuracy (silu(-89) is 2e-37, not 0). */
static inline vf v_sigmoid_parts(vf x, vf *den) {
  vf e = v_exp(vsub(vset(0.0f), vabs(x)));
  *den = vadd(vset(1.0f), e);
  return vsel(vlt(x, vset(0.0f)), e, vset(1.0f));
}

static inline vf v_sigmoid(vf x) {
  vf den, num = v_sigmoid_parts(x, &den);
  return vdiv(num, den);
}

/* tanh: |x| < 0.625: x P(x^2), a degree-6 fit of tanh(x)/x (error 1.5e-10);
 * beyond: 1 - 2 / (e^2|x| + 1), which has no cancellation there. */
static inline vf v_tanh(vf x) {
  vf a = vabs(x), s = vmul(a, a);
  vf p = vset(2.127435363e-03f);
  p = vfma(p, s, vset(-8.157853372e-03f));
  p = vfma(p, s, vset(2.169126532e-02f));
  p = vfma(p, s, vset(-5.394458468e-02f));
  p = vfma(p, s, vset(1.333318175e-01f));
  p = vfma(p, s, vset(-3.333332966e-01f));
  p = vfma(p, s, vset(1.0f));
  vf small = vmul(a, p);
  vf big = vsub(vset(1.0f), vdiv(vset(2.0f), vadd(v_exp(vadd(a, a)), vset(1.0f))));
  return vcopysign(vsel(vlt(a, vset(0.625f)), small, big), x);
}

/* e^(-t^2/2) for t >= 0, with t^2 split into hi + lo (exact, by fma) so that
 * its rounding does not cost relative accuracy in the tail. */
static inline vf v_gauss(vf t) {
  t = vmin(vset(20.0f), t); /* e^-200 is 0 already; keeps inf*inf - inf from making NaN */
  vf hi = vmul(t, t), lo = vfma(t, t, vsub(vset(0.0f), hi));
  vf e = v_exp(vmul(hi, vset(-0.5f)));
  return vfma(vmul(e, vset(-0.5f)), lo, e);
}

/* Mills ratio m(t) = Q(t) / phi(t), t >= 0, with Q(t) = P(N(0,1) > t): k m(k)
 * with k = 1/(1 + 0.3 t), a degree-10 polynomial fitted on t in [0, 14]
 * (relative error 4e-9). Beyond 14, Q is subnormal and t is clamped. */
static inline vf v_mills(vf t) {
  vf k = vdiv(vset(1.0f), vfma(vmin(vset(14.0f), t), vset(0.3f), vset(1.0f)));
  vf p = vset(1.092740872e-02f);
  p = vfma(p, k, vset(-1.163850358e-01f));
  p = vfma(p, k, vset(4.497806172e-01f));
  p = vfma(p, k, vset(-8.233523147e-01f));
  p = vfma(p, k, vset(7.202503878e-01f));
  p = vfma(p, k, vset(-3.506944820e-01f));
  p = vfma(p, k, vset(3.054383130e-01f));
  p = vfma(p, k, vset(1.783952216e-01f));
  p = vfma(p, k, vset(2.795328284e-01f));
  p = vfma(p, k, vset(2.993969248e-01f));
  p = vfma(p, k, vset(3.000242672e-01f));
  return vmul(k, p);
}

#define V_INV_SQRT_2PI 0.3989422804014327f

/* Phi(x) = P(N(0,1) <= x): Q(|x|) for x < 0, 1 - Q(|x|) otherwise; phi(x) too. */
static inline vf v_normal_cdf(vf x, vf *pdf) {
  vf t = vabs(x), phi = vmul(v_gauss(t), vset(V_INV_SQRT_2PI));
  vf q = vmul(phi, v_mills(t));
  if (pdf) *pdf = phi;
  return vsel(vlt(x, vset(0.0f)), q, vsub(vset(1.0f), q));
}

/* u = sqrt(2/pi) (x + 0.044715 x^3), rounded step by step exactly as the _ref
 * kernel does: the negative tail amplifies u's rounding ~2|u| times, so both
 * must round u alike to agree there. vkeep stops GCC (whose intrinsics are
 * plain vector arithmetic, contracted under -std=gnu11) from fusing the add. */
static inline vf v_gelu_u(vf x) {
  vf cube = vkeep(vmul(vmul(vmul(vset(0.044715f), x), x), x));
  return vmul(vset(0.7978845608028654f), vadd(x, cube));
}

/* ---- forward ops: f(x, alpha) ---- */

static inline vf f_neg(vf x, vf a) {
  (void)a;
  return vsub(vset(-0.0f), x);
} /* -0 - x flips zeros too */
static inline vf f_abs(vf x, vf a) {
  (void)a;
  return vabs(x);
}
static inline vf f_square(vf x, vf a) {
  (void)a;
  return vmul(x, x);
}
static inline vf f_sqrt(vf x, vf a) {
  (void)a;
  return vsqrt(x);
}
static inline vf f_rsqrt(vf x, vf a) {
  (void)a;
  return vdiv(vset(1.0f), vsqrt(x));
}
static inline vf f_relu(vf x, vf a) {
  (void)a;
  return vsel(vlt(x, vset(0.0f)), vset(0.0f), x);
}
static inline vf f_leaky_relu(vf x, vf a) { return vsel(vlt(x, vset(0.0f)), vmul(a, x), x); }
static inline vf f_exp(vf x, vf a) {
  (void)a;
  return v_exp(x);
}
static inline vf f_tanh(vf x, vf a) {
  (void)a;
  return v_tanh(x);
}
static inline vf f_sigmoid(vf x, vf a) {
  (void)a;
  return v_sigmoid(x);
}
static inline vf f_silu(vf x, vf a) {
  (void)a;
  vf den, num = v_sigmoid_parts(x, &den);
  return vdiv(vmul(x, num), den);
}
static inline vf f_gelu(vf x, vf a) {
  (void)a;
  return vmul(x, v_normal_cdf(x, NULL));
}
static inline vf f_gelu_tanh(vf x, vf a) {
  (void)a;
  vf den, num = v_sigmoid_parts(vmul(v_gelu_u(x), vset(2.0f)), &den);
  return vdiv(vmul(x, num), den);
}

/* y = f(x) over n elements; the tail goes through a zero-padded vector. */
static inline __attribute__((always_inline)) void map_fwd(float *y, const float *x, int64_t n, float alpha,
                                                          vf (*f)(vf, vf)) {
  vf va = vset(alpha);
  int64_t i = 0;
  for (; i + 2 * LT_W <= n; i += 2 * LT_W) {
    vf a = f(vload(x + i), va), b = f(vload(x + i + LT_W), va);
    vstore(y + i, a);
    vstore(y + i + LT_W, b);
  }
  for (; i + LT_W <= n; i += LT_W) vstore(y + i, f(vload(x + i), va));
  if (i < n) {
    float buf[LT_W] = {0};
    memcpy(buf, x + i, (size_t)(n - i) * sizeof(float));
    vstore(buf, f(vload(buf), va));
    memcpy(y + i, buf, (size_t)(n - i) * sizeof(float));
  }
}

static void neg_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_neg); }
static void abs_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_abs); }
static void square_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_square); }
static void sqrt_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_sqrt); }
static void rsqrt_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_rsqrt); }
static void relu_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_relu); }
static void leaky_relu_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_leaky_relu); }
static void exp_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_exp); }
static void tanh_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_tanh); }
static void sigmoid_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_sigmoid); }
static void silu_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_silu); }
static void gelu_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_gelu); }
static void gelu_tanh_fwd(float *y, const float *x, int64_t n, float a) { map_fwd(y, x, n, a, f_gelu_tanh); }

/* ---- backward ops: gx = g f'(x or y) ---- */

static inline vf b_relu(vf g, vf x, vf a) {
  (void)a;
  return vsel(vgt(x, vset(0.0f)), g, vset(0.0f));
}
static inline vf b_leaky_relu(vf g, vf x, vf a) { return vsel(vgt(x, vset(0.0f)), g, vmul(a, g)); }
static inline vf b_exp(vf g, vf y, vf a) {
  (void)a;
  return vmul(g, y);
}
static inline vf b_tanh(vf g, vf y, vf a) {
  (void)a;
  return vmul(g, vfma(vsub(vset(0.0f), y), y, vset(1.0f)));
}
static inline vf b_sigmoid(vf g, vf y, vf a) {
  (void)a;
  return vmul(vmul(g, y), vsub(vset(1.0f), y));
}

/* s (1 + x (1 - s)) */
static inline vf b_silu(vf g, vf x, vf a) {
  (void)a;
  vf s = v_sigmoid(x);
  return vmul(vmul(g, s), vfma(x, vsub(vset(1.0f), s), vset(1.0f)));
}

/* Phi(x) + x phi(x) */
static inline vf b_gelu(vf g, vf x, vf a) {
  (void)a;
  vf pdf, cdf = v_normal_cdf(x, &pdf);
  return vmul(g, vfma(x, pdf, cdf));
}

/* s + 2 x s (1 - s) u', s = sigmoid(2u), u' = sqrt(2/pi) (1 + 3 0.044715 x^2) */
static inline vf b_gelu_tanh(vf g, vf x, vf a) {
  (void)a;
  vf s = v_sigmoid(vmul(v_gelu_u(x), vset(2.0f)));
  vf du = vmul(vfma(vmul(x, x), vset(3.0f * 0.044715f), vset(1.0f)), vset(2.0f * 0.7978845608028654f));
  return vmul(g, vfma(vmul(vmul(x, s), vsub(vset(1.0f), s)), du, s));
}

/* gx = f(g, v) where v is x or y: whichever the op's derivative reads. */
static inline __attribute__((always_inline)) void map_bwd(float *gx, const float *g, const float *v, int64_t n,
                                                          float alpha, vf (*f)(vf, vf, vf)) {
  vf va = vset(alpha);
  int64_t i = 0;
  for (; i + LT_W <= n; i += LT_W) vstore(gx + i, f(vload(g + i), vload(v + i), va));
  if (i < n) {
    float bg[LT_W] = {0}, bv[LT_W] = {0};
    memcpy(bg, g + i, (size_t)(n - i) * sizeof(float));
    memcpy(bv, v + i, (size_t)(n - i) * sizeof(float));
    vstore(bg, f(vload(bg), vload(bv), va));
    memcpy(gx + i, bg, (size_t)(n - i) * sizeof(float));
  }
}

static void relu_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)y;
  map_bwd(gx, g, x, n, a, b_relu);
}
static void leaky_relu_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)y;
  map_bwd(gx, g, x, n, a, b_leaky_relu);
}
static void silu_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)y;
  map_bwd(gx, g, x, n, a, b_silu);
}
static void gelu_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)y;
  map_bwd(gx, g, x, n, a, b_gelu);
}
static void gelu_tanh_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)y;
  map_bwd(gx, g, x, n, a, b_gelu_tanh);
}
static void exp_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)x;
  map_bwd(gx, g, y, n, a, b_exp);
}
static void tanh_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)x;
  map_bwd(gx, g, y, n, a, b_tanh);
}
static void sigmoid_bwd(float *gx, const float *g, const float *x, const float *y, int64_t n, float a) {
  (void)x;
  map_bwd(gx, g, y, n, a, b_sigmoid);
}

const lt__unary_fwd LT_SIMD_FWD[LT_UNARY_COUNT] = {[LT_UNARY_NEG] = neg_fwd,
                                                   [LT_UNARY_EXP] = exp_fwd,
                                                   [LT_UNARY_SQRT] = sqrt_fwd,
                                                   [LT_UNARY_RSQRT] = rsqrt_fwd,
                                                   [LT_UNARY_ABS] = abs_fwd,
                                                   [LT_UNARY_TANH] = tanh_fwd,
                                                   [LT_UNARY_SIGMOID] = sigmoid_fwd,
                                                   [LT_UNARY_RELU] = relu_fwd,
                                                   [LT_UNARY_LEAKY_RELU] = leaky_relu_fwd,
                                                   [LT_UNARY_GELU] = gelu_fwd,
                                                   [LT_UNARY_GELU_TANH] = gelu_tanh_fwd,
                                                   [LT_UNARY_SILU] = silu_fwd,
                                                   [LT_UNARY_SQUARE] = square_fwd};

const lt__unary_bwd LT_SIMD_BWD[LT_UNARY_COUNT] = {[LT_UNARY_EXP] = exp_bwd,
                                                   [LT_UNARY_TANH] = tanh_bwd,
                                                   [LT_UNARY_SIGMOID] = sigmoid_bwd,
                                                   [LT_UNARY_RELU] = relu_bwd,
                                                   [LT_UNARY_LEAKY_RELU] = leaky_relu_bwd,
                                                   [LT_UNARY_GELU] = gelu_bwd,
                                                   [LT_UNARY_GELU_TANH] = gelu_tanh_bwd,
                                                   [LT_UNARY_SILU] = silu_bwd};
