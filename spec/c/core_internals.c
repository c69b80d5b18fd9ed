/* The core's internal building blocks, tested from C because Lua cannot reach
 * them: the allocator's bound, the arena, per-thread workspaces, the
 * deterministic bucket sort, the context's extension slots, autograd nodes
 * with many inputs and outputs and saved objects, and in-place gradient
 * accumulation. Prints one line per check and ends with "N passed, N failed". */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autograd/tape.h"
#include "ops/internal.h"
#include "runtime/arena.h"
#include "runtime/parallel.h"
#include "runtime/scan.h"

static int passed, failed;

static void check(int ok, const char *what) {
  printf("%s: %s\n", ok ? "ok" : "FAILED", what);
  ok ? passed++ : failed++;
}

static lt_tensor *vec(lt_ctx *ctx, int64_t n, const float *v) {
  lt_tensor *t = NULL;
  if (lt_tensor_from_data(ctx, &t, LT_FLOAT32, 1, &n, v)) abort();
  return t;
}

/* ---- the caching allocator ---- */

/* Requests past 2^63 bytes, a negative count cast to size_t among them, are
 * refused: their size class would hold 2^64 bytes, wrapped to 0, and they got
 * a block of none. */
static void test_alloc_huge(lt_ctx *ctx) {
  size_t minus_one_floats = (size_t)-1 * sizeof(float);
  size_t sizes[] = {SIZE_MAX, minus_one_floats, ((size_t)1 << 63) + ((size_t)3 << 61) + 1, ((size_t)1 << 63) + 1};
  int refused = 1;
  for (int i = 0; i < 4; i++) {
    void *p = lt_ctx_alloc(ctx, sizes[i]);
    refused &= p == NULL;
    if (p) lt_ctx_free(ctx, p, sizes[i]);
  }
  check(refused, "allocator: a request past 2^63 bytes (SIZE_MAX, (size_t)-1 * 4) gives NULL");
  void *p = lt_ctx_alloc(ctx, 100);
  check(p != NULL && lt_ctx_memory_stats(ctx).in_use >= 100, "allocator: ordinary requests still succeed");
  lt_ctx_free(ctx, p, 100);
}

/* ---- tensor creation with bad arguments ---- */

/* Each creation refuses what would crash it (a NULL shape or data, a dtype
 * past the traits table, a buffer ops cannot read through typed pointers)
 * with a message, and returns no tensor. */
static int refused(lt_ctx *ctx, lt_status st, lt_tensor *t, const char *want) {
  int ok = st == LT_ERR_ARG && t == NULL && strcmp(lt_ctx_error(ctx), want) == 0;
  if (!ok) printf("  got %d, '%s'\n", (int)st, lt_ctx_error(ctx));
  return ok;
}

static void test_create_bad_args(lt_ctx *ctx) {
  static float buf[4];
  int64_t four = 4;
  lt_tensor *t = NULL;
  check(refused(ctx, lt_tensor_new(ctx, &t, LT_FLOAT32, 2, NULL), t, "tensor: shape is NULL with ndim 2"),
        "create: a NULL shape with dimensions is an error");
  check(
      refused(ctx, lt_tensor_zeros(ctx, &t, (lt_dtype)99, 1, &four), t, "tensor: dtype 99 is not an lt_dtype (0 to 8)"),
      "create: a dtype out of range is an error");
  check(
      refused(ctx, lt_tensor_from_data(ctx, &t, LT_FLOAT32, 1, &four, NULL), t, "tensor: data is NULL for 4 elements"),
      "create: from_data with NULL data is an error");
  check(refused(ctx, lt_tensor_wrap(ctx, &t, LT_FLOAT32, 1, &four, NULL, NULL, NULL), t,
                "tensor: data is NULL for 4 elements"),
        "create: wrap of NULL data is an error");
  check(refused(ctx, lt_tensor_wrap(ctx, &t, LT_FLOAT32, 1, (int64_t[]){2}, (char *)buf + 2, NULL, NULL), t,
                "tensor: data is not aligned to 4 bytes, as float32 needs"),
        "create: wrap of misaligned data is an error");
  int64_t zero = 0;
  check(lt_tensor_from_data(ctx, &t, LT_FLOAT32, 1, &zero, NULL) == LT_OK && lt_tensor_size(t) == 0,
        "create: from_data of no elements takes NULL data");
  lt_tensor_release(t);
}

