/* Batched, broadcasting matrix product (NumPy matmul rules) through lattice's
 * sgemm (kernels/sgemm.h), or OpenBLAS dgemm for float64.
 * a (..., M, K) @ b (..., K, N) -> out (broadcast(...), M, N). A 1-D a is read as
 * (1, K) and a 1-D b as (K, 1); the added axis is dropped from the result.
 * Inputs whose last two axes are row-major or column-major (a transposed view) go
 * to the GEMM as they are (NoTrans / Trans with their leading dimension); only other
 * layouts and float16/bfloat16 are staged into a contiguous float32 copy. When
 * either operand is float64 both go to dgemm with the same layout logic and
 * the result is float64. Integer inputs are rejected: a float product of
 * integers would silently round. */
#include <cblas.h>
#include <limits.h>
#include <string.h>
#include "kernels/sgemm.h"
#include "ops/internal.h"
#include "runtime/blas_call.h"

/* One operand as the GEMM sees it: a tensor of the compute dtype (the input or
 * its staged copy), its storage order, leading dimension and strides over the
 * output's batch axes. */
typedef struct operand {
  lt_tensor *t;
  int trans;
  int64_t ld;
  int64_t bstride[LT_MAX_DIMS]; /* 0 on broadcast batch axes */
} operand;

/* The output's batch axes, matrix sizes and compute dtype (float32: sgemm, float64: dgemm). */
typedef struct problem {
  int nb;
  int64_t bshape[LT_MAX_DIMS];
  int64_t nbatch, m, n, k;
  lt_dtype cdt;
} problem;

/* An untracked view of x reshaped to `shape` (x copied when not contiguous). */
static lt_status view_as(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape) {
  lt_tensor *src = NULL;
  lt_status st = lt__as_contig(ctx, &src, x, x->dtype);
  if (!st) st = lt__view(ctx, out, src, ndim, shape, NULL, src->offset);
  lt_tensor_release(src);
  return st;
}

/* An untracked view with the last two axes swapped: the transpose sgemm reads for free. */
static lt_status swap_last(lt_ctx *ctx, lt_tensor **out, const lt_tensor *x) {
  int nd = x->ndim;
  int64_t shape[LT_MAX_DIMS], strides[LT_MAX_DIMS];
  memcpy(shape, x->shape, sizeof shape);
  memcpy(strides, x->strides, sizeof strides);
  shape[nd - 2] = x->shape[nd - 1], shape[nd - 1] = x->shape[nd - 2];
  strides[nd - 2] = x->strides[nd - 1], strides[nd - 1] = x->strides[nd - 2];
  return lt__view(ctx, out, x, nd, shape, strides, x->offset);
}

/* x as a matrix stack: a 1-D a becomes (1, K), a 1-D b becomes (K, 1). Untracked view. */
static lt_status as_matrix(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int is_b) {
  if (x->ndim >= 2) return lt__view(ctx, out, x, x->ndim, x->shape, x->strides, x->offset);
  int64_t k = x->shape[0], s = x->strides[0];
  int64_t shape[2] = {is_b ? k : 1, is_b ? 1 : k}, strides[2] = {is_b ? s : k * s, is_b ? 1 : s};
  return lt__view(ctx, out, x, 2, shape, strides, x->offset);
}

/* How sgemm can read the last two axes of t: row-major (NoTrans) or column-major
 * (Trans), with a leading dimension that fits a BLAS int. 0 when neither. */
static int gemm_layout(const lt_tensor *t, int *trans, int64_t *ld) {
  int nd = t->ndim;
  int64_t r = t->shape[nd - 2], c = t->shape[nd - 1], sr = t->strides[nd - 2], sc = t->strides[nd - 1];
  if ((c <= 1 || sc == 1) && (r <= 1 || sr >= c)) {
    *trans = 0;
    *ld = r <= 1 ? (c > 1 ? c : 1) : sr;
  } else if ((r <= 1 || sr == 1) && (c <= 1 || sc >= r)) {
    *trans = 1;
    *ld = c <= 1 ? (r > 1 ? r : 1) : sc;
  } else {
    return 0;
  }
  return *ld <= INT_MAX;
}

