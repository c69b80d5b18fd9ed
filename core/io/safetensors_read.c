/* safetensors reader. The whole header is validated before any tensor is
 * created: its length against the file, UTF-8, JSON, every entry's dtype,
 * shape and data_offsets, and that the regions tile the data buffer exactly
 * (no overlap, no hole, nothing after the last tensor), as the reference
 * implementation requires. Data is then read with pread straight into each
 * tensor's buffer, so nothing is ever read past what the header promised and
 * a file that shrinks meanwhile gives an error, not a crash (mmap would give
 * SIGBUS). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "tensor/internal.h"
#include "io/safetensors.h"

/* Integers in the header are JSON numbers, which cJSON keeps as doubles:
 * beyond 2^53 they are no longer exact, so they are refused. */
#define MAX_JSON_INT 9007199254740992.0

typedef struct entry {
  const char *name; /* points into the cJSON tree */
  lt_dtype dtype;
  int ndim;
  int64_t shape[LT_MAX_DIMS];
  int64_t begin, end; /* byte range within the data buffer */
  int64_t order;      /* position in the header, for a stable sort */
} entry;

typedef struct reader {
  lt_ctx *ctx;
  const char *path;
  int fd;
  int64_t file_size, header_len, data_len;
  char *header; /* header_len bytes and a NUL */
  cJSON *json;
  const cJSON *meta; /* the __metadata__ object, or NULL */
  entry *entries;
  int64_t n;
} reader;

/* Fails with "load_safetensors: <path>: <message>". */
__attribute__((format(printf, 2, 3))) static lt_status bad(reader *r, const char *fmt, ...) {
  char msg[400];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return lt_ctx_fail(r->ctx, LT_ERR_IO, "load_safetensors: %s: %s", r->path, msg);
}

