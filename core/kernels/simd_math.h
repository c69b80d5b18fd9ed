/* Math on one vector, written once over the primitives of the simd_*.h
 * header the including file chose (see kernels/simd_avx2.h). Every function is
 * compared with the _ref kernels of core/ops/unary.c by spec/isa_spec.lua.
 * Not a header of its own: include it after one simd_*.h. */
#ifndef LATTICE_KERNELS_SIMD_MATH_H
#define LATTICE_KERNELS_SIMD_MATH_H

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

#endif
