/* Placeholder until this lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_reshape(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape) { (void)ctx; (void)out; (void)x; (void)ndim; (void)shape; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_reshape: not implemented yet"); }
lt_status lt_transpose(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, const int *perm) { (void)ctx; (void)out; (void)x; (void)perm; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_transpose: not implemented yet"); }
lt_status lt_expand_dims(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) { (void)ctx; (void)out; (void)x; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_expand_dims: not implemented yet"); }
lt_status lt_squeeze(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis) { (void)ctx; (void)out; (void)x; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_squeeze: not implemented yet"); }
lt_status lt_slice(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int axis, int64_t start, int64_t stop, int64_t step) { (void)ctx; (void)out; (void)x; (void)axis; (void)start; (void)stop; (void)step; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_slice: not implemented yet"); }
lt_status lt_broadcast_to(lt_ctx *ctx, lt_tensor **out, lt_tensor *x, int ndim, const int64_t *shape) { (void)ctx; (void)out; (void)x; (void)ndim; (void)shape; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_broadcast_to: not implemented yet"); }
lt_status lt_concatenate(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis) { (void)ctx; (void)out; (void)n; (void)xs; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_concatenate: not implemented yet"); }
lt_status lt_stack(lt_ctx *ctx, lt_tensor **out, int n, lt_tensor *const *xs, int axis) { (void)ctx; (void)out; (void)n; (void)xs; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_stack: not implemented yet"); }
lt_status lt_split(lt_ctx *ctx, lt_tensor **outs, lt_tensor *x, int n, const int64_t *at, int axis) { (void)ctx; (void)outs; (void)x; (void)n; (void)at; (void)axis; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_split: not implemented yet"); }
