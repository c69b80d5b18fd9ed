#ifndef LATTICE_KERNELS_SIMD_H
#define LATTICE_KERNELS_SIMD_H
/* The SIMD primitives every hand kernel is written over, for one ISA: one lane of plain C floats,
 * for the portable build. Loops over these compile to branch-free code that
 * GCC vectorises with the baseline SSE2 (no FMA: vfma rounds twice). A
 * kernel file compiled with that ISA's flags includes exactly one of
 * kernels/simd_scalar.h, simd_avx2.h, simd_avx512.h, then writes its loops once
 * over these names:
 *   LT_W lanes; vf (float vector), vm (lane mask); vset, vload, vstore, vadd,
 *   vsub, vmul, vdiv, vfma(a,b,c) = a*b+c, vmin/vmax (the SECOND argument is
 *   returned when either is NaN, as minps/maxps do), vsqrt, vround (to
 *   nearest, for |a| < 2^22), vabs, vcopysign(mag, sign), vpow2i (2^n for
 *   integral n in [-126, 127]), vlt, vgt, vsel(m, if_true, if_false), vkeep
 *   (an optimisation barrier: the value as computed, not contracted),
 *   vreduce_add (the sum of the lanes), vtranspose (LT_W vectors as the rows
 *   of a square, transposed in registers).
 * kernels/simd_math.h holds the math written over them (exp, sigmoid, tanh,
 * the normal cdf). */
#include <stdint.h>
#include <string.h>

#define LT_W 1
typedef float vf;
typedef int vm;

static inline vf vset(float a) { return a; }
static inline vf vload(const float *p) { return *p; }
static inline void vstore(float *p, vf a) { *p = a; }
static inline vf vadd(vf a, vf b) { return a + b; }
static inline vf vsub(vf a, vf b) { return a - b; }
static inline vf vmul(vf a, vf b) { return a * b; }
static inline vf vdiv(vf a, vf b) { return a / b; }
static inline vf vfma(vf a, vf b, vf c) { return a * b + c; }
static inline vf vmin(vf a, vf b) { return a < b ? a : b; }
static inline vf vmax(vf a, vf b) { return a > b ? a : b; }
static inline vf vsqrt(vf a) { return __builtin_sqrtf(a); }
/* 1.5 * 2^23 added and taken away rounds to the nearest integer (ties to even)
 * for |a| < 2^22, in plain arithmetic that vectorises; without -ffast-math the
 * compiler may not fold it away. */
static inline vf vround(vf a) { return (a + 12582912.0f) - 12582912.0f; }
static inline uint32_t bits_of(float a) {
  uint32_t u;
  memcpy(&u, &a, 4);
  return u;
}
static inline float float_of(uint32_t u) {
  float a;
  memcpy(&a, &u, 4);
  return a;
}
static inline vf vabs(vf a) { return float_of(bits_of(a) & 0x7fffffffu); }
static inline vf vcopysign(vf mag, vf sign) {
  return float_of((bits_of(mag) & 0x7fffffffu) | (bits_of(sign) & 0x80000000u));
}
static inline vf vpow2i(vf n) { return float_of((uint32_t)((int32_t)n + 127) << 23); }
static inline vm vlt(vf a, vf b) { return a < b; }
static inline vm vgt(vf a, vf b) { return a > b; }
static inline vf vkeep(vf a) {
  __asm__("" : "+x"(a));
  return a;
}
static inline vf vsel(vm m, vf t, vf f) { return m ? t : f; }
static inline float vreduce_add(vf a) { return a; }
static inline void vtranspose(vf r[1]) { (void)r; }

#endif
