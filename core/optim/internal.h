/* What the optimizer files share: the elementwise kinds (update.c) and
 * Adafactor (adafactor.c), both called by optim.c after its checks. */
#ifndef LATTICE_OPTIM_INTERNAL_H
#define LATTICE_OPTIM_INTERNAL_H

#include "lattice/optim.h"
#include "runtime/context.h"
#include "tensor/internal.h"

lt_status lt__optim_elementwise(lt_ctx *ctx, lt_optim_kind kind, const lt_optim_hyper *h, lt_tensor *param,
                                lt_tensor *grad, int nstate, lt_tensor *const *state);
lt_status lt__optim_adafactor(lt_ctx *ctx, const lt_optim_hyper *h, lt_tensor *param, lt_tensor *grad, int nstate,
                              lt_tensor *const *state);

#endif
