/* Element types and their traits. float32 is the compute type; float16 and
 * bfloat16 are storage types converted on load and store; float64 is for
 * references and gradient checks (ops compute it in double, unoptimised). */
#ifndef LATTICE_DTYPE_H
#define LATTICE_DTYPE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lt_dtype {
  LT_FLOAT32 = 0,
  LT_FLOAT16,
  LT_BFLOAT16,
  LT_INT32,
  LT_INT64,
  LT_UINT8,
  LT_BOOL,
  LT_FLOAT64,
  LT_UINT32, /* packed codes of quantized weights (MLX's uint32 words) */
  LT_DTYPE_COUNT
} lt_dtype;

typedef struct lt_dtype_traits {
  const char *name;    /* "float32", as Lua and tostring spell it */
  const char *st_name; /* "F32", as safetensors spells it */
  size_t size;         /* bytes per element */
  int is_float;
  double (*load)(const void *p);    /* one element to double */
  void (*store)(void *p, double v); /* double to one element (rounds, saturates ints) */
} lt_dtype_traits;

const lt_dtype_traits *lt_dtype_info(lt_dtype dt);
/* Returns the dtype named `name` ("float32", ...), or -1. */
int lt_dtype_from_name(const char *name);
int lt_dtype_from_st_name(const char *st_name);

/* Conversions between float32 and the 16-bit floats (round to nearest even). */
uint16_t lt_f32_to_f16(float f);
float lt_f16_to_f32(uint16_t h);
uint16_t lt_f32_to_bf16(float f);
float lt_bf16_to_f32(uint16_t h);

/* Converts n contiguous elements between dtypes (float32 in or out is exact
 * where the target can hold it). */
void lt_dtype_convert(void *dst, lt_dtype dst_dt, const void *src, lt_dtype src_dt, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
