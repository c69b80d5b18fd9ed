/* The quantized weight as a value: the modes and their configurations, the
 * checks that its parts agree, quantize_weight and dequantize. */
#include <math.h>
#include "quant/internal.h"

static const char *const mode_names[LT_QUANT_MODE_COUNT] = {"affine", "mxfp8", "nvfp4"};

const char *lt_quant_mode_name(lt_quant_mode mode) { return mode_names[mode]; }

int lt_quant_mode_from_name(const char *name) {
  for (int m = 0; m < LT_QUANT_MODE_COUNT; m++)
    if (strcmp(name, mode_names[m]) == 0) return m;
  return -1;
}

lt_status lt_quant_check_config(lt_ctx *ctx, lt_quant_mode mode, int bits, int group_size, const char *fname) {
  if ((unsigned)mode >= LT_QUANT_MODE_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown mode %d", fname, mode);
  if (mode == LT_QUANT_AFFINE) {
    if (bits != 2 && bits != 4 && bits != 8)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: bits must be 2, 4 or 8 for mode 'affine', got %d", fname, bits);
    if (group_size != 32 && group_size != 64 && group_size != 128)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: group_size must be 32, 64 or 128 for mode 'affine', got %d", fname,
                         group_size);
    return LT_OK;
  }
  int want_bits = mode == LT_QUANT_MXFP8 ? 8 : 4, want_gs = mode == LT_QUANT_MXFP8 ? 32 : 16;
  if (bits != want_bits || group_size != want_gs)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mode '%s' takes bits %d and group_size %d, got bits %d and group_size %d",
                       fname, mode_names[mode], want_bits, want_gs, bits, group_size);
  return LT_OK;
}

void lt_qweight_release(lt_qweight *qw) {
  lt_tensor_release(qw->w), lt_tensor_release(qw->scales), lt_tensor_release(qw->biases);
  *qw = (lt_qweight){0};
}

static int64_t words_per_row(const lt_qweight *qw) { return qw->w->shape[qw->w->ndim - 1]; }

int lt_qweight_shape(const lt_qweight *qw, int64_t *shape) {
  int nd = qw->w->ndim;
  memcpy(shape, qw->w->shape, (size_t)nd * sizeof *shape);
  shape[nd - 1] = words_per_row(qw) * 32 / qw->bits;
  return nd;
}

lt_dtype lt_qweight_dtype(const lt_qweight *qw) { return qw->mode == LT_QUANT_AFFINE ? qw->scales->dtype : LT_FLOAT32; }

size_t lt_qweight_nbytes(const lt_qweight *qw) {
  size_t n = 0;
  const lt_tensor *parts[3] = {qw->w, qw->scales, qw->biases};
  for (int k = 0; k < 3; k++)
    if (parts[k]) n += (size_t)lt_tensor_size(parts[k]) * lt_dtype_info(parts[k]->dtype)->size;
  return n;
}

/* ---- checks ---- */

static lt_status check_part_shape(lt_ctx *ctx, const lt_tensor *t, const lt_tensor *w, int64_t groups, const char *what,
                                  const char *fname) {
  int ok = t->ndim == w->ndim && t->shape[t->ndim - 1] == groups;
  for (int a = 0; ok && a < w->ndim - 1; a++) ok = t->shape[a] == w->shape[a];
  if (ok) return LT_OK;
  char got[LT_SHAPE_STR_MAX], want[LT_SHAPE_STR_MAX];
  int64_t shape[LT_MAX_DIMS];
  memcpy(shape, w->shape, (size_t)w->ndim * sizeof *shape);
  shape[w->ndim - 1] = groups;
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s have shape %s, expected %s", fname, what,
                     lt__shape_str(got, sizeof got, t->ndim, t->shape),
                     lt__shape_str(want, sizeof want, w->ndim, shape));
}

/* scales (and biases) of the dtype the mode stores. */
static lt_status check_part_dtypes(lt_ctx *ctx, const lt_qweight *qw, const char *fname) {
  const char *sname = lt_dtype_info(qw->scales->dtype)->name;
  if (qw->mode != LT_QUANT_AFFINE) {
    if (qw->scales->dtype != LT_UINT8)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mode '%s' keeps its scales as uint8, got %s", fname,
                         mode_names[qw->mode], sname);
    if (qw->biases) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mode '%s' has no biases", fname, mode_names[qw->mode]);
    return LT_OK;
  }
  lt_dtype sdt = qw->scales->dtype;
  if (sdt != LT_FLOAT32 && sdt != LT_FLOAT16 && sdt != LT_BFLOAT16)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: scales must be float32, float16 or bfloat16, got %s", fname, sname);
  if (!qw->biases) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: mode 'affine' needs biases", fname);
  if (qw->biases->dtype != sdt)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: biases are %s, scales %s", fname, lt_dtype_info(qw->biases->dtype)->name,
                       sname);
  return LT_OK;
}

