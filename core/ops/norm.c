/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_layer_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, lt_tensor *bias, double eps) { (void)ctx; (void)out; (void)x; (void)weight; (void)bias; (void)eps; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_layer_norm: not implemented yet"); }
lt_status lt_rms_norm(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *weight, double eps) { (void)ctx; (void)out; (void)x; (void)weight; (void)eps; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_rms_norm: not implemented yet"); }
