/* safetensors writer. The header is built with cJSON (so names and metadata
 * are escaped by a vetted JSON printer), numbers are emitted as exact integer
 * text, and the header is padded with spaces to a multiple of 8 bytes as the
 * reference writer does, so the data buffer starts 8-byte aligned. Tensors are
 * laid out in the order given, contiguous, row-major, little-endian.
 * The file is written under a temporary name beside `path` (beside the file
 * it links to, if it is a symbolic link), fsync'ed and renamed onto it with
 * the old file's mode and owner (replace.h): readers see the old file or the
 * new one, never half. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tensor/internal.h"
#include "io/safetensors.h"
#include "io/replace.h"

typedef struct writer {
  lt_ctx *ctx;
  const char *path;
  lt__replace rp; /* the temporary file, removed on every failure */
} writer;

/* Fails with "save_safetensors: <path>: <message>". */
__attribute__((format(printf, 2, 3))) static lt_status bad(writer *w, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_ctx_fail(w->ctx, LT_ERR_IO, "save_safetensors: %s: %s", w->path, msg);
}

static lt_status check_name(writer *w, const char *what, const char *s) {
  if (!s) return lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: %s is NULL", what);
  if (lt__utf8_invalid_at(s, strlen(s)) >= 0)
    return lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: %s '%s' is not valid UTF-8", what, s);
  return LT_OK;
}

/* Everything a caller can get wrong, before any file is touched. */
static lt_status check_args(writer *w, int n, const lt_named_tensor *ts, int nmeta, const lt_metadata_entry *meta) {
  if (n < 0 || nmeta < 0 || (n && !ts) || (nmeta && !meta))
    return lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: bad tensor or metadata count");
  for (int i = 0; i < n; i++) {
    if (check_name(w, "tensor name", ts[i].name)) return LT_ERR_ARG;
    if (strcmp(ts[i].name, "__metadata__") == 0)
      return lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: '__metadata__' cannot name a tensor");
    if (!ts[i].tensor) return lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: tensor '%s' is NULL", ts[i].name);
  }
  for (int i = 0; i < nmeta; i++)
    if (check_name(w, "metadata key", meta[i].key) || check_name(w, "metadata value", meta[i].value)) return LT_ERR_ARG;
  int most = n > nmeta ? n : nmeta;
  const char **names = malloc((size_t)(most ? most : 1) * sizeof *names), *dup = NULL;
  if (!names) return lt_ctx_fail(w->ctx, LT_ERR_MEM, "save_safetensors: out of memory");
  lt_status st = LT_OK;
  for (int i = 0; i < n; i++) names[i] = ts[i].name;
  if (lt__find_duplicate(names, n, &dup))
    st = lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: tensor name '%s' appears twice", dup);
  for (int i = 0; st == LT_OK && i < nmeta; i++) names[i] = meta[i].key;
  if (st == LT_OK && lt__find_duplicate(names, nmeta, &dup))
    st = lt_ctx_fail(w->ctx, LT_ERR_ARG, "save_safetensors: metadata key '%s' appears twice", dup);
  free(names);
  return st;
}

static int64_t tensor_bytes(const lt_tensor *t) {
  return lt_tensor_size(t) * (int64_t)lt_dtype_info(lt_tensor_dtype(t))->size;
}

/* One tensor's entry: {"dtype":"F32","shape":[2,3],"data_offsets":[b,e]}. */
static cJSON *tensor_entry(const lt_tensor *t, int64_t begin) {
  char buf[32 * (LT_MAX_DIMS + 1)];
  int len = snprintf(buf, sizeof buf, "[");
  for (int i = 0; i < lt_tensor_ndim(t); i++)
    len += snprintf(buf + len, sizeof buf - (size_t)len, i ? ",%lld" : "%lld", (long long)lt_tensor_shape(t)[i]);
  snprintf(buf + len, sizeof buf - (size_t)len, "]");
  cJSON *e = cJSON_CreateObject();
  if (!e) return NULL;
  int ok = cJSON_AddStringToObject(e, "dtype", lt_dtype_info(lt_tensor_dtype(t))->st_name) != NULL;
  ok = ok && cJSON_AddRawToObject(e, "shape", buf) != NULL; /* raw: cJSON prints big doubles as 1e+15 */
  snprintf(buf, sizeof buf, "[%lld,%lld]", (long long)begin, (long long)(begin + tensor_bytes(t)));
  ok = ok && cJSON_AddRawToObject(e, "data_offsets", buf) != NULL;
  if (!ok) cJSON_Delete(e);
  return ok ? e : NULL;
}