/* Fills op from the matrix stack x: x itself when the GEMM can read it, else a
 * contiguous copy in the compute dtype. Batch strides are aligned to the output's batch axes. */
static lt_status prepare(lt_ctx *ctx, operand *op, lt_tensor *x, const problem *p) {
  if (x->dtype == p->cdt && gemm_layout(x, &op->trans, &op->ld)) {
    op->t = lt_tensor_retain(x);
  } else {
    lt_status st = lt__as_contig(ctx, &op->t, x, p->cdt);
    if (st) return st;
    gemm_layout(op->t, &op->trans, &op->ld);
  }
  int xb = x->ndim - 2;
  for (int i = 0; i < p->nb; i++) {
    int j = i - (p->nb - xb);
    op->bstride[i] = (j < 0 || op->t->shape[j] == 1) ? 0 : op->t->strides[j];
  }
  return LT_OK;
}

/* c (m, n) = a @ b for element offsets oa, ob, oc into the operands and out,
 * in the compute dtype: float32 through lattice's sgemm, float64 through
 * OpenBLAS dgemm (inside lt__blas_begin / lt__blas_end). */
static void gemm(lt_ctx *ctx, lt_dtype cdt, const operand *a, const operand *b, int64_t m, int64_t n, int64_t k,
                 int64_t oa, int64_t ob, void *out, int64_t oc) {
  if (cdt == LT_FLOAT64) {
    CBLAS_TRANSPOSE ta = a->trans ? CblasTrans : CblasNoTrans, tb = b->trans ? CblasTrans : CblasNoTrans;
    cblas_dgemm(CblasRowMajor, ta, tb, (int)m, (int)n, (int)k, 1.0, lt__f64(a->t) + oa, (int)a->ld, lt__f64(b->t) + ob,
                (int)b->ld, 0.0, (double *)out + oc, (int)n);
    return;
  }
  lt__sgemm_args g = {
      a->trans, b->trans,          m, n,   k, 1.0f, lt__f32(a->t) + oa, a->ld, lt__f32(b->t) + ob, b->ld,
      0.0f,     (float *)out + oc, n, NULL};
  lt__sgemm(ctx, &g);
}

/* When b is the same matrix for every batch and a's batch axes step through its
 * rows evenly, the whole batch is one (nbatch*M, K) @ (K, N) product: one big
 * sgemm instead of many small ones (transformer (B,T,C) @ (C,D)). */
static int fold_batch(const operand *a, const operand *b, const problem *p) {
  if (p->nb == 0 || a->trans || p->nbatch * p->m > INT_MAX) return 0;
  int64_t expect = p->m * a->ld;
  for (int i = p->nb - 1; i >= 0; i--) {
    if (b->bstride[i] != 0 && p->bshape[i] != 1) return 0;
    if (p->bshape[i] == 1) continue;
    if (a->bstride[i] != expect) return 0;
    expect *= p->bshape[i];
  }
  return 1;
}

/* Element offsets into a and b of batch entry bi. */
static void batch_offsets(const operand *a, const operand *b, const problem *p, int64_t bi, int64_t *oa, int64_t *ob) {
  int64_t rem = bi;
  *oa = *ob = 0;
  for (int i = p->nb - 1; i >= 0; i--) {
    int64_t idx = rem % p->bshape[i];
    rem /= p->bshape[i];
    *oa += idx * a->bstride[i];
    *ob += idx * b->bstride[i];
  }
}

/* A float32 batch of nbatch products as one lt__sgemm_batch: its entries
 * spread over the threads, one fork and join for all of them. 0 when there
 * is no memory for the list (the caller then loops). */