/* Reads exactly n bytes at `offset`; fails when the file ends first. */
static lt_status read_at(reader *r, void *buf, int64_t n, int64_t offset) {
  char *p = buf;
  while (n > 0) {
    ssize_t got = pread(r->fd, p, (size_t)(n < (1 << 30) ? n : (1 << 30)), (off_t)offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return bad(r, "read failed: %s", strerror(errno));
    if (got == 0) return bad(r, "file ended early (was it changed while being read?)");
    p += got;
    n -= got;
    offset += got;
  }
  return LT_OK;
}

static lt_status open_file(reader *r) {
  r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
  if (r->fd < 0) return bad(r, "cannot open: %s", strerror(errno));
  struct stat sb;
  if (fstat(r->fd, &sb) != 0) return bad(r, "cannot stat: %s", strerror(errno));
  if (!S_ISREG(sb.st_mode)) return bad(r, "not a regular file");
  r->file_size = (int64_t)sb.st_size;
  return LT_OK;
}

/* The 8-byte length, then the header text, checked as UTF-8 JSON. */
static lt_status read_header(reader *r) {
  if (r->file_size < 8)
    return bad(r, "file is %lld bytes, too short for the 8-byte header length", (long long)r->file_size);
  unsigned char len8[8];
  if (read_at(r, len8, 8, 0)) return LT_ERR_IO;
  uint64_t len = 0;
  for (int i = 7; i >= 0; i--) len = (len << 8) | len8[i];
  if (len > (uint64_t)LT_ST_MAX_HEADER)
    return bad(r, "header length %llu exceeds the limit of %lld bytes", (unsigned long long)len, LT_ST_MAX_HEADER);
  if (len > (uint64_t)(r->file_size - 8))
    return bad(r, "header length %llu is larger than the %lld bytes that follow it", (unsigned long long)len,
               (long long)(r->file_size - 8));
  r->header_len = (int64_t)len;
  r->data_len = r->file_size - 8 - r->header_len;
  r->header = malloc((size_t)len + 1);
  if (!r->header) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  if (read_at(r, r->header, r->header_len, 8)) return LT_ERR_IO;
  r->header[len] = '\0';
  int64_t badbyte = lt__utf8_invalid_at(r->header, (size_t)len);
  if (badbyte >= 0) return bad(r, "header is not valid UTF-8 (byte %lld)", (long long)badbyte);
  const char *end = NULL;
  r->json = cJSON_ParseWithLengthOpts(r->header, (size_t)len, &end, 0);
  if (!r->json)
    return bad(r, "header is not valid JSON (error at byte %lld of %lld)", (long long)(end ? end - r->header : 0),
               (long long)len);
  /* after the JSON value only whitespace: the writer pads with spaces */
  for (const char *p = end; p < r->header + len; p++)
    if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
      return bad(r, "header has unexpected bytes after the JSON value (byte %lld)", (long long)(p - r->header));
  if (!cJSON_IsObject(r->json)) return bad(r, "header is not a JSON object");
  return LT_OK;
}

/* Describes a JSON value for a message: the number itself, or its kind. */
static const char *describe(const cJSON *v, char *buf, size_t n) {
  const char *kind = cJSON_IsString(v)   ? "a string"
                     : cJSON_IsArray(v)  ? "an array"
                     : cJSON_IsObject(v) ? "an object"
                     : cJSON_IsBool(v)   ? "a boolean"
                                         : "null";
  if (cJSON_IsNumber(v))
    snprintf(buf, n, "%.17g", v->valuedouble);
  else
    snprintf(buf, n, "%s", kind);
  return buf;
}

/* A non-negative integer that a double holds exactly, or -1. */
static int64_t json_count(const cJSON *v) {
  if (!cJSON_IsNumber(v)) return -1;
  double d = v->valuedouble;
  if (!(d >= 0 && d <= MAX_JSON_INT) || d != (double)(int64_t)d) return -1;
  return (int64_t)d;
}

static lt_status parse_dtype(reader *r, const cJSON *item, entry *e) {
  const cJSON *dt = cJSON_GetObjectItemCaseSensitive(item, "dtype");
  if (!dt) return bad(r, "tensor '%s' has no dtype", e->name);
  if (!cJSON_IsString(dt)) return bad(r, "tensor '%s' has a dtype that is not a string", e->name);
  int d = lt_dtype_from_st_name(dt->valuestring);
  if (d < 0)
    return bad(r, "tensor '%s' has dtype '%s', which lattice does not read (F32 F16 BF16 I32 I64 U8 BOOL F64)", e->name,
               dt->valuestring);
  e->dtype = (lt_dtype)d;
  return LT_OK;
}

static lt_status parse_shape(reader *r, const cJSON *item, entry *e) {
  const cJSON *sh = cJSON_GetObjectItemCaseSensitive(item, "shape");
  char buf[64];
  if (!sh) return bad(r, "tensor '%s' has no shape", e->name);
  if (!cJSON_IsArray(sh))
    return bad(r, "tensor '%s' has a shape that is %s, not an array", e->name, describe(sh, buf, sizeof buf));
  int nd = cJSON_GetArraySize(sh);
  if (nd > LT_MAX_DIMS)
    return bad(r, "tensor '%s' has %d dimensions (lattice supports at most %d)", e->name, nd, LT_MAX_DIMS);
  e->ndim = 0;
  for (const cJSON *d = sh->child; d; d = d->next) {
    int64_t v = json_count(d);
    if (v < 0)
      return bad(r, "tensor '%s' has shape entry %s, not a non-negative integer", e->name,
                 describe(d, buf, sizeof buf));
    e->shape[e->ndim++] = v;
  }
  return LT_OK;
}

/* data_offsets: [begin, end] within the buffer, exactly numel * itemsize bytes. */
static lt_status parse_offsets(reader *r, const cJSON *item, entry *e) {
  const cJSON *off = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
  char buf[64], shape[LT_SHAPE_STR_MAX];
  if (!off) return bad(r, "tensor '%s' has no data_offsets", e->name);
  if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
    return bad(r, "tensor '%s' has data_offsets that are not [begin, end]", e->name);
  for (const cJSON *v = off->child; v; v = v->next)
    if (json_count(v) < 0)
      return bad(r, "tensor '%s' has data_offsets entry %s, not a non-negative integer", e->name,
                 describe(v, buf, sizeof buf));
  e->begin = json_count(off->child);
  e->end = json_count(off->child->next);
  if (e->begin > e->end)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] that end before they begin", e->name, (long long)e->begin,
               (long long)e->end);
  /* the byte count, refusing shapes whose product overflows */
  int64_t need = (int64_t)lt_dtype_info(e->dtype)->size;
  int overflow = 0;
  for (int i = 0; i < e->ndim; i++) overflow |= __builtin_mul_overflow(need, e->shape[i], &need);
  lt__shape_str(shape, sizeof shape, e->ndim, e->shape);
  if (overflow) return bad(r, "tensor '%s' has shape %s, too large to address", e->name, shape);
  if (need != e->end - e->begin)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] but shape %s %s needs %lld bytes", e->name,
               (long long)e->begin, (long long)e->end, shape, lt_dtype_info(e->dtype)->name, (long long)need);
  if (e->end > r->data_len)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] beyond the %lld-byte data buffer", e->name,
               (long long)e->begin, (long long)e->end, (long long)r->data_len);
  return LT_OK;
}

