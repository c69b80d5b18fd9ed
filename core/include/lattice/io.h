/* safetensors files: an 8-byte little-endian header length, a JSON header
 * mapping names to {dtype, shape, data_offsets} (plus "__metadata__" of
 * strings), then the raw little-endian data. */
#ifndef LATTICE_IO_H
#define LATTICE_IO_H

#include "lattice/tensor.h"

typedef struct lt_named_tensor {
  const char *name;
  lt_tensor *tensor;
} lt_named_tensor;

typedef struct lt_metadata_entry {
  const char *key;
  const char *value;
} lt_metadata_entry;

/* Writes to `path` through a temporary file and a rename: a failure never
 * leaves a partial file under `path`. */
lt_status lt_safetensors_save(lt_ctx *ctx, const char *path, int n, const lt_named_tensor *tensors,
                              int nmeta, const lt_metadata_entry *meta);

/* A loaded file: tensors and metadata in header order. Free with lt_safetensors_free. */
typedef struct lt_safetensors {
  int n;
  lt_named_tensor *tensors; /* names and tensors owned by this struct */
  int nmeta;
  lt_metadata_entry *meta;
} lt_safetensors;

lt_status lt_safetensors_load(lt_ctx *ctx, const char *path, lt_safetensors **out);
void lt_safetensors_free(lt_safetensors *st);

#endif
