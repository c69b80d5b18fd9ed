/* MLX's affine quantization of one row (mlx/backend/cpu/quantized.cpp,
 * quantize), in the same float32 operations in the same order, so that the
 * codes, scales and biases are MLX's. Per group of gs values:
 *   scale = max((max - min) / (2^bits - 1), 1e-7), negated unless |min| > |max|
 *   edge  = min when |min| > |max|, else max (the larger-magnitude end)
 *   q0    = rint(edge / scale); when q0 != 0: scale = edge / q0, bias = edge
 *           (so edge is code 0 and zero is code -q0, both exact), else bias 0
 *   q     = clamp(rint((w - bias) / scale), 0, 2^bits - 1)
 * The codes come from the float scale; scales and biases are stored in the
 * weight's dtype afterwards (as MLX's static_cast<T>). */
#include <math.h>
#include "quant/internal.h"

/* std::max and std::min as MLX calls them: the first argument unless the
 * comparison says otherwise (so NaN handling matches too). */
static float max_of(float a, float b) { return a < b ? b : a; }
static float min_of(float a, float b) { return b < a ? b : a; }

/* One group: its codes, scale and bias. */
static void affine_group(const float *w, int gs, int bits, uint8_t *codes, float *scale_out, float *bias_out) {
  float n_bins = (float)((1 << bits) - 1), eps = 1e-7f;
  float w_min = INFINITY, w_max = -INFINITY;
  for (int j = 0; j < gs; j++) {
    w_max = max_of(w_max, w[j]);
    w_min = min_of(w_min, w[j]);
  }
  int mask = fabsf(w_min) > fabsf(w_max);
  float scale = max_of((w_max - w_min) / n_bins, eps);
  scale = mask ? scale : -scale;
  float edge = mask ? w_min : w_max;
  float q0 = rintf(edge / scale), bias = 0;
  if (q0 != 0) {
    scale = edge / q0;
    bias = edge;
  }
  for (int j = 0; j < gs; j++) {
    float q = min_of(max_of(rintf((w[j] - bias) / scale), 0.0f), n_bins);
    codes[j] = (uint8_t)q; /* q is an integer in [0, n_bins] (the caller rejects NaN) */
  }
  *scale_out = scale;
  *bias_out = bias;
}

/* A row of `in` values (in a multiple of gs) into words (in * bits / 32),
 * scales and biases (in / gs, as float). */
void lt__affine_quantize_row(const float *w, int64_t in, int bits, int gs, uint32_t *words, float *scales,
                             float *biases) {
  int per_word = 32 / bits;
  uint8_t codes[128];
  for (int64_t g = 0; g < in / gs; g++) {
    affine_group(w + g * gs, gs, bits, codes, &scales[g], &biases[g]);
    for (int j = 0; j < gs; j += per_word) {
      uint32_t word = 0;
      for (int i = 0; i < per_word; i++) word |= (uint32_t)codes[j + i] << (i * bits);
      words[(g * gs + j) / per_word] = word;
    }
  }
}
