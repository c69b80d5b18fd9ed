/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) { (void)ctx; (void)out; (void)x; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_softmax: not implemented yet"); }
lt_status lt_log_softmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) { (void)ctx; (void)out; (void)x; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_log_softmax: not implemented yet"); }