/* __metadata__: an object of strings (null counts as none). */
static lt_status parse_metadata(reader *r, const cJSON *item) {
  if (r->meta) return bad(r, "header has __metadata__ twice");
  if (cJSON_IsNull(item)) return LT_OK;
  if (!cJSON_IsObject(item)) return bad(r, "__metadata__ is not an object");
  for (const cJSON *v = item->child; v; v = v->next)
    if (!cJSON_IsString(v)) return bad(r, "__metadata__ value for '%s' is not a string", v->string);
  r->meta = item;
  return LT_OK;
}

/* Fills r->entries from the header object, one per tensor. */
static lt_status parse_entries(reader *r) {
  int64_t count = 0;
  for (const cJSON *c = r->json->child; c; c = c->next) count++;
  r->entries = calloc((size_t)(count ? count : 1), sizeof *r->entries);
  if (!r->entries) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  for (const cJSON *c = r->json->child; c; c = c->next) {
    if (strcmp(c->string, "__metadata__") == 0) {
      if (parse_metadata(r, c)) return LT_ERR_IO;
      continue;
    }
    entry *e = &r->entries[r->n];
    *e = (entry){.name = c->string, .order = r->n};
    if (!cJSON_IsObject(c)) return bad(r, "tensor '%s' is not an object", e->name);
    if (parse_dtype(r, c, e) || parse_shape(r, c, e) || parse_offsets(r, c, e)) return LT_ERR_IO;
    r->n++;
  }
  return LT_OK;
}

/* Names (and metadata keys) must be unique; JSON itself does not say so. */
static lt_status check_unique(reader *r) {
  int64_t nmeta = cJSON_GetArraySize(r->meta), most = r->n > nmeta ? r->n : nmeta;
  const char **names = malloc((size_t)(most ? most : 1) * sizeof *names), *dup = NULL;
  if (!names) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  for (int64_t i = 0; i < r->n; i++) names[i] = r->entries[i].name;
  lt_status st = LT_OK;
  if (lt__find_duplicate(names, r->n, &dup)) {
    st = bad(r, "tensor '%s' appears twice in the header", dup);
  } else if (r->meta) {
    int64_t k = 0;
    for (const cJSON *v = r->meta->child; v; v = v->next) names[k++] = v->string;
    if (lt__find_duplicate(names, nmeta, &dup)) st = bad(r, "__metadata__ key '%s' appears twice", dup);
  }
  free(names);
  return st;
}

static int cmp_offsets(const void *pa, const void *pb) {
  const entry *a = pa, *b = pb;
  if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
  if (a->end != b->end) return a->end < b->end ? -1 : 1;
  return a->order < b->order ? -1 : a->order > b->order;
}