lt_status lt_qweight_check(lt_ctx *ctx, const lt_qweight *qw, const char *fname) {
  char s[LT_SHAPE_STR_MAX];
  lt_status st = lt_quant_check_config(ctx, qw->mode, qw->bits, qw->group_size, fname);
  if (st) return st;
  if (!qw->w || !qw->scales) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the weight or its scales are missing", fname);
  const lt_tensor *w = qw->w;
  if (w->dtype != LT_UINT32 || w->ndim < 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the packed weight must be uint32 with at least 2 dimensions, got %s %s",
                       fname, lt_dtype_info(w->dtype)->name, lt__shape_str(s, sizeof s, w->ndim, w->shape));
  int64_t in = words_per_row(qw) * 32 / qw->bits;
  if (in % qw->group_size)
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "%s: the packed weight holds %lld values per row, not a multiple of group_size %d", fname,
                       (long long)in, qw->group_size);
  st = check_part_dtypes(ctx, qw, fname);
  if (!st) st = check_part_shape(ctx, qw->scales, w, in / qw->group_size, "scales", fname);
  if (!st && qw->biases) st = check_part_shape(ctx, qw->biases, w, in / qw->group_size, "biases", fname);
  return st;
}

lt_status lt__qweight_contig(lt_ctx *ctx, lt_qweight *out, const lt_qweight *qw) {
  *out = (lt_qweight){.bits = qw->bits, .group_size = qw->group_size, .mode = qw->mode};
  lt_status st = lt__as_contig(ctx, &out->w, qw->w, qw->w->dtype);
  if (!st) st = lt__as_contig(ctx, &out->scales, qw->scales, qw->scales->dtype);
  if (!st && qw->biases) st = lt__as_contig(ctx, &out->biases, qw->biases, qw->biases->dtype);
  if (st) lt_qweight_release(out);
  return st;
}

lt__qmat lt__qmat_of(const lt_qweight *qw) {
  int64_t words = words_per_row(qw), in = words * 32 / qw->bits;
  return (lt__qmat){
      .w = lt_tensor_data(qw->w),
      .scales = lt_tensor_data(qw->scales),
      .biases = qw->biases ? lt_tensor_data(qw->biases) : NULL,
      .sdt = qw->scales->dtype,
      .bits = qw->bits,
      .group_size = qw->group_size,
      .mode = qw->mode,
      .rows = words ? lt_tensor_size(qw->w) / words : lt__numel(qw->w->ndim - 1, qw->w->shape),
      .in = in,
      .words = words,
      .groups = in / qw->group_size,
  };
}

/* ---- quantize ---- */

static lt_status check_weight(lt_ctx *ctx, const lt_tensor *w, int group_size) {
  char s[LT_SHAPE_STR_MAX];
  if (!lt_dtype_info(w->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_weight: w must be a float tensor, got %s",
                       lt_dtype_info(w->dtype)->name);
  if (w->ndim < 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_weight: w must have at least 2 dimensions, got shape %s",
                       lt__shape_str(s, sizeof s, w->ndim, w->shape));
  int64_t in = w->shape[w->ndim - 1];
  if (in % group_size)
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "quantize_weight: the input dimension (the last axis, %lld) is not divisible by group_size %d",
                       (long long)in, group_size);
  return LT_OK;
}

/* MLX would pack garbage codes for NaN and infinities: an error instead. */
static lt_status check_finite(lt_ctx *ctx, const float *w, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(w[i]))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "quantize_weight: w holds %s at flat index %lld", isnan(w[i]) ? "nan" : "inf",
                         (long long)i);
  return LT_OK;
}

/* New parts for a weight of w's shape: words, and scales (and biases) of dtype sdt. */
static lt_status new_parts(lt_ctx *ctx, lt_qweight *qw, const lt_tensor *w, lt_dtype sdt) {
  int64_t shape[LT_MAX_DIMS], in = w->shape[w->ndim - 1];
  memcpy(shape, w->shape, (size_t)w->ndim * sizeof *shape);
  shape[w->ndim - 1] = in * qw->bits / 32;
  lt_status st = lt_tensor_new(ctx, &qw->w, LT_UINT32, w->ndim, shape);
  shape[w->ndim - 1] = in / qw->group_size;
  if (!st) st = lt_tensor_new(ctx, &qw->scales, sdt, w->ndim, shape);
  if (!st && qw->mode == LT_QUANT_AFFINE) st = lt_tensor_new(ctx, &qw->biases, sdt, w->ndim, shape);
  return st;
}

