/* Fused optimizer updates: one call updates a parameter and its optimizer
 * state in place, reading the gradient, with MLX's formulas (docs/optim.md).
 * The caller owns the buffers it passes: param and every state tensor must be
 * contiguous and not shared (lattice.optim replaces a shared parameter by a
 * copy first). Parameters may be float32, float16 or bfloat16 (16-bit ones are
 * converted per element and rounded back); the state is float32; the gradient
 * any float dtype of the parameter's shape. */
#ifndef LATTICE_OPTIM_H
#define LATTICE_OPTIM_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_optim_kind {
  LT_OPTIM_SGD,
  LT_OPTIM_ADAM,
  LT_OPTIM_ADAMW,
  LT_OPTIM_LION,
  LT_OPTIM_RMSPROP,
  LT_OPTIM_ADAGRAD,
  LT_OPTIM_ADAFACTOR,
  LT_OPTIM_COUNT
} lt_optim_kind;

typedef struct lt_optim_hyper {
  double learning_rate;
  double momentum, dampening; /* SGD */
  int nesterov;
  double weight_decay;      /* SGD (L2), AdamW and Lion (decoupled), Adafactor */
  double beta1, beta2, eps; /* Adam(W), Lion (no eps); RMSprop: beta1 is alpha; Adagrad: eps */
  int bias_correction;      /* Adam(W) */
  int64_t step;             /* counting from 1 for the first update */
  /* Adafactor */
  double eps2, clip_threshold, decay_rate;
  int scale_parameter, relative_step, warmup_init, first_moment; /* first_moment: beta1 is used */
} lt_optim_hyper;

/* The number of state tensors `kind` keeps for `param` with these
 * hyperparameters (SGD keeps none without momentum), and the shape of state
 * k: Adafactor's factored ones are a parameter's row and column statistics. */
int lt_optim_state_count(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param);
int lt_optim_state_shape(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param, int k, int64_t *shape);
/* The name of state k, as MLX names it ("m", "v", "exp_avg_sq_row", ...). */
const char *lt_optim_state_name(lt_optim_kind kind, const lt_optim_hyper *h, const lt_tensor *param, int k);

/* One step: param and state[0..nstate) are written in place. Checks dtypes,
 * shapes, contiguity and hyperparameters first and changes nothing when one
 * is wrong ("AdamW: ..."). */
lt_status lt_optim_update(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, lt_tensor *param, lt_tensor *grad,
                          int nstate, lt_tensor *const *state);

/* The checks of lt_optim_update but the parameter's layout (it may be shared
 * or strided: an update would go to a contiguous copy of it), changing
 * nothing. A caller updating many parameters checks them all first, so that a
 * bad one leaves every parameter as it was. Messages name the parameter when
 * param_name is not NULL ("AdamW: layers.0.weight: ..."). */
lt_status lt_optim_check(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, const char *param_name,
                         const lt_tensor *param, const lt_tensor *grad, int nstate, lt_tensor *const *state);

const char *lt_optim_name(lt_optim_kind kind);

#ifdef __cplusplus
}
#endif

#endif
