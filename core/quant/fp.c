/* The floating-point quantization formats, and the two modes built on them,
 * as MLX's CPU backend emulates them (mlx/backend/cpu/quantized.cpp):
 *   mxfp8  groups of 32, values E4M3, scale E8M0: the smallest power of two
 *          >= max|x| / 448 (MLX's to_fp8_e8m0_round_up);
 *   nvfp4  groups of 16, values E2M1, scale E4M3: max|x| / 6 rounded to E4M3.
 * Per group: scale from max|x|; each value v = x / scale rounded to the value
 * format (round to nearest even; E4M3 saturates at 448, E2M1 at 6); the
 * result is scale * value. lt_quantize_dequantize is that round trip on
 * activations (MLX's fp_quantize_dequantize); the weight quantizer here
 * stores the codes and scale codes of the same round trip. */
#include <math.h>
#include "quant/internal.h"

static uint32_t bits_of(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float float_of(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

float lt__e4m3_to_float(uint8_t v) {
  float sign = (v & 0x80) ? -1.0f : 1.0f;
  int e = (v >> 3) & 0xf, m = v & 7;
  if (e == 15 && m == 7) return NAN;
  if (e == 0) return sign * ldexpf((float)m, -9); /* subnormal: m * 2^-9 */
  return sign * ldexpf((float)(8 + m), e - 10);   /* (1 + m/8) * 2^(e - 7) */
}

/* MLX's ToFP8: the magnitude's bits rebiased and rounded to 3 mantissa bits
 * (to nearest even), below 2^-6 rounded to a multiple of 2^-9 by a float
 * addition, and everything at or past 448 (NaN and inf too) to 448. */
uint8_t lt__float_to_e4m3(float f) {
  uint32_t u = bits_of(f), sign = u & 0x80000000u, a = u ^ sign;
  uint8_t r;
  if (a >= (543u << 21)) { /* 448 */
    r = 0x7e;
  } else if (a < (121u << 23)) { /* 2^-6 */
    r = (uint8_t)(bits_of(float_of(a) + float_of(141u << 23)) - (141u << 23));
  } else {
    uint32_t mant_odd = (a >> 20) & 1;
    a += ((uint32_t)(7 - 127) << 23) + 0x7ffff + mant_odd;
    r = (uint8_t)(a >> 20);
  }
  return (uint8_t)(r | (sign >> 24));
}

static const float fp4_values[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                     -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

float lt__e2m1_to_float(uint8_t v) { return fp4_values[v & 0xf]; }

/* MLX's to_fp4_e2m1: the thresholds between the values, ties to the even code. */
uint8_t lt__float_to_e2m1(float f) {
  if (isnan(f)) return 0x7;
  uint8_t sign = signbit(f) ? 0x8 : 0x0, c;
  float x = fabsf(f);
  if (x > 5.0f)
    c = 7;
  else if (x >= 3.5f)
    c = 6;
  else if (x > 2.5f)
    c = 5;
  else if (x >= 1.75f)
    c = 4;
  else if (x > 1.25f)
    c = 3;
  else if (x >= 0.75f)
    c = 2;
  else if (x > 0.25f)
    c = 1;
  else
    c = 0;
  return (uint8_t)(c | sign);
}

/* MLX decodes E8M0 as the bfloat16 with bits v << 7: 2^(v - 127), with 0
 * read as 0x40 (2^-127) and 255 as infinity. */
float lt__e8m0_to_float(uint8_t v) {
  if (v == 0) return ldexpf(1.0f, -127);
  if (v == 255) return INFINITY;
  return ldexpf(1.0f, v - 127);
}

/* MLX rounds log2 to the nearest integer, clamps to [-127, 127] and steps up
 * once when that power is below f: the result is the smallest power of two
 * >= f, which frexp gives exactly (m == 0.5: f is itself a power of two). */
uint8_t lt__float_to_e8m0_up(float f) {
  if (!isfinite(f)) return 0xff;
  if (f < 0) return 0;
  if (f == 0) return 127; /* an all-zero group: scale 1 (what MLX's weight path stores) */
  int e;
  float m = frexpf(f, &e);
  int n = m == 0.5f ? e - 1 : e;
  n = n < -127 ? -127 : n > 127 ? 127 : n;
  return (uint8_t)(n + 127);
}

/* ---- one group ---- */

/* The scale code and scale of a group, from max|x| as MLX computes it
 * (std::max from -inf, so a NaN value is passed over). */
static void group_scale(const float *x, int n, lt_quant_mode mode, uint8_t *code, float *scale) {
  float amax = -INFINITY;
  for (int j = 0; j < n; j++) amax = amax < fabsf(x[j]) ? fabsf(x[j]) : amax;
  if (mode == LT_QUANT_NVFP4) {
    *code = lt__float_to_e4m3(amax / 6.0f);
    *scale = lt__e4m3_to_float(*code);
  } else {
    *code = lt__float_to_e8m0_up(amax / 448.0f);
    *scale = lt__e8m0_to_float(*code);
  }
}

static uint8_t value_code(float v, lt_quant_mode mode) {
  return mode == LT_QUANT_NVFP4 ? lt__float_to_e2m1(v) : lt__float_to_e4m3(v);
}

static float code_value(uint8_t c, lt_quant_mode mode) {
  return mode == LT_QUANT_NVFP4 ? lt__e2m1_to_float(c) : lt__e4m3_to_float(c);
}

/* codes[j] and *scale_code of one group of x; out[j] (when not NULL) the
 * dequantized values scale * value. */
static void fp_group(const float *x, int n, lt_quant_mode mode, uint8_t *codes, uint8_t *scale_code, float *out) {
  float scale;
  group_scale(x, n, mode, scale_code, &scale);
  for (int j = 0; j < n; j++) {
    uint8_t c = value_code(scale == 0 ? 0.0f : x[j] / scale, mode);
    if (codes) codes[j] = c;
    if (out) out[j] = scale * code_value(c, mode);
  }
}

/* ---- weights ---- */

/* Row r of w (in floats) into packed words and scale codes. */
void lt__fp_quantize_row(const float *w, int64_t in, lt_quant_mode mode, uint32_t *words, uint8_t *scales) {
  int gs = mode == LT_QUANT_NVFP4 ? 16 : 32, bits = mode == LT_QUANT_NVFP4 ? 4 : 8, per_word = 32 / bits;
  uint8_t codes[32];
  for (int64_t g = 0; g < in / gs; g++) {
    fp_group(w + g * gs, gs, mode, codes, &scales[g], NULL);
    for (int j = 0; j < gs; j += per_word) {
      uint32_t word = 0;
      for (int i = 0; i < per_word; i++) word |= (uint32_t)codes[j + i] << (i * bits);
      words[(g * gs + j) / per_word] = word;
    }
  }
}

/* ---- activations ---- */

/* The straight-through estimator: the gradient of x is g. */
static lt_status qdq_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gout, lt_tensor **gin) {
  (void)ctx, (void)n;
  gin[0] = lt_tensor_retain(gout[0]);
  return LT_OK;
}

static lt_status check_qdq(lt_ctx *ctx, const lt_tensor *x, lt_quant_mode mode) {
  if (mode != LT_QUANT_MXFP8 && mode != LT_QUANT_NVFP4)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_dequantize: mode must be 'mxfp8' or 'nvfp4', got '%s'",
                       (unsigned)mode < LT_QUANT_MODE_COUNT ? lt_quant_mode_name(mode) : "?");
  if (!lt_dtype_info(x->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_dequantize: x must be a float tensor, got %s",
                       lt_dtype_info(x->dtype)->name);
  int gs = mode == LT_QUANT_NVFP4 ? 16 : 32;
  if (x->ndim == 0) return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_dequantize: x must have at least 1 dimension");
  if (x->shape[x->ndim - 1] % gs)
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "quantize_dequantize: the last axis (%lld) must be divisible by %s's group size %d",
                       (long long)x->shape[x->ndim - 1], lt_quant_mode_name(mode), gs);
  return LT_OK;
}

lt_status lt_quantize_dequantize(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_quant_mode mode) {
  *out = NULL;
  lt_status st = check_qdq(ctx, x, mode);
  if (st) return st;
  lt_tensor *xs = NULL, *y = NULL;
  st = lt__as_f32(ctx, &xs, x);
  if (!st) st = lt_tensor_new(ctx, &y, LT_FLOAT32, x->ndim, x->shape);
  if (!st) {
    int gs = mode == LT_QUANT_NVFP4 ? 16 : 32;
    const float *xp = lt_tensor_data(xs);
    float *yp = lt_tensor_data(y);
    int64_t groups = lt_tensor_size(x) / gs;
    int threads = lt_tensor_size(x) >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
    LT_PARALLEL_FOR(threads, g, groups, {
      uint8_t code;
      fp_group(xp + g * gs, gs, mode, NULL, &code, yp + g * gs);
    });
    st = lt__to_dtype(ctx, &y, lt__float_result(x->dtype));
  }
  lt_tensor_release(xs);
  if (st) {
    lt_tensor_release(y);
    return st;
  }
  *out = y;
  return lt__record(ctx, NULL, LT_OP("quantize_dequantize", qdq_backward, lt_no_attrs, 0), out, 1, &x);
}
