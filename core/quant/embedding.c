/* Rows of a quantized table (MLX's QuantizedEmbedding): weight (V, D)
 * quantized along D, ids (...) integers in [0, V) -> (..., D), each row
 * dequantized as lt_dequantize would. The table is frozen: nothing records. */
#include "quant/internal.h"

static int is_index_dtype(lt_dtype dt) { return dt == LT_INT32 || dt == LT_INT64 || dt == LT_UINT8; }

static lt_status check_args(lt_ctx *ctx, const lt_qweight *qw, const lt_tensor *ids) {
  lt_status st = lt_qweight_check(ctx, qw, "embedding");
  if (st) return st;
  char s[LT_SHAPE_STR_MAX];
  int64_t shape[LT_MAX_DIMS];
  int nd = lt_qweight_shape(qw, shape);
  if (nd != 2)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: a quantized weight must be 2-D (V,D), got shape %s",
                       lt__shape_str(s, sizeof s, nd, shape));
  if (!is_index_dtype(ids->dtype))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: ids must be integers, got %s", lt_dtype_info(ids->dtype)->name);
  if (ids->ndim + 1 > LT_MAX_DIMS)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: ids have %d dimensions (at most %d)", ids->ndim, LT_MAX_DIMS - 1);
  return LT_OK;
}

static lt_status check_ids(lt_ctx *ctx, const int64_t *id, int64_t n, int64_t vocab) {
  for (int64_t i = 0; i < n; i++)
    if (id[i] < 0 || id[i] >= vocab)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "embedding: id %lld is out of range for %lld embeddings", (long long)id[i],
                         (long long)vocab);
  return LT_OK;
}

lt_status lt_quant_embedding(lt_ctx *ctx, lt_tensor **out, const lt_qweight *qw, lt_tensor *ids) {
  *out = NULL;
  lt_status st = check_args(ctx, qw, ids);
  if (st) return st;
  lt_qweight c = {0};
  lt_tensor *idc = NULL, *y = NULL;
  st = lt__as_contig(ctx, &idc, ids, LT_INT64);
  if (!st) st = lt__qweight_contig(ctx, &c, qw);
  lt__qmat q = st ? (lt__qmat){0} : lt__qmat_of(&c);
  int64_t n = lt_tensor_size(ids), shape[LT_MAX_DIMS];
  if (!st) st = check_ids(ctx, lt_tensor_data(idc), n, q.rows);
  if (!st) {
    memcpy(shape, ids->shape, (size_t)ids->ndim * sizeof *shape);
    shape[ids->ndim] = q.in;
    st = lt_tensor_new(ctx, &y, LT_FLOAT32, ids->ndim + 1, shape);
  }
  if (!st) {
    const int64_t *id = lt_tensor_data(idc);
    float *yp = lt_tensor_data(y);
    int threads = n * q.in >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
    LT_PARALLEL_FOR(threads, i, n, { lt__qdequant_row(&q, id[i], 0, q.in, yp + i * q.in); });
    st = lt__to_dtype(ctx, &y, lt_qweight_dtype(&c));
  }
  lt_tensor_release(idc);
  lt_qweight_release(&c);
  if (st) {
    lt_tensor_release(y);
    return st;
  }
  *out = y;
  return LT_OK;
}
