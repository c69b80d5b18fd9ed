/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_matmul(lt_ctx *ctx, lt_tensor **out, lt_tensor *a, lt_tensor *b) { (void)ctx; (void)out; (void)a; (void)b; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_matmul: not implemented yet"); }
