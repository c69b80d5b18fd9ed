/* safetensors reader. The whole header is validated before any tensor is
 * created: its length against the file, UTF-8, strict JSON (json.h), every
 * entry's dtype, shape and data_offsets, and that the regions tile the data
 * buffer exactly (no overlap, no hole, nothing after the last tensor), as the
 * reference implementation requires. The work is linear in the header's size
 * (plus a sort of the entries) and bounded per tensor: one fixed-size entry,
 * its decoded name, and at most LT_ST_MAX_TENSORS of them. Data is then read
 * with pread straight into each tensor's buffer, so nothing is ever read past
 * what the header promised and a file that shrinks meanwhile gives an error,
 * not a crash (mmap would give SIGBUS). */
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
#include "io/json.h"

/* Shapes and offsets are JSON integers below 2^53, the range every JSON
 * reader (doubles included) holds exactly; 2^53 has 16 digits. */
#define MAX_COUNT        (INT64_C(1) << 53)
#define MAX_COUNT_DIGITS 16

typedef struct entry {
  const char *name; /* in reader.strings */
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
  char *header;  /* header_len bytes and a NUL */
  char *strings; /* decoded strings one after another, header_len + 1 bytes */
  int64_t strings_used;
  entry *entries;
  int64_t n, count; /* entries filled, tensors in the header */
  int meta_seen;
  lt_metadata_entry *meta; /* keys and values in strings */
  int64_t nmeta;
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

static lt_status no_memory(reader *r) {
  return lt_ctx_fail(r->ctx, LT_ERR_MEM, "load_safetensors: %s: out of memory", r->path);
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

/* The 8-byte length, then the header text into r->header. */
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
  r->strings = malloc((size_t)len + 1);
  if (!r->header || !r->strings) return no_memory(r);
  if (read_at(r, r->header, r->header_len, 8)) return LT_ERR_IO;
  r->header[len] = '\0';
  return LT_OK;
}

/* UTF-8, then strict JSON (json.h): one object, then only whitespace (the
 * writer pads with spaces). */
static lt_status check_header(reader *r) {
  const char *h = r->header;
  int64_t len = r->header_len, end = 0;
  if (len >= 3 && memcmp(h, "\xef\xbb\xbf", 3) == 0)
    return bad(r, "header starts with a UTF-8 byte order mark, which JSON does not allow");
  int64_t at = lt__utf8_invalid_at(h, (size_t)len);
  if (at >= 0) return bad(r, "header is not valid UTF-8 (byte %lld)", (long long)at);
  char why[LT_JSON_WHY_MAX];
  at = lt__json_check(h, len, &end, why);
  if (at >= 0) return bad(r, "header is not valid JSON (byte %lld of %lld: %s)", (long long)at, (long long)len, why);
  for (at = end; at < len; at++)
    if (h[at] != ' ' && h[at] != '\t' && h[at] != '\n' && h[at] != '\r')
      return bad(r, "header has unexpected bytes after the JSON value (byte %lld)", (long long)at);
  if (h[lt__json_ws(h, 0)] != '{') return bad(r, "header is not a JSON object");
  return LT_OK;
}

/* The string at `at`, decoded into r->strings (*len: its length). */
static const char *decode(reader *r, int64_t at, size_t *len) {
  char *s = r->strings + r->strings_used;
  *len = lt__json_string(r->header, at, s);
  r->strings_used += (int64_t)*len + 1;
  return s;
}

/* The string at `at` as a C string: a \u0000 inside would cut it short, so it
 * is an error, quoted as written ("<what> "a\u0000b"<whose> contains ..."). */
static lt_status cstring(reader *r, int64_t at, const char *what, const char *whose, const char **out) {
  size_t len;
  *out = decode(r, at, &len);
  if (strlen(*out) == len) return LT_OK;
  int raw = (int)(lt__json_skip(r->header, at) - at - 2);
  return bad(r, "%s \"%.*s\"%s contains a NUL character", what, raw < 200 ? raw : 200, r->header + at + 1, whose);
}

/* Describes a JSON value for a message: a number as written, else its kind. */
static const char *describe(const reader *r, int64_t at, char *buf, size_t n) {
  const char *h = r->header;
  switch (h[at]) {
  case '"': return "a string";
  case '[': return "an array";
  case '{': return "an object";
  case 't':
  case 'f': return "a boolean";
  case 'n': return "null";
  }
  int len = (int)(lt__json_skip(h, at) - at);
  snprintf(buf, n, "%.*s%s", len <= 40 ? len : 40, h + at, len <= 40 ? "" : "...");
  return buf;
}

/* A JSON integer written as digits alone (no sign, fraction or exponent:
 * "2.0", "2e0" and "-0" are refused) and below 2^53, or -1. */
static int64_t json_count(const reader *r, int64_t at) {
  int64_t end = lt__json_skip(r->header, at), v = 0;
  if (end - at > MAX_COUNT_DIGITS) return -1;
  for (int64_t i = at; i < end; i++) {
    char c = r->header[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  return v < MAX_COUNT ? v : -1;
}

static lt_status parse_dtype(reader *r, entry *e, int64_t at) {
  if (at < 0) return bad(r, "tensor '%s' has no dtype", e->name);
  if (r->header[at] != '"') return bad(r, "tensor '%s' has a dtype that is not a string", e->name);
  char whose[300];
  snprintf(whose, sizeof whose, " of tensor '%s'", e->name);
  int64_t mark = r->strings_used; /* the dtype's text is not kept */
  const char *name;
  if (cstring(r, at, "dtype", whose, &name)) return LT_ERR_IO;
  int d = lt_dtype_from_st_name(name);
  if (d < 0)
    return bad(r, "tensor '%s' has dtype '%s', which lattice does not read (F32 F16 BF16 I32 I64 U8 BOOL F64 U32)",
               e->name, name);
  r->strings_used = mark;
  e->dtype = (lt_dtype)d;
  return LT_OK;
}

static lt_status parse_shape(reader *r, entry *e, int64_t at) {
  char buf[64];
  if (at < 0) return bad(r, "tensor '%s' has no shape", e->name);
  if (r->header[at] != '[')
    return bad(r, "tensor '%s' has a shape that is %s, not an array", e->name, describe(r, at, buf, sizeof buf));
  int64_t nd = 0, dim;
  for (int64_t i = at; lt__json_element(r->header, &i, &dim); nd++) {
    int64_t v = json_count(r, dim);
    if (v < 0)
      return bad(r, "tensor '%s' has shape entry %s, not a non-negative integer below 2^53", e->name,
                 describe(r, dim, buf, sizeof buf));
    if (nd < LT_MAX_DIMS) e->shape[nd] = v;
  }
  if (nd > LT_MAX_DIMS)
    return bad(r, "tensor '%s' has %lld dimensions (lattice supports at most %d)", e->name, (long long)nd, LT_MAX_DIMS);
  e->ndim = (int)nd;
  return LT_OK;
}

/* data_offsets: [begin, end] within the buffer, exactly numel * itemsize bytes. */
static lt_status parse_offsets(reader *r, entry *e, int64_t at) {
  char buf[64], shape[LT_SHAPE_STR_MAX];
  if (at < 0) return bad(r, "tensor '%s' has no data_offsets", e->name);
  int64_t v[3], k = 0;
  for (int64_t i = at; r->header[at] == '[' && k < 3 && lt__json_element(r->header, &i, &v[k]);) k++;
  if (k != 2) return bad(r, "tensor '%s' has data_offsets that are not [begin, end]", e->name);
  for (k = 0; k < 2; k++)
    if (json_count(r, v[k]) < 0)
      return bad(r, "tensor '%s' has data_offsets entry %s, not a non-negative integer below 2^53", e->name,
                 describe(r, v[k], buf, sizeof buf));
  e->begin = json_count(r, v[0]);
  e->end = json_count(r, v[1]);
  if (e->begin > e->end)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] that end before they begin", e->name, (long long)e->begin,
               (long long)e->end);
  /* the byte count, refusing shapes whose product overflows */
  int64_t need = (int64_t)lt_dtype_info(e->dtype)->size;
  int overflow = 0;
  for (int i = 0; i < e->ndim; i++) overflow |= __builtin_mul_overflow(need, e->shape[i], &need);
  if (overflow)
    return bad(r, "tensor '%s' has shape %s, too large to address", e->name,
               lt__shape_str(shape, sizeof shape, e->ndim, e->shape));
  if (need != e->end - e->begin)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] but shape %s %s needs %lld bytes", e->name,
               (long long)e->begin, (long long)e->end, lt__shape_str(shape, sizeof shape, e->ndim, e->shape),
               lt_dtype_info(e->dtype)->name, (long long)need);
  if (e->end > r->data_len)
    return bad(r, "tensor '%s' has data_offsets [%lld,%lld] beyond the %lld-byte data buffer", e->name,
               (long long)e->begin, (long long)e->end, (long long)r->data_len);
  return LT_OK;
}

