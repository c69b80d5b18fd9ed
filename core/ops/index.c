/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_take(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis) { (void)ctx; (void)out; (void)x; (void)indices; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_take: not implemented yet"); }
lt_status lt_take_along_axis(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, lt_tensor *indices, int axis) { (void)ctx; (void)out; (void)x; (void)indices; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_take_along_axis: not implemented yet"); }
lt_status lt_embedding(lt_ctx *ctx, lt_tensor **out, lt_tensor *weight, lt_tensor *ids) { (void)ctx; (void)out; (void)weight; (void)ids; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_embedding: not implemented yet"); }