/* ---- arena ---- */

static void test_arena(void) {
  lt_arena a = {0};
  char *p = lt__arena_alloc(&a, 10), *q = lt__arena_alloc(&a, 100);
  check(p && q && ((uintptr_t)p % 16) == 0 && ((uintptr_t)q % 16) == 0 && q >= p + 16, "arena: aligned, disjoint");
  int zero = 1;
  for (int i = 0; i < 100; i++) zero &= q[i] == 0;
  check(zero, "arena: allocations are zeroed");
  memset(q, 7, 100);
  char *big = lt__arena_alloc(&a, (size_t)1 << 20);
  check(big != NULL, "arena: a request larger than a block gets a block of its own");
  lt__arena_reset(&a);
  char *r = lt__arena_alloc(&a, 10);
  check(r == p && r[0] == 0, "arena: reset reuses the first block, zeroed again");
  lt__arena_free(&a);
  check(a.first == NULL, "arena: free empties it");
}

/* ---- workspace ---- */

static void test_workspace(lt_ctx *ctx) {
  size_t before = lt_ctx_memory_stats(ctx).in_use;
  lt_workspace ws;
  check(lt__workspace_reserve(ctx, &ws, 3, 100, "test") == LT_OK, "workspace: reserve");
  char *s0 = lt__workspace_slice(&ws, 0), *s1 = lt__workspace_slice(&ws, 1), *s2 = lt__workspace_slice(&ws, 2);
  check(((uintptr_t)s0 % LT_ALIGN) == 0 && s1 - s0 >= 100 && (s1 - s0) % LT_ALIGN == 0 && s2 - s1 == s1 - s0,
        "workspace: slices are aligned, on their own cache lines");
  memset(s0, 1, 100), memset(s1, 2, 100), memset(s2, 3, 100);
  check(s0[99] == 1 && s1[0] == 2 && s2[99] == 3, "workspace: slices do not overlap");
  lt__workspace_release(ctx, &ws);
  lt__workspace_release(ctx, &ws);
  check(lt_ctx_memory_stats(ctx).in_use == before, "workspace: release returns the bytes, and is idempotent");
  check(lt__workspace_reserve(ctx, &ws, 4, SIZE_MAX / 2, "test") == LT_ERR_MEM &&
            strstr(lt_ctx_error(ctx), "test: scratch of 4 x") == lt_ctx_error(ctx),
        "workspace: an impossible size fails with the op's name");
}

/* The thread count a host sets is clamped to 1 .. LT_MAX_THREADS. */
static void test_thread_count(lt_ctx *ctx) {
  int was = lt_ctx_num_threads(ctx);
  lt_ctx_set_num_threads(ctx, 0);
  int low = lt_ctx_num_threads(ctx);
  lt_ctx_set_num_threads(ctx, 1 << 30);
  int high = lt_ctx_num_threads(ctx);
  lt_ctx_set_num_threads(ctx, 3);
  int three = lt_ctx_num_threads(ctx);
  lt_ctx_set_num_threads(ctx, was);
  check(low == 1 && high == LT_MAX_THREADS && three == 3, "threads: a count is clamped to 1 .. LT_MAX_THREADS");
}

/* A loop's thread index inside a host's own parallel region: the one-thread
 * loop enters no region of its own, so omp_get_thread_num() there is the
 * host thread's index, and a workspace slice by it would lie past the
 * loop's one slice. */