/* Quantizes every row of wf (rows x in float32) into qw's parts; affine
 * scales and biases go through float32 (fs, fb) on their way to sdt. */
static void quantize_rows(lt_ctx *ctx, lt_qweight *qw, const float *wf, int64_t rows, int64_t in, float *fs,
                          float *fb) {
  int64_t words = in * qw->bits / 32, groups = in / qw->group_size;
  uint32_t *wp = lt_tensor_data(qw->w);
  int threads = rows * in >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  if (qw->mode == LT_QUANT_AFFINE) {
    LT_PARALLEL_FOR(threads, r, rows, {
      lt__affine_quantize_row(wf + r * in, in, qw->bits, qw->group_size, wp + r * words, fs + r * groups,
                              fb + r * groups);
    });
  } else {
    uint8_t *sp = lt_tensor_data(qw->scales);
    LT_PARALLEL_FOR(threads, r, rows,
                    { lt__fp_quantize_row(wf + r * in, in, qw->mode, wp + r * words, sp + r * groups); });
  }
}

lt_status lt_quantize_weight(lt_ctx *ctx, lt_qweight *out, lt_tensor *w, lt_quant_mode mode, int bits, int group_size) {
  *out = (lt_qweight){.bits = bits, .group_size = group_size, .mode = mode};
  lt_status st = lt_quant_check_config(ctx, mode, bits, group_size, "quantize_weight");
  if (!st) st = check_weight(ctx, w, group_size);
  if (st) return st;
  lt_dtype sdt = mode != LT_QUANT_AFFINE ? LT_UINT8 : w->dtype == LT_FLOAT64 ? LT_FLOAT32 : w->dtype;
  int64_t in = w->shape[w->ndim - 1], rows = lt__numel(w->ndim - 1, w->shape), ng = rows * (in / group_size);
  lt_tensor *wf = NULL, *fs = NULL, *fb = NULL; /* float32 staging of w, scales and biases */
  st = lt__as_f32(ctx, &wf, w);
  if (!st) st = check_finite(ctx, lt_tensor_data(wf), lt_tensor_size(wf));
  if (!st) st = new_parts(ctx, out, w, sdt);
  if (!st && mode == LT_QUANT_AFFINE) st = lt_tensor_new(ctx, &fs, LT_FLOAT32, 1, &ng);
  if (!st && mode == LT_QUANT_AFFINE) st = lt_tensor_new(ctx, &fb, LT_FLOAT32, 1, &ng);
  if (!st) {
    quantize_rows(ctx, out, lt_tensor_data(wf), rows, in, fs ? lt_tensor_data(fs) : NULL,
                  fb ? lt_tensor_data(fb) : NULL);
    if (fs) lt_dtype_convert(lt_tensor_data(out->scales), sdt, lt_tensor_data(fs), LT_FLOAT32, ng);
    if (fb) lt_dtype_convert(lt_tensor_data(out->biases), sdt, lt_tensor_data(fb), LT_FLOAT32, ng);
  }
  lt_tensor_release(wf), lt_tensor_release(fs), lt_tensor_release(fb);
  if (st) lt_qweight_release(out);
  return st;
}

/* ---- dequantize ---- */

lt_status lt_dequantize(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw) {
  *out = NULL;
  lt_qweight c;
  lt_status st = lt_qweight_check(ctx, qw, "dequantize");
  if (st) return st;
  st = lt__qweight_contig(ctx, &c, qw);
  if (st) return st;
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_qweight_shape(&c, shape);
  lt_tensor *y = NULL;
  st = lt_tensor_new(ctx, &y, LT_FLOAT32, nd, shape);
  if (!st) {
    lt__qmat q = lt__qmat_of(&c);
    float *yp = lt_tensor_data(y);
    int threads = q.rows * q.in >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
    LT_PARALLEL_FOR(threads, r, q.rows, { lt__qdequant_row(&q, r, 0, q.in, yp + r * q.in); });
    st = lt__to_dtype(ctx, &y, lt_qweight_dtype(&c));
  }
  lt_qweight_release(&c);
  if (st) {
    lt_tensor_release(y);
    return st;
  }
  *out = y;
  return LT_OK;
}
