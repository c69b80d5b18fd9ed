/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_cross_entropy(lt_ctx *ctx, lt_tensor **out, lt_tensor *logits, lt_tensor *targets, int64_t ignore_index, double label_smoothing, lt_reduction reduction) { (void)ctx; (void)out; (void)logits; (void)targets; (void)ignore_index; (void)label_smoothing; (void)reduction; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_cross_entropy: not implemented yet"); }
lt_status lt_mse_loss(lt_ctx *ctx, lt_tensor **out, lt_tensor *pred, lt_tensor *target, lt_reduction reduction) { (void)ctx; (void)out; (void)pred; (void)target; (void)reduction; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_mse_loss: not implemented yet"); }
