/* Kernel relations (lattice/sparse.h): the output support of each kind, and
 * the output-stationary index idx (n_out, K) with its transpose idxT (n_in, K).
 *
 * Coordinates are indices on their own lattice (the seed's convention): a
 * stride-s conv maps input row p to output floor(p / s) and reads, for output
 * o and offset d_k, the input o s + d_k - padding; a transposed conv maps input
 * p to outputs p s + d_k - padding on the finer lattice; a generative one the
 * same without padding, onto every output reached; a submanifold conv keeps the
 * input's support and reads o + d_k. New supports list their rows in the order
 * first seen (input rows in order, offsets in kernel-id order), duplicates
 * merged. idx is filled in parallel from a brick index of the input
 * (sparse/bricks.h), every entry written once: deterministic. */
#include <stdlib.h>
#include <string.h>
#include "runtime/parallel.h"
#include "sparse/bricks.h"

/* ---- kernel offsets ---- */

static int axis_offsets(int size, int dilation, int *out) {
  for (int i = 0; i < size; i++) out[i] = (size % 2 ? i - size / 2 : i) * dilation;
  return size;
}

static int make_offsets(const lt_kernel_spec *spec, int (*off)[3]) {
  int ax[3][LT_KERNEL_MAX];
  for (int a = 0; a < 3; a++) axis_offsets(spec->size[a], spec->dilation[a], ax[a]);
  int k = 0;
  for (int x = 0; x < spec->size[0]; x++)
    for (int y = 0; y < spec->size[1]; y++)
      for (int z = 0; z < spec->size[2]; z++, k++) off[k][0] = ax[0][x], off[k][1] = ax[1][y], off[k][2] = ax[2][z];
  return k;
}

static lt_status check_spec(lt_ctx *ctx, lt_relation_kind kind, const lt_kernel_spec *s, const char *op) {
  for (int a = 0; a < 3; a++) {
    if (s->size[a] < 1 || s->size[a] > LT_KERNEL_MAX)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: kernel_size must be in 1..%d, got %d", op, LT_KERNEL_MAX, s->size[a]);
    if (s->stride[a] < 1) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: stride must be positive, got %d", op, s->stride[a]);
    if (s->dilation[a] < 1)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: dilation must be positive, got %d", op, s->dilation[a]);
    if ((int64_t)(s->size[a] - 1) * s->dilation[a] > INT32_MAX) /* the offsets are int */
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: dilation %d is too large for kernel_size %d", op, s->dilation[a],
                         s->size[a]);
    if (s->padding[a] < 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: padding must be non-negative, got %d", op, s->padding[a]);
    if (kind == LT_RELATION_SUBM && s->size[a] % 2 == 0)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: a submanifold kernel_size must be odd, got %d", op, s->size[a]);
  }
  return LT_OK;
}

/* ---- coordinates ---- */

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

static int fits(int64_t v) { return v >= INT32_MIN && v <= INT32_MAX; }

/* The input coordinate that output `o` reads at offset `d` (0 when there is
 * none: outside int32, or not on the input lattice). */
static int input_at(lt_relation_kind kind, const lt_kernel_spec *s, const int32_t *o, const int *d, int32_t *in) {
  in[0] = o[0];
  for (int a = 0; a < 3; a++) {
    int64_t v;
    if (kind == LT_RELATION_SUBM) {
      v = (int64_t)o[a + 1] + d[a];
    } else if (kind == LT_RELATION_CONV) {
      v = (int64_t)o[a + 1] * s->stride[a] + d[a] - s->padding[a];
    } else {
      int64_t num = (int64_t)o[a + 1] - d[a] + (kind == LT_RELATION_TRANSPOSED ? s->padding[a] : 0);
      if (num % s->stride[a]) return 0;
      v = num / s->stride[a];
    }
    if (!fits(v)) return 0;
    in[a + 1] = (int32_t)v;
  }
  return 1;
}

/* The output coordinate input `p` reaches at offset `d` (conv: d unused).
 * Returns the axis (1..3) whose value leaves int32, its value in *bad, or 0. */