static int sgemm_batch(lt_ctx *ctx, void *out, const operand *a, const operand *b, const problem *p) {
  size_t bytes = (size_t)p->nbatch * sizeof(lt__sgemm_args);
  lt__sgemm_args *gs = lt_ctx_alloc(ctx, bytes);
  if (!gs) return 0;
  for (int64_t bi = 0; bi < p->nbatch; bi++) {
    int64_t oa, ob;
    batch_offsets(a, b, p, bi, &oa, &ob);
    gs[bi] = (lt__sgemm_args){a->trans,
                              b->trans,
                              p->m,
                              p->n,
                              p->k,
                              1.0f,
                              lt__f32(a->t) + oa,
                              a->ld,
                              lt__f32(b->t) + ob,
                              b->ld,
                              0.0f,
                              (float *)out + bi * p->m * p->n,
                              p->n,
                              NULL};
  }
  lt__sgemm_batch(ctx, gs, p->nbatch);
  lt_ctx_free(ctx, gs, bytes);
  return 1;
}

/* out (nbatch, M, N) contiguous, of the compute dtype, = a @ b over the broadcast batch.
 * float32 batches spread their entries over the threads (lt__sgemm_batch);
 * float64 ones loop, each dgemm threaded by OpenBLAS (running single-threaded
 * OpenBLAS calls from several OpenMP threads at once was measured ~15x
 * slower here, OpenBLAS 0.3.21 pthreads). */
static void run(lt_ctx *ctx, void *out, const operand *a, const operand *b, const problem *p) {
  if (fold_batch(a, b, p)) {
    if (p->cdt == LT_FLOAT64) lt__blas_begin(ctx); /* the thread count and the call as one step */
    gemm(ctx, p->cdt, a, b, p->nbatch * p->m, p->n, p->k, 0, 0, out, 0);
    if (p->cdt == LT_FLOAT64) lt__blas_end();
    return;
  }
  if (p->cdt == LT_FLOAT32 && p->nbatch > 1 && sgemm_batch(ctx, out, a, b, p)) return;
  if (p->cdt == LT_FLOAT64) lt__blas_begin(ctx);
  for (int64_t bi = 0; bi < p->nbatch; bi++) {
    int64_t oa, ob;
    batch_offsets(a, b, p, bi, &oa, &ob);
    gemm(ctx, p->cdt, a, b, p->m, p->n, p->k, oa, ob, out, bi * p->m * p->n);
  }
  if (p->cdt == LT_FLOAT64) lt__blas_end();
}

/* ---- argument checks ---- */

static lt_status check_dtype(lt_ctx *ctx, const lt_tensor *x) {
  if (lt_dtype_info(x->dtype)->is_float) return LT_OK;
  const char *kind = x->dtype == LT_BOOL ? "boolean" : "integer";
  return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: %s inputs are not supported, got %s", kind,
                     lt_dtype_info(x->dtype)->name);
}

/* Sizes and broadcast batch shape of am (..., M, K) @ bm (..., K, N); a and b are
 * the caller's operands, named in messages. */
static lt_status plan(lt_ctx *ctx, problem *p, const lt_tensor *a, const lt_tensor *b, const lt_tensor *am,
                      const lt_tensor *bm) {
  char sa[LT_SHAPE_STR_MAX], sb[LT_SHAPE_STR_MAX];
  int na = am->ndim - 2, nb = bm->ndim - 2;
  p->m = am->shape[na], p->k = am->shape[na + 1], p->n = bm->shape[nb + 1];
  if (bm->shape[nb] != p->k)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: shapes %s and %s do not align: %lld ~= %lld",
                       lt__shape_str(sa, sizeof sa, a->ndim, a->shape), lt__shape_str(sb, sizeof sb, b->ndim, b->shape),
                       (long long)p->k, (long long)bm->shape[nb]);
  p->nb = na > nb ? na : nb;
  for (int i = 0; i < p->nb; i++) {
    int ia = i - (p->nb - na), ib = i - (p->nb - nb);
    int64_t da = ia >= 0 ? am->shape[ia] : 1, db = ib >= 0 ? bm->shape[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: batch shapes %s and %s cannot be broadcast",
                         lt__shape_str(sa, sizeof sa, na, am->shape), lt__shape_str(sb, sizeof sb, nb, bm->shape));
    p->bshape[i] = da == 1 ? db : da;
  }
  p->nbatch = lt__numel(p->nb, p->bshape);
  p->cdt = a->dtype == LT_FLOAT64 || b->dtype == LT_FLOAT64 ? LT_FLOAT64 : LT_FLOAT32;
  if (p->m > INT_MAX || p->n > INT_MAX || p->k > INT_MAX)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: a dimension of %s @ %s is too large for BLAS",
                       lt__shape_str(sa, sizeof sa, a->ndim, a->shape),
                       lt__shape_str(sb, sizeof sb, b->ndim, b->shape));
  return LT_OK;
}

