/* Placeholder until this lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_random_normal(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double mean, double std) { (void)ctx; (void)out; (void)dt; (void)ndim; (void)shape; (void)mean; (void)std; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_random_normal: not implemented yet"); }
lt_status lt_random_uniform(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, double low, double high) { (void)ctx; (void)out; (void)dt; (void)ndim; (void)shape; (void)low; (void)high; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_random_uniform: not implemented yet"); }
lt_status lt_random_randint(lt_ctx *ctx, lt_tensor **out, lt_dtype dt, int ndim, const int64_t *shape, int64_t low, int64_t high) { (void)ctx; (void)out; (void)dt; (void)ndim; (void)shape; (void)low; (void)high; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_random_randint: not implemented yet"); }
