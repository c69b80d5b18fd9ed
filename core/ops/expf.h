/* exp in plain float arithmetic that the compiler vectorises (glibc's expf
 * is a call per element that it cannot). Shared by the kernels that need exp
 * inside their own loops: softmax, logsumexp, cross_entropy. */
#ifndef LATTICE_EXPF_H
#define LATTICE_EXPF_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* A branch-free select, so loops if-convert and vectorise. */
static inline float lt__pick(int c, float a, float b) {
  uint32_t ua, ub, m = 0u - (uint32_t)c;
  memcpy(&ua, &a, 4);
  memcpy(&ub, &b, 4);
  ua = (ua & m) | (ub & ~m);
  memcpy(&a, &ua, 4);
  return a;
}

/* Cephes' expf: exp(t) = 2^k exp(r), k = round(t / ln 2), r = t - k ln 2 in two
 * parts (Cody-Waite), exp(r) by a degree-7 polynomial; 2^k is applied as two
 * halves so that subnormal results round correctly. Measured max error 0.99 ulp
 * over the normal range (glibc's expf: 0.5 ulp), ~2x faster with SSE2 and ~5x
 * with AVX2. Overflow gives inf, underflow 0, NaN stays NaN. */
static inline float lt__expf(float v) {
  float t = lt__pick(v < -104.0f, -104.0f, v); /* exp(-104) rounds to 0 */
  t = lt__pick(t > 88.8f, 88.8f, t);
  float kf = t * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: k lands in the low bits */
  uint32_t kb;
  memcpy(&kb, &kf, 4);
  int32_t k = (int32_t)(kb - 0x4B400000u);
  kf -= 12582912.0f;
  float r = (t - kf * 0.693359375f) - kf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t k1 = k / 2, k2 = k - k1;
  uint32_t b1 = (uint32_t)(k1 + 127) << 23, b2 = (uint32_t)(k2 + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, 4);
  memcpy(&s2, &b2, 4);
  float e = lt__pick(v > 88.72283f, INFINITY, p * s1 * s2);
  return lt__pick(v != v, v, e);
}

#endif