/* ---- forward ---- */

/* out = am @ bm as a contiguous tensor of the compute dtype, shape (batch..., [M], [N]). */
static lt_status compute(lt_ctx *ctx, lt_tensor **out, const problem *p, lt_tensor *am, lt_tensor *bm, int drop_m,
                         int drop_n) {
  int64_t shape[LT_MAX_DIMS];
  int nd = p->nb;
  memcpy(shape, p->bshape, (size_t)p->nb * sizeof *shape);
  if (!drop_m) shape[nd++] = p->m;
  if (!drop_n) shape[nd++] = p->n;
  if (p->k == 0) return lt_tensor_zeros(ctx, out, p->cdt, nd, shape);
  lt_status st = lt_tensor_new(ctx, out, p->cdt, nd, shape);
  if (st || lt_tensor_size(*out) == 0) return st;
  operand oa = {0}, ob = {0};
  st = prepare(ctx, &oa, am, p);
  if (!st) st = prepare(ctx, &ob, bm, p);
  if (!st) run(ctx, lt_tensor_data(*out), &oa, &ob, p);
  lt_tensor_release(oa.t);
  lt_tensor_release(ob.t);
  if (st) {
    lt_tensor_release(*out);
    *out = NULL;
  }
  return st;
}

static lt_status matmul_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin);

lt_status lt_matmul(lt_ctx *ctx, lt_tensor **out, lt_tensor *a, lt_tensor *b) {
  *out = NULL;
  char sa[LT_SHAPE_STR_MAX], sb[LT_SHAPE_STR_MAX];
  if (a->ndim == 0 || b->ndim == 0)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "matmul: operands must have at least 1 dimension, got shapes %s and %s",
                       lt__shape_str(sa, sizeof sa, a->ndim, a->shape),
                       lt__shape_str(sb, sizeof sb, b->ndim, b->shape));
  lt_status st = check_dtype(ctx, a);
  if (!st) st = check_dtype(ctx, b);
  if (st) return st;
  lt_tensor *am = NULL, *bm = NULL;
  problem p;
  st = as_matrix(ctx, &am, a, 0);
  if (!st) st = as_matrix(ctx, &bm, b, 1);
  if (!st) st = plan(ctx, &p, a, b, am, bm);
  if (!st) st = compute(ctx, out, &p, am, bm, a->ndim == 1, b->ndim == 1);
  lt_tensor_release(am);
  lt_tensor_release(bm);
  /* float16 @ float16 stays float16; mixed 16-bit types meet in float32, as in binary ops
   * (and anything with float64 is float64: computed so) */
  if (!st && a->dtype == b->dtype) st = lt__to_dtype(ctx, out, a->dtype);
  if (st) return st;
  lt_tensor *ins[2] = {a, b};
  return lt__record(ctx, NULL, LT_OP("matmul", matmul_backward, lt_no_attrs, 0), out, 2, ins);
}

/* ---- backward: dA = g @ B^T, dB = A^T @ g, summed over broadcast batch axes ---- */

/* t (..., R, C) with its batch and row axes merged into (rows, C) as a view, or
 * *out = NULL when the strides do not allow it. */
static lt_status fold_rows(lt_ctx *ctx, lt_tensor **out, const lt_tensor *t) {
  *out = NULL;
  int nd = t->ndim;
  int64_t c = t->shape[nd - 1], rows = lt__numel(nd - 1, t->shape), rstride = -1, expect = -1;
  if (c > 1 && t->strides[nd - 1] != 1) return LT_OK;
  for (int i = nd - 2; i >= 0; i--) {
    if (t->shape[i] == 1) continue;
    if (rstride < 0)
      rstride = expect = t->strides[i];
    else if (t->strides[i] != expect)
      return LT_OK;
    expect *= t->shape[i];
  }
  if (rstride < 0) rstride = c;
  if (rstride < c || rows > INT_MAX) return LT_OK;
  int64_t shape[2] = {rows, c}, strides[2] = {rstride, 1};
  return lt__view(ctx, out, t, 2, shape, strides, t->offset);
}