/* Sorted by offset, each region must start where the previous one ended and
 * the last must end at the end of the file. */
static lt_status check_tiling(reader *r) {
  qsort(r->entries, (size_t)r->n, sizeof *r->entries, cmp_offsets);
  int64_t at = 0;
  for (int64_t i = 0; i < r->n; i++) {
    const entry *e = &r->entries[i];
    if (e->begin < at) {
      const entry *p = &r->entries[i - 1];
      return bad(r, "tensors '%s' [%lld,%lld] and '%s' [%lld,%lld] overlap", p->name, (long long)p->begin,
                 (long long)p->end, e->name, (long long)e->begin, (long long)e->end);
    }
    if (e->begin > at) return bad(r, "data bytes [%lld,%lld) belong to no tensor", (long long)at, (long long)e->begin);
    at = e->end;
  }
  if (at < r->data_len)
    return bad(r, "data bytes [%lld,%lld) belong to no tensor", (long long)at, (long long)r->data_len);
  return LT_OK;
}

static char *dup_str(const char *s) {
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static lt_status load_metadata(reader *r, lt_safetensors *st) {
  int nmeta = cJSON_GetArraySize(r->meta);
  st->meta = calloc((size_t)(nmeta ? nmeta : 1), sizeof *st->meta);
  if (!st->meta) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  for (const cJSON *v = r->meta ? r->meta->child : NULL; v; v = v->next) {
    lt_metadata_entry *m = &st->meta[st->nmeta];
    m->key = dup_str(v->string);
    m->value = dup_str(v->valuestring);
    st->nmeta++;
    if (!m->key || !m->value) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  }
  return LT_OK;
}

/* Creates the tensors in offset order and reads their bytes. */
static lt_status load_tensors(reader *r, lt_safetensors *st) {
  st->tensors = calloc((size_t)(r->n ? r->n : 1), sizeof *st->tensors);
  if (!st->tensors) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  int64_t data_start = 8 + r->header_len;
  for (int64_t i = 0; i < r->n; i++) {
    const entry *e = &r->entries[i];
    lt_named_tensor *nt = &st->tensors[st->n++];
    nt->name = dup_str(e->name);
    if (!nt->name) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
    if (lt_tensor_new(r->ctx, &nt->tensor, e->dtype, e->ndim, e->shape)) {
      char why[256]; /* the context's message, moved behind our prefix */
      snprintf(why, sizeof why, "%s", lt_ctx_error(r->ctx));
      return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: %s: tensor '%s': %s", r->path, e->name, why);
    }
    uint8_t *p = lt_tensor_data(nt->tensor);
    if (read_at(r, p, e->end - e->begin, data_start + e->begin)) return LT_ERR_IO;
    if (e->dtype == LT_BOOL) /* lattice's bools are 0/1; other writers may store any non-zero byte */
      for (int64_t k = 0; k < e->end - e->begin; k++) p[k] = p[k] != 0;
  }
  return LT_OK;
}

static lt_status load(reader *r, lt_safetensors **out) {
  lt_status s;
  if ((s = open_file(r)) || (s = read_header(r)) || (s = parse_entries(r)) || (s = check_unique(r)) ||
      (s = check_tiling(r)))
    return s;
  lt_safetensors *st = calloc(1, sizeof *st);
  if (!st) return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: out of memory");
  s = load_metadata(r, st);
  if (s == LT_OK) s = load_tensors(r, st);
  if (s != LT_OK) {
    lt_safetensors_free(st);
    return s;
  }
  *out = st;
  return LT_OK;
}

lt_status lt_safetensors_load(lt_ctx *ctx, const char *path, lt_safetensors **out) {
  *out = NULL;
  reader r = {.ctx = ctx, .path = path, .fd = -1};
  lt_status st = load(&r, out);
  if (r.fd >= 0) close(r.fd);
  cJSON_Delete(r.json);
  free(r.header);
  free(r.entries);
  return st;
}
