/* The vector kernels of the unary ops, written once over the SIMD primitives
 * (kernels/simd_*.h) and math (kernels/simd_math.h) that the including ISA
 * file chose (unary_avx2.c, unary_avx512.c), which also names the tables to
 * define: LT_SIMD_FWD / LT_SIMD_BWD. Every kernel is compared with the _ref
 * kernel of unary.c by spec/isa_spec.lua. Included by those two files only. */
#include <string.h>
#include "kernels/simd_math.h"

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
