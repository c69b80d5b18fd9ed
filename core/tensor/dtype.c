/* dtype traits and the float16/bfloat16 conversions. */
#include <math.h>
#include <string.h>
#include "tensor/internal.h"

uint16_t lt_f32_to_f16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u, ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) /* inf or nan */
    return (uint16_t)(sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u | ((ax >> 13) & 0x3ffu) : 0));
  if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds past 65504: inf */
  if (ax < 0x38800000u) {                                   /* below the smallest normal half: subnormal or zero */
    float a;
    memcpy(&a, &ax, 4);
    /* a * 2^24 rounds to the subnormal's integer mantissa (round to nearest even) */
    return (uint16_t)(sign | (uint32_t)nearbyintf(a * 16777216.0f));
  }
  uint32_t mant_odd = (ax >> 13) & 1u;
  ax += 0xc8000fffu + mant_odd; /* rebias exponent (-112 << 23) and round to nearest even */
  return (uint16_t)(sign | (ax >> 13));
}

float lt_f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, x;
  if (exp == 0) {
    float f = (float)mant * 5.9604644775390625e-08f; /* 2^-24 */
    memcpy(&x, &f, 4);
    x |= sign;
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  memcpy(&f, &x, 4);
  return f;
}

uint16_t lt_f32_to_bf16(float f) {
  uint32_t x;
  memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* quiet nan */
  x += 0x7fffu + ((x >> 16) & 1u);
  return (uint16_t)(x >> 16);
}

float lt_bf16_to_f32(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  memcpy(&f, &x, 4);
  return f;
}

static double load_f32(const void *p) { return *(const float *)p; }
static double load_f64(const void *p) { return *(const double *)p; }
static double load_f16(const void *p) { return lt_f16_to_f32(*(const uint16_t *)p); }
static double load_bf16(const void *p) { return lt_bf16_to_f32(*(const uint16_t *)p); }
static double load_i32(const void *p) { return *(const int32_t *)p; }
static double load_i64(const void *p) { return (double)*(const int64_t *)p; }
static double load_u8(const void *p) { return *(const uint8_t *)p; }
static double load_u32(const void *p) { return *(const uint32_t *)p; }
static double load_bool(const void *p) { return *(const uint8_t *)p ? 1.0 : 0.0; }

static double clamp_round(double v, double lo, double hi) {
  if (isnan(v)) return 0;
  v = trunc(v); /* C casts truncate, as NumPy's astype does */
  return v < lo ? lo : v > hi ? hi : v;
}

/* INT64_MAX is not a double (the nearest below is 2^63 - 1024), so the bounds
 * are the exact powers 2^63: everything at or past them saturates. */
int64_t lt__double_to_i64(double v) {
  if (isnan(v)) return 0;
  if (v >= 0x1p63) return INT64_MAX;
  if (v < -0x1p63) return INT64_MIN;
  return (int64_t)v; /* truncates toward zero */
}

static void store_f32(void *p, double v) { *(float *)p = (float)v; }
static void store_f64(void *p, double v) { *(double *)p = v; }
static void store_f16(void *p, double v) { *(uint16_t *)p = lt_f32_to_f16((float)v); }
static void store_bf16(void *p, double v) { *(uint16_t *)p = lt_f32_to_bf16((float)v); }
static void store_i32(void *p, double v) { *(int32_t *)p = (int32_t)clamp_round(v, INT32_MIN, INT32_MAX); }
static void store_i64(void *p, double v) { *(int64_t *)p = lt__double_to_i64(v); }
static void store_u8(void *p, double v) { *(uint8_t *)p = (uint8_t)clamp_round(v, 0, 255); }
static void store_u32(void *p, double v) { *(uint32_t *)p = (uint32_t)clamp_round(v, 0, UINT32_MAX); }
static void store_bool(void *p, double v) { *(uint8_t *)p = v != 0; }

static const lt_dtype_traits traits[LT_DTYPE_COUNT] = {
    [LT_FLOAT32] = {"float32", "F32", 4, 1, load_f32, store_f32},
    [LT_FLOAT16] = {"float16", "F16", 2, 1, load_f16, store_f16},
    [LT_BFLOAT16] = {"bfloat16", "BF16", 2, 1, load_bf16, store_bf16},
    [LT_INT32] = {"int32", "I32", 4, 0, load_i32, store_i32},
    [LT_INT64] = {"int64", "I64", 8, 0, load_i64, store_i64},
    [LT_UINT8] = {"uint8", "U8", 1, 0, load_u8, store_u8},
    [LT_BOOL] = {"bool", "BOOL", 1, 0, load_bool, store_bool},
    [LT_FLOAT64] = {"float64", "F64", 8, 1, load_f64, store_f64},
    [LT_UINT32] = {"uint32", "U32", 4, 0, load_u32, store_u32},
};

