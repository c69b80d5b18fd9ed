/* safetensors files: an 8-byte little-endian header length, a JSON header
 * mapping names to {dtype, shape, data_offsets} (plus "__metadata__" of
 * strings), then the raw little-endian data. dtypes: F32 F16 BF16 I32 I64 U8
 * BOOL. Little-endian hosts only (x86_64); a big-endian build fails to compile.
 * Errors start with "save_safetensors: <path>: " / "load_safetensors: <path>: ". */
#ifndef LATTICE_IO_H
#define LATTICE_IO_H

#include "lattice/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lt_named_tensor {
  const char *name;
  lt_tensor *tensor;
} lt_named_tensor;

typedef struct lt_metadata_entry {
  const char *key;
  const char *value;
} lt_metadata_entry;

/* Writes tensors in the order given (views as their row-major contents), the
 * metadata first, the header padded with spaces to a multiple of 8 bytes.
 * Names and metadata must be valid UTF-8, unique, and no tensor may be called
 * "__metadata__". A symbolic link at `path` is followed to the file it names
 * (the target). The file is written as ".lt-<hash>-<id>.tmp" beside the
 * target, given the target's mode and (where permitted) owner, fsynced and
 * renamed onto the target: a failure never leaves a partial file under
 * `path` and removes the temporary file; temporaries of the same target left
 * by a writer that died are removed first (docs/io.md). Borrows everything. */
lt_status lt_safetensors_save(lt_ctx *ctx, const char *path, int n, const lt_named_tensor *tensors, int nmeta,
                              const lt_metadata_entry *meta);

/* A loaded file: tensors in the order of their data_offsets (the file's own
 * order), metadata in header order. Free with lt_safetensors_free. */
typedef struct lt_safetensors {
  int n;
  lt_named_tensor *tensors; /* names and tensors owned by this struct */
  int nmeta;
  lt_metadata_entry *meta;
} lt_safetensors;

/* Validates the whole header before creating any tensor: length within the
 * file and at most 100 MB, UTF-8, strict JSON (RFC 8259: no BOM, no control
 * bytes outside strings, no raw control characters or invalid escapes inside
 * them) holding one object, at most 2^17 tensors and 2^17 metadata entries,
 * each entry's dtype, shape (integers written as digits alone, below 2^53, at
 * most LT_MAX_DIMS) and data_offsets (the same integers, exactly numel *
 * itemsize bytes), names unique and free of \u0000, regions tiling the data
 * buffer exactly, __metadata__ an object of strings. Unknown fields inside an
 * entry are ignored, as the reference reader does. BOOL bytes are read as
 * 0/1. On success *out is a new lt_safetensors; on failure it is NULL. */
lt_status lt_safetensors_load(lt_ctx *ctx, const char *path, lt_safetensors **out);
void lt_safetensors_free(lt_safetensors *st);

#ifdef __cplusplus
}
#endif

#endif
