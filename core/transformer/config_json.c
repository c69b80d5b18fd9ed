/* BlockConfig and ModelConfig as JSON (lattice/transformer.h): the object
 * dataclasses.asdict gives, written with cJSON (names escaped by a vetted
 * printer, numbers as exact text), read after core/io's strict checker has
 * accepted the text, so a malformed file is refused with the byte and the
 * reason. Files are replaced atomically (io/replace.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "io/json.h"
#include "io/numtext.h"
#include "io/replace.h"
#include "io/safetensors.h"
#include "transformer/config.h"

#define MAX_FILE     (16 << 20)
#define MAX_EXACT    9007199254740992.0 /* 2^53: integers a double holds exactly */
#define NUM_TEXT_MAX 40

/* ---- writing ---- */

/* The shortest text that reads back as v, with a '.' when it looks like an
 * integer, as Python's repr writes floats ("10000.0", "1e-05", "0.1"). */
static void float_text(char *buf, double v) {
  lt__format_double_exact(buf, NUM_TEXT_MAX, 15, v);
  if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");
}

static int add_number_text(cJSON *obj, const char *name, const char *text) {
  return cJSON_AddRawToObject(obj, name, text) != NULL;
}

/* Adds field f of the struct at base; the nested configs are added by the caller. */
static int add_field(cJSON *obj, const lt_config_field *f, const void *base) {
  const char *p = (const char *)base + f->offset;
  char buf[NUM_TEXT_MAX];
  int64_t v;
  switch (f->type) {
  case LT_CONFIG_STRING: return cJSON_AddStringToObject(obj, f->name, p) != NULL;
  case LT_CONFIG_BOOL: return cJSON_AddBoolToObject(obj, f->name, *(const int *)p) != NULL;
  case LT_CONFIG_FLOAT: float_text(buf, *(const double *)p); return add_number_text(obj, f->name, buf);
  case LT_CONFIG_INT:
  case LT_CONFIG_OPT_INT:
    memcpy(&v, p, sizeof v);
    if (f->type == LT_CONFIG_OPT_INT && v == 0) return cJSON_AddNullToObject(obj, f->name) != NULL;
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    return add_number_text(obj, f->name, buf);
  default: return 1;
  }
}

static cJSON *block_object(const lt_block_config *c) {
  cJSON *obj = cJSON_CreateObject();
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_BLOCK_KIND, &n);
  for (int i = 0; obj && i < n; i++)
    if (!add_field(obj, &f[i], c)) {
      cJSON_Delete(obj);
      return NULL;
    }
  return obj;
}

/* The nested configs: `block` an object, `block_configs` an array or null. */
static int add_nested(cJSON *obj, const lt_config_field *f, const lt_model_config *m) {
  if (f->type == LT_CONFIG_BLOCK) {
    cJSON *b = block_object(&m->block);
    return b && cJSON_AddItemToObject(obj, f->name, b);
  }
  if (!m->block_configs) return cJSON_AddNullToObject(obj, f->name) != NULL;
  cJSON *list = cJSON_AddArrayToObject(obj, f->name);
  for (int64_t i = 0; list && i < m->n_layers; i++) {
    cJSON *b = block_object(&m->block_configs[i]);
    if (!b || !cJSON_AddItemToArray(list, b)) {
      cJSON_Delete(b);
      return 0;
    }
  }
  return list != NULL;
}

static char *print_and_free(cJSON *obj) {
  char *text = obj ? cJSON_Print(obj) : NULL;
  cJSON_Delete(obj);
  return text;
}

char *lt_block_config_to_json(const lt_block_config *c) { return print_and_free(block_object(c)); }

