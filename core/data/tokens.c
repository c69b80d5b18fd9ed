/* Bytes and characters to ids, and ids back to text (lattice/data.h). */
#include <stdlib.h>
#include <string.h>
#include "base.h"
#include "lattice/data.h"

lt_status lt_bytes_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n) {
  lt_status st = lt_tensor_new(ctx, out, LT_INT32, 1, &n);
  if (st) return st;
  int32_t *ids = lt_tensor_data(*out);
  for (int64_t i = 0; i < n; i++) ids[i] = text[i];
  return LT_OK;
}

static int cont(const uint8_t *s, int64_t n, int64_t i, uint8_t lo, uint8_t hi) {
  return i < n && s[i] >= lo && s[i] <= hi;
}

/* The length of the well-formed UTF-8 character at s[0] (RFC 3629's table of
 * well-formed sequences), or 0 when s[0] begins none. */
static int char_len(const uint8_t *s, int64_t n) {
  uint8_t b = s[0];
  if (b < 0x80) return 1;
  if (b >= 0xc2 && b <= 0xdf) return cont(s, n, 1, 0x80, 0xbf) ? 2 : 0;
  if (b >= 0xe0 && b <= 0xef) {
    uint8_t lo = b == 0xe0 ? 0xa0 : 0x80, hi = b == 0xed ? 0x9f : 0xbf; /* no overlongs, no surrogates */
    return cont(s, n, 1, lo, hi) && cont(s, n, 2, 0x80, 0xbf) ? 3 : 0;
  }
  if (b >= 0xf0 && b <= 0xf4) {
    uint8_t lo = b == 0xf0 ? 0x90 : 0x80, hi = b == 0xf4 ? 0x8f : 0xbf; /* no overlongs, nothing past U+10FFFF */
    return cont(s, n, 1, lo, hi) && cont(s, n, 2, 0x80, 0xbf) && cont(s, n, 3, 0x80, 0xbf) ? 4 : 0;
  }
  return 0;
}