static int output_of(lt_relation_kind kind, const lt_kernel_spec *s, const int32_t *p, const int *d, int32_t *o,
                     int64_t *bad) {
  o[0] = p[0];
  for (int a = 0; a < 3; a++) {
    int64_t v = kind == LT_RELATION_CONV
                    ? floor_div(p[a + 1], s->stride[a])
                    : (int64_t)p[a + 1] * s->stride[a] + d[a] - (kind == LT_RELATION_TRANSPOSED ? s->padding[a] : 0);
    if (!fits(v)) {
      *bad = v;
      return a + 1;
    }
    o[a + 1] = (int32_t)v;
  }
  return 0;
}

/* Checks the spec first: a target tensor's stride is computed before any
 * relation is built, and a zero stride must not reach the divisions below. */
lt_status lt_relation_output_stride(lt_ctx *ctx, lt_relation_kind kind, const lt_coords *in, const lt_kernel_spec *s,
                                    int *stride, const char *op) {
  lt_status st = check_spec(ctx, kind, s, op);
  if (st) return st;
  for (int a = 0; a < 3; a++) {
    if (kind == LT_RELATION_SUBM) {
      stride[a] = in->stride[a];
    } else if (kind == LT_RELATION_CONV) {
      int64_t v = (int64_t)in->stride[a] * s->stride[a];
      if (v > INT32_MAX)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the output's tensor stride %lld is outside int32", op, (long long)v);
      stride[a] = (int)v;
    } else {
      if (in->stride[a] % s->stride[a])
        return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: stride %d does not divide the input's tensor stride %d", op,
                           s->stride[a], in->stride[a]);
      stride[a] = in->stride[a] / s->stride[a];
    }
  }
  return LT_OK;
}

/* ---- the output support of a kind without a target ---- */

static lt_status new_support(lt_ctx *ctx, lt_coords **out, lt_relation_kind kind, lt_coords *in,
                             const lt_kernel_spec *s, int (*off)[3], int volume, const int *stride, const char *op) {
  int per_row = kind == LT_RELATION_CONV ? 1 : volume;
  int64_t cand = in->n * per_row, m = 0;
  lt_tensor *rows = NULL;
  lt_coord_hash h = {0};
  lt_status st = lt_tensor_new(ctx, &rows, LT_INT32, 2, (int64_t[]){cand, 4});
  if (!st) st = lt__coord_hash_alloc(ctx, &h, cand, op);
  if (st) {
    lt_tensor_release(rows);
    return st;
  }
  const int32_t *p = lt_tensor_data(in->rows);
  int32_t *r = lt_tensor_data(rows), o[4];
  int64_t bad = 0;
  int axis = 0;
  for (int64_t i = 0; i < in->n && !axis; i++)
    for (int k = 0; k < per_row && !axis; k++)
      if (!(axis = output_of(kind, s, p + i * 4, off[k], o, &bad))) lt__coord_hash_insert(&h, r, &m, o);
  if (axis) {
    /* a coordinate the rows cannot hold: an error, never a wrapped or dropped row */
    lt__coord_hash_free(ctx, &h);
    lt_tensor_release(rows);
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: output coordinate %c = %lld is outside int32", op, "xyz"[axis - 1],
                       (long long)bad);
  }
  lt__coord_hash_free(ctx, &h);
  lt_tensor *shrunk = NULL;
  st = lt__slice_view(ctx, &shrunk, rows, 0, 0, m, 1);
  lt_tensor_release(rows);
  if (!st) st = lt__as_contig(ctx, &rows, shrunk, LT_INT32);
  lt_tensor_release(shrunk);
  if (st) return st;
  lt_coords *c;
  st = lt__coords_make(ctx, &c, rows, stride, op);
  if (st) return st;
  lt_coords *same = lt__manager_find_coords(ctx, c);
  if (same) {
    lt_coords_release(c);
    c = lt_coords_retain(same);
  } else {
    lt__manager_keep_coords(ctx, c);
  }
  *out = c;
  return LT_OK;
}

/* ---- the index ---- */

/* Output rows per task of the fills: a task's brick cache serves all of them. */
#define FILL_ROWS 512