char *lt_model_config_to_json(const lt_model_config *m) {
  cJSON *obj = cJSON_CreateObject();
  int n;
  const lt_config_field *f = lt_config_fields(LT_CONFIG_MODEL_KIND, &n);
  for (int i = 0; obj && i < n; i++) {
    int nested = f[i].type == LT_CONFIG_BLOCK || f[i].type == LT_CONFIG_BLOCK_LIST;
    if (!(nested ? add_nested(obj, &f[i], m) : add_field(obj, &f[i], m))) {
      cJSON_Delete(obj);
      return NULL;
    }
  }
  return print_and_free(obj);
}

/* ---- reading ---- */

/* How a JSON value reads in a message: a number as itself, else its kind. */
static const char *json_kind(const cJSON *v, char *buf) {
  if (cJSON_IsNumber(v)) {
    lt__format_double(buf, NUM_TEXT_MAX, 14, v->valuedouble);
    return buf;
  }
  return cJSON_IsString(v)  ? "string"
         : cJSON_IsBool(v)  ? "boolean"
         : cJSON_IsNull(v)  ? "null"
         : cJSON_IsArray(v) ? "array"
                            : "object";
}

/* What a value of field f must be, as JSON spells it. */
static const char *json_expects(const lt_config_field *f) {
  switch (f->type) {
  case LT_CONFIG_STRING: return "a string";
  case LT_CONFIG_INT: return "an integer";
  case LT_CONFIG_OPT_INT: return "an integer or null";
  case LT_CONFIG_FLOAT: return "a number";
  case LT_CONFIG_BOOL: return "a boolean";
  case LT_CONFIG_BLOCK: return "an object";
  default: return "an array of objects or null";
  }
}

static lt_status wrong_type(lt_ctx *ctx, const char *who, const lt_config_field *f, const cJSON *v) {
  char buf[NUM_TEXT_MAX];
  return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be %s, got %s", who, f->name, json_expects(f), json_kind(v, buf));
}

static int is_integer(const cJSON *v) {
  return cJSON_IsNumber(v) && floor(v->valuedouble) == v->valuedouble && fabs(v->valuedouble) <= MAX_EXACT;
}

/* One scalar member into the struct at base. */
static lt_status read_scalar(lt_ctx *ctx, const lt_config_field *f, const cJSON *v, void *base, const char *who) {
  char *p = (char *)base + f->offset;
  switch (f->type) {
  case LT_CONFIG_STRING:
    if (!cJSON_IsString(v)) return wrong_type(ctx, who, f, v);
    if (strlen(v->valuestring) >= LT_CONFIG_NAME_MAX)
      return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be %s, got %zu bytes", who, f->name, lt_config_field_expects(f),
                         strlen(v->valuestring));
    memset(p, 0, LT_CONFIG_NAME_MAX);
    strcpy(p, v->valuestring);
    return LT_OK;
  case LT_CONFIG_BOOL:
    if (!cJSON_IsBool(v)) return wrong_type(ctx, who, f, v);
    *(int *)p = cJSON_IsTrue(v);
    return LT_OK;
  case LT_CONFIG_FLOAT:
    if (!cJSON_IsNumber(v)) return wrong_type(ctx, who, f, v);
    *(double *)p = v->valuedouble;
    return LT_OK;
  default: { /* the integers; 0 stands for null */
    int64_t x = 0;
    if (!(f->type == LT_CONFIG_OPT_INT && cJSON_IsNull(v))) {
      if (!is_integer(v)) return wrong_type(ctx, who, f, v);
      x = (int64_t)v->valuedouble;
      if (f->type == LT_CONFIG_OPT_INT && x == 0) /* 0 would read as None */
        return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: %s must be %s, got 0", who, f->name, lt_config_field_expects(f));
    }
    memcpy(p, &x, sizeof x);
    return LT_OK;
  }
  }
}

/* The field a member names, refusing unknown and repeated names; `seen` has
 * one bit per field (fewer than 64 of either kind). */
