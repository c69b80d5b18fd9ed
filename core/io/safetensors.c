/* safetensors: what the reader (safetensors_read.c) and the writer
 * (safetensors_write.c) share, and the release of a loaded file. */
#include <stdlib.h>
#include <string.h>
#include "tensor/internal.h"
#include "io/safetensors.h"

int64_t lt__utf8_invalid_at(const char *str, size_t n) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    /* lead byte: sequence length and the smallest code point it may encode */
    size_t len = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len == 0 || i + len > n) return (int64_t)i;
    uint32_t cp = c & (0x7fu >> len);
    for (size_t k = 1; k < len; k++) {
      if ((s[i + k] & 0xc0) != 0x80) return (int64_t)i;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
      return (int64_t)i;
    i += len;
  }
  return -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int lt__find_duplicate(const char **names, int64_t n, const char **dup) {
  if (n < 2) return 0;
  qsort(names, (size_t)n, sizeof *names, cmp_str);
  for (int64_t i = 1; i < n; i++)
    if (strcmp(names[i - 1], names[i]) == 0) {
      *dup = names[i];
      return 1;
    }
  return 0;
}

void lt_safetensors_free(lt_safetensors *st) {
  if (!st) return;
  for (int i = 0; i < st->n; i++) {
    free((char *)st->tensors[i].name);
    lt_tensor_release(st->tensors[i].tensor);
  }
  for (int i = 0; i < st->nmeta; i++) {
    free((char *)st->meta[i].key);
    free((char *)st->meta[i].value);
  }
  free(st->tensors);
  free(st->meta);
  free(st);
}