/* full (batch..., R, C) summed down to like (..., R, C), reshaped to `target`'s
 * shape and cast to its dtype; a new reference in *out. */
static lt_status reduce_to(lt_ctx *ctx, lt_tensor **out, lt_tensor *full, const lt_tensor *like,
                           const lt_tensor *target) {
  lt_tensor *sum = NULL, *shaped = NULL;
  int same = full->ndim == like->ndim && !memcmp(full->shape, like->shape, (size_t)like->ndim * sizeof(int64_t));
  lt_status st =
      same ? (sum = lt_tensor_retain(full), LT_OK) : lt__sum_to_shape(ctx, &sum, full, like->ndim, like->shape);
  if (!st) st = view_as(ctx, &shaped, sum, target->ndim, target->shape);
  lt_tensor_release(sum);
  if (!st && shaped->dtype != target->dtype) {
    st = lt_astype(ctx, out, shaped, target->dtype);
    lt_tensor_release(shaped);
  } else if (!st) {
    *out = shaped;
  }
  return st;
}

/* dB for a b with no batch axes: A^T @ G with a's and g's batches folded into
 * rows, one sgemm whose sum over the batch happens inside it. *out NULL when the
 * layouts do not fold. */
static lt_status grad_b_folded(lt_ctx *ctx, lt_tensor **out, lt_tensor *am, lt_tensor *gm) {
  lt_tensor *af = NULL, *gf = NULL, *at = NULL;
  *out = NULL;
  lt_status st = fold_rows(ctx, &af, am);
  if (!st && af) st = fold_rows(ctx, &gf, gm);
  if (!st && af && gf) st = swap_last(ctx, &at, af);
  if (!st && at) st = lt_matmul(ctx, out, at, gf);
  lt_tensor_release(af);
  lt_tensor_release(gf);
  lt_tensor_release(at);
  return st;
}

static lt_status matmul_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gouts, lt_tensor **gin) {
  lt_tensor *g = gouts[0];
  lt_tensor *a = n->in[0], *b = n->in[1];
  lt_tensor *am = NULL, *bm = NULL, *gm = NULL, *t = NULL, *full = NULL;
  problem p;
  lt_status st = as_matrix(ctx, &am, a, 0);
  if (!st) st = as_matrix(ctx, &bm, b, 1);
  if (!st) st = plan(ctx, &p, a, b, am, bm);
  if (!st) {
    p.bshape[p.nb] = p.m, p.bshape[p.nb + 1] = p.n; /* g with the dropped axes restored */
    st = view_as(ctx, &gm, g, p.nb + 2, p.bshape);
  }
  if (!st && lt__needs(n, 0)) {
    st = swap_last(ctx, &t, bm);
    if (!st) st = lt_matmul(ctx, &full, gm, t);
    if (!st) st = reduce_to(ctx, &gin[0], full, am, a);
    lt_tensor_release(t), lt_tensor_release(full);
    t = full = NULL;
  }
  if (!st && lt__needs(n, 1)) {
    if (bm->ndim == 2 && gm->ndim > 2) st = grad_b_folded(ctx, &full, am, gm);
    if (!st && !full) st = swap_last(ctx, &t, am);
    if (!st && !full) st = lt_matmul(ctx, &full, t, gm);
    if (!st) st = reduce_to(ctx, &gin[1], full, bm, b);
    lt_tensor_release(t), lt_tensor_release(full);
  }
  lt_tensor_release(am), lt_tensor_release(bm), lt_tensor_release(gm);
  if (st) {
    lt_tensor_release(gin[0]), lt_tensor_release(gin[1]);
    gin[0] = gin[1] = NULL;
  }
  return st;
}