/* Rows [o0, o1) of idx (n_out, K): for each output row, the input row at
 * each offset or -1. */
static void fill_rows(const lt_relation *r, const lt_bricks *b, int32_t *idx, int64_t o0, int64_t o1) {
  const int32_t *orow = lt_tensor_data(r->out->rows);
  int64_t K = r->volume;
  lt_brick_cache cache;
  lt__brick_cache_init(&cache);
  int32_t c[4];
  for (int64_t o = o0; o < o1; o++)
    for (int64_t k = 0; k < K; k++)
      idx[o * K + k] =
          input_at(r->kind, &r->spec, orow + o * 4, r->offsets[k], c) ? (int32_t)lt__bricks_find(b, &cache, c) : -1;
}

/* The same for a mirrored relation (output = input, offsets symmetric:
 * d_{K-1-k} = -d_k): row o looks up only the offsets k < K/2 and, finding
 * input i, also writes idx[i, K-1-k] = o, which no other (o, k) pair writes;
 * the centre is o itself. The entries past the centre start as -1. */
static void fill_rows_mirrored(const lt_relation *r, const lt_bricks *b, int32_t *idx, int64_t o0, int64_t o1) {
  const int32_t *orow = lt_tensor_data(r->out->rows);
  int64_t K = r->volume, half = K / 2;
  lt_brick_cache cache;
  lt__brick_cache_init(&cache);
  int32_t c[4];
  for (int64_t o = o0; o < o1; o++) {
    for (int64_t k = 0; k < half; k++) {
      int64_t i = input_at(r->kind, &r->spec, orow + o * 4, r->offsets[k], c) ? lt__bricks_find(b, &cache, c) : -1;
      idx[o * K + k] = (int32_t)i;
      if (i >= 0) idx[i * K + K - 1 - k] = (int32_t)o;
    }
    idx[o * K + half] = (int32_t)o;
  }
}

/* idx (n_out, K), in tasks of FILL_ROWS output rows: each entry is written
 * once, by the task that owns it or (mirrored) by the one that finds its
 * pair, so the result does not depend on the threads. */
static lt_status fill_index(lt_ctx *ctx, lt_relation *r, const char *op) {
  lt_bricks b;
  lt_status st = lt__bricks_build(ctx, &b, r->in, op);
  if (st) return st;
  int32_t *idx = lt_tensor_data(r->idx);
  int64_t K = r->volume, n = r->out->n, tasks = (n + FILL_ROWS - 1) / FILL_ROWS;
  int threads = n * K >= LT_GRAIN / 8 ? lt__ctx_threads(ctx) : 1;
  if (r->mirrored) {
    LT_PARALLEL_FOR(threads, t, tasks, {
      int64_t o0 = t * FILL_ROWS, o1 = o0 + FILL_ROWS < n ? o0 + FILL_ROWS : n;
      memset(idx + o0 * K, 0xff, (size_t)((o1 - o0) * K) * sizeof *idx);
    });
    LT_PARALLEL_FOR(threads, t, tasks, {
      fill_rows_mirrored(r, &b, idx, t * FILL_ROWS, t * FILL_ROWS + FILL_ROWS < n ? t * FILL_ROWS + FILL_ROWS : n);
    });
  } else {
    LT_PARALLEL_FOR(threads, t, tasks, {
      fill_rows(r, &b, idx, t * FILL_ROWS, t * FILL_ROWS + FILL_ROWS < n ? t * FILL_ROWS + FILL_ROWS : n);
    });
  }
  lt__bricks_free(ctx, &b);
  return LT_OK;
}

/* idxT (n_in, K), unless the relation is mirrored. Each (input, offset) pair
 * has at most one output, so the parallel writes never meet. */