const lt_dtype_traits *lt_dtype_info(lt_dtype dt) { return &traits[dt]; }

int lt_dtype_from_name(const char *name) {
  for (int i = 0; i < LT_DTYPE_COUNT; i++)
    if (strcmp(traits[i].name, name) == 0) return i;
  return -1;
}

int lt_dtype_from_st_name(const char *st_name) {
  for (int i = 0; i < LT_DTYPE_COUNT; i++)
    if (strcmp(traits[i].st_name, st_name) == 0) return i;
  return -1;
}

/* ---- integer to integer: through int64, exact, wrapping ---- */

static int64_t load_int(const void *p, lt_dtype dt) {
  switch (dt) {
  case LT_INT32: return *(const int32_t *)p;
  case LT_INT64: return *(const int64_t *)p;
  case LT_UINT32: return *(const uint32_t *)p;
  case LT_BOOL: return *(const uint8_t *)p != 0;
  default: return *(const uint8_t *)p;
  }
}

/* Keeps the low bits, as NumPy's fixed-width integers do (the conversions to
 * unsigned types are defined in C; int32_t of a uint32_t is two's complement
 * on every compiler lattice builds with). */
static void store_int(void *p, lt_dtype dt, int64_t v) {
  switch (dt) {
  case LT_INT32: *(int32_t *)p = (int32_t)(uint32_t)v; break;
  case LT_INT64: *(int64_t *)p = v; break;
  case LT_UINT32: *(uint32_t *)p = (uint32_t)v; break;
  case LT_BOOL: *(uint8_t *)p = v != 0; break;
  default: *(uint8_t *)p = (uint8_t)v; break;
  }
}

static void convert_int(void *dst, lt_dtype dd, const void *src, lt_dtype sd, int64_t n) {
  size_t es = traits[sd].size, ed = traits[dd].size;
  for (int64_t i = 0; i < n; i++)
    store_int((char *)dst + i * (int64_t)ed, dd, load_int((const char *)src + i * (int64_t)es, sd));
}

/* Fast paths for the conversions every op makes; integers convert among
 * themselves through int64; the rest go through doubles. */
void lt_dtype_convert(void *dst, lt_dtype dd, const void *src, lt_dtype sd, int64_t n) {
  if (dd == sd) {
    memcpy(dst, src, (size_t)n * traits[dd].size);
    return;
  }
  if (dd == LT_FLOAT32 && sd == LT_FLOAT16) {
    const uint16_t *s = src;
    float *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lt_f16_to_f32(s[i]);
  } else if (dd == LT_FLOAT32 && sd == LT_BFLOAT16) {
    const uint16_t *s = src;
    float *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lt_bf16_to_f32(s[i]);
  } else if (dd == LT_FLOAT16 && sd == LT_FLOAT32) {
    const float *s = src;
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lt_f32_to_f16(s[i]);
  } else if (dd == LT_BFLOAT16 && sd == LT_FLOAT32) {
    const float *s = src;
    uint16_t *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = lt_f32_to_bf16(s[i]);
  } else if (dd == LT_FLOAT64 && sd == LT_FLOAT32) {
    const float *s = src;
    double *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = s[i];
  } else if (dd == LT_FLOAT32 && sd == LT_FLOAT64) {
    const double *s = src;
    float *d = dst;
    for (int64_t i = 0; i < n; i++) d[i] = (float)s[i];
  } else if (!traits[dd].is_float && !traits[sd].is_float) {
    convert_int(dst, dd, src, sd, n);
  } else {
    const lt_dtype_traits *td = &traits[dd], *ts = &traits[sd];
    for (int64_t i = 0; i < n; i++) td->store((char *)dst + i * td->size, ts->load((const char *)src + i * ts->size));
  }
}

/* ---- promotion ---- */

static int int_rank(lt_dtype d) {
  switch (d) {
  case LT_BOOL: return 0;
  case LT_UINT8: return 1;
  case LT_INT32: return 2;
  case LT_UINT32: return 3;
  default: return 4;
  }
}

lt_dtype lt__promote(lt_dtype a, lt_dtype b) {
  int fa = lt_dtype_info(a)->is_float, fb = lt_dtype_info(b)->is_float;
  if (a == LT_FLOAT64 || b == LT_FLOAT64) return LT_FLOAT64; /* as NumPy: the widest float wins */
  if (fa && fb) return a == b ? a : LT_FLOAT32;              /* float16 with bfloat16 meet in float32 */
  if (fa) return a;
  if (fb) return b;
  if ((a == LT_INT32 && b == LT_UINT32) || (a == LT_UINT32 && b == LT_INT32)) return LT_INT64; /* holds both */
  return int_rank(a) >= int_rank(b) ? a : b;
}