static void test_thread_id_in_host_region(void) {
  int wrong_one = 0, wrong_two = 0;
#pragma omp parallel num_threads(3) reduction(+ : wrong_one, wrong_two)
  {
    LT_PARALLEL_FOR(1, i, 4, { wrong_one += lt__thread_id() != 0; });
    LT_PARALLEL_FOR(2, i, 4, { wrong_two += lt__thread_id() < 0 || lt__thread_id() >= 2; });
  }
  check(wrong_one == 0, "thread id: a one-thread loop inside a host's parallel region is thread 0");
  check(wrong_two == 0, "thread id: a two-thread loop inside a host's parallel region stays within its team");
}

/* ---- count, prefix-sum, fill ---- */

static void test_bucket_sort(lt_ctx *ctx) {
  int64_t x[5] = {3, 0, 2, 5, 1};
  check(lt__prefix_sum(x, 5) == 11 && x[0] == 0 && x[1] == 3 && x[4] == 10, "prefix_sum: exclusive, returns the total");
  enum { N = 100000, B = 27 };
  int64_t *key = malloc(N * sizeof *key), *order1 = malloc(N * sizeof *key), *order2 = malloc(N * sizeof *key);
  int64_t off1[B + 1], off2[B + 1], ref_off[B + 1] = {0};
  uint64_t s = 12345;
  for (int64_t i = 0; i < N; i++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    key[i] = (int64_t)(s >> 33) % (B + 1) - 1; /* -1 (left out) .. B-1 */
  }
  lt_ctx_set_num_threads(ctx, 1);
  lt_status st1 = lt__bucket_sort(ctx, key, N, B, off1, order1, "test");
  lt_ctx_set_num_threads(ctx, 2);
  lt_status st2 = lt__bucket_sort(ctx, key, N, B, off2, order2, "test");
  /* the reference: a stable sort by key written plainly */
  int64_t pos = 0, ok = st1 == LT_OK && st2 == LT_OK;
  for (int64_t b = 0; b < B && ok; b++) {
    ref_off[b] = pos;
    for (int64_t i = 0; i < N && ok; i++)
      if (key[i] == b) ok = order1[pos++] == i;
  }
  ref_off[B] = pos;
  check(ok && memcmp(off1, ref_off, sizeof off1) == 0, "bucket_sort: a stable sort by key, -1 left out");
  check(memcmp(off1, off2, sizeof off1) == 0 && memcmp(order1, order2, (size_t)pos * sizeof *order1) == 0,
        "bucket_sort: the same order for 1 and 2 threads");
  key[7] = B;
  check(lt__bucket_sort(ctx, key, N, B, off1, order1, "kmap") == LT_ERR_ARG &&
            strcmp(lt_ctx_error(ctx), "kmap: key 27 is out of range for 27 buckets") == 0,
        "bucket_sort: a key out of range is an error naming the op");
  free(key), free(order1), free(order2);
}

/* ---- extension slots ---- */

static int destroyed;
static void count_destroy(void *p) { destroyed += *(int *)p; }

static void test_slots(void) {
  lt_ctx *ctx = lt_ctx_new();
  int one = 1, ten = 10;
  destroyed = 0;
  lt__ctx_set_slot(ctx, LT_SLOT_TAPE, &one, count_destroy);
  check(lt__ctx_slot(ctx, LT_SLOT_TAPE) == &one, "slots: hold what was set");
  lt__ctx_set_slot(ctx, LT_SLOT_TAPE, &ten, count_destroy);
  check(destroyed == 1, "slots: replacing destroys the old value");
  lt_ctx_release(ctx);
  check(destroyed == 11, "slots: the last release destroys what they hold");
}

/* ---- a node with six inputs, two outputs, a saved object and attributes ---- */

typedef struct wide_attrs {
  float scale[6];
} wide_attrs;

static int saved_released;
static void release_saved(void *p) {
  saved_released++;
  free(p);
}

/* out0 = sum_k scale_k * in_k, out1 = in_0 (elementwise); the saved object
 * holds 1.0, read back by the rule. */
