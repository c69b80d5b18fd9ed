/* lt_optim_update: the checks every optimizer shares, then its kernel
 * (update.c for the elementwise ones, adafactor.c). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "optim/internal.h"

static const char *const names[LT_OPTIM_COUNT] = {"SGD", "Adam", "AdamW", "Lion", "RMSprop", "Adagrad", "Adafactor"};

const char *lt_optim_name(lt_optim_kind kind) { return (unsigned)kind < LT_OPTIM_COUNT ? names[kind] : "optimizer"; }

static int factored(const lt_tensor *p) { return p->ndim >= 2; }

int lt_optim_state_count(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param) {
  switch (kind) {
  case LT_OPTIM_SGD: return h->momentum > 0 ? 1 : 0;
  case LT_OPTIM_ADAM:
  case LT_OPTIM_ADAMW: return 2;
  case LT_OPTIM_LION:
  case LT_OPTIM_RMSPROP:
  case LT_OPTIM_ADAGRAD: return 1;
  case LT_OPTIM_ADAFACTOR: return (factored(param) ? 2 : 1) + (h->first_moment ? 1 : 0);
  default: return 0;
  }
}

int lt_optim_state_shape(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param, int k, int64_t *shape) {
  int nd = param->ndim;
  memcpy(shape, param->shape, (size_t)nd * sizeof *shape);
  if (kind != LT_OPTIM_ADAFACTOR || !factored(param) || (h->first_moment && k == 2)) return nd;
  if (k == 0) return nd - 1; /* rows: shape[:-1] */
  shape[nd - 2] = param->shape[nd - 1];
  return nd - 1; /* columns: shape[:-2] + shape[-1:] */
}

const char *lt_optim_state_name(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param, int k) {
  if (k < 0 || k >= lt_optim_state_count(kind, h, param)) return NULL;
  switch (kind) {
  case LT_OPTIM_ADAM:
  case LT_OPTIM_ADAMW: return k == 0 ? "m" : "v";
  case LT_OPTIM_LION: return "m";
  case LT_OPTIM_ADAFACTOR:
    if (h->first_moment && k == lt_optim_state_count(kind, h, param) - 1) return "exp_avg";
    if (!factored(param)) return "exp_avg_sq";
    return k == 0 ? "exp_avg_sq_row" : "exp_avg_sq_col";
  default: return "v"; /* SGD, RMSprop, Adagrad */
  }
}

/* ---- checks ---- */

static int same_shape(int nd, const int64_t *shape, const lt_tensor *t) {
  return t->ndim == nd && memcmp(t->shape, shape, (size_t)nd * sizeof *shape) == 0;
}

static lt_status check_tensors(lt_ctx *ctx, const char *name, lt_optim_kind kind, const lt_optim_hyper *h,
                               const lt_tensor *p, const lt_tensor *g, int nstate, lt_tensor *const *state) {
  char a[LT_SHAPE_STR_MAX], b[LT_SHAPE_STR_MAX];
  if (p->dtype != LT_FLOAT32 && p->dtype != LT_FLOAT16 && p->dtype != LT_BFLOAT16)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: parameters must be float32, float16 or bfloat16, got %s", name,
                       lt_dtype_info(p->dtype)->name);
  if (!lt_dtype_info(g->dtype)->is_float)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the gradient must be a float tensor, got %s", name,
                       lt_dtype_info(g->dtype)->name);
  if (!same_shape(p->ndim, p->shape, g))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the gradient has shape %s, the parameter %s", name,
                       lt__shape_str(a, sizeof a, g->ndim, g->shape), lt__shape_str(b, sizeof b, p->ndim, p->shape));
  int want = lt_optim_state_count(kind, h, p);
  if (nstate != want)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %d state tensors given, %d expected", name, nstate, want);
  for (int k = 0; k < nstate; k++) {
    int64_t shape[LT_MAX_DIMS];
    int nd = lt_optim_state_shape(kind, h, p, k, shape);
    const lt_tensor *s = state[k];
    const char *sname = lt_optim_state_name(kind, h, p, k);
    if (s->dtype != LT_FLOAT32 || !lt_tensor_is_contiguous(s) || !lt__uniquely_owned(s))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: state '%s' must be a contiguous float32 tensor of its own", name, sname);
    if (!same_shape(nd, shape, s))
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: state '%s' has shape %s, expected %s", name, sname,
                         lt__shape_str(a, sizeof a, s->ndim, s->shape), lt__shape_str(b, sizeof b, nd, shape));
  }
  return LT_OK;
}

static lt_status check_hyper(lt_ctx *ctx, const char *name, lt_optim_kind kind, const lt_optim_hyper *h) {
  if (h->step < 1)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: step must be at least 1, got %lld", name, (long long)h->step);
  if (!isfinite(h->learning_rate))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: learning_rate must be finite, got %g", name, h->learning_rate);
  if (kind == LT_OPTIM_SGD && h->nesterov && (h->momentum <= 0 || h->dampening != 0))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: Nesterov momentum requires a momentum and zero dampening", name);
  if (kind == LT_OPTIM_ADAFACTOR && !(h->clip_threshold > 0))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: clip_threshold must be positive, got %g", name, h->clip_threshold);
  return LT_OK;
}

lt_status lt_optim_check(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, const char *param_name,
                         const lt_tensor *param, const lt_tensor *grad, int nstate, lt_tensor *const *state) {
  if ((unsigned)kind >= LT_OPTIM_COUNT) return lt_ctx_fail(ctx, LT_ERR_ARG, "optimizer: unknown kind %d", (int)kind);
  lt_status st = check_hyper(ctx, names[kind], kind, h);
  if (st) return st;
  char prefix[256]; /* "AdamW: layers.0.weight", a long name cut short */
  if (param_name)
    snprintf(prefix, sizeof prefix, "%s: %s", names[kind], param_name);
  else
    snprintf(prefix, sizeof prefix, "%s", names[kind]);
  return check_tensors(ctx, prefix, kind, h, param, grad, nstate, state);
}

lt_status lt_optim_update(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, lt_tensor *param, lt_tensor *grad,
                          int nstate, lt_tensor *const *state) {
  lt_status st = lt_optim_check(ctx, kind, h, NULL, param, grad, nstate, state);
  if (st) return st;
  if (!lt_tensor_is_contiguous(param) || !lt__uniquely_owned(param))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: the parameter must be contiguous and not shared", names[kind]);
  if (kind == LT_OPTIM_ADAFACTOR) return lt__optim_adafactor(ctx, h, param, grad, nstate, state);
  return lt__optim_elementwise(ctx, kind, h, param, grad, nstate, state);
}