static void fill_transpose(const lt_ctx *ctx, lt_relation *r) {
  int64_t K = r->volume, n_out = r->out->n, n_in = r->in->n;
  const int32_t *idx = lt_tensor_data(r->idx);
  int32_t *t = lt_tensor_data(r->idx_t);
  int threads = (n_out + n_in) * K >= LT_GRAIN / 8 ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, i, n_in, { memset(t + i * K, 0xff, (size_t)K * sizeof *t); });
  LT_PARALLEL_FOR(threads, o, n_out, {
    for (int64_t k = 0; k < K; k++)
      if (idx[o * K + k] >= 0) t[(int64_t)idx[o * K + k] * K + k] = (int32_t)o;
  });
}

/* The edges per offset: per-task counts (tasks x K) summed in task order. */
static lt_status count_edges(lt_ctx *ctx, lt_relation *r, const char *op) {
  int64_t K = r->volume, n = r->out->n, tasks = (n + FILL_ROWS - 1) / FILL_ROWS;
  const int32_t *idx = lt_tensor_data(r->idx);
  size_t bytes = (size_t)(tasks > 0 ? tasks * K : 1) * sizeof(int64_t);
  int64_t *part = lt_ctx_alloc(ctx, bytes);
  if (!part) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  int threads = n * K >= LT_GRAIN / 8 ? lt__ctx_threads(ctx) : 1;
  LT_PARALLEL_FOR(threads, t, tasks, {
    int64_t *c = part + t * K, o1 = (t + 1) * FILL_ROWS < n ? (t + 1) * FILL_ROWS : n;
    for (int64_t k = 0; k < K; k++) c[k] = 0;
    for (int64_t o = t * FILL_ROWS; o < o1; o++)
      for (int64_t k = 0; k < K; k++) c[k] += idx[o * K + k] >= 0;
  });
  r->edges = 0;
  for (int64_t k = 0; k < K; k++) r->counts[k] = 0;
  for (int64_t t = 0; t < tasks; t++)
    for (int64_t k = 0; k < K; k++) r->counts[k] += part[t * K + k];
  for (int64_t k = 0; k < K; k++) r->edges += r->counts[k];
  lt_ctx_free(ctx, part, bytes);
  return LT_OK;
}

/* The kernels' row orders (the input's only when the input gradient runs
 * over idxT, its own rows), with their bytes. */
static lt_status order_rows(lt_ctx *ctx, lt_relation *r, const char *op) {
  lt_status st = lt__morton_order_if_scattered(ctx, &r->order_out, r->out, op);
  if (!st && r->mirrored)
    r->order_in = lt_tensor_retain(r->order_out);
  else if (!st)
    st = lt__morton_order_if_scattered(ctx, &r->order_in, r->in, op);
  if (!st && r->order_out) r->bytes += (size_t)r->out->n * 4;
  if (!st && r->order_in && !r->mirrored) r->bytes += (size_t)r->in->n * 4;
  return st;
}

static lt_status check_target(lt_ctx *ctx, const lt_coords *target, const int *stride, const char *op) {
  if (memcmp(target->stride, stride, sizeof target->stride))
    return lt_ctx_fail(ctx, LT_ERR_ARG,
                       "%s: the target coordinates have tensor stride {%d,%d,%d}, this convolution "
                       "makes {%d,%d,%d}",
                       op, target->stride[0], target->stride[1], target->stride[2], stride[0], stride[1], stride[2]);
  return LT_OK;
}

/* A relation that reads o + d_k onto its own input (submanifold, or a
 * stride-1 conv without padding) with an odd kernel is its own transpose with
 * the offsets reversed (the offsets are symmetric: d_{K-1-k} = -d_k), so it
 * keeps no idxT: half the memory, half the lookups and no second pass. */
static int mirrors(const lt_relation *r) {
  if (r->out != r->in || (r->kind != LT_RELATION_SUBM && r->kind != LT_RELATION_CONV)) return 0;
  for (int a = 0; a < 3; a++)
    if (r->spec.size[a] % 2 == 0 ||
        (r->kind == LT_RELATION_CONV && (r->spec.stride[a] != 1 || r->spec.padding[a] != 0)))
      return 0;
  return 1;
}

