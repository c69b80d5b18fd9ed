/* Packed quantized weights in MLX's layout, and the ops that read them.
 *
 * A weight w (..., in) is quantized in groups of `group_size` consecutive
 * values along its last (input) axis. Three modes, as mx.quantize has them:
 *   affine  bits 2, 4 or 8; group_size 32, 64 or 128; w ~ scale * q + bias
 *           with q unsigned and one scale and bias per group (MLX's affine
 *           quantize exactly: the scale is adjusted so that the group's
 *           larger-magnitude edge, and with it zero, is a code; it may be
 *           negative). scales and biases keep w's float dtype.
 *   mxfp8   bits 8, group_size 32: E4M3 values, one E8M0 (power of two) scale
 *           per group, stored as uint8.
 *   nvfp4   bits 4, group_size 16: E2M1 values, one E4M3 scale per group,
 *           stored as uint8.
 * The codes are packed low bits first into uint32 words: word j of a row
 * holds values j*(32/bits) ... j*(32/bits) + 32/bits - 1, value i of the word
 * in bits [i*bits, (i+1)*bits). docs/quantization.md draws it out.
 *
 * lt_qweight is a plain descriptor of the tensors holding one quantized
 * weight; functions that take one borrow its tensors, lt_quantize_weight
 * fills one with new references that lt_qweight_release drops. */
#ifndef LATTICE_QUANT_H
#define LATTICE_QUANT_H

#include <stddef.h>
#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_quant_mode { LT_QUANT_AFFINE = 0, LT_QUANT_MXFP8, LT_QUANT_NVFP4, LT_QUANT_MODE_COUNT } lt_quant_mode;

typedef struct lt_qweight {
  lt_tensor *w;      /* uint32 (..., in * bits / 32) */
  lt_tensor *scales; /* (..., in / group_size): affine: a float dtype; mxfp8, nvfp4: uint8 */
  lt_tensor *biases; /* affine: scales' shape and dtype; mxfp8, nvfp4: NULL */
  int bits, group_size;
  lt_quant_mode mode;
} lt_qweight;

/* "affine", "mxfp8", "nvfp4"; lt_quant_mode_from_name returns -1 for others. */
const char *lt_quant_mode_name(lt_quant_mode mode);
int lt_quant_mode_from_name(const char *name);
/* Checks bits and group_size for a mode; `fname` prefixes the message. */
lt_status lt_quant_check_config(lt_ctx *ctx, lt_quant_mode mode, int bits, int group_size, const char *fname);

/* Quantizes w (float, at least 2-D, last axis divisible by group_size) into
 * *out (new references). float64 w is quantized as float32. */
lt_status lt_quantize_weight(lt_ctx *ctx, lt_qweight *out, lt_tensor *w, lt_quant_mode mode, int bits, int group_size);
/* Drops the references *qw holds and clears it; safe to call twice. */
void lt_qweight_release(lt_qweight *qw);
/* Checks that the parts agree with each other and with mode, bits and
 * group_size (what a weight loaded from a file must satisfy). */
lt_status lt_qweight_check(lt_ctx *ctx, const lt_qweight *qw, const char *fname);
/* The logical (dequantized) shape: w's leading axes, then the input size. */
int lt_qweight_shape(const lt_qweight *qw, int64_t *shape);
/* The dtype dequantize gives: the scales' dtype for affine, float32 otherwise. */
lt_dtype lt_qweight_dtype(const lt_qweight *qw);
/* Bytes of the packed words, scales and biases. */
size_t lt_qweight_nbytes(const lt_qweight *qw);

/* The dequantized weight (..., in) in lt_qweight_dtype: for affine exactly
 * fl(fl(scale * q) + bias) in float32 (then stored in that dtype), for the
 * fp modes scale * value. */
lt_status lt_dequantize(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw);

/* y = x @ W^T + bias for a 2-D quantized W (out, in): x (..., in), bias
 * (out) or NULL -> y (..., out). Computes in float32 (float64 when x or bias
 * is float64) with W dequantized a tile at a time; the result keeps x's dtype
 * when it is W's. Differentiable in x and bias; W is frozen (a tracked
 * scales or biases tensor is an error). The gradient of x is computed tile by
 * tile too: W is never dequantized whole. */
lt_status lt_quant_linear(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *bias);

/* int8 activations (llama.cpp's numerics for a quantized product): the same
 * y = x @ W^T + bias for an affine 4- or 8-bit W, computed for x of two rows
 * or more with each row rounded to int8 per group of W (x_k ~ d xi_k, d =
 * max |x| / 127 over the group) and integer dot products (AVX512-VNNI), so
 * y is the dequantized W times the rounded x: each output within
 * sum over groups of (d / 2) * sum |w_k| of lt_quant_linear's
 * (docs/quantization.md). One row of x takes lt_quant_linear's kernel. The
 * gradient is lt_quant_linear's (g @ W: the rounding passes straight
 * through). `pack` is W rearranged by lt_quant_pack_int8 (a uint8 tensor the
 * caller keeps beside W and rebuilds when W changes), or NULL for one made for
 * this call. Results are the same bits on every ISA and thread count. */
lt_status lt_quant_linear_int8(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const lt_qweight *qw, lt_tensor *pack,
                               lt_tensor *bias);
lt_status lt_quant_pack_int8(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw);

/* Rows of a 2-D quantized table (V, D) for integer ids (...) -> (..., D),
 * dequantized; not differentiable (the table is frozen). */
lt_status lt_quant_embedding(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw, lt_tensor *ids);

/* Activation quantization: x (..., n) quantized in groups along the last
 * axis with mode (mxfp8 or nvfp4) and dequantized again, exactly as MLX's
 * CPU emulation does (docs/quantization.md). The gradient passes straight
 * through (d out / d x = 1). */
lt_status lt_quantize_dequantize(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_quant_mode mode);

#ifdef __cplusplus
}
#endif

#endif
