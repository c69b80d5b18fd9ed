/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_reduce(lt_ctx *ctx, lt_tensor **out, lt_reduce_op op, lt_tensor *x, int naxes, const int *axes, int keepdims, int ddof) { (void)ctx; (void)out; (void)op; (void)x; (void)naxes; (void)axes; (void)keepdims; (void)ddof; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_reduce: not implemented yet"); }
const char *lt_reduce_name(lt_reduce_op op) { (void)op; return "?"; }
lt_status lt_argmax(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims) { (void)ctx; (void)out; (void)x; (void)axis; (void)keepdims; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_argmax: not implemented yet"); }
lt_status lt_argmin(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int keepdims) { (void)ctx; (void)out; (void)x; (void)axis; (void)keepdims; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_argmin: not implemented yet"); }
lt_status lt__sum_to_shape(lt_ctx *ctx, lt_tensor **out, lt_tensor *g, int ndim, const int64_t *shape) { (void)ctx; (void)out; (void)g; (void)ndim; (void)shape; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt__sum_to_shape: not implemented yet"); }