static lt_status wide_backward(lt_ctx *ctx, const lt_node *n, lt_tensor *const *gout, lt_tensor **gin) {
  const wide_attrs *at = n->attrs;
  float one = *(float *)n->saved[0].obj;
  for (int k = 0; k < n->nin; k++) {
    if (!lt__needs(n, k)) continue;
    int64_t len = lt_tensor_size(n->in[k]);
    lt_status st = lt_tensor_zeros(ctx, &gin[k], LT_FLOAT32, 1, &len);
    if (st) return st;
    float *g = lt_tensor_data(gin[k]);
    for (int64_t i = 0; i < len; i++) {
      if (gout[0]) g[i] += at->scale[k] * one * lt__f32(gout[0])[i];
      if (gout[1] && k == 0) g[i] += lt__f32(gout[1])[i];
    }
  }
  return LT_OK;
}

static lt_status wide_op(lt_ctx *ctx, lt_tensor **outs, lt_tensor *const *in, const float *scale) {
  int64_t len = 2;
  lt_status st = lt_tensor_zeros(ctx, &outs[0], LT_FLOAT32, 1, &len);
  if (!st) st = lt__copy_as(ctx, &outs[1], in[0], LT_FLOAT32);
  if (st) return st;
  for (int k = 0; k < 6; k++)
    for (int i = 0; i < 2; i++) lt__f32(outs[0])[i] += scale[k] * lt__f32(in[k])[i];
  lt_node *n;
  st = lt__record_outputs(ctx, &n, LT_OP("wide", wide_backward, wide_attrs, 1), 2, outs, 6, in);
  if (n) {
    memcpy(((wide_attrs *)n->attrs)->scale, scale, 6 * sizeof *scale);
    float *obj = malloc(sizeof *obj);
    *obj = 1.0f;
    lt__node_keep(n, 0, obj, release_saved);
  }
  return st;
}

/* y = sum(out0) [+ 2 sum(out1)]; the gradients of the six inputs. */
static void wide_case(lt_ctx *ctx, int use_out1, float *grads) {
  float v[2] = {1, 2}, scale[6] = {1, 2, 3, 4, 5, 6};
  lt_tensor *x[6], *leaf[6], *outs[2] = {0}, *y = NULL, *g[6];
  for (int k = 0; k < 6; k++) x[k] = vec(ctx, 2, v);
  lt_tape_begin(ctx);
  for (int k = 0; k < 6; k++) lt_tape_watch(ctx, &leaf[k], x[k]);
  wide_op(ctx, outs, leaf, scale);
  lt_tensor *s0, *s1, *two, *t;
  lt_reduce(ctx, &s0, LT_REDUCE_SUM, outs[0], 0, NULL, 0, 0);
  if (use_out1) {
    lt_reduce(ctx, &s1, LT_REDUCE_SUM, outs[1], 0, NULL, 0, 0);
    lt_tensor_full(ctx, &two, LT_FLOAT32, 0, NULL, 2);
    lt_binary(ctx, &t, LT_BINARY_MUL, s1, two);
    lt_binary(ctx, &y, LT_BINARY_ADD, s0, t);
    lt_tensor_release(s1), lt_tensor_release(two), lt_tensor_release(t), lt_tensor_release(s0);
  } else {
    y = s0;
  }
  check(lt_tape_backward(ctx, y, 6, leaf, g) == LT_OK, use_out1 ? "node: backward (both outputs)" : "node: backward");
  for (int k = 0; k < 6; k++) grads[k] = lt__f32(g[k])[1];
  lt_tape_end(ctx);
  lt__release_all(6, g), lt__release_all(6, leaf), lt__release_all(6, x), lt__release_all(2, outs);
  lt_tensor_release(y);
}