static const lt_config_field *member_field(lt_ctx *ctx, lt_config_kind kind, const cJSON *v, uint64_t *seen,
                                           const char *who) {
  int n;
  const lt_config_field *all = lt_config_fields(kind, &n), *f = lt_config_field_named(kind, v->string);
  if (!f) {
    lt_ctx_fail(ctx, LT_ERR_ARG, "%s: unknown field '%s'", who, v->string);
    return NULL;
  }
  uint64_t bit = (uint64_t)1 << (f - all);
  if (*seen & bit) {
    lt_ctx_fail(ctx, LT_ERR_ARG, "%s: field '%s' appears twice", who, v->string);
    return NULL;
  }
  *seen |= bit;
  return f;
}

static lt_status read_block(lt_ctx *ctx, lt_block_config *c, const cJSON *obj, const char *who) {
  lt_block_config_init(c);
  if (!cJSON_IsObject(obj)) {
    char buf[NUM_TEXT_MAX];
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: expected a JSON object, got %s", who, json_kind(obj, buf));
  }
  uint64_t seen = 0;
  for (const cJSON *v = obj->child; v; v = v->next) {
    const lt_config_field *f = member_field(ctx, LT_CONFIG_BLOCK_KIND, v, &seen, who);
    if (!f || read_scalar(ctx, f, v, c, who)) return LT_ERR_ARG;
  }
  return LT_OK;
}

/* block_configs: null, or an array of block objects into a new array. */
static lt_status read_layers(lt_ctx *ctx, lt_block_config **layers, int64_t *count, const cJSON *v, const char *who) {
  *layers = NULL;
  *count = 0;
  if (cJSON_IsNull(v)) return LT_OK;
  if (!cJSON_IsArray(v)) return wrong_type(ctx, who, lt_config_field_named(LT_CONFIG_MODEL_KIND, "block_configs"), v);
  int n = cJSON_GetArraySize(v);
  *layers = calloc((size_t)(n ? n : 1), sizeof **layers);
  if (!*layers) return lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory", who);
  int i = 0;
  for (const cJSON *e = v->child; e; e = e->next, i++) {
    char where[400];
    snprintf(where, sizeof where, "%s: block_configs[%d]", who, i + 1);
    if (read_block(ctx, &(*layers)[i], e, where)) return LT_ERR_ARG;
  }
  *count = n;
  return LT_OK;
}

static lt_status read_model(lt_ctx *ctx, lt_model_config *m, lt_block_config **layers, int64_t *count, const cJSON *obj,
                            const char *who) {
  lt_model_config_init(m);
  if (!cJSON_IsObject(obj)) {
    char buf[NUM_TEXT_MAX];
    return lt_ctx_fail(ctx, LT_ERR_ARG, "%s: expected a JSON object, got %s", who, json_kind(obj, buf));
  }
  uint64_t seen = 0;
  char where[400];
  snprintf(where, sizeof where, "%s: block", who);
  for (const cJSON *v = obj->child; v; v = v->next) {
    const lt_config_field *f = member_field(ctx, LT_CONFIG_MODEL_KIND, v, &seen, who);
    lt_status st = !f                                ? LT_ERR_ARG
                   : f->type == LT_CONFIG_BLOCK      ? read_block(ctx, &m->block, v, where)
                   : f->type == LT_CONFIG_BLOCK_LIST ? read_layers(ctx, layers, count, v, who)
                                                     : read_scalar(ctx, f, v, m, who);
    if (st) return st;
  }
  m->block_configs = *layers;
  return LT_OK;
}