/* One tensor's object: its three fields, found in any order (each at most
 * once), checked in a fixed order so messages do not depend on the layout.
 * Other fields are skipped, as the reference reader does. */
static lt_status parse_entry(reader *r, const char *name, int64_t at) {
  entry *e = &r->entries[r->n];
  *e = (entry){.name = name, .order = r->n};
  if (r->header[at] != '{') return bad(r, "tensor '%s' is not an object", name);
  static const char *const fields[3] = {"dtype", "shape", "data_offsets"};
  int64_t found[3] = {-1, -1, -1}, key, val;
  for (int64_t i = at; lt__json_member(r->header, &i, &key, &val);) {
    int64_t mark = r->strings_used; /* field names are not kept */
    size_t len;
    const char *k = decode(r, key, &len);
    r->strings_used = mark;
    for (int f = 0; f < 3; f++) {
      if (len != strlen(fields[f]) || memcmp(k, fields[f], len) != 0) continue;
      if (found[f] >= 0) return bad(r, "tensor '%s' has %s twice", name, fields[f]);
      found[f] = val;
    }
  }
  if (parse_dtype(r, e, found[0]) || parse_shape(r, e, found[1]) || parse_offsets(r, e, found[2])) return LT_ERR_IO;
  r->n++;
  return LT_OK;
}

