/* The elementwise optimizers, one fused pass per parameter (lattice/optim.h).
 * Each kernel reads the gradient and writes the parameter and its state in
 * place, element by element, with MLX's formulas:
 *   SGD      g' = g + wd p;  v = mu v + (1 - damp) g';  u = nesterov ? g' + mu v : v;  p -= lr u
 *            (without momentum: p -= lr g', no state)
 *   Adam     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *            p -= lr m / (sqrt(v) + eps), or with bias correction
 *            p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps)
 *   AdamW    p *= 1 - lr wd, then Adam
 *   Lion     c = b1 m + (1 - b1) g;  m = b2 m + (1 - b2) g;  p *= 1 - lr wd;  p -= lr sign(c)
 *   RMSprop  v = a v + (1 - a) g^2;  p -= lr g / (sqrt(v) + eps)
 *   Adagrad  v += g^2;  p -= lr g / (sqrt(v) + eps)
 * float32 parameters and gradients are read where they lie; others go through
 * BLOCK-element float32 copies on the stack. The work is split into blocks
 * over the threads, so there is no scratch beyond the stack. */
#include <math.h>
#include <string.h>
#include "optim/internal.h"
#include "runtime/parallel.h"

#define BLOCK 1024

/* The coefficients of one step, computed once in double. The complements
 * (1 - beta) are taken in double before rounding, as MLX's Python floats are:
 * 1 - (float)0.999 is 0.000999987, 1.3e-5 away from 1 - 0.999. */
typedef struct coef {
  float lr, wd, mu, damp1, b1, b2, b1c, b2c, eps, decay, step_size, denom_scale;
  int nesterov;
} coef;

static coef make_coef(lt_optim_kind kind, const lt_optim_hyper *h) {
  coef c = {.lr = (float)h->learning_rate,
            .wd = (float)h->weight_decay,
            .mu = (float)h->momentum,
            .damp1 = (float)(1.0 - h->dampening),
            .b1 = (float)h->beta1,
            .b2 = (float)h->beta2,
            .b1c = (float)(1.0 - h->beta1),
            .b2c = (float)(1.0 - h->beta2),
            .eps = (float)h->eps,
            .nesterov = h->nesterov};
  c.decay = (float)(1.0 - h->learning_rate * h->weight_decay); /* decoupled weight decay */
  c.step_size = c.lr;
  c.denom_scale = 1.0f;
  if ((kind == LT_OPTIM_ADAM || kind == LT_OPTIM_ADAMW) && h->bias_correction) {
    double t = (double)h->step;
    c.step_size = (float)(h->learning_rate / (1.0 - pow(h->beta1, t)));
    c.denom_scale = (float)(1.0 / sqrt(1.0 - pow(h->beta2, t)));
  }
  return c;
}

/* ---- kernels: p, g, s0, s1 (n) ---- */

static void sgd(float *p, const float *g, float *v, float *unused, int64_t n, const coef *c) {
  (void)unused;
  if (!v) {
    for (int64_t i = 0; i < n; i++) p[i] -= c->lr * (g[i] + c->wd * p[i]);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] + c->wd * p[i];
    v[i] = c->mu * v[i] + c->damp1 * gi;
    p[i] -= c->lr * (c->nesterov ? gi + c->mu * v[i] : v[i]);
  }
}

static void adam(float *p, const float *g, float *m, float *v, int64_t n, const coef *c) {
  for (int64_t i = 0; i < n; i++) {
    m[i] = c->b1 * m[i] + c->b1c * g[i];
    v[i] = c->b2 * v[i] + c->b2c * (g[i] * g[i]);
    p[i] -= c->step_size * m[i] / (sqrtf(v[i]) * c->denom_scale + c->eps);
  }
}

static void adamw(float *p, const float *g, float *m, float *v, int64_t n, const coef *c) {
  for (int64_t i = 0; i < n; i++) {
    m[i] = c->b1 * m[i] + c->b1c * g[i];
    v[i] = c->b2 * v[i] + c->b2c * (g[i] * g[i]);
    p[i] = p[i] * c->decay - c->step_size * m[i] / (sqrtf(v[i]) * c->denom_scale + c->eps);
  }
}