/* The padded header text (8-byte length included); *len gets its size. */
static char *build_header(int n, const lt_named_tensor *ts, int nmeta, const lt_metadata_entry *meta, size_t *len) {
  cJSON *root = cJSON_CreateObject(), *m = nmeta && root ? cJSON_AddObjectToObject(root, "__metadata__") : NULL;
  int ok = root && (!nmeta || m);
  for (int i = 0; ok && i < nmeta; i++) ok = cJSON_AddStringToObject(m, meta[i].key, meta[i].value) != NULL;
  int64_t at = 0;
  for (int i = 0; ok && i < n; i++) {
    cJSON *e = tensor_entry(ts[i].tensor, at);
    ok = e && cJSON_AddItemToObject(root, ts[i].name, e);
    if (e && !ok) cJSON_Delete(e);
    at += tensor_bytes(ts[i].tensor);
  }
  char *json = ok ? cJSON_PrintUnformatted(root) : NULL, *out = NULL;
  cJSON_Delete(root);
  if (!json) return NULL;
  size_t jlen = strlen(json), padded = (jlen + 7) / 8 * 8;
  out = malloc(8 + padded);
  if (out) {
    for (int i = 0; i < 8; i++) out[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(out + 8, json, jlen);
    memset(out + 8 + jlen, ' ', padded - jlen);
    *len = 8 + padded;
  }
  free(json);
  return out;
}

static lt_status write_all(writer *w, const void *buf, int64_t n) {
  const char *p = buf;
  while (n > 0) {
    ssize_t put = write(w->rp.fd, p, (size_t)(n < (1 << 30) ? n : (1 << 30)));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return bad(w, "write failed: %s", strerror(errno));
    p += put;
    n -= put;
  }
  return LT_OK;
}

static lt_status write_file(writer *w, const char *header, size_t hlen, int n, const lt_named_tensor *ts) {
  lt_status st = write_all(w, header, (int64_t)hlen);
  for (int i = 0; st == LT_OK && i < n; i++) {
    lt_tensor *c = NULL; /* views are written as their row-major contents */
    st = lt__as_contig(w->ctx, &c, ts[i].tensor, lt_tensor_dtype(ts[i].tensor));
    if (st == LT_OK) st = write_all(w, lt_tensor_data(c), tensor_bytes(c));
    lt_tensor_release(c);
  }
  return st;
}

/* Through a temporary file beside the target (replace.h). */
static lt_status save(writer *w, const char *header, size_t hlen, int n, const lt_named_tensor *ts) {
  const char *what = NULL;
  int err = lt__replace_begin(&w->rp, w->path, &what);
  if (err) return bad(w, "%s: %s", what, strerror(err));
  lt_status st = write_file(w, header, hlen, n, ts);
  if (st == LT_OK && (err = lt__replace_commit(&w->rp, &what)) != 0) st = bad(w, "%s: %s", what, strerror(err));
  return st;
}

lt_status lt_safetensors_save(lt_ctx *ctx, const char *path, int n, const lt_named_tensor *tensors, int nmeta,
                              const lt_metadata_entry *meta) {
  writer w = {.ctx = ctx, .path = path ? path : "(null)", .rp = {.fd = -1}};
  if (!path) return lt_ctx_fail(ctx, LT_ERR_ARG, "save_safetensors: path is NULL");
  lt_status st = check_args(&w, n, tensors, nmeta, meta);
  if (st) return st;
  size_t hlen = 0;
  char *header = build_header(n, tensors, nmeta, meta, &hlen);
  if (!header) return lt_ctx_fail(ctx, LT_ERR_MEM, "save_safetensors: out of memory building the header");
  st = save(&w, header, hlen, n, tensors);
  lt__replace_end(&w.rp);
  free(header);
  return st;
}
