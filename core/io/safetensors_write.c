/* safetensors writer. The header is built with cJSON (so names and metadata
 * are escaped by a vetted JSON printer), numbers are emitted as exact integer
 * text, and the header is padded with spaces to a multiple of 8 bytes as the
 * reference writer does, so the data buffer starts 8-byte aligned. Tensors are
 * laid out in the order given, contiguous, row-major, little-endian.
 * The file is written under a temporary name next to `path`, fsync'ed and
 * renamed over `path`: readers see the old file or the new one, never half. */
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

typedef struct writer {
  lt_ctx *ctx;
  const char *path;
  char *tmp; /* temporary file name, unlinked on every failure */
  int fd;
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
    ssize_t put = write(w->fd, p, (size_t)(n < (1 << 30) ? n : (1 << 30)));
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return bad(w, "write failed: %s", strerror(errno));
    p += put;
    n -= put;
  }
  return LT_OK;
}

/* Creates "<path>.tmp.<pid>.<k>" exclusively, so concurrent saves (other
 * processes, or other contexts in this one) never share a temporary file. */
static lt_status open_temp(writer *w) {
  size_t n = strlen(w->path) + 64;
  w->tmp = malloc(n);
  if (!w->tmp) return lt_ctx_fail(w->ctx, LT_ERR_MEM, "save_safetensors: out of memory");
  for (int k = 0; k < 1000; k++) {
    snprintf(w->tmp, n, "%s.tmp.%ld.%d", w->path, (long)getpid(), k);
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (w->fd >= 0 || errno != EEXIST) break;
  }
  if (w->fd < 0) {
    int err = errno;
    free(w->tmp);
    w->tmp = NULL; /* nothing to clean up */
    return bad(w, "cannot create a temporary file next to it: %s", strerror(err));
  }
  return LT_OK;
}

/* Makes the rename itself durable; failure here is not worth an error. */
static void sync_dir(const char *path) {
  char *copy = strdup(path);
  if (!copy) return;
  int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    fsync(fd);
    close(fd);
  }
  free(copy);
}

static lt_status write_file(writer *w, const char *header, size_t hlen, int n, const lt_named_tensor *ts) {
  lt_status st = write_all(w, header, (int64_t)hlen);
  for (int i = 0; st == LT_OK && i < n; i++) {
    lt_tensor *c = NULL; /* views are written as their row-major contents */
    st = lt__as_contig(w->ctx, &c, ts[i].tensor, lt_tensor_dtype(ts[i].tensor));
    if (st == LT_OK) st = write_all(w, lt_tensor_data(c), tensor_bytes(c));
    lt_tensor_release(c);
  }
  if (st == LT_OK && fsync(w->fd) != 0) st = bad(w, "fsync failed: %s", strerror(errno));
  int fd = w->fd;
  w->fd = -1;
  if (close(fd) != 0 && st == LT_OK) st = bad(w, "close failed: %s", strerror(errno));
  if (st == LT_OK && rename(w->tmp, w->path) != 0)
    st = bad(w, "cannot rename the temporary file onto it: %s", strerror(errno));
  return st;
}

lt_status lt_safetensors_save(lt_ctx *ctx, const char *path, int n, const lt_named_tensor *tensors, int nmeta,
                              const lt_metadata_entry *meta) {
  writer w = {.ctx = ctx, .path = path ? path : "(null)", .fd = -1};
  if (!path) return lt_ctx_fail(ctx, LT_ERR_ARG, "save_safetensors: path is NULL");
  lt_status st = check_args(&w, n, tensors, nmeta, meta);
  if (st) return st;
  size_t hlen = 0;
  char *header = build_header(n, tensors, nmeta, meta, &hlen);
  if (!header) return lt_ctx_fail(ctx, LT_ERR_MEM, "save_safetensors: out of memory building the header");
  st = open_temp(&w);
  if (st == LT_OK) st = write_file(&w, header, hlen, n, tensors);
  if (w.fd >= 0) close(w.fd);
  if (st != LT_OK && w.tmp) unlink(w.tmp);
  if (st == LT_OK) sync_dir(path);
  free(w.tmp);
  free(header);
  return st;
}