static lt_status alloc_index(lt_ctx *ctx, lt_relation *r) {
  r->mirrored = mirrors(r);
  lt_status st = lt_tensor_new(ctx, &r->idx, LT_INT32, 2, (int64_t[]){r->out->n, r->volume});
  if (!st && !r->mirrored) st = lt_tensor_new(ctx, &r->idx_t, LT_INT32, 2, (int64_t[]){r->in->n, r->volume});
  if (!st && !(r->counts = calloc((size_t)r->volume, sizeof *r->counts)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "relation: out of memory");
  r->bytes = (size_t)(r->out->n + (r->mirrored ? 0 : r->in->n)) * (size_t)r->volume * 4;
  return st;
}

lt_status lt__relation_build(lt_ctx *ctx, lt_relation **out, lt_relation_kind kind, lt_coords *in, lt_coords *target,
                             const lt_kernel_spec *spec, const char *op) {
  *out = NULL;
  int stride[3];
  lt_status st = lt_relation_output_stride(ctx, kind, in, spec, stride, op);
  if (!st && target) st = check_target(ctx, target, stride, op);
  if (st) return st;
  lt_relation *r = calloc(1, sizeof *r);
  if (!r) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", op);
  *r = (lt_relation){.refcount = 1, .kind = kind, .spec = *spec, .in = lt_coords_retain(in), .targeted = !!target};
  r->volume = make_offsets(spec, r->offsets);
  /* each stride 1 (their product can wrap to 1: 641 x 6700417 = 2^32 + 1) */
  int identity = kind == LT_RELATION_SUBM ||
                 (kind == LT_RELATION_CONV && spec->stride[0] == 1 && spec->stride[1] == 1 && spec->stride[2] == 1);
  if (target)
    r->out = lt_coords_retain(target);
  else if (identity)
    r->out = lt_coords_retain(in);
  else
    st = new_support(ctx, &r->out, kind, in, spec, r->offsets, r->volume, stride, op);
  if (!st) st = alloc_index(ctx, r);
  if (!st) st = fill_index(ctx, r, op);
  if (!st && r->idx_t) fill_transpose(ctx, r);
  if (!st) st = count_edges(ctx, r, op);
  if (!st) st = order_rows(ctx, r, op);
  if (!st) {
    *out = r;
    return LT_OK;
  }
  lt_relation_release(r);
  return st;
}

lt_status lt_relation_get(lt_ctx *ctx, lt_relation **out, lt_relation_kind kind, lt_coords *in, lt_coords *target,
                          const lt_kernel_spec *spec, const char *op) {
  *out = NULL;
  if ((unsigned)kind >= LT_RELATION_KINDS) return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown relation kind", op);
  lt_relation *r = lt__manager_find_relation(ctx, kind, in, target, spec);
  if (r) {
    *out = lt_relation_retain(r);
    return LT_OK;
  }
  lt_status st = lt__relation_build(ctx, &r, kind, in, target, spec, op);
  if (st) return st;
  lt__manager_keep_relation(ctx, r);
  *out = r;
  return LT_OK;
}

lt_relation *lt_relation_retain(lt_relation *r) {
  if (r) r->refcount++;
  return r;
}

void lt_relation_release(lt_relation *r) {
  if (!r || --r->refcount > 0) return;
  lt_coords_release(r->in);
  lt_coords_release(r->out);
  lt_tensor_release(r->idx);
  lt_tensor_release(r->idx_t);
  lt_tensor_release(r->order_out);
  lt_tensor_release(r->order_in);
  free(r->counts);
  free(r);
}

lt_coords *lt_relation_input(const lt_relation *r) { return r->in; }
lt_coords *lt_relation_output(const lt_relation *r) { return r->out; }
int lt_relation_volume(const lt_relation *r) { return r->volume; }
lt_tensor *lt_relation_index(const lt_relation *r) { return r->idx; }
lt_tensor *lt_relation_index_transposed(const lt_relation *r) { return r->idx_t; }
int lt_relation_mirrored(const lt_relation *r) { return r->mirrored; }
const int64_t *lt_relation_counts(const lt_relation *r) { return r->counts; }
int64_t lt_relation_edges(const lt_relation *r) { return r->edges; }
const int *lt_relation_offsets(const lt_relation *r) { return &r->offsets[0][0]; }
