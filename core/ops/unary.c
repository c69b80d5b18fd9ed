/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_unary(lt_ctx *ctx, lt_tensor **out, lt_unary_op op, lt_tensor *x, double alpha) { (void)ctx; (void)out; (void)op; (void)x; (void)alpha; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_unary: not implemented yet"); }
const char *lt_unary_name(lt_unary_op op) { (void)op; return "?"; }
