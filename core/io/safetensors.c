/* Placeholder until this op family lands: every entry fails cleanly. */
#include "internal.h"

lt_status lt_safetensors_save(lt_ctx *ctx, const char *path, int n, const lt_named_tensor *tensors, int nmeta, const lt_metadata_entry *meta) { (void)ctx; (void)path; (void)n; (void)tensors; (void)nmeta; (void)meta; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_safetensors_save: not implemented yet"); }
lt_status lt_safetensors_load(lt_ctx *ctx, const char *path, lt_safetensors **out) { (void)ctx; (void)path; (void)out; return lt_ctx_fail(ctx, LT_ERR_STATE, "lt_safetensors_load: not implemented yet"); }
void lt_safetensors_free(lt_safetensors *st) { (void)st; return; }