static void test_wide_node(lt_ctx *ctx) {
  float g[6];
  saved_released = 0;
  wide_case(ctx, 0, g);
  check(g[0] == 1 && g[3] == 4 && g[5] == 6, "node: six inputs get their gradients; an unused output arrives as NULL");
  check(saved_released == 1, "node: a saved object is released once, when the tape ends");
  wide_case(ctx, 1, g);
  check(g[0] == 3 && g[5] == 6, "node: gradients of two outputs both reach the rule");
}

/* ---- in-place accumulation ---- */

static void test_accumulate(lt_ctx *ctx) {
  float a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
  lt_tensor *acc = vec(ctx, 3, a), *first = acc;
  lt__grad_accumulate(ctx, &acc, vec(ctx, 3, b));
  check(acc == first && lt__f32(acc)[2] == 33, "accumulate: a uniquely owned buffer is added into in place");
  lt_tensor *held = lt_tensor_retain(acc);
  lt__grad_accumulate(ctx, &acc, vec(ctx, 3, b));
  check(acc != held && lt__f32(held)[2] == 33 && lt__f32(acc)[2] == 63,
        "accumulate: a buffer someone else holds is left alone");
  lt_tensor_release(held), lt_tensor_release(acc);
  /* one input shared by 27 products: its slot sums them without a new tensor per term */
  lt_tensor *x = vec(ctx, 3, a), *leaf, *sum = NULL, *grad;
  lt_tape_begin(ctx);
  lt_tape_watch(ctx, &leaf, x);
  for (int k = 0; k < 27; k++) {
    lt_tensor *c, *p, *s, *next;
    lt_tensor_full(ctx, &c, LT_FLOAT32, 0, NULL, k);
    lt_binary(ctx, &p, LT_BINARY_MUL, leaf, c);
    lt_reduce(ctx, &s, LT_REDUCE_SUM, p, 0, NULL, 0, 0);
    if (sum) {
      lt_binary(ctx, &next, LT_BINARY_ADD, sum, s);
      lt_tensor_release(sum), lt_tensor_release(s);
      sum = next;
    } else {
      sum = s;
    }
    lt_tensor_release(c), lt_tensor_release(p);
  }
  lt_tape_backward(ctx, sum, 1, &leaf, &grad);
  check(lt__f32(grad)[0] == 351 && lt__f32(grad)[2] == 351, "accumulate: 27 paths sum to 0 + 1 + ... + 26");
  lt_tape_end(ctx);
  lt_tensor_release(grad), lt_tensor_release(leaf), lt_tensor_release(x), lt_tensor_release(sum);
}

/* ---- lt_ctx_close frees a tape left recording ---- */

static int host_released;
static void on_host_release(void *ud) {
  (void)ud;
  host_released++;
}

static void test_close(void) {
  lt_ctx *ctx = lt_ctx_new();
  static float data[2] = {1, 2};
  lt_tensor *x, *leaf, *y;
  lt_tensor_wrap(ctx, &x, LT_FLOAT32, 1, (int64_t[]){2}, data, on_host_release, NULL);
  lt_tape_begin(ctx);
  lt_tape_watch(ctx, &leaf, x);
  lt_unary(ctx, &y, LT_UNARY_EXP, leaf, 0);
  lt_tensor_release(x), lt_tensor_release(leaf), lt_tensor_release(y);
  host_released = 0;
  lt_ctx_close(ctx); /* the tape still holds leaf (and so the host buffer) */
  check(host_released == 1, "close: a tape left recording is freed with the context");
}

int main(void) {
  lt_ctx *ctx = lt_ctx_new();
  test_alloc_huge(ctx);
  test_create_bad_args(ctx);
  test_arena();
  test_workspace(ctx);
  test_thread_id_in_host_region();
  test_thread_count(ctx);
  test_bucket_sort(ctx);
  test_slots();
  test_wide_node(ctx);
  test_accumulate(ctx);
  test_close();
  lt_ctx_release(ctx);
  printf("%d passed, %d failed\n", passed, failed);
  return failed != 0;
}