/* Strict JSON first, so a malformed text is refused with its byte and reason. */
static cJSON *parse(lt_ctx *ctx, const char *text, size_t n, const char *who) {
  char why[LT_JSON_WHY_MAX] = "";
  int64_t end = 0, at = lt__utf8_invalid_at(text, n);
  if (at >= 0) {
    lt_ctx_fail(ctx, LT_ERR_IO, "%s: not valid UTF-8 (byte %lld)", who, (long long)at);
    return NULL;
  }
  at = lt__json_check(text, (int64_t)n, &end, why);
  if (at >= 0) {
    lt_ctx_fail(ctx, LT_ERR_IO, "%s: not valid JSON (byte %lld: %s)", who, (long long)at, why);
    return NULL;
  }
  at = lt__json_ws(text, end);
  if (at < (int64_t)n) {
    lt_ctx_fail(ctx, LT_ERR_IO, "%s: unexpected bytes after the JSON value (byte %lld)", who, (long long)at);
    return NULL;
  }
  cJSON *root = cJSON_ParseWithLength(text, n);
  if (!root) lt_ctx_fail(ctx, LT_ERR_MEM, "%s: out of memory parsing the JSON", who);
  return root;
}

lt_status lt_block_config_from_json(lt_ctx *ctx, lt_block_config *out, const char *text, size_t n, const char *who) {
  cJSON *root = parse(ctx, text, n, who);
  if (!root) return LT_ERR_IO;
  lt_status st = read_block(ctx, out, root, who);
  cJSON_Delete(root);
  return st ? st : lt__block_config_check(ctx, out, who);
}

lt_status lt_model_config_from_json(lt_ctx *ctx, lt_model_config *out, lt_block_config **layers, const char *text,
                                    size_t n, const char *who) {
  *layers = NULL;
  int64_t count = 0;
  cJSON *root = parse(ctx, text, n, who);
  if (!root) return LT_ERR_IO;
  lt_status st = read_model(ctx, out, layers, &count, root, who);
  cJSON_Delete(root);
  if (!st) st = lt__model_config_check(ctx, out, count, who);
  if (st) {
    free(*layers);
    *layers = NULL;
    out->block_configs = NULL;
  }
  return st;
}

/* ---- files ---- */

static lt_status write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t put = write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0) return LT_ERR_IO;
    p += put;
    n -= (size_t)put;
  }
  return LT_OK;
}

lt_status lt_config_write_file(lt_ctx *ctx, const char *path, const char *text, const char *who) {
  lt__replace rp = {.fd = -1};
  const char *what = "write";
  int err = lt__replace_begin(&rp, path, &what);
  if (!err && write_all(rp.fd, text, strlen(text))) err = errno, what = "write failed";
  if (!err && write_all(rp.fd, "\n", 1)) err = errno, what = "write failed";
  if (!err) err = lt__replace_commit(&rp, &what);
  lt__replace_end(&rp);
  if (err) return lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: %s: %s", who, path, what, strerror(err));
  return LT_OK;
}

static lt_status read_all(lt_ctx *ctx, int fd, char *buf, size_t n, const char *path, const char *who) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: read failed: %s", who, path, strerror(errno));
    if (r == 0) return lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: file ended early", who, path);
    got += (size_t)r;
  }
  buf[n] = '\0';
  return LT_OK;
}

lt_status lt_config_read_file(lt_ctx *ctx, const char *path, char **text, size_t *n, const char *who) {
  *text = NULL;
  *n = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: cannot open: %s", who, path, strerror(errno));
  struct stat sb;
  lt_status st = LT_OK;
  if (fstat(fd, &sb) != 0)
    st = lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: cannot stat: %s", who, path, strerror(errno));
  else if (!S_ISREG(sb.st_mode))
    st = lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: not a regular file", who, path);
  else if (sb.st_size > MAX_FILE)
    st = lt_ctx_fail(ctx, LT_ERR_IO, "%s: %s: file is %lld bytes, more than a config needs (at most %d)", who, path,
                     (long long)sb.st_size, MAX_FILE);
  else if (!(*text = malloc((size_t)sb.st_size + 1)))
    st = lt_ctx_fail(ctx, LT_ERR_MEM, "%s: %s: out of memory", who, path);
  if (!st) st = read_all(ctx, fd, *text, (size_t)sb.st_size, path, who);
  close(fd);
  if (st) {
    free(*text);
    *text = NULL;
    return st;
  }
  *n = (size_t)sb.st_size;
  return LT_OK;
}
