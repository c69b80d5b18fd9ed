/* The batched product with int8 activations (quant/internal.h states the
 * arithmetic): x's rows quantized per group, W's pack built from its codes,
 * and the driver that runs a table's kernel over W's tiles of 16 outputs.
 * The quantization of x is this one scalar function for every ISA, so the
 * kernels all see the same integers. */
#include <math.h>
#include "quant/internal.h"

void lt__qi8_quantize_row(const float *x, int64_t in, int gs, int64_t i, int8_t *q, float *d, float *xs) {
  for (int64_t g = 0; g < in / gs; g++) {
    const float *xg = x + g * gs;
    float amax = 0;
    int finite = 1;
    for (int k = 0; k < gs; k++) {
      float a = fabsf(xg[k]);
      finite &= isfinite(a) != 0;
      amax = a > amax ? a : amax;
    }
    /* x_k * (127 / amax) <= 127 (1 + 2^-24)^2 < 127.5: rint gives at most 127 */
    float inv = amax > 0 && finite ? 127.0f / amax : 0.0f;
    int32_t sum = 0;
    for (int k = 0; k < gs; k++) {
      long v = lrintf(xg[k] * inv);
      v = v > 127 ? 127 : v < -127 ? -127 : v;
      q[lt__qi8x_index(in, i, g * gs + k)] = (int8_t)v;
      sum += (int32_t)v;
    }
    d[g] = finite ? amax / 127.0f : NAN; /* a NaN or an infinity makes the outputs NaN */
    xs[g] = d[g] * (float)sum;
  }
}

/* Output o's code k, 0 past the last row. */
static uint8_t code(const lt__qmat *q, int64_t o, int64_t k) {
  if (o >= q->rows) return 0;
  int per = 32 / q->bits;
  return (uint8_t)((q->w[o * q->words + k / per] >> (k % per * q->bits)) & ((1u << q->bits) - 1));
}

void lt__qi8_pack(const lt__qmat *q, uint8_t *dst, int64_t t0, int64_t t1) {
  int64_t gs = q->group_size, block = lt__qi8_block(q->bits, q->group_size);
  for (int64_t t = t0; t < t1; t++)
    for (int64_t g = 0; g < q->groups; g++) {
      uint8_t *p = dst + (t * q->groups + g) * block;
      int64_t per_vector = q->bits == 4 ? 8 : 4, k0 = g * gs;
      for (int64_t j = 0; j < gs / per_vector; j++, p += 64)
        for (int o = 0; o < LT_QI8_TILE; o++)
          for (int b = 0; b < 4; b++) {
            int64_t r = t * LT_QI8_TILE + o, k = k0 + j * per_vector + b;
            p[o * 4 + b] = q->bits == 4 ? (uint8_t)(code(q, r, k) | code(q, r, k + 4) << 4) : code(q, r, k);
          }
      float *sb = (float *)p;
      for (int o = 0; o < LT_QI8_TILE; o++) {
        int64_t r = t * LT_QI8_TILE + o;
        sb[o] = r < q->rows ? lt__qscale(q, r, g) : 0.0f;
        sb[LT_QI8_TILE + o] = r < q->rows ? lt__qbias(q, r, g) : 0.0f;
      }
    }
}

static int threads_for(const lt_ctx *ctx, int64_t work) { return work >= LT_GRAIN ? lt__ctx_threads(ctx) : 1; }

/* Values of x from which its quantization runs on every thread. */
#define QUANTIZE_GRAIN (1 << 20)
/* Tiles per parallel task: enough work to be worth a thread's start. */
#define TILES_PER_TASK 4

lt_status lt__qmatmul_int8(lt_ctx *ctx, const lt__qkernels *kt, const lt__qmat *q, const uint8_t *pack, const float *x,
                           int64_t m, float *y) {
  int64_t in = q->in, groups = q->groups, tiles = lt__qi8_tiles(q->rows);
  size_t xbytes = (size_t)((m + LT_QI8_ROWS - 1) / LT_QI8_ROWS * LT_QI8_ROWS * in),
         sbytes = (size_t)(m * groups) * sizeof(float);
  size_t pbytes = pack ? 0 : (size_t)lt__qi8_pack_bytes(q);
  lt_workspace ws;
  if (lt__workspace_reserve(ctx, &ws, 1, pbytes + xbytes + 2 * sbytes, "linear")) return LT_ERR_MEM;
  uint8_t *own = lt__workspace_slice(&ws, 0);
  int8_t *xq = (int8_t *)(own + pbytes);
  float *d = (float *)(own + pbytes + xbytes), *xs = d + m * groups;
  /* the quantization is a few microseconds per 10^4 values: one more
   * parallel region (a barrier that waits on a descheduled thread on a busy
   * machine) only pays for large batches */
  int threads = m * in >= QUANTIZE_GRAIN ? lt__ctx_threads(ctx) : 1;
  void (*quantize)(const float *, int64_t, int, int64_t, int8_t *, float *, float *) =
      kt->int8_quantize_row ? kt->int8_quantize_row : lt__qi8_quantize_row;
  LT_PARALLEL_FOR(threads, i, m, { quantize(x + i * in, in, q->group_size, i, xq, d + i * groups, xs + i * groups); });
  if (!pack) {
    LT_PARALLEL_FOR(threads_for(ctx, q->rows * in), t, tiles, { lt__qi8_pack(q, own, t, t + 1); });
    pack = own;
  }
  lt__qi8x xa = {xq, d, xs, m, in, groups};
  void (*kernel)(const lt__qmat *, const uint8_t *, const lt__qi8x *, float *, int64_t, int64_t) =
      kt->int8_tiles ? kt->int8_tiles : lt__qkernels_ref.int8_tiles;
  int64_t tasks = (tiles + TILES_PER_TASK - 1) / TILES_PER_TASK;
  LT_PARALLEL_FOR_DYNAMIC(threads_for(ctx, m * q->rows * in / 16), t, tasks, {
    int64_t t1 = (t + 1) * TILES_PER_TASK < tiles ? (t + 1) * TILES_PER_TASK : tiles;
    kernel(q, pack, &xa, y, t * TILES_PER_TASK, t1);
  });
  lt__workspace_release(ctx, &ws);
  return LT_OK;
}