static void lion(float *p, const float *g, float *m, float *unused, int64_t n, const coef *c) {
  (void)unused;
  for (int64_t i = 0; i < n; i++) {
    float u = c->b1 * m[i] + c->b1c * g[i];
    m[i] = c->b2 * m[i] + c->b2c * g[i];
    float sign = u > 0 ? 1.0f : u < 0 ? -1.0f : 0.0f;
    p[i] = p[i] * c->decay - c->lr * sign;
  }
}

/* RMSprop's alpha travels in b1. */
static void rmsprop(float *p, const float *g, float *v, float *unused, int64_t n, const coef *c) {
  (void)unused;
  for (int64_t i = 0; i < n; i++) {
    v[i] = c->b1 * v[i] + c->b1c * (g[i] * g[i]);
    p[i] -= c->lr * g[i] / (sqrtf(v[i]) + c->eps);
  }
}

static void adagrad(float *p, const float *g, float *v, float *unused, int64_t n, const coef *c) {
  (void)unused;
  for (int64_t i = 0; i < n; i++) {
    v[i] += g[i] * g[i];
    p[i] -= c->lr * g[i] / (sqrtf(v[i]) + c->eps);
  }
}

typedef void (*kernel_fn)(float *p, const float *g, float *s0, float *s1, int64_t n, const coef *c);
static const kernel_fn kernels[LT_OPTIM_COUNT] = {
    [LT_OPTIM_SGD] = sgd,   [LT_OPTIM_ADAM] = adam,       [LT_OPTIM_ADAMW] = adamw,
    [LT_OPTIM_LION] = lion, [LT_OPTIM_RMSPROP] = rmsprop, [LT_OPTIM_ADAGRAD] = adagrad,
};

/* ---- the driver ---- */

static float *f32_or_null(lt_tensor *t) { return t ? lt__f32(t) : NULL; }

/* One block [lo, lo + m): float32 in place, other dtypes through the stack. */
static void run_block(kernel_fn k, lt_tensor *p, lt_tensor *g, float *s0, float *s1, int64_t lo, int64_t m,
                      const coef *c) {
  if (p->dtype == LT_FLOAT32 && g->dtype == LT_FLOAT32) {
    k(lt__f32(p) + lo, lt__f32(g) + lo, s0 ? s0 + lo : NULL, s1 ? s1 + lo : NULL, m, c);
    return;
  }
  float pb[BLOCK], gb[BLOCK];
  size_t ep = lt_dtype_info(p->dtype)->size, eg = lt_dtype_info(g->dtype)->size;
  char *pp = (char *)lt_tensor_data(p) + lo * (int64_t)ep;
  lt_dtype_convert(pb, LT_FLOAT32, pp, p->dtype, m);
  lt_dtype_convert(gb, LT_FLOAT32, (const char *)lt_tensor_data(g) + lo * (int64_t)eg, g->dtype, m);
  k(pb, gb, s0 ? s0 + lo : NULL, s1 ? s1 + lo : NULL, m, c);
  lt_dtype_convert(pp, p->dtype, pb, LT_FLOAT32, m);
}

lt_status lt__optim_elementwise(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, lt_tensor *p, lt_tensor *g,
                                int nstate, lt_tensor *const *state) {
  lt_tensor *gc = NULL;
  lt_status st = lt__as_contig(ctx, &gc, g, g->dtype);
  if (st) return st;
  coef c = make_coef(kind, h);
  float *s0 = nstate > 0 ? f32_or_null(state[0]) : NULL, *s1 = nstate > 1 ? f32_or_null(state[1]) : NULL;
  int64_t n = lt_tensor_size(p);
  int threads = n >= LT_GRAIN ? lt__ctx_threads(ctx) : 1;
  kernel_fn k = kernels[kind];
  LT_PARALLEL_FOR(threads, b, (n + BLOCK - 1) / BLOCK, {
    int64_t lo = b * BLOCK;
    run_block(k, p, gc, s0, s1, lo, n - lo < BLOCK ? n - lo : BLOCK, &c);
  });
  lt_tensor_release(gc);
  return LT_OK;
}