/* __metadata__: an object of strings, or null for none. */
static lt_status parse_metadata(reader *r, int64_t at) {
  if (r->meta_seen++) return bad(r, "header has __metadata__ twice");
  const char *h = r->header;
  if (h[at] == 'n') return LT_OK;
  if (h[at] != '{') return bad(r, "__metadata__ is not an object");
  int64_t count = 0, key, val;
  for (int64_t i = at; lt__json_member(h, &i, &key, &val);)
    if (++count > LT_ST_MAX_METADATA)
      return bad(r, "__metadata__ has more than %d entries, the most lattice reads", LT_ST_MAX_METADATA);
  r->meta = calloc((size_t)(count ? count : 1), sizeof *r->meta);
  if (!r->meta) return no_memory(r);
  for (int64_t i = at; lt__json_member(h, &i, &key, &val); r->nmeta++) {
    lt_metadata_entry *m = &r->meta[r->nmeta];
    if (cstring(r, key, "__metadata__ key", "", &m->key)) return LT_ERR_IO;
    if (h[val] != '"') return bad(r, "__metadata__ value for '%s' is not a string", m->key);
    char whose[300];
    snprintf(whose, sizeof whose, " (key '%s')", m->key);
    if (cstring(r, val, "__metadata__ value", whose, &m->value)) return LT_ERR_IO;
  }
  return LT_OK;
}

