/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_where(lt_ctx *ctx, lt_tensor **out, lt_tensor *cond, lt_tensor *a, lt_tensor *b) { (void)ctx; (void)out; (void)cond; (void)a; (void)b; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_where: not implemented yet"); }
lt_status lt_clip(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, double lo, double hi) { (void)ctx; (void)out; (void)x; (void)lo; (void)hi; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_clip: not implemented yet"); }