/* The key of the character at text[*at], advancing *at past it. */
static int32_t next_key(const uint8_t *text, int64_t n, int64_t *at) {
  const uint8_t *s = text + *at;
  int len = char_len(s, n - *at);
  *at += len ? len : 1;
  switch (len) {
  case 1: return s[0];
  case 2: return (int32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
  case 3: return (int32_t)(s[0] & 0x0f) << 12 | (int32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
  case 4:
    return (int32_t)(s[0] & 0x07) << 18 | (int32_t)(s[1] & 0x3f) << 12 | (int32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
  default: return LT_CHAR_RAW_BYTE + s[0];
  }
}

#define KEY_SPACE (LT_CHAR_RAW_BYTE + 256)

/* A bitmap of the keys seen (KEY_SPACE bits, 136 KB), then the set ones in order. */
lt_status lt_chars_vocab(lt_ctx *ctx, lt_tensor **keys, const uint8_t *text, int64_t n) {
  *keys = NULL;
  size_t words = (KEY_SPACE + 63) / 64, bytes = words * sizeof(uint64_t);
  uint64_t *seen = lt_ctx_alloc(ctx, bytes);
  if (!seen) return lt_ctx_fail(ctx, LT_ERR_MEM, "vocab: out of memory");
  memset(seen, 0, bytes);
  for (int64_t at = 0; at < n;) {
    int32_t k = next_key(text, n, &at);
    seen[k / 64] |= 1ull << (k % 64);
  }
  int64_t count = 0;
  for (size_t w = 0; w < words; w++) count += __builtin_popcountll(seen[w]);
  lt_status st = lt_tensor_new(ctx, keys, LT_INT32, 1, &count);
  if (!st) {
    int32_t *out = lt_tensor_data(*keys);
    for (int32_t k = 0; k < KEY_SPACE; k++)
      if (seen[k / 64] >> (k % 64) & 1) *out++ = k;
  }
  lt_ctx_free(ctx, seen, bytes);
  return st;
}

static int cmp_key(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* keys must be a 1-D contiguous int32 tensor, ascending and distinct. */
static lt_status check_keys(lt_ctx *ctx, const lt_tensor *keys) {
  if (lt_tensor_dtype(keys) != LT_INT32 || lt_tensor_ndim(keys) != 1 || !lt_tensor_is_contiguous(keys))
    return lt_ctx_fail(ctx, LT_ERR_ARG, "encode: keys must be a contiguous 1-D int32 tensor");
  const int32_t *k = lt_tensor_data(keys);
  for (int64_t i = 1; i < lt_tensor_size(keys); i++)
    if (k[i] <= k[i - 1]) return lt_ctx_fail(ctx, LT_ERR_ARG, "encode: keys must be ascending and distinct");
  return LT_OK;
}

lt_status lt_chars_encode(lt_ctx *ctx, lt_tensor **out, const uint8_t *text, int64_t n, const lt_tensor *keys) {
  *out = NULL;
  lt_status st = check_keys(ctx, keys);
  if (st) return st;
  int64_t count = 0;
  for (int64_t at = 0; at < n; count++) next_key(text, n, &at);
  if ((st = lt_tensor_new(ctx, out, LT_INT32, 1, &count))) return st;
  int32_t *ids = lt_tensor_data(*out);
  const int32_t *k = lt_tensor_data(keys);
  size_t nk = (size_t)lt_tensor_size(keys);
  for (int64_t at = 0, i = 0; at < n; i++) {
    int64_t start = at;
    int32_t key = next_key(text, n, &at);
    const int32_t *hit = nk ? bsearch(&key, k, nk, sizeof *k, cmp_key) : NULL;
    if (!hit) {
      lt_tensor_release(*out);
      *out = NULL;
      if (key >= LT_CHAR_RAW_BYTE)
        return lt_ctx_fail(ctx, LT_ERR_ARG, "encode: the raw byte 0x%02X at byte %lld is not in the vocabulary",
                           (unsigned)(key - LT_CHAR_RAW_BYTE), (long long)start + 1);
      return lt_ctx_fail(ctx, LT_ERR_ARG, "encode: the character U+%04X at byte %lld is not in the vocabulary",
                         (unsigned)key, (long long)start + 1);
    }
    ids[i] = (int32_t)(hit - k);
  }
  return LT_OK;
}

/* The ids of t as int64 in row-major order, in a buffer of the context's
 * (n * 8 bytes), or NULL when out of memory. */
static int64_t *read_ids(lt_ctx *ctx, const lt_tensor *t, int64_t *n) {
  *n = lt_tensor_size(t);
  int64_t *ids = lt_ctx_alloc(ctx, (size_t)(*n ? *n : 1) * sizeof *ids);
  if (ids) lt_tensor_read(t, ids, LT_INT64);
  return ids;
}

lt_status lt_tokens_decoded_size(lt_ctx *ctx, int64_t *size, const lt_tensor *ids, const int64_t *offsets,
                                 int64_t npieces) {
  *size = 0;
  lt_dtype dt = lt_tensor_dtype(ids);
  if (lt_dtype_info(dt)->is_float || dt == LT_BOOL)
    return lt_ctx_fail(ctx, LT_ERR_ARG, "decode: ids must be integers, got %s", lt_dtype_info(dt)->name);
  int64_t n, total = 0;
  int64_t *v = read_ids(ctx, ids, &n);
  if (!v) return lt_ctx_fail(ctx, LT_ERR_MEM, "decode: out of memory");
  lt_status st = LT_OK;
  for (int64_t i = 0; i < n && !st; i++) {
    if (v[i] < 0 || v[i] >= npieces)
      st = lt_ctx_fail(ctx, LT_ERR_ARG, "decode: ids[%lld] = %lld is out of range for a vocabulary of %lld",
                       (long long)i + 1, (long long)v[i], (long long)npieces);
    else
      total += offsets[v[i] + 1] - offsets[v[i]];
  }
  lt_ctx_free(ctx, v, (size_t)(n ? n : 1) * sizeof *v);
  *size = total;
  return st;
}

lt_status lt_tokens_decode(lt_ctx *ctx, uint8_t *dst, const lt_tensor *ids, const int64_t *offsets,
                           const uint8_t *bytes) {
  int64_t n;
  int64_t *v = read_ids(ctx, ids, &n);
  if (!v) return lt_ctx_fail(ctx, LT_ERR_MEM, "decode: out of memory");
  for (int64_t i = 0; i < n; i++) {
    int64_t len = offsets[v[i] + 1] - offsets[v[i]];
    memcpy(dst, bytes + offsets[v[i]], (size_t)len);
    dst += len;
  }
  lt_ctx_free(ctx, v, (size_t)(n ? n : 1) * sizeof *v);
  return LT_OK;
}