/* Counts the tensors (members other than __metadata__, judged by the raw
 * key: an escaped spelling is counted, which only overestimates) and refuses
 * more than LT_ST_MAX_TENSORS before anything is allocated per tensor. */
static lt_status count_tensors(reader *r, int64_t root) {
  int64_t key, val;
  for (int64_t i = root; lt__json_member(r->header, &i, &key, &val);)
    if (!(lt__json_skip(r->header, key) - key == 14 && memcmp(r->header + key, "\"__metadata__\"", 14) == 0) &&
        ++r->count > LT_ST_MAX_TENSORS)
      return bad(r, "header has more than %d tensors, the most lattice reads from one file", LT_ST_MAX_TENSORS);
  return LT_OK;
}

/* Fills r->entries from the header object, one per tensor. */
static lt_status parse_entries(reader *r) {
  int64_t root = lt__json_ws(r->header, 0), key, val;
  if (count_tensors(r, root)) return LT_ERR_IO;
  r->entries = calloc((size_t)(r->count ? r->count : 1), sizeof *r->entries);
  if (!r->entries) return no_memory(r);
  for (int64_t i = root; lt__json_member(r->header, &i, &key, &val);) {
    const char *name;
    if (cstring(r, key, "tensor name", "", &name)) return LT_ERR_IO;
    lt_status st = strcmp(name, "__metadata__") == 0 ? parse_metadata(r, val) : parse_entry(r, name, val);
    if (st) return st;
  }
  return LT_OK;
}

/* Names (and metadata keys) must be unique; JSON itself does not say so. */
static lt_status check_unique(reader *r) {
  int64_t most = r->n > r->nmeta ? r->n : r->nmeta;
  const char **names = malloc((size_t)(most ? most : 1) * sizeof *names), *dup = NULL;
  if (!names) return no_memory(r);
  for (int64_t i = 0; i < r->n; i++) names[i] = r->entries[i].name;
  lt_status st = LT_OK;
  if (lt__find_duplicate(names, r->n, &dup)) {
    st = bad(r, "tensor '%s' appears twice in the header", dup);
  } else {
    for (int64_t i = 0; i < r->nmeta; i++) names[i] = r->meta[i].key;
    if (lt__find_duplicate(names, r->nmeta, &dup)) st = bad(r, "__metadata__ key '%s' appears twice", dup);
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
  st->meta = calloc((size_t)(r->nmeta ? r->nmeta : 1), sizeof *st->meta);
  if (!st->meta) return no_memory(r);
  for (int64_t i = 0; i < r->nmeta; i++) {
    lt_metadata_entry *m = &st->meta[st->nmeta++];
    m->key = dup_str(r->meta[i].key);
    m->value = dup_str(r->meta[i].value);
    if (!m->key || !m->value) return no_memory(r);
  }
  return LT_OK;
}

/* Creates the tensors in offset order and reads their bytes. */
static lt_status load_tensors(reader *r, lt_safetensors *st) {
  st->tensors = calloc((size_t)(r->n ? r->n : 1), sizeof *st->tensors);
  if (!st->tensors) return no_memory(r);
  int64_t data_start = 8 + r->header_len;
  for (int64_t i = 0; i < r->n; i++) {
    const entry *e = &r->entries[i];
    lt_named_tensor *nt = &st->tensors[st->n++];
    nt->name = dup_str(e->name);
    if (!nt->name) return no_memory(r);
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
  if ((s = open_file(r)) || (s = read_header(r)) || (s = check_header(r)) || (s = parse_entries(r)) ||
      (s = check_unique(r)) || (s = check_tiling(r)))
    return s;
  lt_safetensors *st = calloc(1, sizeof *st);
  if (!st) return no_memory(r);
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
  free(r.header);
  free(r.strings);
  free(r.entries);
  free(r.meta);
  return st;
}
